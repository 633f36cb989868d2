/** `taskgate targets ...`: create, get, list, update, delete. */
import { Command } from 'commander';
import { Target } from '../../gen/taskgate/v1/target.js';
import { type Api, CliError, type ClientOptions } from '../client.js';
import { printJson, table, time } from '../format.js';

function print(cmd: Command, target: Target | undefined): void {
  if (!target) throw new CliError('the server returned no target');
  if ((cmd.optsWithGlobals() as ClientOptions).json) printJson(Target.toJSON(target));
  else process.stdout.write(`${table(['NAME', 'TYPE', 'AGENT', 'MESSAGE'], [[target.name, target.type, target.agent, target.message]])}\n`);
}

/** The `targets` command group. */
export function targetsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const targets = new Command('targets').description('manage targets: where and how tasks run');

  withClient(targets.command('create'))
    .description('create a target')
    .requiredOption('--name <name>', 'target name')
    .requiredOption('--agent <agent>', 'agent that runs its tasks')
    .option('--type <type>', 'interpreter: bash, sh, python, node', 'bash')
    .option('-m, --message <text>', 'description', '')
    .action(async (opts: { name: string; agent: string; type: string; message: string }, cmd: Command) => {
      const client = api(cmd);
      const res = await client.call(client.targets, client.targets.createTarget, {
        target: { name: opts.name, agent: opts.agent, type: opts.type, message: opts.message, created: undefined, updated: undefined },
      });
      print(cmd, res.target);
    });

  withClient(targets.command('update'))
    .description('change a target')
    .argument('<name>', 'target name')
    .option('--agent <agent>', 'agent that runs its tasks')
    .option('--type <type>', 'interpreter')
    .option('-m, --message <text>', 'description')
    .action(async (name: string, opts: { agent?: string; type?: string; message?: string }, cmd: Command) => {
      const mask = (['agent', 'type', 'message'] as const).filter((k) => opts[k] !== undefined);
      if (mask.length === 0) throw new CliError('nothing to change: give --agent, --type or --message', 2);
      const client = api(cmd);
      const res = await client.call(client.targets, client.targets.updateTarget, {
        target: { name, agent: opts.agent ?? '', type: opts.type ?? '', message: opts.message ?? '', created: undefined, updated: undefined },
        updateMask: mask,
      });
      print(cmd, res.target);
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
        printJson({ targets: all.map((t) => Target.toJSON(t)) });
        return;
      }
      const rows = all.map((t) => [t.name, t.type, t.agent, time(t.created), t.message]);
      process.stdout.write(`${table(['NAME', 'TYPE', 'AGENT', 'CREATED', 'MESSAGE'], rows)}\n`);
    });

  withClient(targets.command('delete'))
    .description('delete a target that has no unfinished tasks')
    .argument('<name>', 'target name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      await client.call(client.targets, client.targets.deleteTarget, { name });
      process.stdout.write(`deleted target ${name}\n`);
    });

  return targets;
}
