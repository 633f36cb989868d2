/**
 * Open streams outlive the check made when they opened: a log follower or
 * an agent stream may stay open for days. Every open stream is registered
 * here with its caller's token, and every `everyMs` the tokens of all open
 * streams are checked again against the store (docs/access.md
 * "Revocation"): users' tokens read again with their users (two queries,
 * whatever their number); agents' tokens, the many, in one indexed query
 * that names only those missing, revoked, expired or made from another
 * token, which alone are read again (an agent token's verdict rests on its
 * own record; each pass asks afresh, with no watermark, so a pass after a
 * start, a revocation that lands during a pass and another replica's clock
 * change nothing). A stream whose token was revoked or
 * expired, or whose user was deactivated, ends UNAUTHENTICATED; when a
 * user's groups changed, the stream checks again whether that user may go
 * on (PERMISSION_DENIED or NOT_FOUND when not). A change made through this
 * server is checked at once; other replicas notice within `everyMs`.
 */
import { TaskgateError, UnavailableError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Authenticator, Principal, Verdict } from './auth.js';
import { SerialPass } from '../shared/serial-pass.js';

/** One open stream, as the check sees it. */
export interface Watched {
  /** Who opened it. */
  principal: Principal;
  /** Ends the stream with this error. */
  end(err: TaskgateError): void;
  /**
   * The principal is still valid but changed (groups): resolves when the
   * stream may go on, rejects with why not.
   */
  changed?(principal: Principal): Promise<void>;
}

/** Users' tokens re-read per store query. */
const BATCH = 1000;
/** Agents' tokens per query of those to read again (ids only travel). */
const AGENT_BATCH = 5000;

/**
 * Whether a principal read again is the one a stream holds, in what would
 * make it check again (name, email, groups in any order). Compared field by
 * field, without building strings: it runs for every open stream every pass.
 */
function samePrincipal(a: Principal, b: Principal): boolean {
  if (a.kind === 'agent') return b.kind === 'agent' && a.name === b.name;
  if (b.kind === 'agent') return false;
  if (a.email !== b.email || a.groups.length !== b.groups.length) return false;
  if (a.groups.every((g, i) => g === b.groups[i])) return true;
  const sorted = [...b.groups].sort();
  return [...a.groups].sort().every((g, i) => g === sorted[i]);
}

/** The open streams of this server, by token. */
export class LiveStreams {
  readonly #auth: Authenticator;
  readonly #logger: Logger;
  readonly #everyMs: number;
  readonly #byToken = new Map<string, Set<Watched>>();
  #timer: NodeJS.Timeout | null = null;
  readonly #checks = new SerialPass(
    () => this.check(),
    (err) => this.#logger.warn({ err }, 'could not re-check open streams; trying again at the next interval'),
  );

  constructor(auth: Authenticator, logger: Logger, options: { everyMs: number }) {
    this.#auth = auth;
    this.#logger = logger;
    this.#everyMs = options.everyMs;
    auth.onChange(() => this.checkSoon());
  }

  /** Registers an open stream; call the returned function when it ends. */
  watch(watched: Watched): () => void {
    const id = watched.principal.tokenId;
    let set = this.#byToken.get(id);
    if (!set) this.#byToken.set(id, (set = new Set()));
    set.add(watched);
    return () => {
      const current = this.#byToken.get(id);
      if (!current?.delete(watched)) return;
      if (current.size === 0) this.#byToken.delete(id);
    };
  }

  /** Open streams registered (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#byToken.values()) n += set.size;
    return n;
  }

  start(): void {
    this.#timer = setInterval(() => this.checkSoon(), this.#everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Checks every open stream again, now or right after the check under way. */
  checkSoon(): void {
    this.#checks.run();
  }

  /**
   * Checks every open stream again against what it streams, its caller
   * unchanged: a target's groups or reviewers changed (or it was deleted),
   * so a caller may no longer see what they follow. Streams that may not go
   * on end with why.
   */
  recheckAll(): void {
    for (const set of this.#byToken.values()) {
      for (const watched of [...set]) {
        watched.changed?.(watched.principal).catch((err: unknown) => {
          if (!(err instanceof TaskgateError)) this.#logger.error({ err }, 'unexpected error re-checking an open stream');
          watched.end(err instanceof TaskgateError ? err : new UnavailableError('could not check the caller again; call again'));
        });
      }
    }
  }

  /** One pass over every open stream's token. */
  async check(): Promise<void> {
    const agents: string[] = [];
    const users: string[] = [];
    for (const [id, set] of this.#byToken) {
      // Every stream of a token has the same kind of principal: the token's.
      const first = set.values().next();
      (!first.done && first.value.principal.kind === 'agent' ? agents : users).push(id);
    }
    for (let i = 0; i < agents.length; i += AGENT_BATCH) this.#apply(await this.#auth.recheckAgents(agents.slice(i, i + AGENT_BATCH)));
    for (let i = 0; i < users.length; i += BATCH) this.#apply(await this.#auth.recheck(users.slice(i, i + BATCH)));
  }

  /** Ends or re-checks the streams of each token read again. */
  #apply(verdicts: Map<string, Verdict>): void {
    for (const [id, verdict] of verdicts) {
      const set = this.#byToken.get(id);
      if (!set) continue;
      if ('error' in verdict) {
        // Ending a stream unregisters it from the set: a copy.
        for (const watched of [...set]) watched.end(verdict.error);
        continue;
      }
      // No copy: a failed `changed` ends its stream later, and deleting from a Set while iterating it is safe anyway.
      for (const watched of set) {
        if (samePrincipal(verdict.principal, watched.principal)) continue;
        watched.principal = verdict.principal;
        if (!watched.changed) continue;
        watched.changed(verdict.principal).catch((err: unknown) => {
          if (!(err instanceof TaskgateError)) this.#logger.error({ err }, 'unexpected error re-checking an open stream');
          // Fail closed: a stream that could not be checked again ends.
          watched.end(err instanceof TaskgateError ? err : new UnavailableError('could not check the caller again; call again'));
        });
      }
    }
  }
}
