/**
 * The production store: MongoDB through the official driver. It uses only what
 * both MongoDB and FerretDB v1 support (docs/design.md "Storage"): single-document
 * atomic updates (findOneAndUpdate without projection), unique indexes, no
 * transactions, no change streams, no TTL indexes, no dotted keys.
 *
 * FerretDB v1 evaluates an update's filter and then rewrites the whole
 * document, so two concurrent conditional updates of one document can both
 * "win", and one can silently undo the other (measured: 29 of 30 rounds of 8
 * racing updateOne calls had several winners). Real MongoDB is atomic per
 * document, but Taskgate must be right on both, so every write to a task
 * (and every read-modify-write of an agent, target, user or token) goes
 * through a per-document lock: a document in `locks`
 * whose unique _id only one writer can insert (server/store/mongo-locks.ts:
 * they expire, so a server that dies holding one does not wedge the task,
 * and writers in one process queue for a lock among themselves first and
 * hand it on, so the lock costs round trips only against other processes'
 * writers and at the ends of a run of local ones).
 */
import { MongoClient, type Collection, type Db, type Filter } from 'mongodb';
import { AlreadyExistsError, UnavailableError } from '../../shared/errors.js';
import { TASK_STATUSES, TERMINAL_STATUSES, type TaskStatus } from '../../shared/task-status.js';
import {
  claimRequest,
  endsTask,
  type AgentPresence,
  type AgentRecord,
  type AuditEventRecord,
  type AuditQuery,
  type ChunkCursor,
  type ChunkRecord,
  type DeliveryPatch,
  type DeliveryRecord,
  type NewTargetRecord,
  type OutputTotals,
  type RequestRecord,
  type RetentionBatch,
  type RetentionLimits,
  type Store,
  type TargetPatch,
  type TargetRecord,
  type TaskQuery,
  type TaskRecord,
  type TokenRecord,
  type UserPatch,
  type UserRecord,
  taskAudience,
} from './store.js';
import { TaskWrites } from './task-writes.js';
import { MongoChunks } from './mongo-chunks.js';
import { MongoAccess } from './mongo-access.js';
import { MongoRequests } from './mongo-requests.js';
import { DocumentLocks, type LockDoc } from './mongo-locks.js';
import { newTarget } from './record-codecs.js';
import {
  asStored,
  isDuplicateKey,
  onlyDuplicateKeys,
  toAgent,
  toAgentDoc,
  toDelivery,
  toDeliveryDoc,
  toEvent,
  toEventDoc,
  toTarget,
  toTargetDoc,
  toTask,
  toTaskDoc,
  type AgentDoc,
  type ChunkDoc,
  type DeliveryDoc,
  type EventDoc,
  type RequestDoc,
  type TargetDoc,
  type TaskDoc,
  type TokenDoc,
  type UserDoc,
} from './mongo-docs.js';


/** Options for {@link MongoStore}. */
export interface MongoStoreOptions {
  /** Connection string, e.g. mongodb://host:27017/taskgate. */
  uri: string;
  /** Database name; default: the one in the URI, else "taskgate". */
  dbName?: string;
  /** How long to wait for a server before an operation fails, in ms. Default 10000. */
  serverSelectionTimeoutMs?: number;
}

/** The MongoDB store. */
export class MongoStore extends TaskWrites implements Store {
  readonly #client: MongoClient;
  readonly #db: Db;
  readonly #tasks: Collection<TaskDoc>;
  readonly #chunks: Collection<ChunkDoc>;
  /** Output chunks (server/store/mongo-chunks.ts). */
  readonly #output: MongoChunks;
  /** Users and tokens (server/store/mongo-access.ts). */
  readonly #access: MongoAccess;
  readonly #targets: Collection<TargetDoc>;
  readonly #agents: Collection<AgentDoc>;
  readonly #tokens: Collection<TokenDoc>;
  readonly #locks: DocumentLocks<TaskDoc>;
  readonly #users: Collection<UserDoc>;
  readonly #events: Collection<EventDoc>;
  readonly #deliveries: Collection<DeliveryDoc>;
  readonly #requests: Collection<RequestDoc>;
  /** Request-id records (server/store/mongo-requests.ts). */
  readonly #requestIds: MongoRequests;
  readonly #secrets: Collection<{ _id: string; target: string; key: string; sealed: string; updated: Date }>;

