/**
 * The Taskgate agent: holds one stream to the server, runs each task it is
 * handed in a pty, streams the output back and reports how it ended.
 */
import type { ChannelCredentials, ServiceError } from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ConnectResponse, RunTask, Welcome } from '../gen/taskgate/v1/agent.js';
import type { BackoffOptions } from '../shared/backoff.js';
import { randomId } from '../shared/ids.js';
import { isScriptType } from '../shared/limits.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import { AgentConnection, type ConnectionState } from './connection.js';
import { CommandError, commandFor, maskedSecrets, type Command } from './interpreters.js';
import { PtyRun, type RunResult } from './pty-runner.js';
import { redacts, Redactor } from './redactor.js';
import { resolveSecrets, SecretError } from './secrets.js';
import { TaskOutput } from './task-output.js';

/** Options of {@link TaskgateAgent}. */
export interface AgentOptions {
  /** host:port of the server. */
  server: string;
  /** Agent token (from `taskgate agents token`). */
  token: string;
  /** This agent's name; targets name it. */
  name: string;
  /** Where task working directories and script files live. Default: $TMPDIR/taskgate-agent-NAME. */
  workDir?: string;
  /** Base environment of every task (the CLI passes its own, minus TASKGATE_*). Default {PATH}. */
  env?: Record<string, string>;
  credentials?: ChannelCredentials;
  backoff?: BackoffOptions;
  /** Largest output chunk, in bytes. Default 65536. */
  maxChunkBytes?: number;
  /** Longest an output byte waits before being sent, in ms. Default 20. */
  flushIntervalMs?: number;
  /** Unacknowledged output per task above which the task's pty is paused, in bytes. Default 8 MiB. */
  maxUnackedBytes?: number;
  logger?: Logger;
}

interface HeldTask {
  output: TaskOutput;
  run: PtyRun | null;
  /** A kill arrived; set before the process may even have started. */
  kill: { graceMs: number } | null;
  /** It ran past its timeout and is being killed for that. */
  timedOut: boolean;
  /** Timers of the kill sequence and the timeout. */
  timers: NodeJS.Timeout[];
  exited: boolean;
  /** Masks PII and secrets before output is sent; null when the target asks for none. */
  redactor: Redactor | null;
  /** Emits what the redactor holds after a pause in the output. */
  holdTimer: NodeJS.Timeout | undefined;
}

/** Longest the redactor may hold output back during a pause, in ms (docs/redaction.md). */
export const REDACTION_HOLD_MS = 100;

/** How long a kill for a task not (yet) held is remembered, in ms. */
const EARLY_KILL_MS = 10 * 60_000;

/**
 * Events: "state" (ConnectionState), "fatal" (ServiceError), "task-start"
 * (taskId, pid), "task-exit" (taskId, RunResult), "idle" (no task held).
 */
export class TaskgateAgent extends EventEmitter {
  /** New on every agent start; tells the server whether tasks died with a previous process. */
  readonly bootId = randomId();
  readonly #options: Required<Pick<AgentOptions, 'maxChunkBytes' | 'flushIntervalMs' | 'maxUnackedBytes' | 'workDir'>> &
    AgentOptions;
  readonly #logger: Logger;
  readonly #tasks = new Map<string, HeldTask>();
  readonly #connection: AgentConnection;
  /** Kills that arrived before their task's run message (ids, with when). */
  readonly #earlyKills = new Map<string, number>();
  #welcome: Welcome | null = null;
  #draining = false;

