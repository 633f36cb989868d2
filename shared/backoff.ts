/**
 * Reconnect delays: exponential, jittered, capped, reset after a healthy
 * connection. The shape and defaults follow grpc-js `backoff-timeout.ts`.
 *
 * The first attempt after a healthy connection was lost is different
 * ({@link Backoff.afterLoss}): when a server restarts, every agent it held
 * loses its stream in the same instant, and ±20 % of one second would bring
 * them all back within 400 ms of each other. Full jitter (uniform in
 * [0, initialMs], as AWS's "Exponential Backoff and Jitter" recommends)
 * spreads that first wave over the whole second and costs each agent half a
 * second on average, never more than initialMs. The attempts after it are
 * capped at 5 s until a minute of delays has passed: an agent that failed a
 * few times while the server restarted, or was refused in the storm of
 * reconnects, would otherwise sit out 30-70 s, past the 60 s lease after
 * which its running tasks fail "agent lost" (and past the time its fleet
 * takes to come back); beyond that minute, they grow from 5 s to 120 s as usual.
 */

/** How a {@link Backoff} grows. */
export interface BackoffOptions {
  /** First delay, in milliseconds. Default 1000. */
  initialMs?: number;
  /** Factor applied after every attempt. Default 1.6. */
  multiplier?: number;
  /** Largest delay, in milliseconds, before jitter. Default 120000. */
  maxMs?: number;
  /** Relative jitter: each delay is scaled by a random factor in [1-j, 1+j]. Default 0.2. */
  jitter?: number;
  /** Source of randomness in [0, 1); replaceable for tests. Default Math.random. */
  random?: () => number;
  /**
   * After {@link Backoff.afterLoss}: delays stay at most this (before
   * jitter), in milliseconds, until they add up to `afterLossWindowMs`.
   * Default 5000.
   */
  afterLossCapMs?: number;
  /** How long, in summed delays, the cap after a loss holds, in milliseconds. Default 60000 (the server's default lease). */
  afterLossWindowMs?: number;
}

/** The defaults of {@link BackoffOptions} (grpc-js `backoff-timeout.ts`, plus the cap after a loss). */
export const BACKOFF_DEFAULTS = { initialMs: 1000, multiplier: 1.6, maxMs: 120_000, jitter: 0.2, afterLossCapMs: 5000, afterLossWindowMs: 60_000 } as const;

/** A sequence of reconnect delays. */
export class Backoff {
  readonly #initialMs: number;
  readonly #multiplier: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #afterLossCapMs: number;
  readonly #afterLossWindowMs: number;
  #nextMs: number;
  /** Delays handed out since the last {@link afterLoss}, in ms; null when none is under way. */
  #sinceLossMs: number | null = null;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? BACKOFF_DEFAULTS.initialMs;
    this.#multiplier = options.multiplier ?? BACKOFF_DEFAULTS.multiplier;
    this.#maxMs = options.maxMs ?? BACKOFF_DEFAULTS.maxMs;
    this.#jitter = options.jitter ?? BACKOFF_DEFAULTS.jitter;
    this.#random = options.random ?? Math.random;
    this.#afterLossCapMs = options.afterLossCapMs ?? BACKOFF_DEFAULTS.afterLossCapMs;
    this.#afterLossWindowMs = options.afterLossWindowMs ?? BACKOFF_DEFAULTS.afterLossWindowMs;
    this.#nextMs = this.#initialMs;
  }

  /** The delay before the next attempt, in milliseconds; grows the one after. */
  next(): number {
    // Within the window after a loss the sequence holds at the cap, and grows from there once it is over.
    const base = this.#sinceLossMs === null ? this.#nextMs : Math.min(this.#nextMs, this.#afterLossCapMs);
    this.#nextMs = Math.min(base * this.#multiplier, this.#maxMs);
    const spread = base * this.#jitter * (this.#random() * 2 - 1);
    const delay = Math.max(0, Math.round(base + spread));
    if (this.#sinceLossMs !== null) {
      this.#sinceLossMs += delay;
      if (this.#sinceLossMs >= this.#afterLossWindowMs) this.#sinceLossMs = null;
    }
    return delay;
  }

  /** Start over from the initial delay (after a healthy connection). */
  reset(): void {
    this.#nextMs = this.#initialMs;
    this.#sinceLossMs = null;
  }

  /**
   * The delay before the first attempt after a healthy connection was lost,
   * in milliseconds: uniform in [0, initialMs] (full jitter), so a fleet that
   * lost its server at once does not come back at once. Starts over: if that
   * attempt fails too, {@link next} goes on from initialMs (±jitter), its
   * delays capped at afterLossCapMs until they add up to afterLossWindowMs.
   */
  afterLoss(): number {
    this.reset();
    const delay = Math.round(this.#random() * this.#initialMs);
    this.#sinceLossMs = delay;
    return delay;
  }
}

/**
 * The delay before retry number `attempt` (1 = the first retry) of a
 * sequence shaped by `options`, without keeping state (for retries that are
 * stored, such as webhook deliveries).
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const backoff = new Backoff(options);
  let delay = backoff.next();
  for (let i = 1; i < attempt; i++) delay = backoff.next();
  return delay;
}
