#!/usr/bin/env node
/**
 * The `taskgate` command. This is the one place that reads the environment
 * (through commander's `.env()` options); everything below takes options.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../shared/config-error.js';
import { dropIpServerNameWarning } from '../shared/warnings.js';
import { VERSION } from '../shared/version.js';
import { serverOption } from './format.js';
import { Api, CliError, describeError, diagnoseUnreachable, isServiceError, type ClientOptions } from './client.js';
import { EXIT_OK, EXIT_REFUSED, EXIT_USAGE } from './exit-codes.js';
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
    .addOption(new Option('--json', 'print proto3 JSON, as grpcurl does (int64 as strings; fields at their default left out)').env('TASKGATE_JSON'));
}

dropIpServerNameWarning();

let api: Api | undefined;
function connect(cmd: Command): Api {
  api = new Api(cmd.optsWithGlobals() as ClientOptions);
  return api;
}

const program = new Command('taskgate')
  .description('Run operational scripts safely: tasks on targets, run by agents, with live logs.')
  .addHelpText(
    'after',
    `
Output: --json prints proto3 JSON (int64 as strings, defaults left out, as grpcurl).
Task output keeps the pty's "\\r\\n" on a terminal and gets "\\n" otherwise (--raw: as stored).
Exit codes: 0 ok; 1 refused by the server (or unreachable); 2 usage error; 3 waiting for review;
  following a task (create/run --wait, logs -f): its exit code, 128+N for signal N, 1 if it failed
  without one; 130 interrupted. docs/cli.md has the details.`,
  )
  .version(VERSION)
  .showSuggestionAfterError();

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

// Every command throws its usage errors to the catch below instead of exiting 1 itself
// (exitOverride is not inherited through addCommand).
const everyCommand = (cmd: Command): Command[] => [cmd, ...cmd.commands.flatMap(everyCommand)];
// commander's own usage errors ("error: unknown option …") get the same "taskgate: " prefix as ours.
const output = { outputError: (message: string, write: (text: string) => void) => write(message.replace(/^error: /, 'taskgate: ')) };
for (const cmd of everyCommand(program)) cmd.exitOverride().configureOutput(output);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander has printed its one line (or the help); --help and --version exit 0, a usage error 2.
    process.exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  } else if (err instanceof CliError) {
    process.stderr.write(`taskgate: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    // A setting `taskgate agent` refused (agent/command.ts).
    process.stderr.write(`taskgate: ${err.message}\n`);
    process.exitCode = 2;
  } else if (isServiceError(err)) {
    const why = api ? await diagnoseUnreachable(err, api) : null;
    process.stderr.write(`taskgate: ${why ?? describeError(err, api?.server ?? '?')}\n`);
    process.exitCode = EXIT_REFUSED;
  } else {
    process.stderr.write(`taskgate: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = EXIT_REFUSED;
  }
} finally {
  api?.close();
}
