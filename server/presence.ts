/**
 * Agents' lastSeen refreshes, written together: at 19,000 agents a refresh
 * per agent every lease/3 is hundreds of store writes a second, each its
 * own commit; gathered for {@link PRESENCE_BATCH_MS} they are one (on a
 * store with the batch form, Store.updateAgentsPresence).
 *
 * Only refreshes of connected agents wait here. A disconnect is written at
 * once, after dropping the agent's waiting refresh, so a late batch never
 * marks a gone agent connected again.
 */
import type { Logger } from '../shared/logger.js';
import { updateAgentsPresence, type AgentPresence, type AgentStore } from './store/store.js';

/** How long a lastSeen refresh may wait for others to share its write, in ms (the lease is a minute). */
export const PRESENCE_BATCH_MS = 250;

/** Gathers agents' presence refreshes and writes them in one store step. */
export class PresenceWriter {
  readonly #store: AgentStore;
  readonly #logger: Logger;
  readonly #pending = new Map<string, AgentPresence>();
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(store: AgentStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** Queues a refresh of a connected agent's presence; a later one for the same agent replaces it. */
  refresh(name: string, presence: AgentPresence): void {
    this.#pending.set(name, presence);
    if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush(), PRESENCE_BATCH_MS);
      this.#timer.unref();
    }
  }

  /** Forgets the agent's waiting refresh (it disconnected: that write comes next). */
  drop(name: string): void {
    this.#pending.delete(name);
  }

  /** Writes what waits now; resolves when it and any write before it are done. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.size > 0) {
      const batch = [...this.#pending].map(([name, presence]) => ({ name, presence }));
      this.#pending.clear();
      this.#writing = this.#writing
        .then(() => updateAgentsPresence(this.#store, batch))
        .catch((err: unknown) => this.#logger.warn({ err, agents: batch.length }, 'could not record agents last seen; the next heartbeats try again'));
    }
    return this.#writing;
  }
}
