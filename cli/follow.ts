/**
 * Following a task: its output to stdout (line ends as cli/line-ends.ts
 * says), what a task that has not started waits for (on stderr, so a wait
 * is never silent), and the exit code that mirrors how it ended.
 */
import { status } from '@grpc/grpc-js';
import { constants as osConstants } from 'node:os';
import { ReviewStatus, TaskStatus, type GetTaskLogsResponse, type Task } from '../gen/taskgate/v1/task.js';
import { Backoff } from '../shared/backoff.js';
import { type Api, CliError, isServiceError } from './client.js';
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_TASK_FAILED } from './exit-codes.js';
import { statusName, time } from './format.js';
import { outputTranslator, type CrlfToLf } from './line-ends.js';

/** The process exit code that mirrors a finished task (cli/exit-codes.ts). */
export function exitCodeOf(task: Task): number {
  if (task.status === TaskStatus.TASK_STATUS_SUCCESS) return EXIT_OK;
  if (task.exitCode !== undefined && task.exitCode !== 0) return task.exitCode;
  const signal = (osConstants.signals as Record<string, number | undefined>)[task.signal];
  if (signal !== undefined) return 128 + signal;
  return EXIT_TASK_FAILED;
}

/**
 * Ends a command that followed `finished` to its end: a task that did not
 * succeed gets one line on stderr saying how it ended, and the process
 * exits as the task did.
 */
export function exitAsTask(finished: Task): void {
  if (finished.status !== TaskStatus.TASK_STATUS_SUCCESS) {
    const why = finished.failureReason || finished.events.at(-1)?.reason || '';
    process.stderr.write(`task ${finished.id} ${statusName(finished.status)}${why ? `: ${why}` : ''}\n`);
  }
  process.exitCode = exitCodeOf(finished);
}

/** Who still has to review a task, for messages. */
export function pendingGroups(task: Task): string {
  return task.review
    .filter((r) => r.status === ReviewStatus.REVIEW_STATUS_PENDING)
    .map((r) => r.group || 'anyone')
    .join(', ');
}

/** Who must still approve, in words: "someone who may use the target", "a member of dba", "members of dba and sec". */
function approvers(task: Task): string {
  const groups = task.review.filter((r) => r.status === ReviewStatus.REVIEW_STATUS_PENDING).map((r) => r.group);
  if (groups.includes('')) return 'someone who may use the target';
  if (groups.length === 1) return `a member of ${groups[0]}`;
  return `members of ${groups.slice(0, -1).join(', ')} and ${groups.at(-1)}`;
}

/** What the server knows of an agent: listed (with its state) or never heard of. */
type AgentState = { listed: false } | { listed: true; connected: boolean; lastSeen: Date | undefined };

/** The state of agent `name` from ListAgents; undefined when that could not be asked (the command goes on without it). */
export async function agentState(client: Api, name: string): Promise<AgentState | undefined> {
  try {
    const { agents } = await client.call(client.agents, client.agents.listAgents, {});
    const agent = agents.find((a) => a.name === name);
    return agent ? { listed: true, connected: agent.connected, lastSeen: agent.lastSeen } : { listed: false };
  } catch {
    return undefined;
  }
}

/**
 * Why a task that has not started is not running yet, as one line for
 * stderr ending "; `doing`" ("following", "watching"), or null when it is
 * running or done, or its agent is connected.
 */
export async function whatItWaitsFor(client: Api, task: Task, doing: string): Promise<string | null> {
  const id = task.id;
  switch (task.status) {
    case TaskStatus.TASK_STATUS_PENDING_REVIEW:
      return `taskgate: task ${id} is pending-review; it runs once approved by ${approvers(task)} (taskgate tasks review ${id} --approve); ${doing}`;
    case TaskStatus.TASK_STATUS_APPROVED:
      return `taskgate: task ${id} is approved; it runs once its creator or an admin runs it (taskgate tasks run ${id}); ${doing}`;
    case TaskStatus.TASK_STATUS_READY: {
      if (!task.agent) return null;
      const agent = await agentState(client, task.agent);
      if (!agent || (agent.listed && agent.connected)) return null;
      return `taskgate: task ${id} is ready, waiting for agent ${task.agent}, which is not connected (${lastSeenText(agent, task.agent)}); ${doing}`;
    }
    default:
      return null;
  }
}

