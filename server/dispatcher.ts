/**
 * The dispatcher holds this replica's agent streams, one per agent name, and
 * wakes an agent's session when one of its tasks becomes ready so the task is
 * claimed and pushed at once (no polling by agents).
 */
import { AlreadyExistsError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { AgentSession } from './agent-session.js';

/** The live agent streams of this server. */
export class Dispatcher {
  readonly #sessions = new Map<string, AgentSession>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Makes `session` the live stream of its agent. A stream from the same agent
   * process (same boot id) replaces the old one, which is closed; a different
   * process using the same name is refused with AlreadyExistsError.
   */
  register(session: AgentSession): void {
    const current = this.#sessions.get(session.name);
    if (current && current !== session) {
      if (current.bootId !== session.bootId) {
        throw new AlreadyExistsError(
          `agent "${session.name}" is already connected from another process (boot ${current.bootId.slice(0, 8)}); ` +
            'stop it first or give this agent another name',
        );
      }
      this.#logger.info({ agent: session.name }, 'agent reconnected; replacing its old stream');
      current.replaced();
    }
    this.#sessions.set(session.name, session);
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

  /** Every live session. */
  sessions(): AgentSession[] {
    return [...this.#sessions.values()];
  }
}
