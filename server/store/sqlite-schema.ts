/**
 * The embedded store's tables (server/store/sqlite-store.ts): each record a
 * JSON document in a `doc` column (written and read through its codec,
 * server/store/record-codecs.ts), beside the columns its queries need.
 */

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  target TEXT NOT NULL,
  agent TEXT NOT NULL,
  doc TEXT NOT NULL,
  unpublished INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_agent_status ON tasks (agent, status, id);
CREATE INDEX IF NOT EXISTS tasks_target ON tasks (target, id);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, id);
CREATE TABLE IF NOT EXISTS task_audience (
  key TEXT NOT NULL,
  task_id TEXT NOT NULL,
  PRIMARY KEY (key, task_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  task_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  end_offset INTEGER NOT NULL,
  data BLOB NOT NULL,
  encoding INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (task_id, seq)
);
CREATE INDEX IF NOT EXISTS chunks_end ON chunks (task_id, end_offset);
CREATE TABLE IF NOT EXISTS targets (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (
  target TEXT NOT NULL,
  key TEXT NOT NULL,
  sealed TEXT NOT NULL,
  updated INTEGER NOT NULL,
  PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  time INTEGER NOT NULL,
  actor TEXT NOT NULL,
  resource TEXT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_actor ON events (actor, id);
CREATE INDEX IF NOT EXISTS events_resource ON events (resource, id);
CREATE TABLE IF NOT EXISTS deliveries (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  next_attempt INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt);
CREATE TABLE IF NOT EXISTS requests (
  caller TEXT NOT NULL,
  request_id TEXT NOT NULL,
  expires INTEGER NOT NULL,
  doc TEXT NOT NULL,
  PRIMARY KEY (caller, request_id)
);
CREATE INDEX IF NOT EXISTS requests_expires ON requests (expires);
`;

/**
 * Tasks by status, kept by triggers in the same transaction as every task
 * write (whatever writes the file): the status gauge reads a few rows, where
 * counting took a scan of every task (170-450 ms at 1M tasks, on the event
 * loop, at every metrics scrape; bench/growth.ts found it).
 */
export const COUNTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS task_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS task_counts_insert AFTER INSERT ON tasks BEGIN
  INSERT INTO task_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS task_counts_update AFTER UPDATE OF status ON tasks WHEN OLD.status <> NEW.status BEGIN
  UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
  INSERT INTO task_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS task_counts_delete AFTER DELETE ON tasks BEGIN
  UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
END;
`;

/** Columns added after the first release, for data directories made before: table, column, and the statement adding it. */
export const MIGRATIONS = [
  { table: 'tasks', column: 'unpublished', sql: 'ALTER TABLE tasks ADD COLUMN unpublished INTEGER NOT NULL DEFAULT 0' },
  // How a chunk's data is encoded (server/store/chunk-packing.ts): 0 raw, as every chunk stored before it.
  { table: 'chunks', column: 'encoding', sql: 'ALTER TABLE chunks ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0' },
] as const;
