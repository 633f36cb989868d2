/**
 * The claims of one agent session (server/agent-session.ts): which ready
 * tasks it takes for its agent and when, and how it hands them down the
 * stream. Tasks are claimed by the pump (oldest first, up to the agent's
 * limit, in one store step where the store can), by a full agent's exit in
 * the exit's own write (SessionTasks.exit), or as they are created
 * (claimNew, issue 18). Tasks a claim took after the session closed go back
 * to ready (#requeue). What runs once claimed is SessionTasks'
 * (server/session-tasks.ts); the session tells this module only what state
 * it is in.
 */
import type { ConnectResponse } from '../gen/taskgate/v1/agent.js';
import type { Logger } from '../shared/logger.js';
import type { SecretBox } from './secret-box.js';
import type { SessionTasks } from './session-tasks.js';
import {
  applyTransition,
  claimReady,
  claimRequest,
  type ClaimedTasks,
  type ClaimNext,
  type TargetRecord,
  type TargetStore,
  type TaskRecord,
  type TaskStore,
} from './store/store.js';
import type { TaskMachine } from './task-machine.js';

/** A task claimed as it is created (AgentSession.claimNew). */
export interface NewClaim {
  /** The task to insert: claimed by the agent's session. */
  task: TaskRecord;
  /** The insert succeeded: the task goes down the stream. */
  inserted(): void;
  /** The insert failed: the session forgets the task. */
  failed(): void;
}

/** What {@link SessionClaims} needs of its session. */
export interface SessionClaimsHost {
  /** The agent's name (known once it said Hello). */
  agentName(): string;
  /** The agent's boot id (known once it said Hello). */
  bootId(): string;
  /** The session is in state `active`. */
  active(): boolean;
  /** The session is in state `closed`. */
  closed(): boolean;
  /** The agent spoke after the Welcome (AgentSession.heard). */
  heard(): boolean;
  /** The agent is shutting down and takes no new tasks (AgentSession.draining). */
  draining(): boolean;
  /** Sends a message down the stream (nothing once it closed). */
  write(message: ConnectResponse): void;
  /** The session's logger. */
  logger(): Logger;
}

/** What {@link SessionClaims} needs from the server (a subset of SessionDeps). */
export interface SessionClaimsDeps {
  store: TaskStore & TargetStore;
  machine: TaskMachine;
  /** This replica's live sessions: the agent's live one is woken after a requeue. */
  dispatcher: { get(name: string): { pump(): void } | undefined };
  options: {
    /** Tasks an agent runs at once. */
    maxTasksPerAgent: number;
    /** Between SIGTERM and SIGKILL when a task is killed or times out, in ms. */
    killGraceMs: number;
  };
  /** Opens stored secrets; null when the server has no secrets key. */
  secretBox: SecretBox | null;
}

/** The claims of one session; see the file comment. */
export class SessionClaims {
  readonly #host: SessionClaimsHost;
  readonly #tasks: SessionTasks;
  readonly #deps: SessionClaimsDeps;
  #pumping = false;
  /** Claims written or being written whose tasks are not yet in SessionTasks.running (see {@link claiming}). */
  #claiming = 0;
  #pumpAgain = false;
  /**
   * Whether ready tasks may be waiting for this agent: false once a claim
   * found none left, true again on every wake (pump()); a task's exit looks
   * for more only then, instead of asking the store after every exit.
   */
  #maybeReady = true;

  constructor(host: SessionClaimsHost, tasks: SessionTasks, deps: SessionClaimsDeps) {
    this.#host = host;
    this.#tasks = tasks;
    this.#deps = deps;
  }

  /** A claim is under way: tasks it took may be stored as running for this boot before SessionTasks.running has them. */
  get claiming(): boolean {
    return this.#claiming > 0;
  }