  constructor(options: MongoStoreOptions) {
    super();
    this.#client = new MongoClient(options.uri, {
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 10_000,
    });
    this.#db = this.#client.db(options.dbName ?? (new URL(options.uri).pathname.slice(1) || 'taskgate'));
    this.#tasks = this.#db.collection<TaskDoc>('tasks');
    this.#chunks = this.#db.collection<ChunkDoc>('chunks');
    this.#output = new MongoChunks(this.#chunks, this.#tasks);
    this.#targets = this.#db.collection<TargetDoc>('targets');
    this.#agents = this.#db.collection<AgentDoc>('agents');
    this.#tokens = this.#db.collection<TokenDoc>('tokens');
    this.#locks = new DocumentLocks(this.#db.collection<LockDoc>('locks'));
    this.#users = this.#db.collection<UserDoc>('users');
    this.#access = new MongoAccess(this.#users, this.#tokens, this.#locks);
    this.#events = this.#db.collection<EventDoc>('events');
    this.#deliveries = this.#db.collection<DeliveryDoc>('deliveries');
    this.#requests = this.#db.collection<RequestDoc>('requests');
    this.#requestIds = new MongoRequests(this.#requests, this.#locks);
    this.#secrets = this.#db.collection('secrets');
  }

  async init(): Promise<void> {
    try {
      await this.#client.connect();
    } catch (err) {
      throw new UnavailableError(`cannot reach MongoDB: ${(err as Error).message}`, { cause: err });
    }
    await Promise.all([
      // Claim: oldest ready task of an agent.
      this.#tasks.createIndex({ agent: 1, status: 1, _id: 1 }),
      this.#tasks.createIndex({ target: 1, _id: -1 }),
      this.#tasks.createIndex({ status: 1, _id: -1 }),
      this.#chunks.createIndex({ taskId: 1, seq: 1 }, { unique: true }),
      this.#chunks.createIndex({ taskId: 1, end: 1 }),
      this.#tasks.createIndex({ outbox: 1, _id: 1 }),
      this.#tokens.createIndex({ hash: 1 }, { unique: true }),
      this.#tokens.createIndex({ subject: 1 }),
      this.#events.createIndex({ actor: 1, _id: 1 }),
      this.#events.createIndex({ resource: 1, _id: 1 }),
      this.#deliveries.createIndex({ state: 1, nextAttempt: 1 }),
      this.#secrets.createIndex({ target: 1, key: 1 }),
      this.#requests.createIndex({ expires: 1 }),
      // Listing what a user may see (TaskQuery.audience): multikey, newest first per key.
      this.#tasks.createIndex({ audience: 1, _id: -1 }),
      // Retention (deleteEndedTasks): terminal tasks by when they finished; `finished: null` for the rejected.
      this.#tasks.createIndex({ status: 1, finished: 1 }),
    ]);
    await this.#addAudience();
  }

  /** Gives tasks stored before audience keys existed theirs (once; a no-op after). */
  async #addAudience(): Promise<void> {
    for (;;) {
      const docs = await this.#tasks.find({ audience: { $exists: false } }, { projection: { createdBy: 1, target: 1, review: 1 } }).limit(500).toArray();
      if (docs.length === 0) return;
      await this.#tasks.bulkWrite(
        docs.map((d) => ({ updateOne: { filter: { _id: d._id }, update: { $set: { audience: taskAudience({ createdBy: d.createdBy, target: d.target, review: d.review ?? [] }) } } } })),
      );
    }
  }

  async close(): Promise<void> {
    await this.#locks.settled();
    await this.#client.close();
  }

  async ping(): Promise<void> {
    await this.#db.command({ ping: 1 });
  }

  async insertTask(task: TaskRecord): Promise<void> {
    try {
      await this.#tasks.insertOne(toTaskDoc(task));
    } catch (err) {
      if (isDuplicateKey(err)) throw new AlreadyExistsError(`task ${task.id} already exists`, { cause: err });
      throw err;
    }
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    const doc = await this.#tasks.findOne({ _id: id });
    return doc ? toTask(doc) : null;
  }

  async listTasks(query: TaskQuery): Promise<TaskRecord[]> {
    const filter: Filter<TaskDoc> = {};
    // One status as an equality: FerretDB v1 pushes that down to its
    // backend, not $in (there every poll read the whole collection).
    if (query.statuses && query.statuses.length === 1) filter.status = query.statuses[0]!;
    else if (query.statuses && query.statuses.length > 1) filter.status = { $in: [...query.statuses] };
    if (query.target) filter.target = query.target;
    if (query.agent) filter.agent = query.agent;
    if (query.killRequested) filter.killRequested = { $ne: null };
    if (query.beforeId) filter._id = { $lt: query.beforeId };
    if (query.audience) filter.audience = { $in: [...query.audience] };
    const docs = await this.#tasks.find(filter).sort({ _id: -1 }).limit(query.limit).toArray();
    return docs.map(toTask);
  }

  async updateTask(id: string, mutate: (task: TaskRecord) => TaskRecord | null): Promise<TaskRecord | null> {
    return this.#updateTask(id, false, (task) => mutate(task));
  }

  async updateTaskWithOutput(id: string, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): Promise<TaskRecord | null> {
    return this.#updateTask(id, true, mutate);
  }

  /**
   * Both updates: `withOutput` reads the task's output totals under its
   * lock, once, for `mutate` and for the end's `outputBytes` alike.
   */
  async #updateTask(id: string, withOutput: boolean, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): Promise<TaskRecord | null> {
    const { next, ended } = await this.#locks.run(id, async (lock) => {
      const current = lock.doc !== undefined ? lock.doc : await this.#tasks.findOne({ _id: id });
      lock.doc = undefined;
      const before = current ? toTask(current) : null;
      const output = before && withOutput ? await this.chunkStats(id) : null;
      let after = before ? mutate(before, output ?? { chunks: 0, bytes: 0 }) : null;
      const ends = before !== null && after !== null && endsTask(before, after);
      if (after && ends) after = { ...after, outputBytes: (output ?? (await this.chunkStats(id))).bytes };
      if (after) {
        const doc = toTaskDoc(after);
        await this.#tasks.replaceOne({ _id: id }, doc);
        lock.doc = asStored(doc);
      }
      return { next: after, ended: ends };
    });
    if (!next || !ended) return next;
    // putChunkIfRunning checks the status, then inserts (no transactions
    // here): a chunk another replica was storing as the task ended can land
    // after the count. Count once more and keep the larger (output only grows).
    const { bytes } = await this.chunkStats(id);
    if (bytes <= next.outputBytes) return next;
    return (await this.#locks.run(id, async (lock) => {
      const current = lock.doc !== undefined ? lock.doc : await this.#tasks.findOne({ _id: id });
      lock.doc = undefined;
      if (!current || current.outputBytes >= bytes) return null;
      const recounted = { ...toTask(current), outputBytes: bytes };
      const doc = toTaskDoc(recounted);
      await this.#tasks.replaceOne({ _id: id }, doc);
      lock.doc = asStored(doc);
      return recounted;
    })) ?? next;
  }

  async claimNextReady(agent: string, bootId: string, time: Date): Promise<TaskRecord | null> {
    for (;;) {
      const candidates = await this.#tasks
        .find({ agent, status: 'ready' }, { projection: { _id: 1 } })
        .sort({ _id: 1 })
        .limit(8)
        .toArray();
      if (candidates.length === 0) return null;
      for (const { _id } of candidates) {
        const claimed = await this.transition(claimRequest(_id, agent, bootId, time));
        if (claimed) return claimed;
      }
    }
  }

  async hasUnfinishedTasks(target: string): Promise<boolean> {
    const doc = await this.#tasks.findOne(
      { target, status: { $nin: [...TERMINAL_STATUSES] } },
      { projection: { _id: 1 } },
    );
    return doc !== null;
  }

  async listUnpublished(limit: number): Promise<TaskRecord[]> {
    const docs = await this.#tasks.find({ outbox: true }).sort({ _id: 1 }).limit(limit).toArray();
    return docs.map(toTask);
  }

  async putChunk(chunk: ChunkRecord): Promise<void> {
    await this.#output.put(chunk);
  }

  async putChunkIfRunning(chunk: ChunkRecord): Promise<boolean> {
    return this.#output.putIfRunning(chunk);
  }

  async readChunks(taskId: string, cursor: ChunkCursor, limit: number, maxBytes = Infinity): Promise<ChunkRecord[]> {
    return this.#output.read(taskId, cursor, limit, maxBytes);
  }

  async countTasksByStatus(): Promise<Partial<Record<TaskStatus, number>>> {
    // One count per status: portable to FerretDB v1, and a scrape every few seconds at most.
    const counts = await Promise.all(TASK_STATUSES.map(async (status) => [status, await this.#tasks.countDocuments({ status })] as const));
    return Object.fromEntries(counts.filter(([, n]) => n > 0));
  }

  async chunkStats(taskId: string): Promise<{ chunks: number; bytes: number }> {
    return this.#output.stats(taskId);
  }

  async insertRequest(record: RequestRecord): Promise<RequestRecord | null> {
    return this.#requestIds.insertRequest(record);
  }

  async getRequest(caller: string, requestId: string, now: Date): Promise<RequestRecord | null> {
    return this.#requestIds.getRequest(caller, requestId, now);
  }

  async completeRequest(caller: string, requestId: string): Promise<void> {
    return this.#requestIds.completeRequest(caller, requestId);
  }

  async deleteExpiredRequests(now: Date, limit: number): Promise<number> {
    return this.#requestIds.deleteExpiredRequests(now, limit);
  }

  async insertTarget(record: NewTargetRecord): Promise<void> {
    const target = newTarget(record);
    const { name } = target;
    try {
      await this.#targets.insertOne(toTargetDoc(target));
    } catch (err) {
      if (isDuplicateKey(err)) throw new AlreadyExistsError(`target "${name}" already exists`, { cause: err });
      throw err;
    }
  }

  async getTarget(name: string): Promise<TargetRecord | null> {
    const doc = await this.#targets.findOne({ _id: name });
    return doc ? toTarget(doc) : null;
  }

  async listTargets(afterName: string, limit: number): Promise<TargetRecord[]> {
    const docs = await this.#targets.find({ _id: { $gt: afterName } }).sort({ _id: 1 }).limit(limit).toArray();
    return docs.map(toTarget);
  }

  // Writes of a stored target, user or token hold its lock (see the file
  // comment): on FerretDB two racing $set updates of different fields can
  // each rewrite the whole document as it was before the other, losing it
  // (test/integration/store-documents.test.ts). Under the lock the write is
  // a read, a merge and a replace, in the record's current version.
  async updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null> {
    return this.#locks.run(`target:${name}`, async () => {
      const doc = await this.#targets.findOne({ _id: name });
      if (!doc) return null;
      const next: TargetRecord = { ...toTarget(doc), ...patch, updated: time };
      await this.#targets.replaceOne({ _id: name }, toTargetDoc(next));
      return next;
    });
  }

  async deleteTarget(name: string): Promise<boolean> {
    // Under the lock too: an update's replace must not land on a target made again under the name.
    return this.#locks.run(`target:${name}`, async () => (await this.#targets.deleteOne({ _id: name })).deletedCount > 0);
  }

  // Agent writes hold the agent's lock too: on FerretDB a presence update
  // racing a new session's identity could otherwise write back the old one
  // (see the file comment), and the agent could then not resume.
  async putAgent(agent: AgentRecord): Promise<void> {
    const { _id, ...rest } = toAgentDoc(agent);
    await this.#locks.run(`agent:${_id}`, async () => {
      await this.#agents.replaceOne({ _id }, rest, { upsert: true });
    });
  }

  async updateAgentPresence(name: string, presence: AgentPresence): Promise<boolean> {
    return this.#locks.run(`agent:${name}`, async () => {
      const result = await this.#agents.updateOne({ _id: name }, { $set: presence });
      return result.matchedCount > 0;
    });
  }

  async getAgent(name: string): Promise<AgentRecord | null> {
    const doc = await this.#agents.findOne({ _id: name });
    return doc ? toAgent(doc) : null;
  }

  async listAgents(): Promise<AgentRecord[]> {
    const docs = await this.#agents.find({}).sort({ _id: 1 }).toArray();
    return docs.map(toAgent);
  }

  async putSecret(target: string, key: string, sealed: string, time: Date): Promise<void> {
    await this.#secrets.replaceOne({ _id: `${target}/${key}` }, { target, key, sealed, updated: time }, { upsert: true });
  }

  async listSecrets(target: string): Promise<{ key: string; sealed: string }[]> {
    const docs = await this.#secrets.find({ target }).sort({ key: 1 }).toArray();
    return docs.map((d) => ({ key: d.key, sealed: d.sealed }));
  }

  async deleteSecret(target: string, key: string): Promise<boolean> {
    return (await this.#secrets.deleteOne({ _id: `${target}/${key}` })).deletedCount > 0;
  }

  async insertUser(user: UserRecord): Promise<void> {
    return this.#access.insertUser(user);
  }

  async getUser(email: string): Promise<UserRecord | null> {
    return this.#access.getUser(email);
  }

  async listUsers(afterEmail: string, limit: number): Promise<UserRecord[]> {
    return this.#access.listUsers(afterEmail, limit);
  }

  async updateUser(email: string, patch: UserPatch, time: Date): Promise<UserRecord | null> {
    return this.#access.updateUser(email, patch, time);
  }

  async countUsers(): Promise<number> {
    return this.#access.countUsers();
  }

  async insertToken(token: TokenRecord): Promise<void> {
    return this.#access.insertToken(token);
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    return this.#access.findTokenByHash(hash);
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    return this.#access.getToken(id);
  }

  async listTokens(subject: string | undefined): Promise<TokenRecord[]> {
    return this.#access.listTokens(subject);
  }

  async getTokens(ids: readonly string[]): Promise<TokenRecord[]> {
    return this.#access.getTokens(ids);
  }

  async touchToken(id: string, time: Date): Promise<void> {
    return this.#access.touchToken(id, time);
  }

  async tokensToRecheck(ids: readonly string[], now: Date): Promise<string[]> {
    return this.#access.tokensToRecheck(ids, now);
  }

  async getUsers(emails: readonly string[]): Promise<UserRecord[]> {
    return this.#access.getUsers(emails);
  }

  async revokeToken(id: string, time: Date): Promise<TokenRecord | null> {
    return this.#access.revokeToken(id, time);
  }

  async insertEvent(event: AuditEventRecord): Promise<void> {
    try {
      await this.#events.insertOne(toEventDoc(event));
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async insertEvents(events: readonly AuditEventRecord[]): Promise<void> {
    if (events.length === 0) return;
    try {
      // Unordered: each event is stored whatever happens to the others, and
      // an id stored before fails alone, as a duplicate.
      await this.#events.insertMany(
        events.map(toEventDoc),
        { ordered: false },
      );
    } catch (err) {
      if (!onlyDuplicateKeys(err)) throw err;
    }
  }

  async listEvents(query: AuditQuery): Promise<AuditEventRecord[]> {
    const filter: Filter<EventDoc> = {};
    if (query.actor) filter.actor = query.actor;
    if (query.resource) filter.resource = query.resource;
    if (query.since || query.until) {
      filter.time = {};
      if (query.since) filter.time.$gte = query.since;
      if (query.until) filter.time.$lt = query.until;
    }
    if (query.afterId) filter._id = { $gt: query.afterId };
    const docs = await this.#events.find(filter).sort({ _id: 1 }).limit(query.limit).toArray();
    return docs.map(toEvent);
  }

  async insertDelivery(delivery: DeliveryRecord): Promise<void> {
    try {
      await this.#deliveries.insertOne(toDeliveryDoc(delivery));
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async claimDueDeliveries(now: Date, leaseUntil: Date, limit: number): Promise<DeliveryRecord[]> {
    const due = await this.#deliveries
      .find({ state: 'pending', nextAttempt: { $lte: now } })
      .sort({ nextAttempt: 1, _id: 1 })
      .limit(limit)
      .toArray();
    const claimed: DeliveryRecord[] = [];
    for (const doc of due) {
      // Conditional on the time read, so of two senders usually only one
      // takes it; when both do (FerretDB updates are not atomic), the
      // receiver sees a duplicate, which at-least-once delivery allows.
      const result = await this.#deliveries.updateOne(
        { _id: doc._id, state: 'pending', nextAttempt: doc.nextAttempt },
        { $set: { nextAttempt: leaseUntil } },
      );
      if (result.modifiedCount === 1) claimed.push(toDelivery({ ...doc, nextAttempt: leaseUntil }));
    }
    return claimed;
  }

  async updateDelivery(id: string, patch: DeliveryPatch): Promise<void> {
    await this.#deliveries.updateOne({ _id: id }, { $set: patch });
  }

  async getDelivery(id: string): Promise<DeliveryRecord | null> {
    const doc = await this.#deliveries.findOne({ _id: id });
    return doc ? toDelivery(doc) : null;
  }

  async deleteEndedTasks(endedBefore: Date, limits: RetentionLimits): Promise<RetentionBatch> {
    // Terminal tasks never change again but for `published` (and they qualify only once it is
    // complete), so no task lock is needed: every write here is a delete by _id, which is
    // idempotent on MongoDB and FerretDB alike, however many replicas run it at once.
    const terminal = { status: { $in: [...TERMINAL_STATUSES] }, outbox: { $ne: true } };
    const ran = await this.#tasks.find({ ...terminal, finished: { $lt: endedBefore } }, { projection: { _id: 1 } }).limit(limits.tasks).toArray();
    // A task that never ran (rejected) has no `finished`: it ended with its last event, so no
    // event may be as late as the cutoff. ($nor, as FerretDB v1 gets $not and $elemMatch over arrays wrong.)
    const never =
      ran.length < limits.tasks
        ? await this.#tasks
            .find({ ...terminal, finished: null, $nor: [{ 'events.time': { $gte: endedBefore } }] }, { projection: { _id: 1 } })
            .limit(limits.tasks - ran.length)
            .toArray()
        : [];
    const ids = [...ran, ...never].map((d) => d._id).sort();
    if (ids.length === 0) return { tasks: 0, chunks: 0, more: false };
    // Chunks first, in (taskId, seq) order, so where the limit cuts is known: the last task
    // read may have more, the ones after it were not reached, and all before it have none left.
    const found = await this.#chunks
      .find({ taskId: { $in: ids } }, { projection: { _id: 1, taskId: 1 } })
      .sort({ taskId: 1, seq: 1 })
      .limit(limits.chunks)
      .toArray();
    const chunks = found.length > 0 ? (await this.#chunks.deleteMany({ _id: { $in: found.map((c) => c._id) } })).deletedCount : 0;
    const cut = found.length === limits.chunks ? found.at(-1)?.taskId : undefined;
    const done = cut === undefined ? ids : ids.filter((id) => id < cut);
    const tasks = done.length > 0 ? (await this.#tasks.deleteMany({ _id: { $in: done }, ...terminal })).deletedCount : 0;
    return { tasks, chunks, more: cut !== undefined || ids.length === limits.tasks };
  }
}
