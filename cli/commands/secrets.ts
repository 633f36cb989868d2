/** `taskgate secrets ...`: a target's stored secrets (admin). Values are read from stdin, never argv. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ListSecretsResponse } from '../../gen/taskgate/v1/target.js';
import { type Api, CliError, type ClientOptions } from '../client.js';
import { EXIT_USAGE } from '../exit-codes.js';
import { printJson } from '../format.js';

/** The `secrets` command group. */
export function secretsCommand(withClient: (cmd: Command) => Command, api: (cmd: Command) => Api): Command {
  const secrets = new Command('secrets').description("a target's stored secrets, encrypted at rest, sent only to the agent running its task");

  withClient(secrets.command('set'))
    .description('store a secret; the value is read from stdin (one trailing newline is dropped)')
    .argument('<target>', 'target name')
    .argument('<key>', 'secret key, e.g. PG_PASS')
    .action(async (target: string, key: string, _opts: unknown, cmd: Command) => {
      if (process.stdin.isTTY) process.stderr.write(`value for ${key} (end with Ctrl-D): `);
      const value = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
      if (value === '') throw new CliError('the value read from stdin is empty', EXIT_USAGE);
      const client = api(cmd);
      await client.call(client.targets, client.targets.setSecret, { target, key, value });
      process.stdout.write(`stored ${key} for target ${target}\n`);
    });

  withClient(secrets.command('list'))
    .description("list a target's stored secret keys (never values)")
    .argument('<target>', 'target name')
    .action(async (target: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      const { keys } = await client.call(client.targets, client.targets.listSecrets, { target });
      if ((cmd.optsWithGlobals() as ClientOptions).json) printJson('taskgate.v1.ListSecretsResponse', ListSecretsResponse, { keys });
      else process.stdout.write(keys.map((k) => `${k}\n`).join(''));
    });

  withClient(secrets.command('delete'))
    .description('delete a stored secret')
    .argument('<target>', 'target name')
    .argument('<key>', 'secret key')
    .action(async (target: string, key: string, _opts: unknown, cmd: Command) => {
      const client = api(cmd);
      await client.call(client.targets, client.targets.deleteSecret, { target, key });
      process.stdout.write(`deleted ${key} of target ${target}\n`);
    });

  return secrets;
}
