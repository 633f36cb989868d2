/**
 * The storage contract. Two implementations keep it: {@link SqliteStore}
 * (embedded, the default) and {@link MongoStore} (production); one contract
 * suite (test/integration/store-contract.test.ts) runs against both.
 *
 * Every status change is conditional: it happens only if the task is still in
 * one of the expected statuses, and it appends its event in the same atomic
 * write, so a task's history can never disagree with its status. Neither
 * implementation needs multi-document transactions.
 */
import type { TaskStatus } from '../../shared/task-status.js';

/** One status change of a task. */
export interface TaskEventRecord {
  time: Date;
  /** Who caused it: "admin", "agent:NAME", "system", later "user:EMAIL". */
  actor: string;
  /** Null for the event that created the task. */
  from: TaskStatus | null;
  to: TaskStatus;
  reason: string;
}

/** A task as stored. */
export interface TaskRecord {
  /** Sortable by creation time (see shared/ids.ts). */
  id: string;
  created: Date;
  message: string;
  script: string;
  type: string;
  target: string;
  status: TaskStatus;
  createdBy: string;
  /** The agent that runs it; empty until the task becomes ready. */
  agent: string;
  /** Boot id of the agent process it was handed to; empty until claimed. */
  bootId: string;
  started: Date | null;
  finished: Date | null;
  exitCode: number | null;
  signal: string;
  failureReason: string;
  outputBytes: number;
  events: TaskEventRecord[];
}

/** Fields a transition may set besides the status. */
export type TaskPatch = Partial<
  Pick<
    TaskRecord,
    'agent' | 'bootId' | 'started' | 'finished' | 'exitCode' | 'signal' | 'failureReason' | 'outputBytes'
  >
>;

/** A conditional status change. */
export interface TransitionRequest {
  id: string;
  /** The statuses the task must be in; otherwise nothing changes. */
  from: readonly TaskStatus[];
  to: TaskStatus;
  patch?: TaskPatch;
  actor: string;
  reason: string;
  time: Date;
}

/** Which tasks to list, newest first. */
export interface TaskQuery {
  statuses?: readonly TaskStatus[];
  target?: string;
  agent?: string;
  /** Only tasks whose id sorts before this one (for paging). */
  beforeId?: string;
  limit: number;
}

/** A target as stored. */
export interface TargetRecord {
  name: string;
  type: string;
  agent: string;
  message: string;
  created: Date;
  updated: Date;
}

/** Target fields that UpdateTarget may change. */
export type TargetPatch = Partial<Pick<TargetRecord, 'type' | 'agent' | 'message'>>;

/** What the store remembers of an agent. */
export interface AgentRecord {
  name: string;
  version: string;
  bootId: string;
  lastSeen: Date | null;
  connected: boolean;
}

/** Kinds of bearer token. */
export type TokenKind = 'admin' | 'agent';

/** A bearer token; only its SHA-256 hash is kept. */
export interface TokenRecord {
  id: string;
  /** Hex SHA-256 of the secret. */
  hash: string;
  kind: TokenKind;
  /** Whom it authenticates: "admin" or the agent's name. */
  subject: string;
  created: Date;
}

/** A piece of a task's output, keyed by (taskId, seq). */
export interface ChunkRecord {
  taskId: string;
  seq: number;
  /** Byte offset of data[0] in the task's output. */
  offset: number;
  data: Buffer;
}

/** Where to start reading a task's output. */
export type ChunkCursor = { afterSeq: number } | { fromOffset: number };

/** The persistence Taskgate needs. */
export interface Store {
  /** Creates tables/collections and indexes; idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** Whether the backing database answers (health, readiness). */
  ping(): Promise<void>;

  insertTask(task: TaskRecord): Promise<void>;
  getTask(id: string): Promise<TaskRecord | null>;
  listTasks(query: TaskQuery): Promise<TaskRecord[]>;
  /** Applies the change if the task is in one of `from`; returns the task after it, or null. */
  transition(request: TransitionRequest): Promise<TaskRecord | null>;
  /**
   * Sets fields of a task without changing its status, if it is still in
   * `status`; returns the task after it, or null.
   */
  patchTask(id: string, status: TaskStatus, patch: TaskPatch): Promise<TaskRecord | null>;
  /**
   * Moves the oldest ready task of `agent` to running, recording `bootId`;
   * returns it, or null when none is ready.
   */
  claimNextReady(agent: string, bootId: string, time: Date): Promise<TaskRecord | null>;
  /** Whether any task on the target has not reached a terminal status. */
  hasUnfinishedTasks(target: string): Promise<boolean>;

  /** Stores a chunk; storing the same (taskId, seq) again is a no-op. */
  putChunk(chunk: ChunkRecord): Promise<void>;
  /** Chunks in seq order, from a cursor; at most `limit`. */
  readChunks(taskId: string, cursor: ChunkCursor, limit: number): Promise<ChunkRecord[]>;
  /** How many chunks and bytes a task has stored. */
  chunkStats(taskId: string): Promise<{ chunks: number; bytes: number }>;

  /** Throws AlreadyExistsError when the name is taken. */
  insertTarget(target: TargetRecord): Promise<void>;
  getTarget(name: string): Promise<TargetRecord | null>;
  /** Targets by name, after `afterName`. */
  listTargets(afterName: string, limit: number): Promise<TargetRecord[]>;
  updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null>;
  /** Returns whether it existed. */
  deleteTarget(name: string): Promise<boolean>;

  /** Creates or replaces what is known of an agent. */
  putAgent(agent: AgentRecord): Promise<void>;
  getAgent(name: string): Promise<AgentRecord | null>;
  listAgents(): Promise<AgentRecord[]>;

  insertToken(token: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | null>;
  countTokens(kind: TokenKind): Promise<number>;
}
