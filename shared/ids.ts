/**
 * Identifiers. Task ids sort by creation time, so "oldest ready first" and
 * "newest first" are plain index scans on the id in both stores.
 */
import { randomBytes } from 'node:crypto';
import { encodeTime, monotonicFactory } from 'ulid';

const ulid = monotonicFactory();

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
