/**
 * In-process change notifications per task: a chunk was stored, the status
 * changed. Log followers and watchers wait on these instead of polling; they
 * still re-read the store on a slow timer, which covers changes made by
 * another server replica sharing the same database.
 */

type Listener = () => void;

/** Per-task change notifications. */
export class TaskHub {
  readonly #listeners = new Map<string, Set<Listener>>();

  /** Calls `listener` on every change of the task until the returned function is called. */
  subscribe(taskId: string, listener: Listener): () => void {
    let set = this.#listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.#listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#listeners.get(taskId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.#listeners.delete(taskId);
    };
  }

  /** Tells the task's subscribers that it changed. */
  notify(taskId: string): void {
    const set = this.#listeners.get(taskId);
    if (set) for (const listener of [...set]) listener();
  }
}
