/**
 * Tests of task isolation need root (the agent switches users). Elsewhere
 * they are skipped, loudly; under CI=true a missing root is a failure, since
 * CI runs as root and a skip there would hide a broken promise.
 */
import type { Context } from 'mocha';

/** Whether this process runs as root. */
export const IS_ROOT = process.getuid?.() === 0;

/** Skips the test (or suite hook) unless running as root; fails instead under CI=true. */
export function requireRoot(context: Context, what: string): void {
  if (IS_ROOT) return;
  const message = `${what} needs root (the agent runs tasks as users of their own); run the suite as root to test it`;
  if (process.env.CI === 'true') throw new Error(`CI runs as root, but this run is not: ${message}`);
  process.stderr.write(`\n    !!! SKIPPED: ${message}\n`);
  context.skip();
}
