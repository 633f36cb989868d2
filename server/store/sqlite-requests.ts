/**
 * The embedded store's request-id records (Store.insertRequest and its
 * kin; server/request-ids.ts says what they are for): one row per (caller,
 * request id), its primary key. better-sqlite3 is synchronous, so each
 * method here is one step of the event loop; {@link SqliteRequests.bind} is
 * for a caller's own transaction (SqliteStore.insertRequestAndTask binds
 * the id and inserts the task in one).
 */
import type Database from 'better-sqlite3';
import { REQUEST_SWEEP, type RequestRecord } from './records.js';
import { requestCodec } from './record-codecs.js';

/** A prepared statement by its SQL text (the store's statement cache). */
export type Prepare = (sql: string) => Database.Statement;

interface DocRow {
  doc: string;
}

/** Request-id records in the `requests` table. */
export class SqliteRequests {
  readonly #db: Database.Database;
  readonly #prepare: Prepare;
  /** When this store last deleted expired request records (Date.now()). */
  #sweptAt = 0;

  constructor(db: Database.Database, prepare: Prepare) {
    this.#db = db;
    this.#prepare = prepare;
  }

  /** Store.insertRequest: {@link sweep}, then {@link bind} in a transaction of its own. */
  insert(record: RequestRecord): RequestRecord | null {
    this.sweep(record.created);
    return this.#db.transaction((): RequestRecord | null => this.bind(record)).immediate();
  }

  /**
   * Every REQUEST_SWEEP interval, deletes some records expired at `now`;
   * else nothing. Outside a transaction: it is a single statement.
   */
  sweep(now: Date): void {
    if (Date.now() - this.#sweptAt < REQUEST_SWEEP.everyMs) return;
    this.#sweptAt = Date.now();
    this.deleteExpired(now, REQUEST_SWEEP.limit);
  }

  /**
   * Binds the record's (caller, requestId) unless a live record holds it:
   * returns that one, or null once this one is stored (an expired holder is
   * deleted first). To be called inside a transaction: the read and the
   * write must be one step, and the primary key holds one row per key.
   */
  bind(record: RequestRecord): RequestRecord | null {
    const held = this.#get(record.caller, record.requestId);
    if (held && held.expires.getTime() > record.created.getTime()) return held;
    if (held) this.#prepare('DELETE FROM requests WHERE caller = ? AND request_id = ?').run(record.caller, record.requestId);
    this.#prepare('INSERT INTO requests (caller, request_id, expires, doc) VALUES (?, ?, ?, ?)')
      .run(record.caller, record.requestId, record.expires.getTime(), JSON.stringify(requestCodec.encode(record)));
    return null;
  }

  /** Store.getRequest. */
  get(caller: string, requestId: string, now: Date): RequestRecord | null {
    const held = this.#get(caller, requestId);
    return held && held.expires.getTime() > now.getTime() ? held : null;
  }

  #get(caller: string, requestId: string): RequestRecord | null {
    const row = this.#prepare('SELECT doc FROM requests WHERE caller = ? AND request_id = ?').get(caller, requestId) as DocRow | undefined;
    return row ? requestCodec.decode(JSON.parse(row.doc) as Record<string, unknown>) : null;
  }

  /** Store.completeRequest. */
  complete(caller: string, requestId: string): void {
    this.#db
      .transaction((): void => {
        const held = this.#get(caller, requestId);
        if (!held || held.done) return;
        this.#prepare('UPDATE requests SET doc = ? WHERE caller = ? AND request_id = ?')
          .run(JSON.stringify(requestCodec.encode({ ...held, done: true })), caller, requestId);
      })
      .immediate();
  }

  /** Store.deleteExpiredRequests. */
  deleteExpired(now: Date, limit: number): number {
    return this.#prepare('DELETE FROM requests WHERE rowid IN (SELECT rowid FROM requests WHERE expires <= ? LIMIT ?)').run(now.getTime(), limit).changes;
  }
}