  /** Claims ready tasks for this agent, oldest first, up to its limit, and pushes them. */
  pump(): void {
    this.#maybeReady = true;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    this.#pumpLoop()
      .catch((err: unknown) => this.#host.logger().error({ err }, 'dispatch failed'))
      .finally(() => {
        this.#pumping = false;
      });
  }

  async #pumpLoop(): Promise<void> {
    const { store, machine, options } = this.#deps;
    const host = this.#host;
    const running = this.#tasks.running;
    do {
      this.#pumpAgain = false;
      while (host.active() && host.heard() && !host.draining() && running.size < options.maxTasksPerAgent) {
        // As many as it has room for, in one store step where the store can.
        const room = options.maxTasksPerAgent - running.size;
        // Redaction rules are read when the tasks start (with the claim), so
        // a tightened target applies at once.
        this.#claiming += 1;
        let claimed: Awaited<ReturnType<typeof claimReady>>;
        try {
          claimed = await claimReady(store, host.agentName(), host.bootId(), new Date(), room);
          for (const task of claimed.tasks) machine.announce(task);
          if (!host.closed()) for (const task of claimed.tasks) this.#tasks.claimed(task);
        } finally {
          this.#claiming -= 1;
        }
        const { tasks, targets, exhausted } = claimed;
        if (host.closed()) return this.#requeue(tasks); // replaced while the claim was out
        for (const task of tasks) await this.#push(task, targets.get(task.target) ?? null);
        if (exhausted) {
          this.#maybeReady = false;
          break;
        }
      }
    } while (this.#pumpAgain && host.active());
  }

  /**
   * Tasks claimed for this session after it closed (a claim takes several
   * round trips on MongoDB; meanwhile the agent can resume on a new stream,
   * whose Hello already reconciled the agent's tasks): they are claimed for
   * this boot but nobody will push them, and the lease sweeper skips an
   * agent with a live session. Each goes back to ready, only if nothing
   * touched it since the claim, and the agent's live session is woken.
   */
  async #requeue(tasks: readonly TaskRecord[]): Promise<void> {
    const { machine, dispatcher } = this.#deps;
    const host = this.#host;
    for (const claimed of tasks) {
      const untouched = (task: TaskRecord): boolean =>
        task.status === 'running' && task.bootId === host.bootId() && task.agent === host.agentName() && task.started === null && task.events.length === claimed.events.length;
      await machine.tryMoveDecided(claimed.id, (task) =>
        untouched(task) ? { to: 'ready', context: { actor: 'system', reason: 'claimed for an agent stream that had closed; requeued', from: ['running'] } } : null,
      );
    }
    if (tasks.length > 0) dispatcher.get(host.agentName())?.pump();
  }

