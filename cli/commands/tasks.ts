/** `taskgate tasks ...`: create, get, list, logs. */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { ListTasksResponse, ReviewDecision, ReviewStatus, Task, TaskStatus, type WatchTaskResponse } from '../../gen/taskgate/v1/task.js';
import { status } from '@grpc/grpc-js';
import { type Api, CliError, type ClientOptions, newRequestId, type RetryOptions } from '../client.js';
import { EXIT_PENDING_REVIEW, EXIT_USAGE } from '../exit-codes.js';
import { exitAsTask, pendingGroups, streamLogs, whatItWaitsFor } from '../follow.js';
import { MAX_MESSAGE_BYTES, MAX_SCRIPT_BYTES, SCRIPT_TYPES } from '../../shared/limits.js';
import { printJson, secondsOption, statusFromName, statusName, table, time, wholeNumber } from '../format.js';

/** The `--raw` option of the commands that print a task's output. */
function rawOption(): Option {
  return new Option('--raw', 'write the output exactly as stored, with the pty\'s "\\r\\n" line ends (the default when stdout is a terminal; otherwise each "\\r\\n" becomes "\\n")');
}

/** The `--request-id` option of the commands that change a task. */
function requestIdOption(): Option {
  return new Option('--request-id <id>', 'make a repeat of this command safe: the same id and arguments act once (default: a new random id)');
}

/**
 * Retry options for a command's call: say once on stderr that the server
 * was not reached (or did not answer in time) and that the same request is
 * being sent again, which is safe because of its request id.
 */
function retryNotice(what: string): RetryOptions {
  return {
    onRetry: (err, requestId) =>
      process.stderr.write(
        `taskgate: ${what}: ${err.details || status[err.code]} (${status[err.code]}); trying again with the same request id ${requestId}, so it happens at most once\n`,
      ),
  };
}

/** A script from `-f FILE` ("-": standard input), or one line saying why not. */
function readScript(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? (err as Error).message);
    throw new CliError(`-f ${file}: ${why}`, EXIT_USAGE);
  }
}

/**
 * Follows a task's output to its end and exits the way the task did (create
 * --wait, run --wait), first saying on stderr what it waits for if it has
 * not started.
 */
async function waitAndExit(client: Api, task: Task, json: boolean | undefined, raw: boolean | undefined): Promise<void> {
  const waiting = await whatItWaitsFor(client, task, 'waiting');
  if (waiting) process.stderr.write(`${waiting}\n`);
  const finished = await streamLogs(client, task.id, { follow: true, raw });
  if (!finished) throw new CliError(`stopped following task ${task.id}; it is still running`);
  if (json) printJson('taskgate.v1.Task', Task, finished);
  exitAsTask(finished);
}

function reviewStatusName(status: ReviewStatus): string {
  return (ReviewStatus[status] ?? 'UNKNOWN').replace(/^REVIEW_STATUS_/, '').toLowerCase();
}

function taskRows(tasks: Task[]): string[][] {
  return tasks.map((t) => [t.id, statusName(t.status), t.target, t.type, time(t.created), t.script.split('\n')[0]?.slice(0, 40) ?? '']);
}

