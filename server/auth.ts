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
 */
import { createHash, randomBytes } from 'node:crypto';
import { UnauthenticatedError } from '../shared/errors.js';
import { randomId } from '../shared/ids.js';
import type { Store, TokenKind, TokenRecord } from './store/store.js';

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

/** Options for {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** How long a verified caller stays cached, in ms. Default 5000. */
  cacheMs?: number;
}

/** Verifies bearer tokens and issues new ones. */
export class Authenticator {
  readonly #store: Store;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { principal: Principal; until: number }>();

  constructor(store: Store, options: AuthenticatorOptions = {}) {
    this.#store = store;
    this.#cacheMs = options.cacheMs ?? 5000;
  }

  /** The caller named by a request's `authorization` header (`Bearer ...`). */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined || header === '') {
      throw new UnauthenticatedError('missing token: send metadata "authorization: Bearer <token>"');
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new UnauthenticatedError('malformed authorization header: expected "Bearer <token>"');
    return this.verify(match[1]);
  }

  /** The caller a token secret stands for; throws UnauthenticatedError when it stands for no one. */
  async verify(secret: string): Promise<Principal> {
    const hash = hashToken(secret);
    const now = Date.now();
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now) return cached.principal;
    const principal = await this.#resolve(await this.#store.findTokenByHash(hash));
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(hash, { principal, until: now + this.#cacheMs });
    return principal;
  }

  async #resolve(record: TokenRecord | null): Promise<Principal> {
    if (!record) throw new UnauthenticatedError('unknown token');
    if (record.revoked) throw new UnauthenticatedError(`token ${record.id} was revoked`);
    if (record.kind === 'agent') return { kind: 'agent', name: record.subject, tokenId: record.id };
    if (record.kind !== 'user') throw new UnauthenticatedError('token of an unknown kind; create a new one');
    const user = await this.#store.getUser(record.subject);
    if (!user) throw new UnauthenticatedError(`user ${record.subject} no longer exists`);
    if (!user.active) throw new UnauthenticatedError(`user ${user.email} is deactivated`);
    return { kind: 'user', email: user.email, groups: user.groups, tokenId: record.id };
  }

  /** Forgets cached callers, after a token was revoked or a user changed. */
  invalidate(): void {
    this.#cache.clear();
  }

  /** Creates a token; the secret is returned once and never stored. */
  async issue(
    kind: TokenKind,
    subject: string,
    details: { name?: string; createdBy?: string } = {},
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
    };
    await this.#store.insertToken(record);
    return { secret, record };
  }
}
