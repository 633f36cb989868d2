/**
 * The production store: MongoDB through the official driver. It uses only what
 * both MongoDB and FerretDB v1 support (DESIGN.md "Storage"): single-document
 * atomic updates (findOneAndUpdate without projection), unique indexes, no
 * transactions, no change streams, no TTL indexes, no dotted keys.
 *
 * FerretDB v1 evaluates an update's filter and then rewrites the whole
 * document, so two concurrent conditional updates of one document can both
 * "win", and one can silently undo the other (measured: 29 of 30 rounds of 8
 * racing updateOne calls had several winners). Real MongoDB is atomic per
 * document, but Taskgate must be right on both, so every write to a task goes
 * through a per-task lock: a document in `locks` whose unique _id only one
 * writer can insert. Locks expire (in code, no TTL index) after
 * LOCK_LEASE_MS, so a server that dies holding one does not wedge the task.
 */
import { Binary, MongoClient, MongoServerError, type Collection, type Db, type Filter } from 'mongodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlreadyExistsError, UnavailableError } from '../../shared/errors.js';
import { randomId } from '../../shared/ids.js';
import { TERMINAL_STATUSES, type TaskStatus } from '../../shared/task-status.js';
import type {
  AgentRecord,
  ChunkCursor,
  ChunkRecord,
  Store,
  TargetPatch,
  TargetRecord,
  TaskPatch,
  TaskQuery,
  TaskRecord,
  TokenKind,
  TokenRecord,
  TransitionRequest,
} from './store.js';

type TaskDoc = Omit<TaskRecord, 'id'> & { _id: string };
type TargetDoc = Omit<TargetRecord, 'name'> & { _id: string };
type AgentDoc = Omit<AgentRecord, 'name'> & { _id: string };
type TokenDoc = TokenRecord & { _id: string };
interface ChunkDoc {
  _id: string;
  taskId: string;
  seq: number;
  offset: number;
  end: number;
  data: Binary;
}

const DUPLICATE_KEY = 11000;
/** A task lock older than this is presumed abandoned by a dead server, in ms. */
const LOCK_LEASE_MS = 10_000;

interface LockDoc {
  _id: string;
  owner: string;
  until: Date;
}

function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

function toTask({ _id, ...rest }: TaskDoc): TaskRecord {
  return { id: _id, ...rest };
}

function toTarget({ _id, ...rest }: TargetDoc): TargetRecord {
  return { name: _id, ...rest };
}

function toAgent({ _id, ...rest }: AgentDoc): AgentRecord {
  return { name: _id, ...rest };
}

