/**
 * Bearer-token authentication and the permission check, in one place so later
 * versions can grow it (users, groups) without touching the handlers.
 *
 * Tokens are random secrets shown once; the store keeps only their SHA-256.
 * A verified token is cached for `cacheMs`, so the hot path (every RPC) does
 * not hit the store each time.
 */
import type { Metadata } from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { PermissionDeniedError, UnauthenticatedError } from '../shared/errors.js';
import { randomId } from '../shared/ids.js';
import type { Store, TokenKind, TokenRecord } from './store/store.js';

/** Who is calling. */
export interface Principal {
  kind: TokenKind;
  /** "admin", or the agent's name for agent tokens. */
  subject: string;
  tokenId: string;
}

/** How events name a principal: "admin" or "agent:NAME". */
export function actorOf(principal: Principal): string {
  return principal.kind === 'agent' ? `agent:${principal.subject}` : principal.subject;
}

/** Hex SHA-256 of a token secret. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Options for {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** How long a verified token stays cached, in ms. Default 5000. */
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

  /** The caller named by the request's `authorization: Bearer ...` metadata. */
  async authenticate(metadata: Metadata): Promise<Principal> {
    const header = metadata.get('authorization')[0];
    if (typeof header !== 'string' || header === '') {
      throw new UnauthenticatedError('missing token: send metadata "authorization: Bearer <token>"');
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new UnauthenticatedError('malformed authorization header: expected "Bearer <token>"');
    const hash = hashToken(match[1]);
    const now = Date.now();
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now) return cached.principal;
    const record = await this.#store.findTokenByHash(hash);
    if (!record) throw new UnauthenticatedError('unknown token');
    const principal: Principal = { kind: record.kind, subject: record.subject, tokenId: record.id };
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(hash, { principal, until: now + this.#cacheMs });
    return principal;
  }

  /** Creates a token; the secret is returned once and never stored. */
  async issue(kind: TokenKind, subject: string): Promise<{ secret: string; record: TokenRecord }> {
    const secret = `tg_${kind}_${randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = { id: randomId(), hash: hashToken(secret), kind, subject, created: new Date() };
    await this.#store.insertToken(record);
    return { secret, record };
  }

  /** Whether `secret` is a valid token of `kind` (used to reuse a saved admin token). */
  async isValid(secret: string, kind: TokenKind): Promise<boolean> {
    const record = await this.#store.findTokenByHash(hashToken(secret));
    return record?.kind === kind;
  }
}

/** What an RPC requires of its caller. */
export type Requirement = 'admin' | 'agent';

/** Throws PermissionDeniedError unless the principal meets the requirement. */
export function authorize(principal: Principal, requirement: Requirement): void {
  if (principal.kind !== requirement) {
    throw new PermissionDeniedError(
      requirement === 'agent'
        ? 'this call needs an agent token'
        : 'agent tokens may only open an agent stream; use a user or admin token',
    );
  }
}
