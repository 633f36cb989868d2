/**
 * The dispatcher holds this replica's agent streams, one per agent name, and
 * wakes an agent's session when one of its tasks becomes ready so the task is
 * claimed and pushed at once (no polling by agents).
 */
import { AlreadyExistsError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { AgentSession, NewClaim, SessionRegistry } from './agent-session.js';
import type { TargetRecord, TaskRecord } from './store/store.js';

/** The live agent streams of this server; what sessions see of it is SessionRegistry. */
export class Dispatcher implements SessionRegistry {
  readonly #sessions = new Map<string, AgentSession>();
  /** The last handshake queued per agent name (see serialize). */
  readonly #handshakes = new Map<string, Promise<void>>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Makes `session` the live stream of its agent. With `resume` (the session
   * proved it continues the agent's current session: same boot id and its
   * session secret, docs/agent-protocol.md) it replaces a live stream, which
   * is closed; otherwise a live stream of that name makes it fail with
   * AlreadyExistsError.
   */
  register(session: AgentSession, resume: boolean): void {
    const current = this.#sessions.get(session.name);
    if (current && current !== session && !(resume && current.bootId === session.bootId)) {
      throw new AlreadyExistsError(
        `agent "${session.name}" is already connected from another process; stop it first or give this agent another name`,
      );
    }
    // The new session is live before the old one closes, so the old one does
    // not record the agent as disconnected.
    this.#sessions.set(session.name, session);
    if (current && current !== session) {
      this.#logger.info({ agent: session.name }, 'agent reconnected; replacing its old stream');
      current.replaced();
    }
  }

  /**
   * Runs `fn` after every earlier call for the same agent name on this
   * replica has settled, so two handshakes of one agent never interleave
   * reading its session record, deciding and writing the next one.
   */
  async serialize<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#handshakes.get(name) ?? Promise.resolve();
    const run = before.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#handshakes.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#handshakes.get(name) === tail) this.#handshakes.delete(name);
    }
  }

  /** Forgets `session` if it is still the live one of its agent. */
  unregister(session: AgentSession): void {
    if (this.#sessions.get(session.name) === session) this.#sessions.delete(session.name);
  }

  /** The live session of an agent on this replica. */
  get(name: string): AgentSession | undefined {
    return this.#sessions.get(name);
  }

  /** Tells the agent's session, if it is here, that it has a ready task. */
  wake(agent: string): void {
    this.#sessions.get(agent)?.pump();
  }

  /** Claims a ready task being created by its agent's session here, if it can take it at once (AgentSession.claimNew). */
  claimNew(task: TaskRecord, target: TargetRecord): NewClaim | null {
    return task.status === 'ready' ? (this.#sessions.get(task.agent)?.claimNew(task, target) ?? null) : null;
  }

  /** Every live session. */
  sessions(): AgentSession[] {
    return [...this.#sessions.values()];
  }
}
