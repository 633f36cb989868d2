/**
 * Bearer-token authentication: who is calling. What they may do is decided
 * in server/access.ts.
 *
 * Tokens are random secrets shown once; the store keeps only their SHA-256.
 * A user token authenticates as its user while the user is active and the
 * token is not revoked. A verified caller is cached for `cacheMs`, so the hot
 * path (every RPC) does not hit the store each time; revoking a token or
 * changing a user clears this server's cache at once, and other replicas
 * notice within `cacheMs` (docs/access.md).
 *
 * A console session (docs/console.md "Signing in") is a token of its own,
 * kind "session", made from a user token (its parent) and held in an
 * HttpOnly cookie: it authenticates as its user while it, its parent token
 * and the user are valid, and for {@link SESSION_MS} at most.
 */
import { createHash, randomBytes } from 'node:crypto';
import { UnauthenticatedError } from '../shared/errors.js';
import { randomId } from '../shared/ids.js';
import type { UserStore, TokenKind, TokenRecord, UserRecord } from './store/store.js';

/** A user calling with a user token. */
export interface UserPrincipal {
  kind: 'user';
  email: string;
  groups: readonly string[];
  tokenId: string;
}

/** An agent calling with an agent token. */
export interface AgentPrincipal {
  kind: 'agent';
  name: string;
  tokenId: string;
}

/** Who is calling. */
export type Principal = UserPrincipal | AgentPrincipal;

/** How events name a principal: "user:EMAIL" or "agent:NAME". */
export function actorOf(principal: Principal): string {
  return principal.kind === 'agent' ? `agent:${principal.name}` : `user:${principal.email}`;
}

/** Hex SHA-256 of a token secret. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** How long a console session lasts at most, in ms: 12 hours, a working day. */
export const SESSION_MS = 12 * 60 * 60 * 1000;

/** How long a token this server verified skips the failed-authentication gate, in ms. */
const KNOWN_FOR_MS = 24 * 60 * 60 * 1000;

/** Options for {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** How long a verified caller stays cached, in ms. Default 5000. */
  cacheMs?: number;
  /** A token's lastUsed is written at most this often per server, in ms. Default 60000. */
  touchEveryMs?: number;
}

/** What a token stands for now: its principal, or why it stands for no one. */
export type Verdict = { principal: Principal } | { error: UnauthenticatedError };

/** Verifies bearer tokens and issues new ones. */
export class Authenticator {
  readonly #store: UserStore;
  readonly #cacheMs: number;
  readonly #touchEveryMs: number;
  readonly #cache = new Map<string, { principal: Principal; until: number }>();
  /**
   * Hashes of tokens this server verified in the last {@link KNOWN_FOR_MS}:
   * their lookups are never refused by `beforeLookup` (a token-guesser at
   * the same address does not lock out its users). They are still looked
   * up, so a revocation still counts.
   */
  readonly #known = new Map<string, number>();
  /** When this server last wrote each token's lastUsed. */
  readonly #touched = new Map<string, number>();
  readonly #listeners: Array<() => void> = [];

  constructor(store: UserStore, options: AuthenticatorOptions = {}) {
    this.#store = store;
    this.#cacheMs = options.cacheMs ?? 5000;
    this.#touchEveryMs = options.touchEveryMs ?? 60_000;
  }

