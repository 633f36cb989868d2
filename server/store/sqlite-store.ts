/**
 * The embedded store: SQLite through better-sqlite3, in one file in the data
 * directory. better-sqlite3 is synchronous, so every method is one atomic step
 * of the event loop; conditional transitions run inside a SQLite transaction.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync } from 'node:fs';
import { privateDir, privateFile } from '../../shared/private-files.js';
import { join } from 'node:path';
import { AlreadyExistsError } from '../../shared/errors.js';
import { TERMINAL_STATUSES, type TaskStatus } from '../../shared/task-status.js';
import {
  applyTransition,
  claimRequest,
  endsTask,
  hasUnpublished,
  taskAudience,
  taskAuditEvent,
  type AgentPresence,
  type AgentRecord,
  type AuditEventRecord,
  type AuditQuery,
  type ClaimedTasks,
  type ChunkCursor,
  type ChunkRecord,
  type ClaimNext,
  type DeliveryPatch,
  type DeliveryRecord,
  type NewTargetRecord,
  type OutputTotals,
  type PublishedMark,
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
} from './store.js';
import { TaskWrites } from './task-writes.js';
import { SqliteRequests } from './sqlite-requests.js';
import { deleteEndedTasks, ENDED_INDEX } from './sqlite-retention.js';
import { listTasks } from './sqlite-task-lists.js';
import {
  agentCodec,
  deliveryCodec,
  eventCodec,
  newTarget,
  targetCodec,
  taskCodec,
} from './record-codecs.js';
import { COUNTS_SCHEMA, MIGRATIONS, SCHEMA } from './sqlite-schema.js';
import { SqliteChunks } from './sqlite-chunks.js';
import { addTokenEnds } from './sqlite-token-states.js';
import { SqliteAccess } from './sqlite-access.js';
import { decode, encode, type DocRow } from './sqlite-docs.js';

/** Prepared statements kept; the oldest is dropped past this. */
const MAX_STATEMENTS = 256;

/** The embedded SQLite store. */
export class SqliteStore extends TaskWrites implements Store {
  /** Task writes store their events' audit records in the same transaction. */
  readonly recordsTaskEvents = true;
  readonly claimsAtCreation = true;
  readonly #db: Database.Database;
  /** Prepared statements by SQL text: preparing costs more than running most of them. */
  readonly #statements = new Map<string, Database.Statement>();
  /** Request-id records (server/store/sqlite-requests.ts). */
  readonly #requests: SqliteRequests;
  /** Output chunks (server/store/sqlite-chunks.ts). */
  readonly #chunks: SqliteChunks;
  /** Users and tokens (server/store/sqlite-access.ts). */
  readonly #access: SqliteAccess;

  /** Opens (creating if needed) `taskgate.db` in `dataDir`; ":memory:" keeps it in memory. */
  constructor(dataDir: string) {
    super();
    if (dataDir === ':memory:') {
      this.#db = new Database(':memory:');
    } else {
      // 0700 and 0600 whatever the umask; SQLite gives its -wal and -shm files the database file's mode.
      privateDir(dataDir);
      const file = join(dataDir, 'taskgate.db');
      privateFile(file);
      for (const extra of ['-wal', '-shm']) if (existsSync(file + extra)) chmodSync(file + extra, 0o600);
      this.#db = new Database(file);
      this.#db.pragma('journal_mode = WAL');
    }
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#requests = new SqliteRequests(this.#db, (sql) => this.#statement(sql));
    this.#chunks = new SqliteChunks(this.#db, (sql) => this.#statement(sql));
    this.#access = new SqliteAccess(this.#db, (sql) => this.#statement(sql));
  }