/** How long agent `name` has been away, for messages. */
export function lastSeenText(agent: AgentState, name: string): string {
  if (!agent.listed) return `it never connected, and has no token yet: taskgate agents token --name ${name}`;
  return agent.lastSeen ? `last seen ${time(agent.lastSeen)}` : 'it never connected';
}

/** How a follower writes output. */
export interface FollowOptions {
  /** Keep streaming until the task ends. */
  follow: boolean;
  /** Byte offset to start from. */
  offset?: number;
  /** Write the stored bytes exactly ("\r\n" included) even when stdout is not a terminal. */
  raw?: boolean;
}

/** How long a follower keeps trying to follow again while no server answers, in ms. */
const REFOLLOW_FOR_MS = 120_000;

/**
 * Streams a task's output to stdout from `offset`; with follow, until the task
 * ends. Returns the finished task, or null when not following and the task
 * has not ended. A follower whose server stops (UNAVAILABLE: "server
 * stopping; follow again", or unreachable while it restarts) follows again
 * from the byte it had reached, for up to two minutes of no answer; no byte
 * is printed twice or skipped.
 */
export async function streamLogs(api: Api, id: string, options: FollowOptions): Promise<Task | null> {
  const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
  const lineEnds = outputTranslator(options.raw, process.stdout.isTTY === true);
  let offset = options.offset ?? 0;
  let failingSince: number | null = null;
  for (;;) {
    const opened = Date.now();
    try {
      const finished = await streamOnce(api, id, options.follow, offset, lineEnds, (bytes) => (offset += bytes));
      if (lineEnds) await write(lineEnds.end());
      return finished;
    } catch (err) {
      // Ctrl-C: one line, the shell's exit code for SIGINT.
      if (interrupted) throw new CliError(`stopped following task ${id}; it goes on without you`, EXIT_INTERRUPTED);
      const retry = options.follow && isServiceError(err) && err.code === status.UNAVAILABLE;
      if (!retry) throw err;
      if (Date.now() - opened > 5000) {
        // It had been following fine: a new outage.
        failingSince = null;
        backoff.reset();
      }
      if (failingSince === null) process.stderr.write(`taskgate: ${err.details}; following task ${id} again from byte ${offset}\n`);
      failingSince ??= Date.now();
      if (Date.now() - failingSince > REFOLLOW_FOR_MS) throw err;
      await new Promise((resolve) => setTimeout(resolve, backoff.next()));
    }
  }
}

/** Set once the user pressed Ctrl-C while following. */
let interrupted = false;

/** Writes to stdout, waiting for 'drain' when its buffer is full. */
async function write(data: Uint8Array): Promise<void> {
  if (data.length > 0 && !process.stdout.write(data)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

/** One GetTaskLogs stream; `advance` is told of each stored byte count written. */
async function streamOnce(api: Api, id: string, follow: boolean, offset: number, lineEnds: CrlfToLf | null, advance: (bytes: number) => void): Promise<Task | null> {
  const call = api.tasks.getTaskLogs({ id, offset, follow, limitBytes: 0, tailBytes: 0 }, api.metadata);
  let finished: Task | null = null;
  const stop = (): void => {
    interrupted = true;
    call.cancel();
  };
  process.once('SIGINT', stop);
  try {
    for await (const message of call as AsyncIterable<GetTaskLogsResponse>) {
      const event = message.event;
      if (event?.$case === 'chunk') {
        advance(event.value.data.length);
        await write(lineEnds ? lineEnds.push(event.value.data) : event.value.data);
      } else if (event?.$case === 'finished') {
        finished = event.value;
      }
    }
  } finally {
    process.off('SIGINT', stop);
  }
  return finished;
}
