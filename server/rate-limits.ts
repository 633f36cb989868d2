/**
 * Fair use per caller (docs/limits.md "Per caller"): each user may make
 * `callsPerSecond` calls (a token bucket holding `burst`) and hold
 * `streams` open streams at once on this server. A call over either limit
 * is RESOURCE_EXHAUSTED with when to retry (grpc-retry-pushback-ms for gRPC
 * clients). Limits hold per server process: they are checked in memory on
 * every call, without a store round trip, so a caller spread over N
 * replicas gets up to N times them. Agents are not limited here: an agent
 * has one stream, and its messages are bounded by the session.
 */
import { ResourceExhaustedError } from '../shared/errors.js';
import type { Principal } from './auth.js';

/** The limits; 0 turns one off. */
export interface RateLimitOptions {
  /** Calls per second per user, sustained. */
  callsPerSecond: number;
  /** Calls a user may make at once above the rate. */
  burst: number;
  /** Open streams (log followers, watchers) per user. */
  streams: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms (performance.now). */
  at: number;
  streams: number;
}

/** Buckets kept before idle full ones are dropped. */
const SWEEP_AT = 10_000;

/** Token buckets and stream counts per principal. */
export class RateLimits {
  readonly #options: RateLimitOptions;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions) {
    this.#options = options;
  }

  #bucket(principal: Principal, now: number): Bucket {
    const key = principal.kind === 'user' ? principal.email : `agent:${principal.name}`;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= SWEEP_AT) this.#sweep(now);
      bucket = { tokens: this.#options.burst, at: now, streams: 0 };
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  /** Takes one call from the caller's bucket; throws ResourceExhaustedError when it is empty. */
  call(principal: Principal): void {
    const { callsPerSecond, burst } = this.#options;
    if (callsPerSecond <= 0) return;
    const now = performance.now();
    const bucket = this.#bucket(principal, now);
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * callsPerSecond);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryDelayMs = Math.ceil(((1 - bucket.tokens) / callsPerSecond) * 1000);
    throw new ResourceExhaustedError(
      `rate limit: at most ${callsPerSecond} calls per second per user (bursts of ${burst}); retry in ${(retryDelayMs / 1000).toFixed(1)} s`,
      { retryDelayMs },
    );
  }

  /** Counts an open stream; throws ResourceExhaustedError over the limit. Returns its release. */
  openStream(principal: Principal): () => void {
    const { streams } = this.#options;
    if (streams <= 0) return () => undefined;
    const bucket = this.#bucket(principal, performance.now());
    if (bucket.streams >= streams) {
      throw new ResourceExhaustedError(`too many open streams: at most ${streams} per user on this server; close some (log followers, watchers) first`, {
        retryDelayMs: 1000,
      });
    }
    bucket.streams++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      bucket.streams--;
    };
  }

  /** Drops buckets that are full again and hold no stream: they carry no state. */
  #sweep(now: number): void {
    const { callsPerSecond, burst } = this.#options;
    for (const [key, bucket] of this.#buckets) {
      const tokens = bucket.tokens + ((now - bucket.at) / 1000) * callsPerSecond;
      if (bucket.streams === 0 && tokens >= burst) this.#buckets.delete(key);
    }
  }
}

/**
 * Failed authentications per client address (docs/limits.md "Per caller"):
 * each address may fail `perSecond` times a second (a bucket holding five
 * times as many); past that, its calls with a token this server has not
 * verified in the last day are refused RESOURCE_EXHAUSTED before the store
 * is asked. Each such lookup is counted before it is made and given back if
 * the token was good, so a burst in flight at once counts too. Tokens the
 * server verified stay good, so a user behind the same address as a
 * token-guesser keeps working. Per server process, like the limits above.
 */
export class AuthFailureLimits {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
    this.#burst = perSecond * 5;
  }

  #refill(address: string, now: number): { tokens: number; at: number } | undefined {
    const bucket = this.#buckets.get(address);
    if (!bucket) return undefined;
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#perSecond);
    bucket.at = now;
    return bucket;
  }

  /**
   * Before a store lookup for `address`: takes one failure from its bucket
   * in advance (so a burst of lookups in flight at once counts, not only
   * those that have failed), or throws when it is empty. {@link refund}
   * gives it back when the token was good.
   */
  take(address: string): void {
    if (this.#perSecond <= 0) return;
    const now = performance.now();
    let bucket = this.#refill(address, now);
    if (!bucket) {
      if (this.#buckets.size >= SWEEP_AT) this.#sweep(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(address, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return;
    }
    const retryDelayMs = Math.ceil(((1 - bucket.tokens) / this.#perSecond) * 1000);
    throw new ResourceExhaustedError(
      `too many failed authentications from ${address}: at most ${this.#perSecond} per second; retry in ${(retryDelayMs / 1000).toFixed(1)} s with a valid token`,
      { retryDelayMs },
    );
  }

  /** The lookup {@link take} counted found a good token: not a failure after all. */
  refund(address: string): void {
    if (this.#perSecond <= 0) return;
    const bucket = this.#refill(address, performance.now());
    if (bucket) bucket.tokens = Math.min(this.#burst, bucket.tokens + 1);
  }

  /** Drops buckets that are full again: they carry no state. */
  #sweep(now: number): void {
    for (const address of [...this.#buckets.keys()]) {
      if (this.#refill(address, now)!.tokens >= this.#burst) this.#buckets.delete(address);
    }
  }
}