/** Prints one task for a person. */
function printTask(task: Task): void {
  const rows: [string, string][] = [
    ['id', task.id],
    ['status', statusName(task.status)],
    ['target', task.target],
    ['type', task.type],
    ['agent', task.agent || '-'],
    ['created', `${time(task.created)} by ${task.createdBy}`],
    ['started', time(task.started)],
    ['finished', time(task.finished)],
    ['exit', task.exitCode !== undefined ? String(task.exitCode) : task.signal || '-'],
    ['output', `${task.outputBytes} bytes${task.outputDroppedBytes ? ` (${task.outputDroppedBytes} more dropped past the output limit)` : ''}`],
  ];
  if (task.timeoutSeconds) rows.push(['timeout', `${task.timeoutSeconds} s`]);
  if (task.killRequested) rows.push(['kill', `requested ${time(task.killRequested)}`]);
  const findings = Object.entries(task.findings);
  if (findings.length) rows.push(['redacted', findings.map(([type, n]) => `${type} ×${n}`).join(', ')]);
  if (task.failureReason) rows.push(['reason', task.failureReason]);
  if (task.message) rows.push(['message', task.message]);
  for (const r of task.review) {
    const decided = r.status === ReviewStatus.REVIEW_STATUS_PENDING ? '' : ` by ${r.reviewer} at ${time(r.time)}`;
    rows.push(['review', `${r.group || 'anyone'}: ${reviewStatusName(r.status)}${decided}${r.comment ? ` "${r.comment}"` : ''}`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  lines.push('script:', ...task.script.split('\n').map((l) => `  ${l}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** The `tasks` command group. */
export function tasksCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const tasks = new Command('tasks').description('create tasks and read them and their output');

  withClient(tasks.command('create'))
    .description('create a task on a target; with --wait, stream its output and exit with its exit code')
    .requiredOption('-t, --target <name>', 'target to run on')
    .option('-s, --script <script>', 'the script or command')
    .option('-f, --file <path>', 'read the script from a file ("-" for stdin)')
    .option('-m, --message <text>', 'why you run it (shown to reviewers)', '')
    .option('--type <type>', `interpreter, overriding the target's (${SCRIPT_TYPES.join(', ')})`, '')
    .option('--timeout <seconds>', "kill it after this long (default: the target's)", secondsOption('--timeout'), 0)
    .option('-w, --wait', 'stream the output live and exit with the task exit code (3 when it waits for review)')
    .addOption(rawOption())
    .addOption(requestIdOption())
    .action(async (opts: { target: string; script?: string; file?: string; message: string; type: string; timeout: number; wait?: boolean; raw?: boolean; requestId?: string }, cmd: Command) => {
      if ((opts.script === undefined) === (opts.file === undefined)) {
        throw new CliError('give the script with exactly one of -s SCRIPT or -f FILE', EXIT_USAGE);
      }
      const script = opts.script ?? readScript(opts.file!);
      const bytes = Buffer.byteLength(script, 'utf8');
      if (bytes > MAX_SCRIPT_BYTES) throw new CliError(`the script is ${bytes} bytes; the limit is ${MAX_SCRIPT_BYTES} bytes (1 MiB)`, EXIT_USAGE);
      const messageBytes = Buffer.byteLength(opts.message, 'utf8');
      if (messageBytes > MAX_MESSAGE_BYTES) throw new CliError(`the message is ${messageBytes} bytes; the limit is ${MAX_MESSAGE_BYTES} bytes (16 KiB)`, EXIT_USAGE);
      const client = api(cmd);
      const request = {
        target: opts.target,
        script,
        message: opts.message,
        type: opts.type,
        timeoutSeconds: opts.timeout,
        requestId: opts.requestId ?? newRequestId(),
      };
      const { task } = await client.callWithRetry(client.tasks, client.tasks.createTask, request, retryNotice('creating the task'));
      if (!task) throw new CliError('the server returned no task');
      const json = (cmd.optsWithGlobals() as ClientOptions).json;
      if (!opts.wait) {
        if (json) printJson('taskgate.v1.Task', Task, task);
        else process.stdout.write(`${task.id}\n`);
        return;
      }
      if (task.status === TaskStatus.TASK_STATUS_PENDING_REVIEW) {
        if (json) printJson('taskgate.v1.Task', Task, task);
        process.stderr.write(
          `task ${task.id} awaits review by ${pendingGroups(task)}; once approved, run it with \`taskgate tasks run ${task.id} --wait\`\n`,
        );
        process.exitCode = EXIT_PENDING_REVIEW;
        return;
      }
      await waitAndExit(client, task, json, opts.raw);
    });

  withClient(tasks.command('review'))
    .description('approve or reject a task waiting for review')
    .argument('<id>', 'task id')
    .option('--approve', 'approve it')
    .option('--reject', 'reject it (for good; the creator makes a new task)')
    .option('-g, --group <group>', 'the reviewer group you act for (needed when you are in several)', '')
    .option('-c, --comment <text>', 'a comment for the creator', '')
    .addOption(requestIdOption())
    .action(async (id: string, opts: { approve?: boolean; reject?: boolean; group: string; comment: string; requestId?: string }, cmd: Command) => {
      if (Boolean(opts.approve) === Boolean(opts.reject)) throw new CliError('give exactly one of --approve or --reject', EXIT_USAGE);
      const client = api(cmd);
      const request = {
        id,
        decision: opts.approve ? ReviewDecision.REVIEW_DECISION_APPROVE : ReviewDecision.REVIEW_DECISION_REJECT,
        group: opts.group,
        comment: opts.comment,
        requestId: opts.requestId ?? newRequestId(),
      };
      const { task } = await client.callWithRetry(client.tasks, client.tasks.reviewTask, request, retryNotice(`reviewing task ${id}`));
      if (!task) throw new CliError('the server returned no task');
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.Task', Task, task);
        return;
      }
      const status = statusName(task.status);
      const next =
        task.status === TaskStatus.TASK_STATUS_PENDING_REVIEW
          ? `; still waiting for ${pendingGroups(task)}`
          : task.status === TaskStatus.TASK_STATUS_APPROVED
            ? `; its creator runs it with \`taskgate tasks run ${task.id}\``
            : '';
      process.stdout.write(`task ${task.id} is ${status}${next}\n`);
    });

  withClient(tasks.command('run'))
    .description('run an approved task (its creator or an admin); with --wait, stream its output')
    .argument('<id>', 'task id')
    .option('-w, --wait', 'stream the output live and exit with the task exit code')
    .addOption(rawOption())
    .addOption(requestIdOption())
    .action(async (id: string, opts: { wait?: boolean; raw?: boolean; requestId?: string }, cmd: Command) => {
      const client = api(cmd);
      const request = { id, requestId: opts.requestId ?? newRequestId() };
      const { task } = await client.callWithRetry(client.tasks, client.tasks.runTask, request, retryNotice(`running task ${id}`));
      if (!task) throw new CliError('the server returned no task');
      const json = (cmd.optsWithGlobals() as ClientOptions).json;
      if (opts.wait) {
        await waitAndExit(client, task, json, opts.raw);
        return;
      }
      if (json) printJson('taskgate.v1.Task', Task, task);
      else process.stdout.write(`task ${task.id} is ${statusName(task.status)}\n`);
    });

  withClient(tasks.command('kill'))
    .description('kill a task: before it runs it never will; a running one gets SIGTERM, then SIGKILL')
    .argument('<id>', 'task id')
    .option('-r, --reason <text>', 'why, for the audit trail', '')
    .option('-w, --wait', 'wait until the agent confirms and print the final status')
    .addOption(requestIdOption())
    .action(async (id: string, opts: { reason: string; wait?: boolean; requestId?: string }, cmd: Command) => {
      const client = api(cmd);
      const request = { id, reason: opts.reason, requestId: opts.requestId ?? newRequestId() };
      let { task } = await client.callWithRetry(client.tasks, client.tasks.killTask, request, retryNotice(`killing task ${id}`));
      if (!task) throw new CliError('the server returned no task');
      if (opts.wait && task.status === TaskStatus.TASK_STATUS_RUNNING) {
        const call = client.tasks.watchTask({ id }, client.metadata);
        for await (const message of call as AsyncIterable<WatchTaskResponse>) if (message.task) task = message.task;
      }
      if ((cmd.optsWithGlobals() as ClientOptions).json) printJson('taskgate.v1.Task', Task, task);
      else if (task.status === TaskStatus.TASK_STATUS_RUNNING) process.stdout.write(`kill of task ${task.id} requested; its agent is stopping it\n`);
      else process.stdout.write(`task ${task.id} is ${statusName(task.status)}${task.failureReason ? `: ${task.failureReason}` : ''}\n`);
    });

  withClient(tasks.command('events'))
    .description("show a task's history: every status change and review, with who and when")
    .argument('<id>', 'task id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const { task } = await client.call(client.tasks, client.tasks.getTask, { id });
      if (!task) throw new CliError('the server returned no task');
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.Task', Task, Task.fromPartial({ events: task.events }));
        return;
      }
      const rows = task.events.map((e) => [
        time(e.time),
        e.actor,
        e.action,
        e.from === e.to || e.from === TaskStatus.TASK_STATUS_UNSPECIFIED ? statusName(e.to) : `${statusName(e.from)} -> ${statusName(e.to)}`,
        e.reason,
      ]);
      process.stdout.write(`${table(['TIME', 'ACTOR', 'ACTION', 'STATUS', 'DETAIL'], rows)}\n`);
    });

  withClient(tasks.command('watch'))
    .description("print a task's status each time it changes, until it ends")
    .argument('<id>', 'task id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const json = (cmd.optsWithGlobals() as ClientOptions).json;
      const call = client.tasks.watchTask({ id }, client.metadata);
      const stop = (): void => call.cancel();
      process.once('SIGINT', stop);
      let said: TaskStatus | undefined;
      try {
        for await (const { task } of call as AsyncIterable<WatchTaskResponse>) {
          if (!task) continue;
          if (task.status !== said) {
            // A task that has not started may wait a long time: say for what, once per status.
            said = task.status;
            const waiting = await whatItWaitsFor(client, task, 'watching');
            if (waiting) process.stderr.write(`${waiting}\n`);
          }
          if (json) printJson('taskgate.v1.Task', Task, task, true);
          else {
            const last = task.events.at(-1);
            process.stdout.write(`${time(last?.time)}  ${statusName(task.status).padEnd(14)}  ${last ? `${last.actor}: ${last.reason}` : ''}\n`);
          }
        }
      } finally {
        process.off('SIGINT', stop);
      }
    });

  withClient(tasks.command('get'))
    .description('show one task')
    .argument('<id>', 'task id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const { task } = await client.call(client.tasks, client.tasks.getTask, { id });
      if (!task) throw new CliError('the server returned no task');
      if ((cmd.optsWithGlobals() as ClientOptions).json) printJson('taskgate.v1.Task', Task, task);
      else printTask(task);
    });

  withClient(tasks.command('list'))
    .description('list tasks, newest first')
    .addOption(new Option('--status <status...>', 'only these statuses (e.g. running failure)'))
    .option('-t, --target <name>', 'only this target', '')
    .option('-n, --limit <n>', 'how many', (v) => Number.parseInt(v, 10), 50)
    .option('--page-token <token>', 'continue a previous listing', '')
    .option('--mine', 'only tasks you created')
    .action(async (opts: { status?: string[]; target: string; limit: number; pageToken: string; mine?: boolean }, cmd: Command) => {
      const statuses = (opts.status ?? []).map((name) => {
        const s = statusFromName(name);
        if (s === undefined) throw new CliError(`unknown status "${name}"`, EXIT_USAGE);
        return s;
      });
      const client = api(cmd);
      const res = await client.call(client.tasks, client.tasks.listTasks, {
        statuses,
        target: opts.target,
        pageSize: opts.limit,
        pageToken: opts.pageToken,
        awaitingMyReview: false,
        createdByMe: opts.mine === true,
      });
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.ListTasksResponse', ListTasksResponse, res);
        return;
      }
      process.stdout.write(`${table(['ID', 'STATUS', 'TARGET', 'TYPE', 'CREATED', 'SCRIPT'], taskRows(res.tasks))}\n`);
      if (res.nextPageToken) process.stdout.write(`more: --page-token ${res.nextPageToken}\n`);
    });

  withClient(tasks.command('logs'))
    .description("print a task's output; with -f, follow it live until the task ends and exit as it did")
    .argument('<id>', 'task id')
    .option('-f, --follow', 'keep streaming until the task ends, then exit with its exit code')
    .option('--offset <bytes>', 'start at this byte offset of the stored output', wholeNumber('--offset'), 0)
    .addOption(rawOption())
    .action(async (id: string, opts: { follow?: boolean; offset: number; raw?: boolean }, cmd: Command) => {
      const client = api(cmd);
      if (opts.follow) {
        // Following a task that has not started prints nothing for a while: say what it waits for.
        const { task } = await client.call(client.tasks, client.tasks.getTask, { id });
        const waiting = task && (await whatItWaitsFor(client, task, 'following'));
        if (waiting) process.stderr.write(`${waiting}\n`);
      }
      const finished = await streamLogs(client, id, { follow: opts.follow ?? false, offset: opts.offset, raw: opts.raw });
      // Following waits for the end, as --wait does, and ends the same way.
      if (opts.follow && finished) exitAsTask(finished);
    });

  return tasks;
}
