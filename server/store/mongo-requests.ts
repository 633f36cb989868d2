/**
 * The MongoDB store's request-id records (Store.insertRequest and its kin;
 * server/request-ids.ts says what they are for): one document per (caller,
 * request id), keyed by both in `_id`.
 */
import type { Collection } from 'mongodb';
import type { DocumentLocks } from './mongo-locks.js';
import { isDuplicateKey, toRequest, toRequestDoc, type RequestDoc, type TaskDoc } from './mongo-docs.js';
import { REQUEST_SWEEP, type RequestRecord } from './records.js';

/**
 * The one lock every deletion of request records holds. Deleters are thus
 * serialised, and each deletes only records expired when it looks: a record
 * bound again after an expired one was deleted can never be deleted in its
 * place, even where a delete matches first and removes by _id later (FerretDB).
 */
const REQUEST_EXPIRY_LOCK = 'requests:expiry';

/** The _id of a request record: injective in (caller, requestId), whatever they contain. */
function requestKey(caller: string, requestId: string): string {
  return JSON.stringify([caller, requestId]);
}

/** Request-id records in `requests`; its methods are RequestStore's, by the same names. */
export class MongoRequests {
  readonly #requests: Collection<RequestDoc>;
  readonly #locks: DocumentLocks<TaskDoc>;
  /** When this store last deleted expired request records (Date.now()). */
  #sweptAt = 0;

  constructor(requests: Collection<RequestDoc>, locks: DocumentLocks<TaskDoc>) {
    this.#requests = requests;
    this.#locks = locks;
  }

  async insertRequest(record: RequestRecord): Promise<RequestRecord | null> {
    if (Date.now() - this.#sweptAt >= REQUEST_SWEEP.everyMs) {
      this.#sweptAt = Date.now();
      await this.deleteExpiredRequests(record.created, REQUEST_SWEEP.limit);
    }
    const _id = requestKey(record.caller, record.requestId);
    for (;;) {
      // A unique _id: of concurrent inserts exactly one succeeds, on MongoDB
      // and on FerretDB alike (unlike conditional updates there).
      try {
        await this.#requests.insertOne(toRequestDoc(_id, record));
        return null;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const held = await this.#requests.findOne({ _id });
      if (held && held.expires.getTime() > record.created.getTime()) return toRequest(held);
      if (held) {
        const now = record.created;
        await this.#locks.run(REQUEST_EXPIRY_LOCK, () => this.#requests.deleteOne({ _id, expires: { $lte: now } }));
      }
    }
  }

  async getRequest(caller: string, requestId: string, now: Date): Promise<RequestRecord | null> {
    const held = await this.#requests.findOne({ _id: requestKey(caller, requestId) });
    return held && held.expires.getTime() > now.getTime() ? toRequest(held) : null;
  }

  async completeRequest(caller: string, requestId: string): Promise<void> {
    // Every writer sets the same value, so racing writes cannot disagree.
    await this.#requests.updateOne({ _id: requestKey(caller, requestId) }, { $set: { done: true } });
  }

  async deleteExpiredRequests(now: Date, limit: number): Promise<number> {
    return this.#locks.run(REQUEST_EXPIRY_LOCK, async () => {
      const expired = await this.#requests.find({ expires: { $lte: now } }, { projection: { _id: 1 } }).limit(limit).toArray();
      if (expired.length === 0) return 0;
      const result = await this.#requests.deleteMany({ _id: { $in: expired.map((d) => d._id) }, expires: { $lte: now } });
      return result.deletedCount;
    });
  }
}