  /**
   * The caller named by a request's `authorization` header (`Bearer ...`).
   * `beforeLookup` runs when the token is neither cached nor verified by
   * this server lately, before the store is asked (it may throw to refuse
   * the call).
   */
  async authenticate(header: string | undefined, beforeLookup?: () => void): Promise<Principal> {
    if (header === undefined || header === '') {
      throw new UnauthenticatedError('missing token: send "authorization: Bearer <token>" (gRPC metadata or an HTTP header), or sign in to the web console');
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new UnauthenticatedError('malformed authorization header: expected "Bearer <token>"');
    return this.verify(match[1], beforeLookup);
  }

  /** The caller a token secret stands for; throws UnauthenticatedError when it stands for no one. */
  async verify(secret: string, beforeLookup?: () => void): Promise<Principal> {
    const hash = hashToken(secret);
    const now = Date.now();
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now) {
      this.#touch(cached.principal.tokenId, now);
      return cached.principal;
    }
    const known = this.#known.get(hash);
    if (known === undefined || now - known > KNOWN_FOR_MS) beforeLookup?.();
    const record = await this.#store.findTokenByHash(hash);
    const parent = record?.parent ? await this.#store.getToken(record.parent) : null;
    const user = record?.kind === 'user' || record?.kind === 'session' ? await this.#store.getUser(record.subject) : null;
    const verdict = judge(record, user, now, parent);
    if ('error' in verdict) {
      this.#known.delete(hash);
      throw verdict.error;
    }
    if (this.#cache.size > 10_000) this.#cache.clear();
    // Never cached past its expiry.
    const until = Math.min(now + this.#cacheMs, record?.expires?.getTime() ?? Infinity, parent?.expires?.getTime() ?? Infinity);
    this.#cache.set(hash, { principal: verdict.principal, until });
    if (this.#known.size >= 100_000) this.#known.clear();
    this.#known.set(hash, now);
    this.#touch(verdict.principal.tokenId, now);
    return verdict.principal;
  }

  /**
   * What each token stands for now, read from the store in two queries
   * whatever their number (the open-stream check, server/live-streams.ts).
   * A token id missing from the store is "unknown".
   */
  async recheck(tokenIds: readonly string[]): Promise<Map<string, Verdict>> {
    const now = Date.now();
    const records = await this.#store.getTokens(tokenIds);
    const parentIds = [...new Set(records.flatMap((r) => (r.parent ? [r.parent] : [])))];
    const parents = new Map((parentIds.length > 0 ? await this.#store.getTokens(parentIds) : []).map((t) => [t.id, t]));
    const emails = [...new Set(records.filter((r) => r.kind !== 'agent').map((r) => r.subject))];
    const users = new Map((emails.length > 0 ? await this.#store.getUsers(emails) : []).map((u) => [u.email, u]));
    const verdicts = new Map<string, Verdict>();
    for (const record of records) {
      verdicts.set(record.id, judge(record, users.get(record.subject) ?? null, now, parents.get(record.parent ?? '') ?? null));
    }
    // An error (and its stack) only for the missing: every 2 s for every open stream, building one per token was most of the check's CPU.
    for (const id of tokenIds) if (!verdicts.has(id)) verdicts.set(id, { error: new UnauthenticatedError(`token ${id} no longer exists`) });
    return verdicts;
  }

  /**
   * {@link recheck} of only those agent tokens among `tokenIds` whose
   * verdict may have changed: the store names them in one indexed query
   * (`UserStore.tokensToRecheck`: missing, revoked, expired or made from
   * another token). The others are left out of the map: an agent token's
   * verdict rests on its own record alone, and one not named stands for the
   * agent it stood for. Not for user tokens, whose users change apart.
   */
  async recheckAgents(tokenIds: readonly string[]): Promise<Map<string, Verdict>> {
    const again = await this.#store.tokensToRecheck(tokenIds, new Date());
    return again.length > 0 ? this.recheck(again) : new Map<string, Verdict>();
  }

  /** Records that a token was used, at most once per touchEveryMs per server. */
  #touch(tokenId: string, now: number): void {
    const last = this.#touched.get(tokenId);
    if (last !== undefined && now - last < this.#touchEveryMs) return;
    if (this.#touched.size > 100_000) this.#touched.clear();
    this.#touched.set(tokenId, now);
    // Best effort: a lost lastUsed write loses a minute of precision, nothing else.
    this.#store.touchToken(tokenId, new Date(now)).catch(() => undefined);
  }

  /** Forgets cached callers, after a token was revoked or a user changed, and tells the listeners. */
  invalidate(): void {
    this.#cache.clear();
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` after every {@link invalidate} (open streams check again at once). */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Signs a browser in: a session for the user a user token stands for,
   * ending with that token, for {@link SESSION_MS} at most. Only user
   * tokens sign in (not agents', nor another session's).
   */
  async startSession(secret: string, beforeLookup?: () => void): Promise<{ secret: string; record: TokenRecord }> {
    const principal = await this.verify(secret, beforeLookup);
    const parent = principal.kind === 'user' ? await this.#store.getToken(principal.tokenId) : null;
    if (principal.kind !== 'user' || parent?.kind !== 'user') throw new UnauthenticatedError('sign in with a user token (taskgate tokens create --user EMAIL); agent tokens and sessions cannot');
    return this.sessionFrom(parent);
  }

  /** A session made from a user token already verified (a one-time sign-in link's). */
  async sessionFrom(parent: TokenRecord): Promise<{ secret: string; record: TokenRecord }> {
    const limit = Date.now() + SESSION_MS;
    const expires = new Date(Math.min(limit, parent.expires?.getTime() ?? limit));
    return this.issue('session', parent.subject, { name: 'console session', createdBy: `user:${parent.subject}`, expires, parent: parent.id });
  }

  /** The token record a secret names, whatever its state, or null. */
  find(secret: string): Promise<TokenRecord | null> {
    return this.#store.findTokenByHash(hashToken(secret));
  }

  /** Creates a token; the secret is returned once and never stored. */
  async issue(
    kind: TokenKind,
    subject: string,
    details: { name?: string; createdBy?: string; expires?: Date | null; parent?: string } = {},
  ): Promise<{ secret: string; record: TokenRecord }> {
    const secret = `tg_${kind}_${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = {
      id: randomId().slice(0, 16),
      hash: hashToken(secret),
      kind,
      subject,
      name: details.name ?? '',
      created: new Date(),
      createdBy: details.createdBy ?? 'system',
      revoked: null,
      expires: details.expires ?? null,
      lastUsed: null,
      ...(details.parent ? { parent: details.parent } : {}),
    };
    await this.#store.insertToken(record);
    return { secret, record };
  }
}

/**
 * What a token record (and its user, for a user token or session; and a
 * session's parent token) stands for at `now`.
 */
function judge(record: TokenRecord | null, user: UserRecord | null, now: number, parent: TokenRecord | null = null): Verdict {
  const refuse = (message: string): Verdict => ({ error: new UnauthenticatedError(message) });
  if (!record) return refuse('unknown token');
  // Made from another token (a session; a token made in a session): it ends with that one.
  const parentEnded = record.parent === undefined ? undefined : whyEnded(parent, now);
  if (record.kind === 'session') {
    if (user && !user.active) return refuse(`the session ended: user ${user.email} is deactivated; sign in again`);
    if (record.revoked) return refuse('signed out: sign in again');
    if (record.expires && record.expires.getTime() <= now) return refuse('the session expired: sign in again');
    if (parentEnded !== undefined || parent?.subject !== record.subject) return refuse(`the session ended: ${parentEnded ?? 'its token is not this user\'s'}; sign in again`);
    const ended = judge({ ...record, kind: 'user', parent: undefined, revoked: null, expires: null }, user, now);
    if ('error' in ended) return refuse(`the session ended: ${ended.error.message}; sign in again`);
    return ended;
  }
  if (record.revoked) return refuse(`token ${record.id} was revoked`);
  if (record.expires && record.expires.getTime() <= now) return refuse(`token ${record.id} expired at ${record.expires.toISOString()}`);
  if (parentEnded !== undefined) return refuse(`token ${record.id} was made in a console session whose ${parentEnded.replace(/^token \S+/, 'token')}`);
  if (record.kind === 'agent') return { principal: { kind: 'agent', name: record.subject, tokenId: record.id } };
  if (record.kind !== 'user') return refuse('token of an unknown kind; create a new one');
  if (!user) return refuse(`user ${record.subject} no longer exists`);
  if (!user.active) return refuse(`user ${user.email} is deactivated`);
  return { principal: { kind: 'user', email: user.email, groups: user.groups, tokenId: record.id } };
}

/** Why a token no longer stands for anyone (revoked, expired, gone), or undefined while it does. */
function whyEnded(token: TokenRecord | null, now: number): string | undefined {
  if (!token) return 'the token it was made from no longer exists';
  if (token.revoked) return `token ${token.id} was revoked`;
  if (token.expires && token.expires.getTime() <= now) return `token ${token.id} expired at ${token.expires.toISOString()}`;
  return undefined;
}
