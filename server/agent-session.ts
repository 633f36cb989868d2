/**
 * The server's side of one agent stream (AgentService.Connect).
 *
 * States: handshaking -> active -> closed. In `handshaking` the only accepted
 * message is Hello; `active` claims and pushes tasks and stores output;
 * `closed` is final. Messages are processed strictly in arrival order (one at
 * a time), so by the time a TaskExit is handled every chunk sent before it is
 * stored. When the store falls behind, reading from the stream pauses, so the
 * agent feels back-pressure instead of the server buffering without bound.
 *
 * Who may open a session is decided from the agent's stored session record,
 * never from identifiers users can see (docs/agent-protocol.md "Session
 * secrets", issue 13): resuming a boot id needs the secret the server handed
 * that boot's last session, and a stream only ever reports on tasks it holds.
 *
 * This file holds the stream itself: its states, the message queue, Hello
 * and the reconciliation of held tasks, heartbeats, kills and the close.
 * The tasks running in the session and the agent's reports on them are in
 * server/session-tasks.ts; the pump, the claims of ready tasks and their
 * push down the stream, in server/session-claims.ts. Both talk to the
 * session through a small host interface.
 */
import { status as GrpcStatus, type ServerDuplexStream } from '@grpc/grpc-js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ConnectRequest, ConnectResponse, Heartbeat, Hello } from '../gen/taskgate/v1/agent.js';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  TaskgateError,
} from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { LiveStreams } from './live-streams.js';
import { hashToken, type AgentPrincipal } from './auth.js';
import type { Metrics } from './metrics.js';
import type { SecretBox } from './secret-box.js';
import { grpcStatus } from './rpc/grpc.js';
import type {
  AgentRecord,
  AgentStore, OutputStore, TargetStore, TaskStore,
  TargetRecord,
  TaskRecord,
} from './store/store.js';
import type { TaskHub } from './task-hub.js';
import type { TaskMachine } from './task-machine.js';
import { SessionClaims, type NewClaim } from './session-claims.js';
import { SessionTasks, type Report } from './session-tasks.js';
import type { PresenceWriter } from './presence.js';

/** A task claimed as it is created (AgentSession.claimNew); see server/session-claims.ts. */
export type { NewClaim } from './session-claims.js';

/** Where a session stands. */
export type SessionState = 'handshaking' | 'active' | 'closed';

const LEGAL: Readonly<Record<SessionState, readonly SessionState[]>> = {
  handshaking: ['active', 'closed'],
  active: ['closed'],
  closed: [],
};

/** Tuning of agent sessions. */
export interface SessionOptions {
  /** How often agents send heartbeats, in ms. */
  heartbeatIntervalMs: number;
  /** Tasks an agent runs at once; more wait in ready, in order. */
  maxTasksPerAgent: number;
  /** How long to wait for Hello, in ms. */
  helloTimeoutMs: number;
  /** Between SIGTERM and SIGKILL when a task is killed or times out, in ms. */
  killGraceMs: number;
  /** Output per task past which the agent drops the rest, in bytes. */
  maxOutputBytes: number;
  /** How often lastSeen is written while the stream is healthy, in ms (below the lease). */
  lastSeenEveryMs: number;
}

/**
 * What a session needs of this replica's registry of live agent streams.
 * The Dispatcher (dispatcher.ts) is the one implementation; declaring the
 * need here keeps the dependency one way (the dispatcher knows sessions, a
 * session knows only this).
 */
export interface SessionRegistry {
  /** Runs `fn` after every earlier call for the same agent name has settled. */
  serialize<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Makes `session` the live stream of its agent; AlreadyExistsError when another process holds the name. */
  register(session: AgentSession, resume: boolean): void;
  /** Forgets `session` if it is still the live one of its agent. */
  unregister(session: AgentSession): void;
  /** The live session of an agent on this replica. */
  get(name: string): AgentSession | undefined;
}

/** What a session needs from the server. */
export interface SessionDeps {
  store: TaskStore & OutputStore & TargetStore & AgentStore;
  machine: TaskMachine;
  hub: TaskHub;
  dispatcher: SessionRegistry;
  logger: Logger;
  options: SessionOptions;
  /** Opens stored secrets; null when the server has no secrets key. */
  secretBox: SecretBox | null;
  metrics: Metrics;
  /** Agents must present a client certificate naming them (mutual TLS). */
  requireAgentCertificate: boolean;
  /** The open-stream check: a revoked or expired agent token ends the stream UNAUTHENTICATED. */
  live: LiveStreams;
  /** Where heartbeats' lastSeen refreshes wait to be written together. */
  presence: PresenceWriter;
}

