/**
 * Retention on the embedded store (Store.deleteEndedTasks, called by
 * server/retention.ts): which terminal tasks ended before a time, through
 * the partial index `tasks_ended` on when they ended, and their deletion in
 * bounded, all-or-nothing batches.
 */
import type Database from 'better-sqlite3';
import { TERMINAL_STATUSES } from '../../shared/task-status.js';
import { taskAudience, type RetentionBatch, type RetentionLimits } from './records.js';
import { taskCodec } from './record-codecs.js';
import type { Prepare } from './sqlite-requests.js';

/**
 * When a terminal task ended, as the ISO text its document holds:
 * `finished`, or the time of its last event for a task that never ran (a
 * rejected one has no `finished`). The tasks_ended index is on it.
 */
const ENDED = "COALESCE(json_extract(doc, '$.finished'), json_extract(doc, '$.events[#-1].time'))";
/** tasks_ended is partial, over terminal tasks; SQLite uses it only for a query that repeats this term. */
const TERMINAL = `status IN (${[...TERMINAL_STATUSES].map((s) => `'${s}'`).join(', ')})`;

/** The index retention reads terminal tasks by (created by SqliteStore.init; idempotent). */
export const ENDED_INDEX = `CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (${ENDED}) WHERE ${TERMINAL}`;

/** Store.deleteEndedTasks on `db`. */
export function deleteEndedTasks(db: Database.Database, prepare: Prepare, endedBefore: Date, limits: RetentionLimits): RetentionBatch {
  // One transaction: a batch is all or nothing, and bounded so it holds the write lock briefly.
  const run = db.transaction((): RetentionBatch => {
    // INDEXED BY: without statistics the planner prefers tasks_unpublished, a walk of every
    // published task; named, the index is used or the statement fails to prepare.
    const rows = prepare(
      `SELECT doc FROM tasks INDEXED BY tasks_ended WHERE ${TERMINAL} AND ${ENDED} < ? AND unpublished = 0 ORDER BY ${ENDED} LIMIT ?`,
    ).all(endedBefore.toISOString(), limits.tasks) as { doc: string }[];
    const deleteChunks = prepare('DELETE FROM chunks WHERE rowid IN (SELECT rowid FROM chunks WHERE task_id = ? LIMIT ?)');
    const hasChunk = prepare('SELECT 1 FROM chunks WHERE task_id = ? LIMIT 1');
    // By primary key: task_audience has no index on task_id, and the keys follow from the task.
    const deleteAudience = prepare('DELETE FROM task_audience WHERE key = ? AND task_id = ?');
    const deleteTask = prepare('DELETE FROM tasks WHERE id = ?');
    let budget = limits.chunks;
    let tasks = 0;
    for (const row of rows) {
      const task = taskCodec.decode(JSON.parse(row.doc) as Record<string, unknown>);
      if (budget > 0) budget -= deleteChunks.run(task.id, budget).changes;
      // Out of chunks to delete: this task keeps the rest for the next call.
      if (budget === 0 && hasChunk.get(task.id) !== undefined) return { tasks, chunks: limits.chunks, more: true };
      for (const key of taskAudience(task)) deleteAudience.run(key, task.id);
      tasks += deleteTask.run(task.id).changes;
    }
    return { tasks, chunks: limits.chunks - budget, more: rows.length === limits.tasks };
  });
  return run.immediate();
}
