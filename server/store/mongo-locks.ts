/**
 * The per-document locks of the MongoDB store (server/store/mongo-store.ts
 * says why FerretDB needs them): a document in `locks` whose unique _id only
 * one writer can insert, expiring (in code, no TTL index) after
 * {@link LOCK_LEASE_MS}, so a server that dies holding one does not wedge
 * its document.
 *
 * Callers in one process queue for a key here first, so only one of them
 * at a time asks the database for its lock document and they never poll for
 * it against each other; a holder with a local caller waiting hands the
 * document over instead of deleting it for the next to insert (two round
 * trips fewer each), while it has at least half its lease left. The last
 * holder deletes it after its work's result is returned: the write is done
 * by then, and the next local caller waits for the delete ({@link settled}
 * too).
 */
import { MongoServerError, type Collection } from 'mongodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomId } from '../../shared/ids.js';

/** A lock older than this is presumed abandoned by a dead server, in ms. */
export const LOCK_LEASE_MS = 10_000;

const DUPLICATE_KEY = 11000;

export interface LockDoc {
  _id: string;
  owner: string;
  until: Date;
}

/** A lock document this process inserted: its owner value and lease end (Date.now() ms). */
export interface HeldLock<D> {
  owner: string;
  until: number;
  /**
   * The locked document as the last holder left it (null: none), when the
   * lock was handed over: no one else can have written it since, so the
   * next holder need not read it again. Undefined: not known, read it.
   */
  doc?: D | null;
}

/** One lock key in this process: the queue of its callers. */
interface LocalLock<D> {
  /** Settles when the last caller queued so far is done with the key. */
  tail: Promise<void>;
  /** Callers queued behind the one running. */
  waiting: number;
  /** The lock document a finished holder left for the next caller, if any. */
  handed: HeldLock<D> | null;
}

/** Locks by key over one `locks` collection; `D` is what a holder may leave for the next (a task document). */
export class DocumentLocks<D> {
  readonly #locks: Collection<LockDoc>;
  /** Lock keys this process holds or waits for. */
  readonly #local = new Map<string, LocalLock<D>>();
  /** Lock deletions under way, awaited by {@link settled}. */
  readonly #releasing = new Set<Promise<void>>();

  constructor(locks: Collection<LockDoc>) {
    this.#locks = locks;
  }

  /** Runs `fn` holding the lock `key` (a task id, `agent:NAME`, ...). */
  async run<T>(key: string, fn: (lock: HeldLock<D>) => Promise<T>): Promise<T> {
    let slot = this.#local.get(key);
    if (!slot) {
      slot = { tail: Promise.resolve(), waiting: 0, handed: null };
      this.#local.set(key, slot);
    }
    const previous = slot.tail;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    slot.tail = mine;
    slot.waiting++;
    await previous;
    slot.waiting--;
    let lock: HeldLock<D> | null = null;
    try {
      lock = slot.handed;
      slot.handed = null;
      if (lock && lock.until - Date.now() < LOCK_LEASE_MS / 2) {
        await this.#locks.deleteOne({ _id: key, owner: lock.owner });
        lock = null;
      }
      lock ??= await this.#acquire(key);
      return await fn(lock);
    } finally {
      if (lock && slot.waiting > 0) {
        slot.handed = lock;
        done();
      } else {
        const owner = lock?.owner;
        const local = slot;
        const released = (owner ? this.#locks.deleteOne({ _id: key, owner }).then(() => undefined) : Promise.resolve())
          // A lock that could not be deleted expires after its lease.
          .catch(() => undefined)
          .finally(() => {
            this.#releasing.delete(released);
            if (local.tail === mine && this.#local.get(key) === local) this.#local.delete(key);
            done();
          });
        this.#releasing.add(released);
      }
    }
  }

  /** Resolves once every lock deletion under way is done (before the client closes). */
  async settled(): Promise<void> {
    while (this.#releasing.size > 0) await Promise.all(this.#releasing);
  }

  /** Inserts the lock document of `key`, waiting while another process holds it; deletes an expired one. */
  async #acquire(key: string): Promise<HeldLock<D>> {
    const owner = randomId();
    for (let attempt = 0; ; attempt++) {
      const until = Date.now() + LOCK_LEASE_MS;
      try {
        await this.#locks.insertOne({ _id: key, owner, until: new Date(until) });
        return { owner, until };
      } catch (err) {
        if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
      }
      const held = await this.#locks.findOne({ _id: key });
      if (held && held.until.getTime() < Date.now()) {
        await this.#locks.deleteOne({ _id: key, owner: held.owner });
        continue;
      }
      await sleep(Math.min(1 + attempt, 20));
    }
  }
}