  constructor(options: AgentOptions) {
    super();
    this.#options = {
      maxChunkBytes: 64 * 1024,
      flushIntervalMs: 20,
      maxUnackedBytes: 8 * 1024 * 1024,
      workDir: join(tmpdir(), `taskgate-agent-${options.name}`),
      ...options,
    };
    // Tasks run with their own cwd: the script path must not be relative.
    this.#options.workDir = resolve(this.#options.workDir);
    this.#logger = (options.logger ?? silentLogger()).child({ agent: options.name });
    this.#connection = new AgentConnection({
      server: options.server,
      token: options.token,
      name: options.name,
      version: VERSION,
      bootId: this.bootId,
      credentials: options.credentials,
      backoff: options.backoff,
      logger: this.#logger,
      heldTasks: () => [...this.#tasks.keys()],
      onMessage: (message) => this.#onMessage(message),
      onConnected: (welcome) => {
        this.#welcome = welcome;
        if (this.#draining) this.#connection.send({ message: { $case: 'draining', value: {} } });
        for (const task of this.#tasks.values()) {
          task.output.setLimit(welcome.maxOutputBytes);
          task.output.resend();
        }
      },
      onState: (state) => this.emit('state', state),
      onFatal: (err: ServiceError) => this.emit('fatal', err),
    });
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Output held in memory across tasks (pending or unacknowledged), in bytes. */
  get bufferedBytes(): number {
    let total = 0;
    for (const task of this.#tasks.values()) total += task.output.bufferedBytes;
    return total;
  }

  /** Tasks this process holds (running, or waiting for the server's final ack). */
  get heldTasks(): string[] {
    return [...this.#tasks.keys()];
  }

  /** Connects and starts taking tasks. */
  start(): void {
    this.#connection.start();
  }

  /**
   * Disconnects at once and kills the process groups of running tasks
   * (SIGKILL). The server settles their tasks when this process's successor
   * says hello ("agent restarted") or when the lease runs out ("agent lost").
   */
  async stop(): Promise<void> {
    this.#connection.stop();
    const runs = [...this.#tasks.values()].flatMap((t) => (t.run ? [t.run] : []));
    for (const run of runs) run.kill('SIGKILL');
    await Promise.all(runs.map((run) => run.done));
    for (const task of this.#tasks.values()) this.#dispose(task);
    this.#tasks.clear();
  }

  /**
   * Shuts down gracefully (SIGTERM): tells the server to send no more tasks,
   * lets running tasks finish for up to `timeoutMs` while their output keeps
   * flowing, then kills what still runs (SIGTERM, then SIGKILL after
   * `graceMs`) and reports how each ended, and only then disconnects. A task
   * killed this way ends failure, "killed by signal SIGTERM" (docs/agent-protocol.md).
   */
  async drain(timeoutMs: number, graceMs = 5000): Promise<void> {
    this.#draining = true;
    this.#connection.send({ message: { $case: 'draining', value: {} } });
    if (!(await this.#idle(timeoutMs))) {
      this.#logger.warn({ tasks: this.heldTasks }, 'drain timed out; killing running tasks');
      for (const [id, task] of this.#tasks) if (!task.exited) this.#kill(id, graceMs);
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
        this.#run(m.value);
        return;
      case 'ack': {
        const held = this.#tasks.get(m.value.taskId);
        if (!held) return;
        held.output.ack(m.value.seq);
        if (m.value.done) {
          this.#dispose(held);
          this.#tasks.delete(m.value.taskId);
          if (this.#tasks.size === 0) this.emit('idle');
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

  /**
   * Kills a task's process group: SIGTERM now, SIGKILL after `graceMs`. A
   * task not started yet never starts; a kill for a task not held yet is
   * remembered, because it may overtake its run message.
   */
  #kill(taskId: string, graceMs: number): void {
    const held = this.#tasks.get(taskId);
    if (!held) {
      const now = Date.now();
      for (const [id, at] of this.#earlyKills) if (now - at > EARLY_KILL_MS) this.#earlyKills.delete(id);
      this.#earlyKills.set(taskId, now);
      return;
    }
    if (held.exited || held.kill) return;
    held.kill = { graceMs };
    this.#terminate(held, graceMs);
  }

  /** SIGTERM, then SIGKILL after `graceMs`, to a started run. */
  #terminate(held: HeldTask, graceMs: number): void {
    if (!held.run) return; // #execute checks held.kill before it spawns
    held.run.kill('SIGTERM');
    held.timers.push(setTimeout(() => held.run?.kill('SIGKILL'), graceMs));
  }

  #dispose(held: HeldTask): void {
    for (const timer of held.timers) clearTimeout(timer);
    held.output.dispose();
  }

  #run(task: RunTask): void {
    if (this.#tasks.has(task.taskId)) return; // a duplicate push: it runs once
    const held: HeldTask = {
      output: new TaskOutput(
        task.taskId,
        this.#options,
        (msg) => this.#connection.send(msg),
        (pause) => (pause ? held.run?.pause() : held.run?.resume()),
      ),
      run: null,
      kill: null,
      timedOut: false,
      timers: [],
      exited: false,
      redactor: null,
      holdTimer: undefined,
    };

    held.output.setLimit(this.#welcome?.maxOutputBytes ?? 0);
    this.#tasks.set(task.taskId, held);
    if (this.#earlyKills.delete(task.taskId)) held.kill = { graceMs: task.killGraceMs };
    this.#execute(task, held).catch((err: unknown) => {
      this.#logger.error({ err, task: task.taskId }, 'task failed in the agent');
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: `agent error: ${(err as Error).message}` });
    });
  }

  async #execute(task: RunTask, held: HeldTask): Promise<void> {
    if (held.kill) {
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: 'killed before it started' });
      return;
    }
    let secrets: Record<string, string>;
    try {
      secrets = await resolveSecrets(
        { provider: task.secretProvider, path: task.secretPath, mapping: task.secretMapping, stored: task.storedSecrets },
        this.#options.env ?? {},
      );
      // Secret values are masked in the output like CI systems mask theirs.
      const rules = { infoTypes: task.redact, custom: task.customDetectors, secrets: maskedSecrets(task.type, secrets) };
      if (redacts(rules)) held.redactor = new Redactor(rules);
    } catch (err) {
      // Missing secrets or rules this agent cannot compile: run nothing rather than run unprotected.
      const why = err instanceof SecretError ? err.message : `redaction rules are invalid: ${(err as Error).message}`;
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: why });
      return;
    }
    if (!isScriptType(task.type)) {
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: `this agent cannot run type "${task.type}"` });
      return;
    }
    const cwd = join(this.#options.workDir, 'tasks', task.taskId);
    const scriptDir = join(this.#options.workDir, 'scripts');
    const scriptPath = join(scriptDir, task.taskId);
    const cleanUp = (): Promise<unknown> => Promise.all([rm(cwd, { recursive: true, force: true }), rm(scriptPath, { force: true })]);
    await Promise.all([
      mkdir(cwd, { recursive: true, mode: 0o700 }),
      mkdir(scriptDir, { recursive: true, mode: 0o700 }).then(() => writeFile(scriptPath, task.script, { mode: 0o600 })),
    ]);
    const baseEnv: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...this.#options.env,
      ...secrets,
    };
    let command: Command;
    try {
      command = await commandFor(task.type, { scriptPath, workDir: cwd, secrets, path: baseEnv.PATH ?? '' });
    } catch (err) {
      await cleanUp();
      if (!(err instanceof CommandError)) throw err;
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: err.message });
      return;
    }
    const env: Record<string, string> = {
      ...baseEnv,
      ...command.env,
      TASKGATE_TASK_ID: task.taskId,
      TASKGATE_TARGET: task.target,
      TASKGATE_USER: task.createdBy.replace(/^user:/, ''),
      TASKGATE_USER_GROUPS: task.userGroups.join(','),
      TASKGATE_MESSAGE: task.message,
    };
    if (held.kill) {
      await cleanUp();
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: 'killed before it started' });
      return;
    }
    const run = PtyRun.start(
      { file: command.file, args: command.args, cwd, env },
      {
        onStart: (pid) => {
          this.#logger.info({ task: task.taskId, pid }, 'task started');
          this.#connection.send({ message: { $case: 'started', value: { taskId: task.taskId, time: new Date(), pid } } });
          this.emit('task-start', task.taskId, pid);
        },
        onData: (data) => this.#output(held, data),
      },
    );
    held.run = run;
    if (task.timeoutMs > 0) {
      held.timers.push(
        setTimeout(() => {
          if (held.exited || held.kill) return;
          held.timedOut = true;
          this.#logger.info({ task: task.taskId, timeoutMs: task.timeoutMs }, 'task timed out; killing it');
          this.#terminate(held, task.killGraceMs);
        }, task.timeoutMs),
      );
    }
    const result = await run.done;
    await cleanUp();
    this.#finish(task.taskId, held, result);
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

  #finish(taskId: string, held: HeldTask, result: RunResult): void {
    held.run = null;
    held.exited = true;
    for (const timer of held.timers) clearTimeout(timer);
    clearTimeout(held.holdTimer);
    if (held.redactor) held.output.push(held.redactor.flush());
    const findings = held.redactor ? Object.fromEntries(held.redactor.findings) : {};
    held.output.finish({ ...result, timedOut: held.timedOut, findings });
    this.#logger.info({ task: taskId, ...result }, 'task ended');
    this.emit('task-exit', taskId, result);
  }
}
