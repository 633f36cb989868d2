/**
 * A pass of background work that never overlaps itself: `run()` starts it,
 * or, while one is under way, asks for exactly one more right after it (any
 * number of requests meanwhile make one more pass, not one each). A failed
 * pass goes to `onError`; the next request runs again.
 */
export class SerialPass {
  readonly #pass: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(pass: () => Promise<void>, onError: (err: unknown) => void) {
    this.#pass = pass;
    this.#onError = onError;
  }

  /** Starts a pass now, or one more after the pass under way. */
  run(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass()
      .catch(this.#onError)
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.run();
        }
      });
  }

  /** Resolves when no pass runs, nor is asked for (the passes asked for before the call have run). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Whether a pass is under way. */
  get busy(): boolean {
    return this.#running !== undefined;
  }
}
