/**
 * The Taskgate agent: holds one stream to the server, runs each task it is
 * handed in a pty, streams the output back and reports how it ended.
 */
import type { ChannelCredentials, ServiceError } from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ConnectResponse, RunTask } from '../gen/taskgate/v1/agent.js';
import type { BackoffOptions } from '../shared/backoff.js';
import { randomId } from '../shared/ids.js';
import { isScriptType } from '../shared/limits.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import { AgentConnection, type ConnectionState } from './connection.js';
import { PtyRun, type RunResult } from './pty-runner.js';
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
}

/** Events: "state" (ConnectionState), "fatal" (ServiceError), "task-exit" (taskId, RunResult). */
export class TaskgateAgent extends EventEmitter {
  /** New on every agent start; tells the server whether tasks died with a previous process. */
  readonly bootId = randomId();
  readonly #options: Required<Pick<AgentOptions, 'maxChunkBytes' | 'flushIntervalMs' | 'maxUnackedBytes' | 'workDir'>> &
    AgentOptions;
  readonly #logger: Logger;
  readonly #tasks = new Map<string, HeldTask>();
  readonly #connection: AgentConnection;

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
      onConnected: () => {
        for (const task of this.#tasks.values()) task.output.resend();
      },
      onState: (state) => this.emit('state', state),
      onFatal: (err: ServiceError) => this.emit('fatal', err),
    });
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#connection.state;
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
   * Disconnects and kills the process groups of running tasks (SIGKILL).
   * Their tasks are settled by the server (see docs/agent.md).
   */
  async stop(): Promise<void> {
    this.#connection.stop();
    const runs = [...this.#tasks.values()].flatMap((t) => (t.run ? [t.run] : []));
    for (const run of runs) run.kill('SIGKILL');
    await Promise.all(runs.map((run) => run.done));
    for (const task of this.#tasks.values()) task.output.dispose();
    this.#tasks.clear();
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
          held.output.dispose();
          this.#tasks.delete(m.value.taskId);
        }
        return;
      }
      default:
        return;
    }
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
    };
    this.#tasks.set(task.taskId, held);
    this.#execute(task, held).catch((err: unknown) => {
      this.#logger.error({ err, task: task.taskId }, 'task failed in the agent');
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: `agent error: ${(err as Error).message}` });
    });
  }

  async #execute(task: RunTask, held: HeldTask): Promise<void> {
    if (!isScriptType(task.type)) {
      this.#finish(task.taskId, held, { exitCode: null, signal: '', error: `this agent cannot run type "${task.type}"` });
      return;
    }
    const cwd = join(this.#options.workDir, 'tasks', task.taskId);
    const scriptDir = join(this.#options.workDir, 'scripts');
    const scriptPath = join(scriptDir, task.taskId);
    await mkdir(cwd, { recursive: true, mode: 0o700 });
    await mkdir(scriptDir, { recursive: true, mode: 0o700 });
    await writeFile(scriptPath, task.script, { mode: 0o600 });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...this.#options.env,
      TASKGATE_TASK_ID: task.taskId,
      TASKGATE_TARGET: task.target,
      TASKGATE_USER: task.createdBy,
      TASKGATE_MESSAGE: task.message,
    };
    const run = PtyRun.start(
      { type: task.type, scriptPath, cwd, env },
      {
        onStart: (pid) => {
          this.#logger.info({ task: task.taskId, pid }, 'task started');
          this.#connection.send({ message: { $case: 'started', value: { taskId: task.taskId, time: new Date(), pid } } });
        },
        onData: (data) => held.output.push(data),
      },
    );
    held.run = run;
    const result = await run.done;
    await Promise.all([rm(cwd, { recursive: true, force: true }), rm(scriptPath, { force: true })]);
    this.#finish(task.taskId, held, result);
  }

  #finish(taskId: string, held: HeldTask, result: RunResult): void {
    held.run = null;
    held.output.finish(result);
    this.#logger.info({ task: taskId, ...result }, 'task ended');
    this.emit('task-exit', taskId, result);
  }
}
