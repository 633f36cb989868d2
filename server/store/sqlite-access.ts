/**
 * The embedded store's users and tokens (UserStore): one row per user by
 * email and one per token by id, each a JSON document through its codec,
 * the token's hash and kind in columns of their own and its `ends_ms` kept
 * by triggers (server/store/sqlite-token-states.ts). better-sqlite3 is
 * synchronous, so each method is one step of the event loop.
 */
import type Database from 'better-sqlite3';
import { AlreadyExistsError } from '../../shared/errors.js';
import { tokenCodec, userCodec } from './record-codecs.js';
import type { TokenRecord, UserPatch, UserRecord } from './records.js';
import { decode, encode, type DocRow } from './sqlite-docs.js';
import type { Prepare } from './sqlite-requests.js';
import { tokensToRecheck } from './sqlite-token-states.js';

/** Users and tokens in the `users` and `tokens` tables; its methods are UserStore's, by the same names. */
export class SqliteAccess {
  readonly #db: Database.Database;
  readonly #prepare: Prepare;

  constructor(db: Database.Database, prepare: Prepare) {
    this.#db = db;
    this.#prepare = prepare;
  }

  async insertUser(user: UserRecord): Promise<void> {
    const result = this.#prepare('INSERT OR IGNORE INTO users (email, doc) VALUES (?, ?)').run(user.email, encode(userCodec, user));
    if (result.changes === 0) throw new AlreadyExistsError(`user ${user.email} already exists`);
  }

  async getUser(email: string): Promise<UserRecord | null> {
    const row = this.#prepare('SELECT doc FROM users WHERE email = ?').get(email) as DocRow | undefined;
    return row ? decode(userCodec, row.doc) : null;
  }

  async listUsers(afterEmail: string, limit: number): Promise<UserRecord[]> {
    const rows = this.#prepare('SELECT doc FROM users WHERE email > ? ORDER BY email LIMIT ?').all(afterEmail, limit) as DocRow[];
    return rows.map((r) => decode(userCodec, r.doc));
  }

  async updateUser(email: string, patch: UserPatch, time: Date): Promise<UserRecord | null> {
    const run = this.#db.transaction((): UserRecord | null => {
      const row = this.#prepare('SELECT doc FROM users WHERE email = ?').get(email) as DocRow | undefined;
      if (!row) return null;
      const next: UserRecord = { ...decode(userCodec, row.doc), ...patch, updated: time };
      this.#prepare('UPDATE users SET doc = ? WHERE email = ?').run(encode(userCodec, next), email);
      return next;
    });
    return run.immediate();
  }

  async countUsers(): Promise<number> {
    return (this.#prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
  }

  async insertToken(token: TokenRecord): Promise<void> {
    this.#prepare('INSERT INTO tokens (id, hash, kind, doc) VALUES (?, ?, ?, ?)')
      .run(token.id, token.hash, token.kind, encode(tokenCodec, token));
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    const row = this.#prepare('SELECT doc FROM tokens WHERE hash = ?').get(hash) as DocRow | undefined;
    return row ? decode(tokenCodec, row.doc) : null;
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    const row = this.#prepare('SELECT doc FROM tokens WHERE id = ?').get(id) as DocRow | undefined;
    return row ? decode(tokenCodec, row.doc) : null;
  }

  async listTokens(subject: string | undefined): Promise<TokenRecord[]> {
    const rows = this.#prepare('SELECT doc FROM tokens').all() as DocRow[];
    return rows
      .map((r) => decode(tokenCodec, r.doc))
      .filter((t) => subject === undefined || t.subject === subject)
      .sort((a, b) => a.created.getTime() - b.created.getTime() || a.id.localeCompare(b.id));
  }

  async revokeToken(id: string, time: Date): Promise<TokenRecord | null> {
    const run = this.#db.transaction((): TokenRecord | null => {
      const row = this.#prepare('SELECT doc FROM tokens WHERE id = ?').get(id) as DocRow | undefined;
      if (!row) return null;
      const token = decode(tokenCodec, row.doc);
      const next: TokenRecord = { ...token, revoked: token.revoked ?? time };
      this.#prepare('UPDATE tokens SET doc = ? WHERE id = ?').run(encode(tokenCodec, next), id);
      return next;
    });
    return run.immediate();
  }

  async getTokens(ids: readonly string[]): Promise<TokenRecord[]> {
    // One statement whatever the count: the ids travel as one JSON array.
    const rows = this.#prepare('SELECT doc FROM tokens WHERE id IN (SELECT value FROM json_each(?))').all(JSON.stringify(ids)) as DocRow[];
    return rows.map((r) => decode(tokenCodec, r.doc));
  }

  async touchToken(id: string, time: Date): Promise<void> {
    this.#prepare("UPDATE tokens SET doc = json_set(doc, '$.lastUsed', ?) WHERE id = ?").run(time.toISOString(), id);
  }

  async tokensToRecheck(ids: readonly string[], now: Date): Promise<string[]> {
    return tokensToRecheck(this.#prepare, ids, now);
  }

  async getUsers(emails: readonly string[]): Promise<UserRecord[]> {
    const rows = this.#prepare('SELECT doc FROM users WHERE email IN (SELECT value FROM json_each(?))').all(JSON.stringify(emails)) as DocRow[];
    return rows.map((r) => decode(userCodec, r.doc));
  }
}
