/**
 * One run of an expensive read shared by every caller that asks before it
 * starts. A caller always gets the result of a run that began after its
 * call (a run already under way may have read too early for it), so
 * sharing never hands anyone a stale answer: while one run is under way,
 * every new caller waits for the single run that follows it.
 */
export class Coalesced<T> {
  readonly #run: () => Promise<T>;
  #running: Promise<T> | null = null;
  #next: Promise<T> | null = null;

  constructor(run: () => Promise<T>) {
    this.#run = run;
  }

  /** The result of a run that starts after this call. */
  next(): Promise<T> {
    if (!this.#running) return this.#start();
    this.#next ??= this.#running.then(
      () => this.#follow(),
      () => this.#follow(),
    );
    return this.#next;
  }

  #follow(): Promise<T> {
    this.#next = null;
    return this.#start();
  }

  #start(): Promise<T> {
    const running = this.#run().finally(() => {
      if (this.#running === running) this.#running = null;
    });
    this.#running = running;
    return running;
  }
}