  async init(): Promise<void> {
    // Looked up and added in one write transaction: two processes opening
    // an older data directory at once (a restart overlapping the old
    // process) add each column once.
    this.#db
      .transaction(() => {
        for (const { table, column, sql } of MIGRATIONS) {
          const columns = this.#statement(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[];
          if (columns.length > 0 && !columns.some((c) => c.name === column)) this.#db.exec(sql);
        }
      })
      .immediate();
    const hadAudience = (this.#statement("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'task_audience'").all() as unknown[]).length > 0;
    this.#db.exec(SCHEMA);
    addTokenEnds(this.#db);
    this.#db.exec('CREATE INDEX IF NOT EXISTS tasks_unpublished ON tasks (unpublished, id)');
    this.#db.exec(ENDED_INDEX);
    if (!hadAudience) this.#addAudience();
    // The counts start from one count of what is there, in the same
    // transaction as the triggers, so no write falls between the two.
    this.#db
      .transaction(() => {
        const hadCounts = (this.#statement("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'task_counts'").all() as unknown[]).length > 0;
        this.#db.exec(COUNTS_SCHEMA);
        if (!hadCounts) this.#db.exec('INSERT INTO task_counts (status, n) SELECT status, COUNT(*) FROM tasks GROUP BY status');
      })
      .immediate();
  }

  /** Gives tasks stored before audience keys existed theirs (once, when the table is new). */
  #addAudience(): void {
    const batch = this.#statement('SELECT id, doc FROM tasks WHERE id > ? ORDER BY id LIMIT 1000');
    this.#db.transaction(() => {
      for (let after = ''; ; ) {
        const rows = batch.all(after) as (DocRow & { id: string })[];
        for (const row of rows) this.#insertAudience(decode(taskCodec, row.doc));
        if (rows.length < 1000) return;
        after = rows.at(-1)!.id;
      }
    })();
  }

  #insertAudience(task: TaskRecord): void {
    const insert = this.#statement('INSERT OR IGNORE INTO task_audience (key, task_id) VALUES (?, ?)');
    for (const key of taskAudience(task)) insert.run(key, task.id);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      // Queries have a few fixed shapes; the bound keeps a bug (or a new
      // dynamic query) from holding every text ever seen.
      if (this.#statements.size >= MAX_STATEMENTS) this.#statements.delete(this.#statements.keys().next().value!);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  async ping(): Promise<void> {
    this.#statement('SELECT 1').get();
  }

  async insertTask(task: TaskRecord): Promise<void> {
    this.#db.transaction(() => this.#insertTask(task))();
  }

