/** A wait that ends after a time, on abort, or when woken: how a follower sleeps between store reads. */
export class Wakeup {
  #wake: (() => void) | undefined;

  /** Ends the wait under way, if any. */
  wake(): void {
    this.#wake?.();
  }

  /** Resolves after `ms`, when `signal` aborts or at the next {@link wake}; at once when `now` holds. */
  wait(ms: number, signal: AbortSignal, now = false): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
      if (now || signal.aborted) done();
    });
  }
}