/** Messages waiting to be processed before reading from the stream pauses. */
const MAX_QUEUED = 64;

/** A running task's dropped-output total is written at most this often, in ms. */
const DROPPED_WRITE_EVERY_MS = 1000;

/** Task ids a session remembers having warned about (messages for tasks it does not hold). */
const MAX_WARNED = 1024;

/** Whether `secret` is one of the session secrets the record accepts for a resume. */
function secretMatches(record: AgentRecord, secret: string): boolean {
  if (secret === '') return false;
  const presented = Buffer.from(hashToken(secret), 'hex');
  let match = false;
  for (const hash of record.secretHashes) {
    const stored = Buffer.from(hash, 'hex');
    // Compare them all, in constant time each.
    if (stored.length === presented.length && timingSafeEqual(stored, presented)) match = true;
  }
  return match;
}

/** One connected agent. */
export class AgentSession {
  name = '';
  bootId = '';
  version = '';
  /** The agent is shutting down and takes no new tasks. */
  draining = false;
  /** Tasks whose kill was sent on this stream. */
  readonly #killsSent = new Set<string>();
  /** Task ids this session already warned about (see #notHeld). */
  readonly #warned = new Set<string>();
  /**
   * The agent sent a message after the Welcome, so it has this session's
   * secret; only then are tasks pushed, so every task claimed for a boot was
   * claimed in a session whose secret that boot holds.
   */
  #heard = false;

  #state: SessionState = 'handshaking';
  readonly #call: ServerDuplexStream<ConnectRequest, ConnectResponse>;
  readonly #principal: AgentPrincipal;
  readonly #deps: SessionDeps;
  /** Made on first use: a pino child costs about 0.1 ms, and a reconnect storm makes tens of thousands. */
  #childLogger: Logger | undefined;
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  /** Messages received on the stream (see {@link received}). */
  #received = 0;
  /** Per running task, the dropped-output total heartbeats reported: written, still to write, and when last written. */
  readonly #dropped = new Map<string, { written: number; pending: number; at: number }>();
  #lastSeenWrite = 0;
  /** The tasks running here, and their starts, output and exits (server/session-tasks.ts). */
  readonly #tasks: SessionTasks;
  /** The pump and the claims of ready tasks for this agent (server/session-claims.ts). */
  readonly #claims: SessionClaims;
  readonly #helloTimer: NodeJS.Timeout;
  readonly #unwatch: () => void;

