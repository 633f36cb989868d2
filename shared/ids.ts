/**
 * Identifiers. Task ids sort by creation time, so "oldest ready first" and
 * "newest first" are plain index scans on the id in both stores.
 */
import { randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulid';

const ulid = monotonicFactory();

/** A new task id: a ULID, lexicographically ordered by creation time. */
export function newTaskId(): string {
  return ulid();
}

/** A new random id for tokens and agent boots (128 bits, hex). */
export function randomId(): string {
  return randomBytes(16).toString('hex');
}
