/** `taskgate targets ...`: create, get, list, update, delete. */
import { Command, Option } from 'commander';
import { ListTargetsResponse, ReviewMode, Target } from '../../gen/taskgate/v1/target.js';
import { type Api, CliError, type ClientOptions } from '../client.js';
import { EXIT_USAGE } from '../exit-codes.js';
import { agentState } from '../follow.js';
import { SCRIPT_TYPES } from '../../shared/limits.js';
import { list, printJson, secondsOption, table, time } from '../format.js';

/** A review mode as the CLI spells it. */
function modeName(mode: ReviewMode): string {
  return (ReviewMode[mode] ?? 'UNKNOWN').replace(/^REVIEW_MODE_/, '').toLowerCase();
}

function modeFromName(name: string): ReviewMode {
  const value = (ReviewMode as unknown as Record<string, ReviewMode | undefined>)[`REVIEW_MODE_${name.toUpperCase()}`];
  if (value === undefined || value === ReviewMode.REVIEW_MODE_UNSPECIFIED) {
    throw new CliError(`--review must be none, anyone or team, not "${name}"`, EXIT_USAGE);
  }
  return value;
}

function reviewText(t: Target): string {
  if (t.review !== ReviewMode.REVIEW_MODE_TEAM) return modeName(t.review);
  return `team: ${t.reviewers.join(', ')}${t.distinctReviewers === false ? ' (one person may approve for several)' : ''}`;
}

function print(cmd: Command, target: Target | undefined): void {
  if (!target) throw new CliError('the server returned no target');
  if ((cmd.optsWithGlobals() as ClientOptions).json) {
    printJson('taskgate.v1.Target', Target, target);
    return;
  }
  const rows: [string, string][] = [
    ['name', target.name],
    ['type', `${target.type}${target.allowTypeOverride ? ' (tasks may override)' : ''}`],
    ['agent', target.agent],
    ['review', reviewText(target)],
    ['groups', target.groups.join(', ') || 'everyone'],
    ['active', target.active === false ? 'no' : 'yes'],
    ['timeout', target.timeoutSeconds ? `${target.timeoutSeconds} s` : 'none'],
    ['secrets', target.secretProvider ? `${target.secretProvider} ${target.secretPath}${Object.keys(target.secretMapping).length ? ` as ${Object.keys(target.secretMapping).join(', ')}` : ''}` : 'none'],
    ['redact', [...target.redact, ...target.customDetectors.map((d) => `${d.infoType}=/${d.pattern}/`)].join(', ') || 'none'],
    ['run as', target.runAs || 'a uid of its own'],
    ['message', target.message],
  ];
  process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(7)}  ${v}`).join('\n')}\n`);
}

/** Options create and update share. */
function ruleOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--review <mode>', 'who must approve its tasks: none, anyone, team').choices(['none', 'anyone', 'team']))
    .option('--reviewers <groups>', 'with --review team: groups that must each approve, comma-separated (e.g. DBA,SRE)')
    .option('--groups <groups>', "groups that may use it, comma-separated ('' = everyone)")
    .option('--allow-type-override', 'tasks may choose another interpreter')
    .option('--no-allow-type-override', 'tasks run with the target type only')
    .option('--timeout <seconds>', 'default time limit of its tasks (0 = none)', secondsOption('--timeout'))
    .option('--redact <types>', 'mask PII in output: ALL, none, or info types, e.g. EMAIL_ADDRESS,CREDIT_CARD_NUMBER')
    .option('--redact-pattern <name=regex>', 'also mask this pattern as [NAME] (repeatable; "none" clears)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--secret-provider <provider>', 'where the agent finds secrets: env, file, stored, or none')
    .option('--secret-path <path>', 'env: the agent variable holding a JSON object; file: a JSON file on the agent')
    .option('--secret-mapping <json>', 'task variable -> secret key, e.g. \'{"PG_PASS":"password"}\'')
    .option('--run-as <user>', "run its tasks as this user of the agent host ('' = a uid of their own)")
    .option('--distinct-reviewers', 'with --review team: a different person approves for each group (the default)')
    .option('--no-distinct-reviewers', 'with --review team: one person in several reviewer groups may approve for each')
    .option('--active', 'takes new tasks')
    .option('--inactive', 'takes no new tasks');
}

