/**
 * In-process change notifications per task: a chunk was stored, the status
 * changed. Log followers and watchers wait on these instead of polling; they
 * still re-read the store on a slow timer, which covers changes made by
 * another server replica sharing the same database.
 */

import type { TaskRecord } from './store/store.js';

type Listener = () => void;
/** Told of every state change of any task (status, review, kill request), with the task as written. */
type StateListener = (task: TaskRecord) => void;

/** Per-task change notifications. */
export class TaskHub {
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #stateListeners = new Set<StateListener>();

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

  /**
   * Calls `listener` with every task whose state (not output) changes on
   * this server, until the returned function is called (followed lists,
   * WatchTasks).
   */
  subscribeStates(listener: StateListener): () => void {
    this.#stateListeners.add(listener);
    return () => void this.#stateListeners.delete(listener);
  }

  /**
   * Tells the task's subscribers that it changed: `task` given, its state
   * (as written), and state subscribers hear of it too; without, its
   * output grew.
   */
  notify(taskId: string, task?: TaskRecord): void {
    const set = this.#listeners.get(taskId);
    if (set) for (const listener of [...set]) listener();
    if (task) for (const listener of [...this.#stateListeners]) listener(task);
  }
}
