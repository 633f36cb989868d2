/**
 * Keeps a server stream open across failures: the server ends every
 * follow stream with UNAVAILABLE when it stops ("follow again"), and
 * networks drop. Each attempt is opened again after a jittered, growing
 * delay (shared/backoff.ts), reset once an attempt got a message; an
 * abort, an unauthenticated session (the page goes to sign-in) or a
 * permanent refusal ends it.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { Backoff } from '../../shared/backoff.js';
import { isAbort } from './api.js';

/** Codes after which opening the stream again would fail the same way. */
const PERMANENT = new Set([
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.NotFound,
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.Unimplemented,
]);

/** What one attempt reports back. */
export interface Attempt {
  /** Call after the first message: the connection is healthy. */
  healthy(): void;
}

/**
 * Runs `attempt` until it returns true (done) or fails permanently;
 * `onError` hears each failure, `retrying` says whether another attempt follows.
 */
export async function keepFollowing(
  signal: AbortSignal,
  attempt: (state: Attempt) => Promise<boolean>,
  onError: (error: unknown, retrying: boolean) => void,
): Promise<void> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
  while (!signal.aborted) {
    try {
      if (await attempt({ healthy: () => backoff.reset() })) return;
    } catch (error) {
      if (signal.aborted || isAbort(error)) return;
      const permanent = error instanceof ConnectError && PERMANENT.has(error.code);
      onError(error, !permanent);
      if (permanent) return;
    }
    await sleep(backoff.next(), signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