  /** A task's exit freed a slot (SessionTasksHost.slotFreed): tasks left waiting while the agent was full go now. */
  slotFreed(): void {
    if (this.#maybeReady) this.pump();
  }

  /**
   * What an exit claims in its own write (SessionTasks.exit): the agent's
   * next ready task, when the agent is full (so the exit frees its only
   * room: running counts the exiting task until its write returns, and a
   * pump meanwhile sees no room), ready tasks may be waiting, and no pump
   * or claim is under way; null otherwise, and the freed slot goes to
   * pump() as before. Oldest first and the limit hold as with a pump.
   * A claim returned counts as under way until {@link claimSettled}.
   */
  claimOnExit(): ClaimNext | null {
    const host = this.#host;
    const max = this.#deps.options.maxTasksPerAgent;
    if (!host.active() || !host.heard() || host.draining() || this.#pumping || !this.#maybeReady || this.#tasks.running.size !== max) return null;
    this.#claiming += 1;
    return { agent: host.agentName(), bootId: host.bootId(), time: new Date(), limit: 1 };
  }

  /** The claim {@link claimOnExit} returned is settled: its tasks (if any) run here or were requeued. */
  claimSettled(): void {
    this.#claiming -= 1;
  }

  /** Tasks an exit claimed in its write: run here, announced and pushed as a pump would. */
  claimedOnExit(claimed: ClaimedTasks, limit: number): void {
    const { machine } = this.#deps;
    if (claimed.tasks.length < limit) this.#maybeReady = false;
    for (const task of claimed.tasks) machine.announce(task);
    if (this.#host.closed()) {
      this.#requeue(claimed.tasks).catch((err: unknown) => this.#host.logger().error({ err }, 'could not requeue tasks claimed after the stream closed'));
      return;
    }
    for (const task of claimed.tasks) this.#tasks.claimed(task);
    // In order, outside the message queue (as a pump pushes).
    const push = async (): Promise<void> => {
      for (const task of claimed.tasks) await this.#push(task, claimed.targets.get(task.target) ?? null);
    };
    push().catch((err: unknown) => this.#host.logger().error({ err }, 'dispatch failed'));
  }

  /**
   * Claims a task being created for this agent in the write that inserts
   * it, instead of inserting it ready and claiming it in a second write
   * (issue 18): only while the agent has room, no claim is under way and
   * the last one found none of its ready tasks left, so it still gets them
   * oldest first. Returns the task as claimed (ready, then running for this
   * boot) for the caller to insert, and what to do once the insert is done
   * or failed; null when the task is to be inserted ready as usual.
   */
  claimNew(task: TaskRecord, target: TargetRecord): NewClaim | null {
    const host = this.#host;
    const max = this.#deps.options.maxTasksPerAgent;
    if (!host.active() || !host.heard() || host.draining() || this.#pumping || this.#maybeReady || this.#tasks.running.size >= max) return null;
    const name = host.agentName();
    const claimed = applyTransition(task, claimRequest(task.id, name, host.bootId(), new Date()));
    if (!claimed || claimed.agent !== name) return null;
    this.#tasks.claimed(claimed);
    return {
      task: claimed,
      // Only once it is stored: the agent's reports on it need the task.
      inserted: () => {
        this.#push(claimed, target).catch((err: unknown) => this.#host.logger().error({ err }, 'dispatch failed'));
      },
      // A repeat of a request id, or a failed insert: the slot is free
      // again, and a task made ready meanwhile may have found it taken.
      failed: () => {
        this.#tasks.forget(claimed.id);
        if (this.#maybeReady) this.pump();
      },
    };
  }

  /** Sends a claimed task down the stream, with its target's rules (fails it when its stored secrets cannot be opened). */
  async #push(task: TaskRecord, target: TargetRecord | null): Promise<void> {
    const { machine, options } = this.#deps;
    let storedSecrets: Record<string, string> = {};
    try {
      storedSecrets = target?.secretProvider === 'stored' ? await this.#openSecrets(target.name) : {};
    } catch (err) {
      this.#tasks.forget(task.id);
      await machine.tryMove(task.id, 'failure', {
        actor: 'system',
        reason: 'stored secrets unavailable',
        from: ['running'],
        patch: { finished: new Date(), failureReason: `could not start: ${(err as Error).message}` },
      });
      return;
    }
    this.#host.write({
      message: {
        $case: 'run',
        value: {
          taskId: task.id,
          script: task.script,
          type: task.type,
          target: task.target,
          createdBy: task.createdBy,
          message: task.message,
          timeoutMs: task.timeoutSeconds * 1000,
          killGraceMs: options.killGraceMs,
          redact: target?.redact ?? [],
          customDetectors: target?.customDetectors ?? [],
          secretProvider: target?.secretProvider ?? '',
          secretPath: target?.secretPath ?? '',
          secretMapping: target?.secretMapping ?? {},
          userGroups: task.createdByGroups,
          storedSecrets,
          runAs: target?.runAs ?? '',
        },
      },
    });
  }

  /** Decrypts a target's stored secrets for the agent that runs its task. */
  async #openSecrets(target: string): Promise<Record<string, string>> {
    const box = this.#deps.secretBox;
    if (!box) throw new Error('the server has no secrets key (--secrets-key-file), so stored secrets cannot be opened');
    const out: Record<string, string> = {};
    for (const { key, sealed } of await this.#deps.store.listSecrets(target)) out[key] = box.open(target, key, sealed);
    return out;
  }
}