interface RuleFlags {
  review?: string;
  reviewers?: string;
  groups?: string;
  allowTypeOverride?: boolean;
  active?: boolean;
  inactive?: boolean;
  timeout?: number;
  redact?: string;
  redactPattern?: string[];
  secretProvider?: string;
  secretPath?: string;
  secretMapping?: string;
  runAs?: string;
  distinctReviewers?: boolean;
}

/** The Target fields and update mask paths the rule flags set. */
function rules(opts: RuleFlags): { fields: Partial<Target>; mask: string[] } {
  const fields: Partial<Target> = {};
  const mask: string[] = [];
  if (opts.active && opts.inactive) throw new CliError('give --active or --inactive, not both', EXIT_USAGE);
  if (opts.review !== undefined) {
    fields.review = modeFromName(opts.review);
    mask.push('review');
    if (opts.review !== 'team' && opts.reviewers === undefined) {
      fields.reviewers = [];
      mask.push('reviewers');
    }
  }
  if (opts.reviewers !== undefined) {
    fields.reviewers = list(opts.reviewers);
    mask.push('reviewers');
  }
  if (opts.groups !== undefined) {
    fields.groups = list(opts.groups);
    mask.push('groups');
  }
  if (opts.allowTypeOverride !== undefined) {
    fields.allowTypeOverride = opts.allowTypeOverride;
    mask.push('allow_type_override');
  }
  if (opts.active || opts.inactive) {
    fields.active = Boolean(opts.active);
    mask.push('active');
  }
  if (opts.redact !== undefined) {
    fields.redact = opts.redact.toLowerCase() === 'none' ? [] : list(opts.redact);
    mask.push('redact');
  }
  if (opts.redactPattern !== undefined) {
    fields.customDetectors = opts.redactPattern
      .filter((p) => p !== 'none')
      .map((p) => {
        const at = p.indexOf('=');
        if (at < 1) throw new CliError(`--redact-pattern wants NAME=REGEX, not "${p}"`, EXIT_USAGE);
        return { infoType: p.slice(0, at), pattern: p.slice(at + 1) };
      });
    mask.push('custom_detectors');
  }
  if (opts.secretProvider !== undefined) {
    fields.secretProvider = opts.secretProvider === 'none' ? '' : opts.secretProvider;
    mask.push('secret_provider');
  }
  if (opts.secretPath !== undefined) {
    fields.secretPath = opts.secretPath;
    mask.push('secret_path');
  }
  if (opts.secretMapping !== undefined) {
    try {
      fields.secretMapping = JSON.parse(opts.secretMapping) as Record<string, string>;
    } catch {
      throw new CliError('--secret-mapping must be a JSON object such as \'{"PG_PASS":"password"}\'', EXIT_USAGE);
    }
    mask.push('secret_mapping');
  }
  if (opts.timeout !== undefined) {
    fields.timeoutSeconds = opts.timeout;
    mask.push('timeout_seconds');
  }
  if (opts.runAs !== undefined) {
    fields.runAs = opts.runAs;
    mask.push('run_as');
  }
  if (opts.distinctReviewers !== undefined) {
    fields.distinctReviewers = opts.distinctReviewers;
    mask.push('distinct_reviewers');
  }
  return { fields, mask };
}

/**
 * A target is accepted whatever its agent, so one can be set up before its
 * agent is installed; but its tasks would wait with no word until the agent
 * connects, so say so on stderr when the server has never seen it.
 */
