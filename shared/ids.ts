/**
 * Identifiers. Task ids sort by creation time, so "oldest ready first" and
 * "newest first" are plain index scans on the id in both stores.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { encodeTime, monotonicFactory } from 'ulid';

/** Random bytes drawn ahead, for the ULID's random part. */
const pool = Buffer.alloc(256);
let poolAt = pool.length;

/**
 * A uniform number in [0, 1) from the operating system's CSPRNG, as ulid's
 * own default (one byte / 256), but from a pool refilled 256 bytes at a
 * time: ulid's default makes a typed array and a getRandomValues call per
 * character, 16 per new millisecond (issue 18: 0.05 ms of a task's server CPU).
 */
function pooledRandom(): number {
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  return (pool[poolAt++] as number) / 256;
}

const ulid = monotonicFactory(pooledRandom);

/** A new task id: a ULID, lexicographically ordered by creation time. */
export function newTaskId(): string {
  return ulid();
}

/** A new random id for tokens and agent boots (128 bits, hex). */
export function randomId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * An audit event id that sorts by `time`: the ULID time prefix, then
 * `unique`. Task events pass their task id and index, so publishing the
 * same event twice yields the same id (and the store keeps it once).
 */
export function eventId(time: Date, unique: string = randomId()): string {
  return `${encodeTime(time.getTime(), 10)}-${unique}`;
}
