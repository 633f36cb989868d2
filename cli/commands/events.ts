/** `taskgate events list` (the audit trail) and `taskgate reviews list`. */
import { Command } from 'commander';
import { ListEventsResponse } from '../../gen/taskgate/v1/event.js';
import { ListTasksResponse, type Task } from '../../gen/taskgate/v1/task.js';
import { type Api, CliError, type ClientOptions } from '../client.js';
import { EXIT_USAGE } from '../exit-codes.js';
import { parseTime, printJson, table, time } from '../format.js';
import { pendingGroups } from '../follow.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as ClientOptions).json);
}

function timeOption(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = parseTime(value);
  if (!date) throw new CliError(`${name} must be a date/time (2026-11-28T10:00Z) or a duration ago (90s, 15m, 2h, 7d)`, EXIT_USAGE);
  return date;
}

/** The `events` command group. */
export function eventsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const events = new Command('events').description('the audit trail (admin)');

  withClient(events.command('list'))
    .description('list events oldest first: task changes and reviews, tokens, users, targets')
    .option('--actor <actor>', 'only by this actor, e.g. user:alice@example.com or agent:db1')
    .option('--resource <resource>', 'only about this, e.g. tasks/ID, targets/NAME, users/EMAIL')
    .option('--since <time>', 'from this time, or this long ago (e.g. 1h)')
    .option('--until <time>', 'before this time, or this long ago')
    .option('-n, --limit <n>', 'how many', (v) => Number.parseInt(v, 10), 100)
    .option('--page-token <token>', 'continue a previous listing', '')
    .action(async (opts: { actor?: string; resource?: string; since?: string; until?: string; limit: number; pageToken: string }, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.events, client.events.listEvents, {
        actor: opts.actor ?? '',
        resource: opts.resource ?? '',
        since: timeOption('--since', opts.since),
        until: timeOption('--until', opts.until),
        pageSize: opts.limit,
        pageToken: opts.pageToken,
      });
      if (json(cmd)) {
        printJson('taskgate.v1.ListEventsResponse', ListEventsResponse, res);
        return;
      }
      const rows = res.events.map((e) => [time(e.time), e.actor, e.action, e.resource, e.from && e.to && e.from !== e.to ? `${e.from} -> ${e.to}` : e.to, e.detail]);
      process.stdout.write(`${table(['TIME', 'ACTOR', 'ACTION', 'RESOURCE', 'STATUS', 'DETAIL'], rows)}\n`);
      if (res.nextPageToken) process.stdout.write(`more: --page-token ${res.nextPageToken}\n`);
    });

  return events;
}

/** The `reviews` command group. */
export function reviewsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const reviews = new Command('reviews').description('tasks waiting for your review');

  withClient(reviews.command('list'))
    .description('list tasks waiting for a review you may give (a group you belong to)')
    .action(async (_opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const all: Task[] = [];
      let pageToken = '';
      do {
        const res = await client.call(client.tasks, client.tasks.listTasks, {
          statuses: [],
          target: '',
          pageSize: 500,
          pageToken,
          awaitingMyReview: true,
          createdByMe: false,
        });
        all.push(...res.tasks);
        pageToken = res.nextPageToken;
      } while (pageToken);
      if (json(cmd)) {
        printJson('taskgate.v1.ListTasksResponse', ListTasksResponse, { tasks: all, nextPageToken: '' });
        return;
      }
      const rows = all.map((t) => [t.id, t.target, t.createdBy, time(t.created), pendingGroups(t), t.message.split('\n')[0] ?? '']);
      process.stdout.write(`${table(['ID', 'TARGET', 'CREATED BY', 'CREATED', 'WAITING FOR', 'MESSAGE'], rows)}\n`);
      if (all.length > 0) process.stdout.write(`review with: taskgate tasks review ID --approve|--reject [-c COMMENT]\n`);
    });

  return reviews;
}
