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

/** What a per-task subscriber hears of: every change, or only its state (status, events, review, kill request), not output. */
export type Changes = 'all' | 'state';

/** Per-task change notifications. */
export class TaskHub {
  readonly #listeners: Record<Changes, Map<string, Set<Listener>>> = { all: new Map(), state: new Map() };
  readonly #stateListeners = new Set<StateListener>();

  /** Calls `listener` on every change of the task (`changes` 'state': not on output) until the returned function is called. */
  subscribe(taskId: string, listener: Listener, changes: Changes = 'all'): () => void {
    const byTask = this.#listeners[changes];
    let set = byTask.get(taskId);
    if (!set) {
      set = new Set();
      byTask.set(taskId, set);
    }
    set.add(listener);
    return () => {
      const current = byTask.get(taskId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) byTask.delete(taskId);
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
    const all = this.#listeners.all.get(taskId);
    if (all) for (const listener of [...all]) listener();
    if (!task) return;
    const state = this.#listeners.state.get(taskId);
    if (state) for (const listener of [...state]) listener();
    for (const listener of [...this.#stateListeners]) listener(task);
  }
}
