/**
 * What the open-stream check needs of a stored token, in a column of its
 * own (server/live-streams.ts): `ends_ms`, the time from which the token's
 * verdict may differ from the one it had, in ms since the epoch. It is 0
 * (always read again) for a revoked token and for one made from another
 * token (its state is its parent's), the expiry for one that expires, and
 * NULL for one that never does. A check then reads, among the open
 * streams' tokens, only those missing or with `ends_ms <= now`: a lookup by
 * primary key per token and no JSON parsing, where reading every document
 * cost most of an idle server's CPU (docs/scaling.md).
 *
 * Triggers keep the column in step with `doc` in the same transaction as
 * every write, whatever process writes the file (another replica, or a
 * Taskgate from before the column, which writes only `doc`). A value the
 * triggers cannot compute (an expiry SQLite cannot parse) is 0: read again
 * every time, never trusted.
 */
import type Database from 'better-sqlite3';

/** `ends_ms` of the token document `doc` (a SQL expression over it). */
function endsMs(doc: string): string {
  const expires = `json_extract(${doc}, '$.expires')`;
  // Whole ms from the ISO string (%f is "SS.SSS"): exact, where julianday's float is not.
  const ms = `CAST(strftime('%s', ${expires}) AS INTEGER) * 1000 + CAST(substr(strftime('%f', ${expires}), 4) AS INTEGER)`;
  // Only the shape JS's toISOString writes (UTC, "Z") is trusted: SQLite
  // reads a time without a zone as UTC where the server's Date reads it as
  // local time, so any other text is 0 (read again every time).
  const iso = `${expires} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'`;
  return `CASE
    WHEN json_extract(${doc}, '$.revoked') IS NOT NULL OR json_extract(${doc}, '$.parent') IS NOT NULL THEN 0
    WHEN ${expires} IS NULL THEN NULL
    WHEN ${iso} THEN COALESCE(${ms}, 0)
    ELSE 0
  END`;
}

const TRIGGERS = `
CREATE TRIGGER IF NOT EXISTS tokens_ends_insert AFTER INSERT ON tokens BEGIN
  UPDATE tokens SET ends_ms = ${endsMs('NEW.doc')} WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS tokens_ends_update AFTER UPDATE OF doc ON tokens BEGIN
  UPDATE tokens SET ends_ms = ${endsMs('NEW.doc')} WHERE id = NEW.id;
END;
`;

/**
 * Adds `ends_ms` and its triggers to a data directory that lacks them (made
 * before, or new), computing it for the tokens already stored; once, in
 * one transaction, so a process opening the same file at the same time
 * waits and then finds it done. Call after the tokens table exists.
 */
export function addTokenEnds(db: Database.Database): void {
  db.transaction(() => {
    const columns = db.prepare("SELECT name FROM pragma_table_info('tokens')").all() as { name: string }[];
    const had = columns.some((c) => c.name === 'ends_ms');
    // Default 0: a row no trigger has seen is read again, never trusted.
    if (!had) db.exec('ALTER TABLE tokens ADD COLUMN ends_ms INTEGER DEFAULT 0');
    // The triggers are made again at every start, so a file that lost them
    // (a partial restore) or holds an older version of them gets these.
    db.exec('DROP TRIGGER IF EXISTS tokens_ends_insert; DROP TRIGGER IF EXISTS tokens_ends_update;');
    db.exec(TRIGGERS);
    if (!had) db.exec(`UPDATE tokens SET ends_ms = ${endsMs('doc')}`);
  }).immediate();
}

/** `UserStore.tokensToRecheck` on the embedded store. */
export function tokensToRecheck(statement: (sql: string) => Database.Statement, ids: readonly string[], now: Date): string[] {
  if (ids.length === 0) return [];
  const rows = statement(
    'SELECT j.value AS id FROM json_each(?) j LEFT JOIN tokens t ON t.id = j.value WHERE t.id IS NULL OR t.ends_ms <= ?',
  ).all(JSON.stringify(ids), now.getTime()) as { id: string }[];
  return rows.map((r) => r.id);
}