function toChunk(doc: ChunkDoc): ChunkRecord {
  const bytes = doc.data.buffer;
  return { taskId: doc.taskId, seq: doc.seq, offset: doc.offset, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

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
export class MongoStore implements Store {
  readonly #client: MongoClient;
  readonly #db: Db;
  readonly #tasks: Collection<TaskDoc>;
  readonly #chunks: Collection<ChunkDoc>;
  readonly #targets: Collection<TargetDoc>;
  readonly #agents: Collection<AgentDoc>;
  readonly #tokens: Collection<TokenDoc>;
  readonly #locks: Collection<LockDoc>;

  constructor(options: MongoStoreOptions) {
    this.#client = new MongoClient(options.uri, {
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMs ?? 10_000,
    });
    this.#db = this.#client.db(options.dbName ?? (new URL(options.uri).pathname.slice(1) || 'taskgate'));
    this.#tasks = this.#db.collection<TaskDoc>('tasks');
    this.#chunks = this.#db.collection<ChunkDoc>('chunks');
    this.#targets = this.#db.collection<TargetDoc>('targets');
    this.#agents = this.#db.collection<AgentDoc>('agents');
    this.#tokens = this.#db.collection<TokenDoc>('tokens');
    this.#locks = this.#db.collection<LockDoc>('locks');
  }

  /** Runs `fn` holding the task's lock (see the file comment). */
  async #locked<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const owner = randomId();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#locks.insertOne({ _id: taskId, owner, until: new Date(Date.now() + LOCK_LEASE_MS) });
        break;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const held = await this.#locks.findOne({ _id: taskId });
      if (held && held.until.getTime() < Date.now()) {
        await this.#locks.deleteOne({ _id: taskId, owner: held.owner });
        continue;
      }
      await sleep(Math.min(1 + attempt, 20));
    }
    try {
      return await fn();
    } finally {
      await this.#locks.deleteOne({ _id: taskId, owner });
    }
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
      this.#tokens.createIndex({ hash: 1 }, { unique: true }),
    ]);
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async ping(): Promise<void> {
    await this.#db.command({ ping: 1 });
  }

  async insertTask(task: TaskRecord): Promise<void> {
    const { id, ...rest } = task;
    await this.#tasks.insertOne({ _id: id, ...rest });
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    const doc = await this.#tasks.findOne({ _id: id });
    return doc ? toTask(doc) : null;
  }

  async listTasks(query: TaskQuery): Promise<TaskRecord[]> {
    const filter: Filter<TaskDoc> = {};
    if (query.statuses && query.statuses.length > 0) filter.status = { $in: [...query.statuses] };
    if (query.target) filter.target = query.target;
    if (query.agent) filter.agent = query.agent;
    if (query.beforeId) filter._id = { $lt: query.beforeId };
    const docs = await this.#tasks.find(filter).sort({ _id: -1 }).limit(query.limit).toArray();
    return docs.map(toTask);
  }

  async transition(request: TransitionRequest): Promise<TaskRecord | null> {
    return this.#locked(request.id, async () => {
      const current = await this.#tasks.findOne({ _id: request.id });
      if (!current || !request.from.includes(current.status)) return null;
      const event = { time: request.time, actor: request.actor, from: current.status, to: request.to, reason: request.reason };
      const next: TaskDoc = { ...current, ...request.patch, status: request.to, events: [...current.events, event] };
      await this.#tasks.replaceOne({ _id: request.id }, next);
      return toTask(next);
    });
  }

  async patchTask(id: string, status: TaskStatus, patch: TaskPatch): Promise<TaskRecord | null> {
    return this.#locked(id, async () => {
      const current = await this.#tasks.findOne({ _id: id });
      if (!current || current.status !== status) return null;
      const next: TaskDoc = { ...current, ...patch };
      await this.#tasks.replaceOne({ _id: id }, next);
      return toTask(next);
    });
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
        const claimed = await this.transition({
          id: _id,
          from: ['ready'],
          to: 'running',
          patch: { bootId },
          actor: `agent:${agent}`,
          reason: 'handed to agent',
          time,
        });
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

  async putChunk(chunk: ChunkRecord): Promise<void> {
    try {
      await this.#chunks.insertOne({
        _id: `${chunk.taskId}:${chunk.seq}`,
        taskId: chunk.taskId,
        seq: chunk.seq,
        offset: chunk.offset,
        end: chunk.offset + chunk.data.length,
        data: new Binary(chunk.data),
      });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async readChunks(taskId: string, cursor: ChunkCursor, limit: number): Promise<ChunkRecord[]> {
    const filter: Filter<ChunkDoc> =
      'afterSeq' in cursor ? { taskId, seq: { $gt: cursor.afterSeq } } : { taskId, end: { $gt: cursor.fromOffset } };
    const docs = await this.#chunks.find(filter).sort({ seq: 1 }).limit(limit).toArray();
    return docs.map(toChunk);
  }

  async chunkStats(taskId: string): Promise<{ chunks: number; bytes: number }> {
    // Chunks are stored contiguously from offset 0, so the bytes are the
    // last chunk's end. (FerretDB v1's $group cannot $sum a field.)
    const [chunks, last] = await Promise.all([
      this.#chunks.countDocuments({ taskId }),
      this.#chunks.findOne({ taskId }, { sort: { seq: -1 }, projection: { end: 1 } }),
    ]);
    return { chunks, bytes: last?.end ?? 0 };
  }

  async insertTarget(target: TargetRecord): Promise<void> {
    const { name, ...rest } = target;
    try {
      await this.#targets.insertOne({ _id: name, ...rest });
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

  async updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null> {
    const doc = await this.#targets.findOneAndUpdate(
      { _id: name },
      { $set: { ...patch, updated: time } },
      { returnDocument: 'after' },
    );
    return doc ? toTarget(doc) : null;
  }

  async deleteTarget(name: string): Promise<boolean> {
    const result = await this.#targets.deleteOne({ _id: name });
    return result.deletedCount > 0;
  }

  async putAgent(agent: AgentRecord): Promise<void> {
    const { name, ...rest } = agent;
    await this.#agents.replaceOne({ _id: name }, rest, { upsert: true });
  }

  async getAgent(name: string): Promise<AgentRecord | null> {
    const doc = await this.#agents.findOne({ _id: name });
    return doc ? toAgent(doc) : null;
  }

  async listAgents(): Promise<AgentRecord[]> {
    const docs = await this.#agents.find({}).sort({ _id: 1 }).toArray();
    return docs.map(toAgent);
  }

  async insertToken(token: TokenRecord): Promise<void> {
    await this.#tokens.insertOne({ _id: token.id, ...token });
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    const doc = await this.#tokens.findOne({ hash }, { projection: { _id: 0 } });
    return doc as TokenRecord | null;
  }

  async countTokens(kind: TokenKind): Promise<number> {
    return this.#tokens.countDocuments({ kind });
  }
}
