/**
 * The Taskgate agent: holds one stream to the server, runs each task it is
 * handed in a pty — as a user of its own when the agent runs as root
 * (docs/isolation.md) — streams the output back and reports how it ended.
 *
 * Lifecycle: new -> starting -> running -> draining -> stopped, or failed
 * (the server refused this agent for good, or its work dir cannot be used).
 * `run()` settles when it gets to stopped (resolves) or failed (rejects);
 * `connected()` resolves at the first welcome and rejects if the agent fails
 * or stops first.
 */
import type { ServiceError } from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import type { ConnectResponse, RunTask, TaskProgress, Welcome } from '../gen/taskgate/v1/agent.js';
import { isScriptType } from '../shared/limits.js';
import type { Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import { AgentConnection, type ConnectionState } from './connection.js';
import { HeldTask, type StopReason, type TaskPhase } from './held-task.js';
import { CommandError, commandFor, maskedSecrets, resolveProgram } from './interpreters.js';
import { PtyRun, type RunResult } from './pty-runner.js';
import { redacts, Redactor } from './redactor.js';
import { resolveSecrets, SecretError } from './secrets.js';
import { compileAgentOptions, type AgentOptions, type CompiledAgentOptions } from './options.js';
import { buildTaskEnv, TaskEnvError } from './task-env.js';
import { TaskOutput } from './task-output.js';
import { onlyStdio } from './only-stdio.js';
import { findTools, IdentityError, mayExecute, runAsCommand, TaskUsers, type TaskIdentity, type Tools } from './task-users.js';
import { isTaskId, Workspaces } from './workspace.js';

export type { AgentOptions } from './options.js';

/** Where the agent stands (see the file comment). */
export type AgentState = 'new' | 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

const LEGAL: Readonly<Record<AgentState, readonly AgentState[]>> = {
  new: ['starting', 'stopped'],
  starting: ['running', 'stopped', 'failed'],
  running: ['draining', 'stopped', 'failed'],
  draining: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

/** Why the agent cannot go on; the message is one line a person can act on. */
export class AgentError extends Error {
  /** The server's refusal, when that is the cause. */
  readonly status?: ServiceError;
  constructor(message: string, options?: { cause?: unknown; status?: ServiceError }) {
    super(message, { cause: options?.cause });
    this.name = 'AgentError';
    this.status = options?.status;
  }
}

/** The agent's events and their arguments. */
export interface AgentEvents {
  /** The connection's state changed. */
  state: [ConnectionState];
  /** The agent's own state changed. */
  lifecycle: [AgentState];
  /** The server refused this agent in a way retrying cannot fix; the agent stops. */
  fatal: [ServiceError];
  /** A task's process was spawned. */
  'task-start': [taskId: string, pid: number];
  /** A task's process ended and its processes were reaped. */
  'task-exit': [taskId: string, result: RunResult];
  /** No task is held any more. */
  idle: [];
}

/** Longest the redactor may hold output back during a pause, in ms (docs/redaction.md). */
export const REDACTION_HOLD_MS = 100;

/** How long a kill for a task not (yet) held is remembered, in ms. */
const EARLY_KILL_MS = 10 * 60_000;

/** The agent; see the file comment. */
export class TaskgateAgent extends EventEmitter<AgentEvents> {
  readonly #options: CompiledAgentOptions;
  readonly #logger: Logger;
  readonly #tasks = new Map<string, HeldTask>();
  readonly #connection: AgentConnection;
  /** Kills that arrived before their task's run message (ids, with when). */
  readonly #earlyKills = new Map<string, number>();
  #welcome: Welcome | null = null;
  #state: AgentState = 'new';
  #run: Promise<void> | null = null;
  #settle: { resolve: () => void; reject: (err: AgentError) => void } | null = null;
  #users: TaskUsers | null = null;
  #workspaces: Workspaces | null = null;
  #tools: Tools | null = null;

  constructor(options: AgentOptions) {
    super();
    this.#options = compileAgentOptions(options);
    this.#logger = this.#options.logger.child({ agent: options.name });
    this.#connection = new AgentConnection({
      server: options.server,
      token: options.token,
      name: options.name,
      version: VERSION,
      credentials: this.#options.credentials,
      backoff: this.#options.backoff,
      logger: this.#logger,
      heldTasks: () => [...this.#tasks.keys()],
      progress: () => this.#progress(),
      onMessage: (message) => this.#onMessage(message),
      onConnected: (welcome) => {
        this.#welcome = welcome;
        if (this.#state === 'draining') this.#connection.send({ message: { $case: 'draining', value: {} } });
        for (const task of this.#tasks.values()) {
          task.output.setLimit(welcome.maxOutputBytes);
          task.output.resend();
          task.reportedDropped = 0; // a heartbeat sent while the stream was down never arrived
        }
      },
      onState: (state) => this.emit('state', state),
      onFatal: (err: ServiceError) => {
        this.emit('fatal', err);
        void this.#fail(new AgentError(`the server refused this agent: ${err.details || err.message}`, { status: err }));
      },
    });
  }

  /** Identifies this process to the server; new on every start. Never shown to users. */
  get bootId(): string {
    return this.#connection.bootId;
  }

  /** The agent's state. */
  get lifecycle(): AgentState {
    return this.#state;
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Whether tasks run as users of their own. */
  get isolated(): boolean {
    return this.#options.isolate;
  }

  /** Output held in memory across tasks (pending or unacknowledged), in bytes. */
  get bufferedBytes(): number {
    let total = 0;
    for (const task of this.#tasks.values()) total += task.output.bufferedBytes;
    return total;
  }

  /** Tasks whose dropped output grew since the last heartbeat (the server keeps the total, for a task whose agent is lost). */
  #progress(): TaskProgress[] {
    const progress: TaskProgress[] = [];
    for (const held of this.#tasks.values()) {
      if (held.output.dropped <= held.reportedDropped) continue;
      held.reportedDropped = held.output.dropped;
      progress.push({ taskId: held.id, droppedBytes: held.output.dropped });
    }
    return progress;
  }

  /** Tasks this process holds (running, or waiting for the server's final ack). */
  get heldTasks(): string[] {
    return [...this.#tasks.keys()];
  }

  /** Whether the agent got to stopped or failed (read after an await: another path may have got there). */
  #ended(): boolean {
    return this.#state === 'stopped' || this.#state === 'failed';
  }

  #transition(to: AgentState): void {
    const from = this.#state;
    if (!LEGAL[from].includes(to)) throw new Error(`agent: illegal move ${from} -> ${to}`);
    this.#state = to;
    this.#logger.debug({ from, to }, 'agent state');
    this.emit('lifecycle', to);
  }

  /**
   * Prepares the work dir and task identities, connects, and takes tasks
   * until stopped (resolves) or failed (rejects with an {@link AgentError}).
   */
  run(): Promise<void> {
    if (this.#run) return this.#run;
    this.#run = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#transition('starting');
    this.#prepare().then(
      () => {
        if (this.#state !== 'starting') return;
        this.#transition('running');
        this.#connection.start();
      },
      (err: unknown) => void this.#fail(err instanceof AgentError ? err : new AgentError((err as Error).message, { cause: err })),
    );
    return this.#run;
  }

  /** Starts {@link run} without waiting; failures are reported by "fatal", `connected()` and `run()`. */
  start(): void {
    this.run().catch(() => undefined);
  }

  /** Resolves once the server welcomed this agent; rejects if it fails or stops first. */
  connected(): Promise<void> {
    if (this.#connection.state === 'connected') return Promise.resolve();
    const run = this.run();
    return new Promise<void>((resolve, reject) => {
      const onState = (state: ConnectionState): void => {
        if (state !== 'connected') return;
        this.off('state', onState);
        resolve();
      };
      this.on('state', onState);
      run.then(
        () => {
          this.off('state', onState);
          reject(new AgentError('the agent stopped before it connected'));
        },
        (err: unknown) => {
          this.off('state', onState);
          reject(err as Error);
        },
      );
    });
  }

  async #prepare(): Promise<void> {
    const { isolate, workDir, taskIds, taskIdLockDir, name } = this.#options;
    if (isolate) {
      if (process.getuid?.() !== 0) throw new AgentError('isolating tasks needs the agent to run as root (or run it without isolation)');
      let tools: Tools;
      try {
        tools = findTools(`${this.#options.env.PATH ?? ''}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, resolveProgram);
      } catch (err) {
        throw new AgentError((err as Error).message);
      }
      this.#tools = tools;
      this.#users = await TaskUsers.open({ range: taskIds, lockDir: taskIdLockDir, owner: `${name}-${this.bootId}`, tools, logger: this.#logger });
    }
    try {
      this.#workspaces = await Workspaces.open(workDir, this.#logger, this.#tools ? { tools: this.#tools, range: taskIds } : null);
    } catch (err) {
      await this.#users?.close();
      throw err;
    }
    if (isolate) {
      this.#logger.info({ taskIds: `${taskIds.first}-${taskIds.last}` }, 'tasks run as users of their own');
    } else {
      this.#logger.warn(
        { user: process.getuid?.() },
        "tasks run as the agent's own user: they can read each other's files and environment, the agent's files and /proc, and outlive their task; run the agent as root (docs/isolation.md) to isolate them",
      );
    }
  }

  async #fail(err: AgentError): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    this.#logger.error({ err: err.message }, 'agent failed');
    await this.#shutDown();
    if (this.#ended()) return;
    this.#transition('failed');
    this.#settle?.reject(err);
  }

  /**
   * Disconnects at once and kills every process of every task (SIGKILL). The
   * server settles their tasks when this process's successor says hello
   * ("agent restarted") or when the lease runs out ("agent lost").
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    if (this.#state === 'new') {
      this.#transition('stopped');
      return;
    }
    await this.#shutDown();
    if (this.#ended()) return;
    this.#transition('stopped');
    this.#settle?.resolve();
  }

  async #shutDown(): Promise<void> {
    this.#connection.stop();
    const held = [...this.#tasks.values()];
    for (const task of held) {
      task.stopReason ??= 'drain'; // one still preparing never spawns
      task.run?.kill('SIGKILL');
    }
    await Promise.all(held.map((task) => task.run?.done));
    await Promise.all(held.map((task) => this.#reap(task)));
    for (const task of held) if (task.phase !== 'done') task.transition('done');
    this.#tasks.clear();
    await this.#users?.close();
    await this.#workspaces?.close().catch(() => undefined);
  }

  /**
   * Shuts down gracefully (SIGTERM): tells the server to send no more tasks,
   * lets running tasks finish for up to `timeoutMs` while their output keeps
   * flowing, then kills what still runs (SIGTERM, then SIGKILL after
   * `graceMs`) and reports how each ended, and only then disconnects. A task
   * killed this way ends failure, "killed by signal SIGTERM" (docs/agent-protocol.md).
   * Both default to the options' `drainMs` and `drainGraceMs`.
   */
  async drain(timeoutMs = this.#options.drainMs, graceMs = this.#options.drainGraceMs): Promise<void> {
    if (this.#state !== 'running') return this.stop();
    this.#transition('draining');
    this.#connection.send({ message: { $case: 'draining', value: {} } });
    if (!(await this.#idle(timeoutMs))) {
      this.#logger.warn({ tasks: this.heldTasks }, 'drain timed out; killing running tasks');
      for (const task of this.#tasks.values()) this.#stopTask(task, 'drain', graceMs);
      await this.#idle(graceMs + 5000);
    }
    await this.stop();
  }

  /** Resolves true once no task is held (all ended and acknowledged), false after `timeoutMs`. */
  #idle(timeoutMs: number): Promise<boolean> {
    if (this.#tasks.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('idle', onIdle);
        resolve(false);
      }, timeoutMs);
      const onIdle = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('idle', onIdle);
    });
  }

  #onMessage(message: ConnectResponse): void {
    const m = message.message;
    switch (m?.$case) {
      case 'run':
        this.#accept(m.value);
        return;
      case 'ack': {
        const held = this.#tasks.get(m.value.taskId);
        if (!held) return;
        held.output.ack(m.value.seq);
        if (m.value.done) {
          this.#forget(held);
        }
        return;
      }
      case 'kill':
        this.#kill(m.value.taskId, m.value.graceMs);
        return;
      default:
        return;
    }
  }

  /** Drops a task the server is done with (its exit recorded, or never to be recorded). */
  #forget(held: HeldTask): void {
    if (held.live) {
      // The server gave up on a task that still runs here: stop it, report nothing more.
      this.#stopTask(held, 'kill', 0);
      return;
    }
    if (held.phase !== 'done') held.transition('done');
    this.#tasks.delete(held.id);
    if (this.#tasks.size === 0) this.emit('idle');
  }

  /**
   * Kills a task: SIGTERM now, SIGKILL after `graceMs`. A task not started
   * yet never starts; a kill for a task not held yet is remembered, because
   * it may overtake its run message.
   */
  #kill(taskId: string, graceMs: number): void {
    const held = this.#tasks.get(taskId);
    if (!held) {
      const now = Date.now();
      for (const [id, at] of this.#earlyKills) if (now - at > EARLY_KILL_MS) this.#earlyKills.delete(id);
      this.#earlyKills.set(taskId, now);
      return;
    }
    this.#stopTask(held, 'kill', graceMs);
  }

  /** Starts stopping a task for `reason` (the first reason wins); SIGKILL follows SIGTERM after `graceMs`. */
  #stopTask(held: HeldTask, reason: StopReason, graceMs: number): void {
    if (!held.live || held.stopReason) return;
    held.stopReason = reason;
    held.graceMs = graceMs;
    if (held.phase === 'running') this.#terminate(held);
    // preparing: #execute sees stopReason before it spawns.
  }

  #terminate(held: HeldTask): void {
    held.transition('stopping');
    held.run?.kill('SIGTERM');
    held.timers.push(setTimeout(() => held.run?.kill('SIGKILL'), held.graceMs));
  }

  #accept(task: RunTask): void {
    if (this.#tasks.has(task.taskId)) return; // a duplicate push: it runs once
    if (this.#state !== 'running' && this.#state !== 'draining') return;
    const output = new TaskOutput(
      task.taskId,
      this.#options,
      (msg) => this.#connection.send(msg),
      (pause) => (pause ? held.run?.pause() : held.run?.resume()),
    );
    const held = new HeldTask(task.taskId, output, this.#logger);
    output.setLimit(this.#welcome?.maxOutputBytes ?? 0);
    this.#tasks.set(task.taskId, held);
    if (this.#earlyKills.delete(task.taskId)) this.#stopTask(held, 'kill', task.killGraceMs);
    this.#execute(task, held).catch(async (err: unknown) => {
      this.#logger.error({ err, task: task.taskId }, 'task failed in the agent');
      await this.#end(held, { exitCode: null, signal: '', error: `agent error: ${(err as Error).message}` });
    });
  }

  /** Prepares, runs and ends one task. */
  async #execute(task: RunTask, held: HeldTask): Promise<void> {
    const notStarted = (error: string): Promise<void> => this.#end(held, { exitCode: null, signal: '', error });
    if (held.stopReason) return notStarted('killed before it started');
    if (!isScriptType(task.type)) return notStarted(`this agent cannot run type "${task.type}"`);
    let secrets: Record<string, string>;
    try {
      secrets = await resolveSecrets(
        { provider: task.secretProvider, path: task.secretPath, mapping: task.secretMapping, stored: task.storedSecrets },
        this.#options.env,
      );
      // Secret values are masked in the output like CI systems mask theirs.
      const rules = { infoTypes: task.redact, custom: task.customDetectors, secrets: maskedSecrets(task.type, secrets) };
      if (redacts(rules)) held.redactor = new Redactor(rules);
    } catch (err) {
      // Missing secrets or rules this agent cannot compile: run nothing rather than run unprotected.
      return notStarted(err instanceof SecretError ? err.message : `redaction rules are invalid: ${(err as Error).message}`);
    }
    const workspaces = this.#workspaces;
    if (!workspaces) return notStarted('the agent is stopping');
    if (!isTaskId(task.taskId)) return notStarted('the task id is not one the agent can name a directory with');
    let identity: TaskIdentity | null = null;
    if (this.#users) {
      try {
        identity = await this.#users.acquire(task.runAs);
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        return notStarted(err.message);
      }
      held.identity = identity;
    }
    const paths = await workspaces.create(task.taskId, task.script, identity);
    held.workspace = paths.dir;
    const agentPath = this.#options.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
    let env: Record<string, string>;
    let command: { file: string; args: string[] };
    try {
      const built = await commandFor(task.type, {
        scriptPath: paths.script,
        secrets,
        path: agentPath,
        writePrivate: (name, content) => workspaces.writePrivate(paths, name, content, identity),
        canRun: identity ? (path) => mayExecute(identity, path) : undefined,
      });
      env = buildTaskEnv({
        agentEnv: this.#options.env,
        passed: this.#options.passEnv,
        home: paths.dir,
        tmp: paths.tmp,
        user: identity?.user ?? '',
        secrets,
        commandEnv: built.env,
        metadata: {
          taskId: task.taskId,
          target: task.target,
          user: task.createdBy.replace(/^user:/, ''),
          groups: task.userGroups,
          message: task.message,
        },
      });
      // As root, bash closes what the agent holds (other tasks' ptys among it), then setpriv switches to the task.
      command = identity && this.#tools ? onlyStdio(this.#tools.bash, runAsCommand(this.#tools.setpriv, identity, built.file, built.args)) : built;
    } catch (err) {
      if (!(err instanceof CommandError || err instanceof TaskEnvError)) throw err;
      return notStarted(err.message);
    }
    if (held.stopReason) return notStarted('killed before it started');
    const run = PtyRun.start(
      // Files a task creates in shared places (/tmp) are its own unless it says otherwise.
      { file: command.file, args: command.args, cwd: paths.dir, env, umask: identity ? 0o077 : undefined },
      {
        onStart: (pid) => {
          this.#logger.info({ task: task.taskId, pid, uid: identity?.uid }, 'task started');
          this.#connection.send({ message: { $case: 'started', value: { taskId: task.taskId, time: new Date(), pid } } });
          this.emit('task-start', task.taskId, pid);
        },
        onData: (data) => this.#output(held, data),
      },
    );
    held.run = run;
    held.transition('running');
    if (held.stopReason) this.#terminate(held); // a kill arrived while spawning
    if (task.timeoutMs > 0) {
      held.timers.push(
        setTimeout(() => {
          if (held.phase !== 'running') return;
          this.#logger.info({ task: task.taskId, timeoutMs: task.timeoutMs }, 'task timed out; killing it');
          this.#stopTask(held, 'timeout', task.killGraceMs);
        }, task.timeoutMs),
      );
    }
    const result = await run.done;
    await this.#end(held, result);
  }

  /** Passes output on, through the redactor when there is one. */
  #output(held: HeldTask, data: Buffer): void {
    const redactor = held.redactor;
    if (!redactor) {
      held.output.push(data);
      return;
    }
    held.output.push(redactor.push(data));
    clearTimeout(held.holdTimer);
    held.holdTimer = redactor.heldBytes > 0 ? setTimeout(() => held.output.push(redactor.flush()), REDACTION_HOLD_MS) : undefined;
  }

  /** Kills every process the task left, removes its workspace and frees its identity. */
  async #reap(held: HeldTask): Promise<void> {
    const identity = held.identity;
    held.identity = null;
    const dir = held.workspace;
    held.workspace = null;
    if (!identity) {
      if (dir) await this.#workspaces?.remove(held.id).catch((err: unknown) => this.#logger.warn({ err, dir }, 'could not remove a task directory'));
      return;
    }
    const users = this.#users;
    if (!users) return;
    // Kill first: while a process of the task lives, nothing of it is removed or reused.
    const killed = await users.killProcesses(identity);
    // Removed as the task, by its own rights, even with a uid of its own: the
    // task's processes are gone, but it could have opened its directory to
    // a process of another uid (another task, a local user), which could
    // swap a subdirectory for a link to anywhere while root walked it.
    const removed = killed && dir ? await this.#workspaces?.remove(held.id, identity) : killed;
    if (!removed) this.#logger.error({ task: held.id, dir }, 'a task directory could not be removed; its id stays locked');
    await users.release(identity, killed && removed !== false);
  }

  /** The task's main process ended (or never started): reap, then report the exit. */
  async #end(held: HeldTask, result: RunResult): Promise<void> {
    if (held.phase === 'reaping' || held.phase === 'reporting') return;
    held.run = null;
    if (held.live) held.transition('reaping');
    // All of its output is in: send it now rather than after the reaping,
    // whose child processes can hold up the flush timer.
    if (held.redactor) held.output.push(held.redactor.flush());
    held.output.flush();
    await this.#reap(held);
    if ((held.phase as TaskPhase) !== 'reaping') return; // the agent stopped meanwhile
    const findings = held.redactor ? Object.fromEntries(held.redactor.findings) : {};
    held.transition('reporting');
    held.output.finish({ ...held.outcome(result), findings });
    this.#logger.info({ task: held.id, ...result }, 'task ended');
    this.emit('task-exit', held.id, result);
  }
}
