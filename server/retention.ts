/**
 * Retention (`--retain`; docs/operations.md "Retention"): a background job
 * that deletes tasks that ended longer ago than the retention, with their
 * output and every other row of theirs, so the store does not grow forever.
 * Their audit events are kept: the audit trail has no retention of its own.
 *
 * What qualifies is decided by the store (Store.deleteEndedTasks): a
 * terminal status, every event published (so the webhook queue already
 * holds each one's delivery, body included, and the audit trail each one's
 * record), and `finished` (for a rejected task, its last event) before the
 * cutoff. Nothing that can still change is ever deleted.
 *
 * A pass runs shortly after start, then every `everyMs` (each delay
 * stretched by up to a fifth at random, so replicas started together drift
 * apart). It deletes batch after batch, each bounded in tasks and chunks
 * (on SQLite one short transaction), yielding the event loop between
 * batches, until nothing qualifies; passes never overlap, and stop() ends
 * one between two batches. Several replicas may run passes at once on one
 * MongoDB: every delete is by id and idempotent, each row is counted by the
 * one that deleted it, and a task goes only after its chunks, so a pass cut
 * short anywhere leaves no output that a later pass will not find.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ConfigError } from '../shared/config-error.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from './metrics.js';
import { REQUEST_ID_TTL_MS } from './request-ids.js';
import type { RetentionLimits, RetentionStore } from './store/store.js';

/**
 * The shortest retention, in ms: as long as a request id answers a retried
 * CreateTask from the task it made (server/request-ids.ts). A task deleted
 * sooner could be made, and run, again by a retry.
 */
export const MIN_RETAIN_MS = REQUEST_ID_TTL_MS;

/** Defaults of {@link RetentionOptions} (units as there). */
export const RETENTION_DEFAULTS = {
  everyMs: 10 * 60_000,
  firstDelayMs: 5000,
  batchTasks: 200,
  batchChunks: 500,
} as const;

/** Options of {@link Retention}; defaults in {@link RETENTION_DEFAULTS}. */
export interface RetentionOptions {
  /** Tasks that ended longer ago than this are deleted, in ms; positive. */
  retainMs: number;
  /** Between the end of a pass and the next, in ms. Default 10 minutes. */
  everyMs?: number;
  /** From start() to the first pass, in ms. Default 5000. */
  firstDelayMs?: number;
  /** Tasks per store call. Default 200. */
  batchTasks?: number;
  /** Output chunks per store call, of all its tasks. Default 500: 32 MiB at the agents' default 64 KiB a chunk (about 30 ms of SQLite, measured). */
  batchChunks?: number;
}

/** What a pass deleted. */
export interface RetentionTotals {
  tasks: number;
  chunks: number;
}

const UNITS: Readonly<Record<string, number>> = { d: 86_400_000, h: 3_600_000, m: 60_000 };

/**
 * A retention as written on the command line, in ms: a whole number and a
 * unit, `d`, `h` or `m` ("30d", "12h", "90m"); `0` or `off` keep everything
 * (0). Throws ConfigError for anything else. The minimum is checked where
 * the options are compiled (server/options.ts).
 */
export function parseRetention(text: string): number {
  const value = text.trim().toLowerCase();
  if (value === '0' || value === 'off') return 0;
  const m = /^(\d+)([dhm])$/.exec(value);
  const ms = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new ConfigError(`--retain must be a whole number of days, hours or minutes (30d, 12h, 90m), or 0 or off to keep every task, not "${text}"`);
  }
  return ms;
}

/** A retention in ms as parseRetention reads it: "30d", "36h", "off" for 0. */
export function formatRetention(ms: number): string {
  if (ms === 0) return 'off';
  for (const [unit, size] of Object.entries(UNITS)) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The retention job of one server. */
export class Retention {
  readonly #store: RetentionStore;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #retainMs: number;
  readonly #everyMs: number;
  readonly #firstDelayMs: number;
  readonly #limits: RetentionLimits;
  readonly #stopping = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(store: RetentionStore, logger: Logger, metrics: Metrics, options: RetentionOptions) {
    const o = { ...RETENTION_DEFAULTS, ...options };
    for (const name of ['retainMs', 'everyMs', 'batchTasks', 'batchChunks'] as const) {
      if (!Number.isSafeInteger(o[name]) || o[name] <= 0) throw new ConfigError(`retention ${name} must be a positive whole number, not ${o[name]}`);
    }
    this.#store = store;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#retainMs = o.retainMs;
    this.#everyMs = o.everyMs;
    this.#firstDelayMs = o.firstDelayMs;
    this.#limits = { tasks: o.batchTasks, chunks: o.batchChunks };
  }

  /** Schedules the first pass; each pass schedules the next when it ends. */
  start(): void {
    this.#schedule(this.#firstDelayMs);
  }

  #schedule(delayMs: number): void {
    if (this.#stopping.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#timed().finally(() => {
        this.#running = undefined;
        this.#schedule(this.#everyMs);
      });
    }, delayMs * (1 + Math.random() / 5));
    this.#timer.unref();
  }

  /** A pass from the timer: logged, never thrown (the next one tries again). */
  async #timed(): Promise<void> {
    try {
      await this.pass();
    } catch (err) {
      this.#metrics.retentionPass('error');
      this.#logger.warn({ err }, 'retention pass failed; the next one tries again');
    }
  }

  /**
   * Deletes everything that has qualified by now, batch by batch; returns
   * what this process deleted (a concurrent pass elsewhere may have taken
   * some). Passes from the timer never overlap; one called directly may
   * overlap them, which is as safe as another replica's.
   */
  async pass(): Promise<RetentionTotals> {
    const endedBefore = new Date(Date.now() - this.#retainMs);
    const startedAt = performance.now();
    const totals: RetentionTotals = { tasks: 0, chunks: 0 };
    let batches = 0;
    while (!this.#stopping.signal.aborted) {
      const batch = await this.#store.deleteEndedTasks(endedBefore, this.#limits);
      batches++;
      totals.tasks += batch.tasks;
      totals.chunks += batch.chunks;
      this.#metrics.retained(batch.tasks, batch.chunks);
      // Nothing deleted although more was there: another replica took it; this pass is done.
      if (!batch.more || batch.tasks + batch.chunks === 0) break;
      // Requests and agent messages waiting meanwhile run before the next batch.
      await nextTurn();
    }
    this.#metrics.retentionPass('ok');
    if (totals.tasks + totals.chunks > 0) {
      const ms = Math.round(performance.now() - startedAt);
      this.#logger.info({ ...totals, batches, ms, endedBefore, retain: formatRetention(this.#retainMs) }, 'retention: deleted tasks that ended before the cutoff, with their output');
    }
    return totals;
  }

  /** Cancels the next pass and ends one under way after its current batch. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    clearTimeout(this.#timer);
    await this.#running;
  }
}
