#!/usr/bin/env node
/**
 * The `taskgate` command. This is the one place that reads the environment
 * (through commander's `.env()` options); everything below takes options.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../shared/config-error.js';
import { VERSION } from '../shared/version.js';
import { serverOption } from './format.js';
import { Api, CliError, describeError, isServiceError, type ClientOptions } from './client.js';
import { agentsCommand } from './commands/agents.js';
import { eventsCommand, reviewsCommand } from './commands/events.js';
import { agentCommand, devCommand, serverCommand } from './commands/run.js';
import { targetsCommand } from './commands/targets.js';
import { secretsCommand } from './commands/secrets.js';
import { tasksCommand } from './commands/tasks.js';
import { tokensCommand, usersCommand, whoamiCommand } from './commands/users.js';

/** Adds the options every client command takes. */
function withClient(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <host:port>', 'Taskgate server (port 7070 when none is given)').env('TASKGATE_SERVER').argParser(serverOption).default('127.0.0.1:7070'))
    .addOption(new Option('--token <token>', 'bearer token').env('TASKGATE_TOKEN'))
    .addOption(new Option('--token-file <path>', 'read the token from a file (default .taskgate/admin.token if present)').env('TASKGATE_TOKEN_FILE'))
    .addOption(new Option('--tls', 'connect with TLS, verifying the server against the system roots').env('TASKGATE_TLS'))
    .addOption(new Option('--tls-ca <file>', 'connect with TLS, verifying the server against this CA (PEM)').env('TASKGATE_TLS_CA'))
    .addOption(new Option('--json', 'print proto3 JSON').env('TASKGATE_JSON'));
}

let api: Api | undefined;
function connect(cmd: Command): Api {
  api = new Api(cmd.optsWithGlobals() as ClientOptions);
  return api;
}

const program = new Command('taskgate')
  .description('Run operational scripts safely: tasks on targets, run by agents, with live logs.')
  .version(VERSION)
  .showSuggestionAfterError()
  .exitOverride();

program.addCommand(devCommand());
program.addCommand(serverCommand());
program.addCommand(agentCommand());
program.addCommand(tasksCommand(withClient, connect));
program.addCommand(reviewsCommand(withClient, connect));
program.addCommand(targetsCommand(withClient, connect));
program.addCommand(agentsCommand(withClient, connect));
program.addCommand(secretsCommand(withClient, connect));
program.addCommand(usersCommand(withClient, connect));
program.addCommand(tokensCommand(withClient, connect));
program.addCommand(whoamiCommand(withClient, connect));
program.addCommand(eventsCommand(withClient, connect));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof CliError) {
    process.stderr.write(`taskgate: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    // A setting `taskgate agent` refused (agent/command.ts).
    process.stderr.write(`taskgate: ${err.message}\n`);
    process.exitCode = 2;
  } else if (isServiceError(err)) {
    process.stderr.write(`taskgate: ${describeError(err, api?.server ?? '?')}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`taskgate: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = 1;
  }
} finally {
  api?.close();
}