async function warnIfAgentNeverConnected(client: Api, target: Target | undefined): Promise<void> {
  if (!target?.agent) return;
  const agent = await agentState(client, target.agent);
  if (!agent || (agent.listed && (agent.connected || agent.lastSeen))) return;
  const token = agent.listed ? 'it has a token' : `it has no token yet: taskgate agents token --name ${target.agent}`;
  process.stderr.write(`taskgate: warning: agent ${target.agent} has never connected (${token}); tasks on target ${target.name} wait until it does\n`);
}

/** The `targets` command group. */
export function targetsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const targets = new Command('targets').description('manage targets: where tasks run, who may use them, who reviews');

  ruleOptions(withClient(targets.command('create')))
    .description('create a target (admin)')
    .requiredOption('--name <name>', 'target name')
    .requiredOption('--agent <agent>', 'agent that runs its tasks')
    .option('--type <type>', `interpreter: ${SCRIPT_TYPES.join(', ')} (docs/target-types.md)`, 'bash')
    .option('-m, --message <text>', 'description', '')
    .action(async (opts: RuleFlags & { name: string; agent: string; type: string; message: string }, cmd: Command) => {
      const { fields } = rules(opts);
      const client = api(cmd);
      const res = await client.call(client.targets, client.targets.createTarget, {
        target: Target.fromPartial({ name: opts.name, agent: opts.agent, type: opts.type, message: opts.message, ...fields }),
      });
      print(cmd, res.target);
      await warnIfAgentNeverConnected(client, res.target);
    });

  ruleOptions(withClient(targets.command('update')))
    .description('change a target (admin); only the options given change')
    .argument('<name>', 'target name')
    .option('--agent <agent>', 'agent that runs its tasks')
    .option('--type <type>', 'interpreter')
    .option('-m, --message <text>', 'description')
    .action(async (name: string, opts: RuleFlags & { agent?: string; type?: string; message?: string }, cmd: Command) => {
      const { fields, mask } = rules(opts);
      for (const key of ['agent', 'type', 'message'] as const) {
        if (opts[key] !== undefined) {
          fields[key] = opts[key];
          mask.push(key);
        }
      }
      if (mask.length === 0) throw new CliError('nothing to change: give at least one option (see --help)', EXIT_USAGE);
      const client = api(cmd);
      const res = await client.call(client.targets, client.targets.updateTarget, {
        target: Target.fromPartial({ name, ...fields }),
        updateMask: mask,
      });
      print(cmd, res.target);
      await warnIfAgentNeverConnected(client, res.target);
    });

  withClient(targets.command('get'))
    .description('show a target')
    .argument('<name>', 'target name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      print(cmd, (await client.call(client.targets, client.targets.getTarget, { name })).target);
    });

  withClient(targets.command('list'))
    .description('list targets')
    .action(async (_opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const all: Target[] = [];
      let pageToken = '';
      do {
        const res = await client.call(client.targets, client.targets.listTargets, { pageSize: 500, pageToken });
        all.push(...res.targets);
        pageToken = res.nextPageToken;
      } while (pageToken);
      if ((cmd.optsWithGlobals() as ClientOptions).json) {
        printJson('taskgate.v1.ListTargetsResponse', ListTargetsResponse, { targets: all, nextPageToken: '' });
        return;
      }
      const rows = all.map((t) => [
        t.name + (t.active === false ? ' (inactive)' : ''),
        t.type,
        t.agent,
        reviewText(t),
        t.groups.join(',') || 'everyone',
        time(t.created),
        t.message,
      ]);
      process.stdout.write(`${table(['NAME', 'TYPE', 'AGENT', 'REVIEW', 'GROUPS', 'CREATED', 'MESSAGE'], rows)}\n`);
    });

  withClient(targets.command('delete'))
    .description('delete a target that has no unfinished tasks (admin)')
    .argument('<name>', 'target name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      await client.call(client.targets, client.targets.deleteTarget, { name });
      process.stdout.write(`deleted target ${name}\n`);
    });

  return targets;
}
