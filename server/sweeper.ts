/**
 * Periodic work that keeps tasks moving when no local event says so:
 *
 * - Several replicas share one MongoDB, and FerretDB v1 has no change streams
 *   (docs/design.md "Storage"), so every `pollMs` each replica looks for ready
 *   tasks and kill requests of the agents whose streams it holds; a task
 *   created or killed through another replica reaches its agent within one
 *   poll. Changes made through this replica need no poll: they are pushed at
 *   once.
 * - The lease: an agent with running tasks that has been away longer than
 *   `leaseMs` (no stream here, and its lastSeen, written every
 *   `lastSeenEveryMs` by whichever replica holds its stream, is older than
 *   that) has those tasks failed with reason "agent lost". The clock starts
 *   no earlier than this server's start, so agents get a full lease to come
 *   back after a server restart.
 * - Strays: a task running for an agent whose live stream is here, that
 *   this stream's session neither pushed nor heard of, with no claim of
 *   the session's under way. Another replica claimed it on a stream of that
 *   agent it had not yet seen die (the agent resumed or restarted here
 *   meanwhile and its Hello was answered), so no agent will run it and the
 *   lease never runs out. Seen so in two lease checks in a row, unchanged,
 *   with the stream here proven alive in between (it delivered a message:
 *   a replica whose own stream silently died, and that would see the live
 *   replica's tasks as strays, proves nothing), it goes back to ready when
 *   it was claimed for the live boot and never started, and fails "agent
 *   restarted" when it was claimed for an earlier boot (as that boot's
 *   tasks did at the new boot's Hello).
 */
import type { Logger } from '../shared/logger.js';
import type { Dispatcher } from './dispatcher.js';
import type { AgentStore, TaskStore, TaskRecord } from './store/store.js';
import type { TaskMachine } from './task-machine.js';

/** Options of {@link Sweeper}. */
export interface SweeperOptions {
  /** How often to look for ready tasks and kill requests made elsewhere, in ms. */
  pollMs: number;
  /** How long an agent may be away before its running tasks fail, in ms. */
  leaseMs: number;
}

/** Tasks read per query. */
const PAGE = 500;

/** Runs the periodic checks of one server. */
export class Sweeper {
  readonly #store: TaskStore & AgentStore;
  readonly #dispatcher: Dispatcher;
  readonly #machine: TaskMachine;
  readonly #logger: Logger;
  readonly #options: SweeperOptions;
  readonly #startedAt = Date.now();
  #pollTimer: NodeJS.Timeout | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #leasing: Promise<void> | undefined;
  /** Strays seen at the last lease check: task id -> its events and the session's messages then. */
  #strays = new Map<string, { events: number; received: number }>();

  constructor(store: TaskStore & AgentStore, dispatcher: Dispatcher, machine: TaskMachine, logger: Logger, options: SweeperOptions) {
    this.#store = store;
    this.#dispatcher = dispatcher;
    this.#machine = machine;
    this.#logger = logger;
    this.#options = options;
  }