  #insertTask(task: TaskRecord): void {
    const result = this.#statement('INSERT OR IGNORE INTO tasks (id, status, target, agent, doc, unpublished) VALUES (?, ?, ?, ?, ?, ?)')
      .run(task.id, task.status, task.target, task.agent, encode(taskCodec, task), hasUnpublished(task) ? 1 : 0);
    if (result.changes === 0) throw new AlreadyExistsError(`task ${task.id} already exists`);
    this.#insertAudience(task);
    this.#recordEvents(task);
  }

  async insertRequestAndTask(record: RequestRecord, task: TaskRecord): Promise<RequestRecord | null> {
    this.#requests.sweep(record.created);
    // One transaction: the binding is looked up first (a repeat gets the
    // holder and inserts nothing), and a failed insert keeps no binding.
    const run = this.#db.transaction((): RequestRecord | null => {
      const holder = this.#requests.bind(record);
      if (!holder) this.#insertTask(task);
      return holder;
    });
    return run.immediate();
  }

  async getTask(id: string): Promise<TaskRecord | null> {
    return this.#getTask(id);
  }

  #getTask(id: string): TaskRecord | null {
    const row = this.#statement('SELECT doc FROM tasks WHERE id = ?').get(id) as DocRow | undefined;
    return row ? decode(taskCodec, row.doc) : null;
  }

  #saveTask(task: TaskRecord): void {
    this.#statement('UPDATE tasks SET status = ?, agent = ?, doc = ?, unpublished = ? WHERE id = ?')
      .run(task.status, task.agent, encode(taskCodec, task), hasUnpublished(task) ? 1 : 0, task.id);
    this.#recordEvents(task);
  }

  /**
   * The audit records of the task's events past `published`, in the write
   * that stores the task (see recordsTaskEvents); those already stored by an
   * earlier write are left as they are (fixed ids).
   */
  #recordEvents(task: TaskRecord): void {
    for (let i = task.published; i < task.events.length; i++) this.#insertEvent(taskAuditEvent(task, i));
  }

  async listTasks(query: TaskQuery): Promise<TaskRecord[]> {
    return listTasks((sql) => this.#statement(sql), query);
  }

  async updateTask(id: string, mutate: (task: TaskRecord) => TaskRecord | null): Promise<TaskRecord | null> {
    const run = this.#db.transaction((): TaskRecord | null => {
      const task = this.#getTask(id);
      let next = task ? mutate(task) : null;
      // Counted in the same transaction as the end, and putChunkIfRunning is
      // one transaction too: no chunk can land between the count and the end.
      if (task && next && endsTask(task, next)) next = { ...next, outputBytes: this.#chunks.stats(id).bytes };
      if (next) this.#saveTask(next);
      return next;
    });
    return run.immediate();
  }

  async updateTaskWithOutput(id: string, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): Promise<TaskRecord | null> {
    return this.#db.transaction((): TaskRecord | null => this.#updateTaskWithOutput(id, mutate)).immediate();
  }

  #updateTaskWithOutput(id: string, mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null): TaskRecord | null {
    const task = this.#getTask(id);
    if (!task) return null;
    const output = this.#chunks.stats(id);
    let next = mutate(task, output);
    if (next && endsTask(task, next)) next = { ...next, outputBytes: output.bytes };
    if (next) this.#saveTask(next);
    return next;
  }

  async finishAndClaimNext(
    id: string,
    mutate: (task: TaskRecord, output: OutputTotals) => TaskRecord | null,
    next: ClaimNext,
  ): Promise<{ task: TaskRecord | null; claimed: ClaimedTasks }> {
    const run = this.#db.transaction((): { task: TaskRecord | null; claimed: ClaimedTasks } => {
      const task = this.#updateTaskWithOutput(id, mutate);
      // Only after a write: a declined exit frees no slot.
      const claimed = task ? this.#claim(next.agent, next.bootId, next.time, next.limit, true) : { tasks: [], targets: new Map() };
      return { task, claimed };
    });
    return run.immediate();
  }

  async claimNextReady(agent: string, bootId: string, time: Date): Promise<TaskRecord | null> {
    // The pick and the claim in one transaction: picked outside it, the
    // oldest task could be claimed by another connection first, and the
    // call would answer "none ready" while others still are.
    const run = this.#db.transaction((): TaskRecord | null => this.#claim(agent, bootId, time, 1, false).tasks[0] ?? null);
    return run.immediate();
  }

  async claimReady(agent: string, bootId: string, time: Date, limit: number): Promise<ClaimedTasks> {
    return this.#db.transaction((): ClaimedTasks => this.#claim(agent, bootId, time, limit, true)).immediate();
  }

  /**
   * Up to `limit` of the agent's ready tasks, oldest first, moved to running
   * for `bootId`, with their targets when `withTargets`. Inside a
   * transaction: every task it returns was ready and is now running for
   * this boot, none twice.
   */
  #claim(agent: string, bootId: string, time: Date, limit: number, withTargets: boolean): ClaimedTasks {
    const rows = this.#statement("SELECT doc FROM tasks WHERE agent = ? AND status = 'ready' ORDER BY id LIMIT ?").all(agent, limit) as DocRow[];
    const tasks: TaskRecord[] = [];
    const targets = new Map<string, TargetRecord | null>();
    for (const row of rows) {
      const task = decode(taskCodec, row.doc);
      const next = applyTransition(task, claimRequest(task.id, agent, bootId, time));
      if (!next) continue;
      this.#saveTask(next);
      tasks.push(next);
      if (withTargets && !targets.has(next.target)) targets.set(next.target, this.#getTarget(next.target));
    }
    return { tasks, targets };
  }

  async listUnpublished(limit: number): Promise<TaskRecord[]> {
    const rows = this.#statement('SELECT doc FROM tasks WHERE unpublished = 1 ORDER BY id LIMIT ?').all(limit) as DocRow[];
    return rows.map((r) => decode(taskCodec, r.doc));
  }

  async hasUnfinishedTasks(target: string): Promise<boolean> {
    const terminal = [...TERMINAL_STATUSES];
    const row = this.#statement(`SELECT 1 FROM tasks WHERE target = ? AND status NOT IN (${terminal.map(() => '?').join(', ')}) LIMIT 1`)
      .get(target, ...terminal);
    return row !== undefined;
  }

  async putChunk(chunk: ChunkRecord): Promise<void> {
    this.#chunks.put(chunk);
  }

  async putChunkIfRunning(chunk: ChunkRecord): Promise<boolean> {
    return this.#chunks.putIfRunning(chunk);
  }

  async readChunks(taskId: string, cursor: ChunkCursor, limit: number, maxBytes = Infinity): Promise<ChunkRecord[]> {
    return this.#chunks.read(taskId, cursor, limit, maxBytes);
  }

  async countTasksByStatus(): Promise<Partial<Record<TaskStatus, number>>> {
    const rows = this.#statement('SELECT status, n FROM task_counts WHERE n > 0').all() as { status: TaskStatus; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async chunkStats(taskId: string): Promise<{ chunks: number; bytes: number }> {
    return this.#chunks.stats(taskId);
  }

  async insertRequest(record: RequestRecord): Promise<RequestRecord | null> {
    return this.#requests.insert(record);
  }

  async getRequest(caller: string, requestId: string, now: Date): Promise<RequestRecord | null> {
    return this.#requests.get(caller, requestId, now);
  }

  async completeRequest(caller: string, requestId: string): Promise<void> {
    this.#requests.complete(caller, requestId);
  }

  async deleteExpiredRequests(now: Date, limit: number): Promise<number> {
    return this.#requests.deleteExpired(now, limit);
  }

  async insertTarget(record: NewTargetRecord): Promise<void> {
    const target = newTarget(record);
    const result = this.#statement('INSERT OR IGNORE INTO targets (name, doc) VALUES (?, ?)')
      .run(target.name, encode(targetCodec, target));
    if (result.changes === 0) throw new AlreadyExistsError(`target "${target.name}" already exists`);
  }

  async getTarget(name: string): Promise<TargetRecord | null> {
    return this.#getTarget(name);
  }

  #getTarget(name: string): TargetRecord | null {
    const row = this.#statement('SELECT doc FROM targets WHERE name = ?').get(name) as DocRow | undefined;
    return row ? decode(targetCodec, row.doc) : null;
  }

  async listTargets(afterName: string, limit: number): Promise<TargetRecord[]> {
    const rows = this.#statement('SELECT doc FROM targets WHERE name > ? ORDER BY name LIMIT ?')
      .all(afterName, limit) as DocRow[];
    return rows.map((r) => decode(targetCodec, r.doc));
  }

  async updateTarget(name: string, patch: TargetPatch, time: Date): Promise<TargetRecord | null> {
    const run = this.#db.transaction((): TargetRecord | null => {
      const row = this.#statement('SELECT doc FROM targets WHERE name = ?').get(name) as DocRow | undefined;
      if (!row) return null;
      const next: TargetRecord = { ...decode(targetCodec, row.doc), ...patch, updated: time };
      this.#statement('UPDATE targets SET doc = ? WHERE name = ?').run(encode(targetCodec, next), name);
      return next;
    });
    return run.immediate();
  }

  async deleteTarget(name: string): Promise<boolean> {
    return this.#statement('DELETE FROM targets WHERE name = ?').run(name).changes > 0;
  }

  async putAgent(agent: AgentRecord): Promise<void> {
    this.#statement('INSERT INTO agents (name, doc) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc')
      .run(agent.name, encode(agentCodec, agent));
  }

  async updateAgentPresence(name: string, presence: AgentPresence): Promise<boolean> {
    const run = this.#db.transaction((): boolean => this.#updateAgentPresence(name, presence));
    return run.immediate();
  }

  async updateAgentsPresence(updates: readonly { name: string; presence: AgentPresence }[]): Promise<void> {
    const run = this.#db.transaction((): void => {
      for (const { name, presence } of updates) this.#updateAgentPresence(name, presence);
    });
    run.immediate();
  }

  #updateAgentPresence(name: string, presence: AgentPresence): boolean {
    const current = this.#getAgent(name);
    if (!current) return false;
    this.#statement('UPDATE agents SET doc = ? WHERE name = ?').run(encode(agentCodec, { ...current, ...presence }), name);
    return true;
  }

  async getAgent(name: string): Promise<AgentRecord | null> {
    return this.#getAgent(name);
  }

  #getAgent(name: string): AgentRecord | null {
    const row = this.#statement('SELECT doc FROM agents WHERE name = ?').get(name) as DocRow | undefined;
    return row ? decode(agentCodec, row.doc) : null;
  }

  async listAgents(): Promise<AgentRecord[]> {
    const rows = this.#statement('SELECT doc FROM agents ORDER BY name').all() as DocRow[];
    return rows.map((r) => decode(agentCodec, r.doc));
  }

  async putSecret(target: string, key: string, sealed: string, time: Date): Promise<void> {
    this.#statement('INSERT INTO secrets (target, key, sealed, updated) VALUES (?, ?, ?, ?) ON CONFLICT (target, key) DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated')
      .run(target, key, sealed, time.getTime());
  }

  async listSecrets(target: string): Promise<{ key: string; sealed: string }[]> {
    return this.#statement('SELECT key, sealed FROM secrets WHERE target = ? ORDER BY key').all(target) as { key: string; sealed: string }[];
  }

  async deleteSecret(target: string, key: string): Promise<boolean> {
    return this.#statement('DELETE FROM secrets WHERE target = ? AND key = ?').run(target, key).changes > 0;
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

  async revokeToken(id: string, time: Date): Promise<TokenRecord | null> {
    return this.#access.revokeToken(id, time);
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

  async insertEvent(event: AuditEventRecord): Promise<void> {
    this.#insertEvent(event);
  }

  #insertEvent(event: AuditEventRecord): void {
    this.#statement('INSERT OR IGNORE INTO events (id, time, actor, resource, doc) VALUES (?, ?, ?, ?, ?)')
      .run(event.id, event.time.getTime(), event.actor, event.resource, encode(eventCodec, event));
  }

  async insertEvents(events: readonly AuditEventRecord[]): Promise<void> {
    this.#db.transaction(() => {
      for (const event of events) this.#insertEvent(event);
    }).immediate();
  }

  async markPublished(marks: readonly PublishedMark[]): Promise<void> {
    // In SQLite's JSON functions: no parse and rewrite of each document in JS.
    const mark = this.#statement(
      "UPDATE tasks SET doc = json_set(doc, '$.published', CAST(? AS INTEGER)), unpublished = (json_array_length(doc, '$.events') > ?) WHERE id = ? AND json_extract(doc, '$.published') < ?",
    );
    this.#db.transaction(() => {
      for (const { id, published } of marks) mark.run(published, published, id, published);
    }).immediate();
  }

  async listEvents(query: AuditQuery): Promise<AuditEventRecord[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.actor) {
      where.push('actor = ?');
      args.push(query.actor);
    }
    if (query.resource) {
      where.push('resource = ?');
      args.push(query.resource);
    }
    if (query.since) {
      where.push('time >= ?');
      args.push(query.since.getTime());
    }
    if (query.until) {
      where.push('time < ?');
      args.push(query.until.getTime());
    }
    if (query.afterId) {
      where.push('id > ?');
      args.push(query.afterId);
    }
    const sql = `SELECT doc FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id LIMIT ?`;
    const rows = this.#statement(sql).all(...args, query.limit) as DocRow[];
    return rows.map((r) => decode(eventCodec, r.doc));
  }

  async insertDelivery(delivery: DeliveryRecord): Promise<void> {
    this.#statement('INSERT OR IGNORE INTO deliveries (id, state, next_attempt, doc) VALUES (?, ?, ?, ?)')
      .run(delivery.id, delivery.state, delivery.nextAttempt.getTime(), encode(deliveryCodec, delivery));
  }

  async claimDueDeliveries(now: Date, leaseUntil: Date, limit: number): Promise<DeliveryRecord[]> {
    const run = this.#db.transaction((): DeliveryRecord[] => {
      const rows = this.#statement("SELECT doc FROM deliveries WHERE state = 'pending' AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?")
        .all(now.getTime(), limit) as DocRow[];
      return rows.map((r) => {
        const claimed: DeliveryRecord = { ...decode(deliveryCodec, r.doc), nextAttempt: leaseUntil };
        this.#saveDelivery(claimed);
        return claimed;
      });
    });
    return run.immediate();
  }

  #saveDelivery(delivery: DeliveryRecord): void {
    this.#statement('UPDATE deliveries SET state = ?, next_attempt = ?, doc = ? WHERE id = ?')
      .run(delivery.state, delivery.nextAttempt.getTime(), encode(deliveryCodec, delivery), delivery.id);
  }

  async updateDelivery(id: string, patch: DeliveryPatch): Promise<void> {
    const run = this.#db.transaction((): void => {
      const current = this.#getDelivery(id);
      if (current) this.#saveDelivery({ ...current, ...patch });
    });
    run.immediate();
  }

  async getDelivery(id: string): Promise<DeliveryRecord | null> {
    return this.#getDelivery(id);
  }

  #getDelivery(id: string): DeliveryRecord | null {
    const row = this.#statement('SELECT doc FROM deliveries WHERE id = ?').get(id) as DocRow | undefined;
    return row ? decode(deliveryCodec, row.doc) : null;
  }

  async deleteEndedTasks(endedBefore: Date, limits: RetentionLimits): Promise<RetentionBatch> {
    return deleteEndedTasks(this.#db, (sql) => this.#statement(sql), endedBefore, limits);
  }
}
