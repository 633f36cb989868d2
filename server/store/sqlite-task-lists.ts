/**
 * Task lists on the embedded store (Store.listTasks): newest first, by the
 * (status, id), target, agent and audience indexes of the `tasks` and
 * `task_audience` tables (server/store/sqlite-schema.ts).
 */
import type { TaskQuery, TaskRecord } from './records.js';
import { taskCodec } from './record-codecs.js';
import type { Prepare } from './sqlite-requests.js';

interface DocRow {
  doc: string;
}

function decodeTask(row: DocRow): TaskRecord {
  return taskCodec.decode(JSON.parse(row.doc) as Record<string, unknown>);
}

/** Store.listTasks through `prepare` (the store's statement cache). */
export function listTasks(prepare: Prepare, query: TaskQuery): TaskRecord[] {
  if (query.audience) return listByAudience(prepare, query, query.audience);
  const { where, args } = taskFilter(query, 'tasks');
  const sql = `SELECT doc FROM tasks ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
  args.push(query.limit);
  return (prepare(sql).all(...args) as DocRow[]).map(decodeTask);
}

/**
 * The newest `limit` tasks with one of the audience keys: per key, the
 * newest `limit` matching ids from its index range (a walk of tasks the
 * caller may see, never of others), merged; then the page's documents.
 */
function listByAudience(prepare: Prepare, query: TaskQuery, keys: readonly string[]): TaskRecord[] {
  // The cursor bounds the audience index's own range.
  const { where, args } = taskFilter({ ...query, beforeId: undefined }, 't');
  if (query.beforeId) {
    where.unshift('a.task_id < ?');
    args.unshift(query.beforeId);
  }
  const sql = `SELECT a.task_id AS id FROM task_audience a JOIN tasks t ON t.id = a.task_id WHERE a.key = ?${where.map((w) => ` AND ${w}`).join('')} ORDER BY a.task_id DESC LIMIT ?`;
  const statement = prepare(sql);
  const ids = new Set<string>();
  for (const key of new Set(keys)) {
    for (const row of statement.all(key, ...args, query.limit) as { id: string }[]) ids.add(row.id);
  }
  const page = [...ids].sort().reverse().slice(0, query.limit);
  if (page.length === 0) return [];
  const rows = prepare('SELECT doc FROM tasks WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id DESC').all(JSON.stringify(page)) as DocRow[];
  return rows.map(decodeTask);
}

/** The WHERE terms of a task query on table `t` (alias or name), and their arguments; the audience is not among them. */
function taskFilter(query: TaskQuery, t: string): { where: string[]; args: (string | number)[] } {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (query.statuses && query.statuses.length === 1) {
    // An equality walks the (status, id) index newest first and stops at the
    // limit; the list form below makes SQLite sort every task of the
    // statuses (6.4 ms against 0.2 ms for one status of 100k tasks).
    where.push(`${t}.status = ?`);
    args.push(query.statuses[0]!);
  } else if (query.statuses && query.statuses.length > 1) {
    // One statement text for any list (each text is a prepared statement kept for good).
    where.push(`${t}.status IN (SELECT value FROM json_each(?))`);
    args.push(JSON.stringify(query.statuses));
  }
  if (query.target) {
    where.push(`${t}.target = ?`);
    args.push(query.target);
  }
  if (query.agent) {
    where.push(`${t}.agent = ?`);
    args.push(query.agent);
  }
  if (query.killRequested) where.push(`json_extract(${t}.doc, '$.killRequested') IS NOT NULL`);
  if (query.beforeId) {
    where.push(`${t}.id < ?`);
    args.push(query.beforeId);
  }
  return { where, args };
}