  constructor(call: ServerDuplexStream<ConnectRequest, ConnectResponse>, principal: AgentPrincipal, deps: SessionDeps) {
    this.#call = call;
    this.#principal = principal;
    this.#deps = deps;
    this.#tasks = new SessionTasks(
      {
        agentName: () => this.name,
        notHeld: (taskId, what) => this.#notHeld(taskId, what),
        write: (message) => this.#write(message),
        // Chained even after the stream closed (pending start times are written then).
        later: (fn, what) => {
          this.#queue = this.#queue.then(fn).catch((err: unknown) => this.#logger.warn({ err }, what));
        },
        forgotten: (taskId) => this.#killsSent.delete(taskId),
        // A slot is free: tasks left waiting while the agent was full go now.
        slotFreed: () => this.#claims.slotFreed(),
        claimOnExit: () => this.#claims.claimOnExit(),
        claimSettled: () => this.#claims.claimSettled(),
        claimedOnExit: (claimed, limit) => this.#claims.claimedOnExit(claimed, limit),
      },
      deps,
    );
    this.#claims = new SessionClaims(
      {
        agentName: () => this.name,
        bootId: () => this.bootId,
        active: () => this.#state === 'active',
        closed: () => this.#state === 'closed',
        heard: () => this.#heard,
        draining: () => this.draining,
        write: (message) => this.#write(message),
        logger: () => this.#logger,
      },
      this.#tasks,
      deps,
    );
    this.#helloTimer = setTimeout(() => {
      this.#fail(new InvalidArgumentError('no Hello within the handshake timeout'));
    }, deps.options.helloTimeoutMs);
    this.#unwatch = deps.live.watch({ principal, end: (err) => this.#fail(err) });
    call.on('data', (message: ConnectRequest) => this.#enqueue(message));
    call.on('end', () => {
      const open = this.#state !== 'closed';
      this.#close('agent ended the stream');
      // End our side too: left open, the call would hang until the agent cancels it.
      if (open) call.end();
    });
    call.on('cancelled', () => this.#close('stream cancelled'));
    call.on('error', (err) => this.#close(`stream error: ${err.message}`));
  }

  /** The session's logger, naming its agent (and boot once it said Hello). */
  get #logger(): Logger {
    return (this.#childLogger ??= this.#deps.logger.child({ agent: this.#principal.name }));
  }

  /** The session's state. */
  get state(): SessionState {
    return this.#state;
  }

  /**
   * Tasks running in this session: claimed by it, or held by the agent and
   * claimed for its boot when it resumed. Only these may get TaskStarted,
   * TaskOutput and TaskExit.
   */
  get running(): ReadonlySet<string> {
    return this.#tasks.running;
  }

  /** A claim is under way: tasks it took may be stored as running for this boot before {@link running} has them. */
  get claiming(): boolean {
    return this.#claims.claiming;
  }

  /**
   * How many messages the stream has delivered: one that grew since an
   * earlier look proves the stream was alive in between (heartbeats come
   * every heartbeat interval), which a replica that has not yet seen its
   * stream die cannot show.
   */
  get received(): number {
    return this.#received;
  }

  /** The agent spoke after the Welcome: its Hello's reconciliation is done, and {@link running} is whole. */
  get heard(): boolean {
    return this.#heard;
  }

  #transition(to: SessionState): void {
    if (!LEGAL[this.#state].includes(to)) {
      throw new Error(`agent session: illegal move ${this.#state} -> ${to}`);
    }
    this.#logger.debug({ from: this.#state, to }, 'agent session state');
    this.#state = to;
  }

  #enqueue(message: ConnectRequest): void {
    this.#received += 1;
    // Most of what an idle fleet sends (1,900 a second from 19,000 agents):
    // handled here, without the queue's promises, when nothing is queued
    // before it and it has nothing to record.
    if (this.#queued === 0 && this.#idleHeartbeat(message)) return;
    this.#queued += 1;
    if (this.#queued >= MAX_QUEUED) this.#call.pause();
    this.#queue = this.#queue
      .then(() => (this.#state === 'closed' ? undefined : this.#handle(message)))
      .catch((err: unknown) => this.#fail(err))
      .finally(() => {
        this.#queued -= 1;
        if (this.#queued < MAX_QUEUED / 2 && this.#call.isPaused()) this.#call.resume();
      });
  }

  /** Whether `message` is a heartbeat of a welcomed, heard agent with no task progress, before its lastSeen is due (see #heartbeat). */
  #idleHeartbeat(message: ConnectRequest): boolean {
    const m = message.message;
    return (
      m?.$case === 'heartbeat' &&
      this.#state === 'active' &&
      this.#heard &&
      m.value.tasks.length === 0 &&
      this.#dropped.size === 0 &&
      Date.now() - this.#lastSeenWrite < this.#deps.options.lastSeenEveryMs
    );
  }

  async #handle(message: ConnectRequest): Promise<void> {
    const m = message.message;
    if (!m) throw new InvalidArgumentError('empty message');
    if (this.#state === 'handshaking') {
      if (m.$case !== 'hello') throw new FailedPreconditionError('the first message must be Hello');
      return this.#hello(m.value);
    }
    const first = !this.#heard;
    this.#heard = true;
    await this.#message(m);
    if (first) this.pump();
  }

  async #message(m: NonNullable<ConnectRequest['message']>): Promise<void> {
    switch (m.$case) {
      case 'hello':
        throw new FailedPreconditionError('Hello was already received on this stream');
      case 'started':
        return this.#tasks.started(m.value);
      case 'output':
        return this.#tasks.output(m.value);
      case 'exit':
        return this.#tasks.exit(m.value);
      case 'heartbeat':
        return this.#heartbeat(m.value);
      case 'draining':
        this.draining = true;
        this.#logger.info('agent is draining; no new tasks for it');
        return;
    }
  }

  async #hello(hello: Hello): Promise<void> {
    clearTimeout(this.#helloTimer);
    if (hello.name !== this.#principal.name) {
      throw new PermissionDeniedError(`this token belongs to agent "${this.#principal.name}", not "${hello.name}"`);
    }
    if (hello.bootId === '') throw new InvalidArgumentError('Hello.boot_id must not be empty');
    this.name = hello.name;
    this.bootId = hello.bootId;
    this.version = hello.version;
    this.#childLogger = this.#deps.logger.child({ agent: this.#principal.name, boot: hello.bootId.slice(0, 8) });
    const { dispatcher, machine } = this.#deps;
    const admitted = await dispatcher.serialize(this.name, () => this.#admit(hello.resumeSecret));
    if (!admitted) return;
    this.#deps.metrics.agentStream(hello.name);
    this.#lastSeenWrite = Date.now();

    // Reconcile the tasks claimed for this agent with those it says it holds.
    // Only a resume continues a boot: a new boot holds nothing of an old one.
    const held = new Set(hello.heldTaskIds);
    const claimed = await this.#claimedTasks();
    const killRequested: string[] = [];
    for (const task of claimed) {
      const thisBoot = admitted.resume && task.bootId === this.bootId;
      if (thisBoot && held.has(task.id)) {
        this.#tasks.held(task.id);
        if (task.killRequested) killRequested.push(task.id);
      } else if (thisBoot) {
        // Same process, never received: it may run it now.
        await machine.tryMove(task.id, 'ready', { actor: 'system', reason: 'never received by the agent; requeued', from: ['running'] });
      } else {
        await machine.tryMove(task.id, 'failure', {
          actor: 'system',
          reason: 'agent restarted',
          from: ['running'],
          patch: { failureReason: 'agent restarted while the task was running', finished: new Date() },
        });
      }
    }
    const { heartbeatIntervalMs, maxOutputBytes } = this.#deps.options;
    this.#write({ message: { $case: 'welcome', value: { heartbeatIntervalMs, maxOutputBytes, sessionSecret: admitted.secret } } });
    // After the Welcome: an agent ignores everything that comes before it.
    for (const id of killRequested) this.kill(id);
    // Tasks it holds that are not running in this session (given up as
    // "agent lost" while it was away, or not of this boot): stop them; their
    // exit is acknowledged as done.
    for (const id of held) if (!this.running.has(id)) this.#sendKill(id);
    this.#logger.info({ version: this.version, held: held.size, resumed: admitted.resume }, 'agent connected');
    // Tasks are pushed once the agent speaks after the Welcome (#handle).
  }

  /**
   * Decides, from the agent's stored record, whether this Hello opens a
   * session, makes it the live one and records its new secret. Same boot id
   * as the record: a resume, which must present one of that boot's session
   * secrets and come with the token it was opened with. Returns null when
   * the stream closed meanwhile.
   */
  async #admit(resumeSecret: string): Promise<{ resume: boolean; secret: string } | null> {
    const { store, dispatcher } = this.#deps;
    const record = await store.getAgent(this.name);
    const resume = record !== null && record.bootId === this.bootId;
    if (resume && (record.tokenId !== this.#principal.tokenId || !secretMatches(record, resumeSecret))) {
      throw new PermissionDeniedError(
        'this boot id belongs to another session; an agent process that lost its session must restart (a new process gets a new boot id)',
      );
    }
    if (this.#state !== 'handshaking') return null;
    dispatcher.register(this, resume);
    this.#transition('active');
    const secret = randomBytes(32).toString('base64url');
    // The one presented stays valid until the next resume, in case this Welcome is lost.
    const secretHashes = resume ? [hashToken(secret), hashToken(resumeSecret)] : [hashToken(secret)];
    await store.putAgent({
      name: this.name,
      version: this.version,
      bootId: this.bootId,
      lastSeen: new Date(),
      connected: true,
      tokenId: this.#principal.tokenId,
      secretHashes,
    });
    return { resume, secret };
  }

  async #claimedTasks(): Promise<TaskRecord[]> {
    const out: TaskRecord[] = [];
    let beforeId: string | undefined;
    for (;;) {
      const page = await this.#deps.store.listTasks({ statuses: ['running'], agent: this.name, beforeId, limit: 500 });
      out.push(...page);
      if (page.length < 500) return out;
      beforeId = page[page.length - 1]?.id;
    }
  }

  /**
   * A message about a task this session does not hold as running: nothing is
   * stored; the agent is told to stop it (unless it reports its end) and to
   * forget it. A legitimate agent gets here for a task given up while it was
   * away; anything else is a confused or rogue stream.
   */
  #notHeld(taskId: string, what: Report): void {
    if (!this.#warned.has(taskId)) {
      if (this.#warned.size >= MAX_WARNED) this.#warned.clear();
      this.#warned.add(taskId);
      this.#logger.warn({ task: taskId, message: what }, `ignoring ${what} for task ${taskId}: it is not running in this agent session`);
      if (what !== 'exit') this.#write({ message: { $case: 'kill', value: { taskId, graceMs: this.#deps.options.killGraceMs } } });
    }
    this.#write({ message: { $case: 'ack', value: { taskId, seq: -1, done: true } } });
  }

  async #heartbeat(heartbeat: Heartbeat): Promise<void> {
    // An idle agent's heartbeat (no task progress, none pending) costs a clock read.
    if (heartbeat.tasks.length > 0 || this.#dropped.size > 0) await this.#keepDropped(heartbeat);
    const now = Date.now();
    if (now - this.#lastSeenWrite < this.#deps.options.lastSeenEveryMs) return;
    this.#lastSeenWrite = now;
    this.#deps.presence.refresh(this.name, { lastSeen: new Date(now), connected: true });
  }

  /**
   * Dropped output so far, kept while the task runs: if this agent is lost,
   * the task still says it. At most one write per task per second, and only
   * of a larger total, however often (or whatever) an agent sends.
   */
  async #keepDropped(heartbeat: Heartbeat): Promise<void> {
    const now = Date.now();
    for (const { taskId, droppedBytes } of heartbeat.tasks.slice(0, this.#deps.options.maxTasksPerAgent)) {
      if (!this.running.has(taskId) || !Number.isSafeInteger(droppedBytes) || droppedBytes <= 0) continue;
      const kept = this.#dropped.get(taskId);
      if (!kept || droppedBytes > kept.pending) this.#dropped.set(taskId, { written: kept?.written ?? 0, pending: droppedBytes, at: kept?.at ?? 0 });
    }
    for (const [taskId, kept] of this.#dropped) {
      if (!this.running.has(taskId)) {
        this.#dropped.delete(taskId);
        continue;
      }
      if (kept.pending <= kept.written || now - kept.at < DROPPED_WRITE_EVERY_MS) continue;
      kept.written = kept.pending;
      kept.at = now;
      await this.#deps.store.patchTask(taskId, 'running', { outputDroppedBytes: kept.pending });
    }
  }

  /** Claims ready tasks for this agent, oldest first, up to its limit, and pushes them (server/session-claims.ts). */
  pump(): void {
    this.#claims.pump();
  }

  /** Claims a task being created for this agent in the write that inserts it (SessionClaims.claimNew, issue 18); null when it is to be inserted ready. */
  claimNew(task: TaskRecord, target: TargetRecord): NewClaim | null {
    return this.#claims.claimNew(task, target);
  }

  /**
   * Sends a kill for a task this agent runs (once per stream unless `again`);
   * the agent answers with the task's exit.
   */
  kill(taskId: string, again = false): void {
    if (!this.running.has(taskId)) return;
    if (this.#killsSent.has(taskId) && !again) return;
    this.#sendKill(taskId);
  }

  #sendKill(taskId: string): void {
    this.#killsSent.add(taskId);
    this.#write({ message: { $case: 'kill', value: { taskId, graceMs: this.#deps.options.killGraceMs } } });
  }

  #write(message: ConnectResponse): void {
    if (this.#state === 'closed') return;
    this.#call.write(message);
  }

  /** Called by the dispatcher when the same agent session resumed on a new stream. */
  replaced(): void {
    this.#end({ code: GrpcStatus.ABORTED, details: 'replaced by a newer stream from the same agent' });
  }

  /** Ends the stream with UNAVAILABLE so the agent reconnects (server shutdown). */
  shutdown(): void {
    this.#end({ code: GrpcStatus.UNAVAILABLE, details: 'server shutting down; reconnect' });
  }

  #fail(err: unknown): void {
    const status = grpcStatus(err, this.#logger, 'AgentService/Connect');
    if (err instanceof TaskgateError) this.#logger.warn({ err: err.message }, 'closing agent stream');
    this.#end(status);
  }

  #end(status: { code?: GrpcStatus; details?: string }): void {
    if (this.#state === 'closed') return;
    this.#close(status.details ?? 'closed');
    this.#call.emit('error', status);
  }

  #close(why: string): void {
    if (this.#state === 'closed') return;
    clearTimeout(this.#helloTimer);
    this.#unwatch();
    const wasActive = this.#state === 'active';
    this.#transition('closed');
    if (!wasActive) return;
    this.#logger.info({ why }, 'agent disconnected');
    const { dispatcher, store } = this.#deps;
    this.#tasks.close();
    if (dispatcher.get(this.name) !== this) return;
    dispatcher.unregister(this);
    this.#deps.presence.drop(this.name);
    store
      .updateAgentPresence(this.name, { lastSeen: new Date(), connected: false })
      .catch((err: unknown) => this.#logger.warn({ err }, 'could not record agent disconnect'));
  }
}