  start(): void {
    this.#pollTimer = setInterval(() => {
      this.#polling ??= this.#poll()
        .catch((err: unknown) => this.#logger.warn({ err }, 'poll for ready tasks and kills failed'))
        .finally(() => (this.#polling = undefined));
    }, this.#options.pollMs);
    this.#leaseTimer = setInterval(() => {
      this.#leasing ??= this.checkLeases()
        .then(() => undefined)
        .catch((err: unknown) => this.#logger.warn({ err }, 'lease check failed'))
        .finally(() => (this.#leasing = undefined));
    }, Math.max(100, Math.floor(this.#options.leaseMs / 4)));
    this.#pollTimer.unref();
    this.#leaseTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#pollTimer);
    clearInterval(this.#leaseTimer);
    await Promise.all([this.#polling, this.#leasing]);
  }

  async #poll(): Promise<void> {
    if (this.#dispatcher.sessions().length === 0) return;
    // Every page: an agent whose ready tasks are older than the newest PAGE
    // of others' must be woken too.
    const agents = new Set<string>();
    for (let beforeId: string | undefined; ; ) {
      const page = await this.#store.listTasks({ statuses: ['ready'], beforeId, limit: PAGE });
      for (const task of page) agents.add(task.agent);
      if (page.length < PAGE) break;
      beforeId = page[page.length - 1]?.id;
    }
    for (const agent of agents) this.#dispatcher.wake(agent);
    const kills = await this.#store.listTasks({ statuses: ['running'], killRequested: true, limit: PAGE });
    for (const task of kills) this.#dispatcher.get(task.agent)?.kill(task.id);
  }

  /** Fails the running tasks of agents away longer than the lease; returns them. */
  async checkLeases(now = Date.now()): Promise<TaskRecord[]> {
    const byAgent = new Map<string, TaskRecord[]>();
    const strays: TaskRecord[] = [];
    let beforeId: string | undefined;
    for (;;) {
      const page = await this.#store.listTasks({ statuses: ['running'], beforeId, limit: PAGE });
      for (const task of page) {
        const session = this.#dispatcher.get(task.agent);
        if (session) {
          if (this.#isStray(task)) strays.push(task);
          continue;
        }
        byAgent.set(task.agent, [...(byAgent.get(task.agent) ?? []), task]);
      }
      if (page.length < PAGE) break;
      beforeId = page[page.length - 1]?.id;
    }
    await this.#requeueStrays(strays);
    const lost: TaskRecord[] = [];
    for (const [name, tasks] of byAgent) {
      const agent = await this.#store.getAgent(name);
      const seen = Math.max(agent?.lastSeen?.getTime() ?? 0, this.#startedAt);
      const awayMs = now - seen;
      if (awayMs <= this.#options.leaseMs) continue;
      const before = lost.length;
      for (const task of tasks) {
        const moved = await this.#machine.tryMove(task.id, 'failure', {
          actor: 'system',
          reason: 'agent lost',
          from: ['running'],
          patch: {
            finished: new Date(now),
            failureReason: `agent lost: "${name}" was unreachable for ${Math.round(awayMs / 1000)} s, longer than its ${Math.round(this.#options.leaseMs / 1000)} s lease`,
          },
        });
        if (moved) lost.push(moved);
      }
      if (lost.length > before) this.#logger.warn({ agent: name, tasks: lost.slice(before).map((t) => t.id) }, 'agent lost; its running tasks failed');
    }
    return lost;
  }

  /**
   * Whether the agent's live session here, past its Hello and with no
   * claim under way, does not hold the task, and the task is one it could
   * not hold: claimed for an earlier boot, or for this one and never started.
   */
  #isStray(task: TaskRecord): boolean {
    const session = this.#dispatcher.get(task.agent);
    if (!session || !session.heard || session.claiming || session.running.has(task.id)) return false;
    return task.bootId !== session.bootId || task.started === null;
  }

  /** Moves the strays seen unchanged at the last check too, over a stream alive since (see the file comment); remembers the new ones. */
  async #requeueStrays(strays: readonly TaskRecord[]): Promise<void> {
    const seen = this.#strays;
    this.#strays = new Map();
    const agents = new Set<string>();
    for (const stray of strays) {
      const session = this.#dispatcher.get(stray.agent);
      const received = session?.received ?? 0;
      const before = seen.get(stray.id);
      if (!before || before.events !== stray.events.length || received <= before.received) {
        this.#strays.set(stray.id, before && before.events === stray.events.length ? before : { events: stray.events.length, received });
        continue;
      }
      const unchanged = (task: TaskRecord): boolean =>
        task.status === 'running' && task.bootId === stray.bootId && task.agent === stray.agent && task.events.length === stray.events.length && this.#isStray(task);
      const { task } = await this.#machine.tryMoveDecided(stray.id, (current) => {
        if (!unchanged(current)) return null;
        if (current.bootId !== session?.bootId) {
          const patch = { failureReason: 'agent restarted while the task was running', finished: new Date() };
          return { to: 'failure', context: { actor: 'system', reason: 'agent restarted', from: ['running'], patch } };
        }
        return { to: 'ready', context: { actor: 'system', reason: 'claimed for an agent stream that was gone; requeued', from: ['running'] } };
      });
      if (task) agents.add(task.agent);
    }
    if (agents.size > 0) this.#logger.warn({ agents: [...agents] }, 'moved tasks claimed for agent streams that were gone');
    for (const agent of agents) this.#dispatcher.wake(agent);
  }
}
