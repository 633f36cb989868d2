/**
 * The agent's command line, shared by `taskgate agent` (cli/commands/run.ts)
 * and the standalone `taskgate-agent` of the agent package (agent/main.ts),
 * so both take the same flags and environment variables. It parses the
 * flags, hands them to the agent program's root (agent/program.ts) and stops
 * it gracefully on SIGINT/SIGTERM. With cli/commands/run.ts, this is where
 * `process.env` is read (docs/design.md "Programs, options and defaults").
 *
 * A refused setting (a bad flag value, a missing token, an unreadable
 * certificate) is thrown as a {@link ConfigError}; each entry point prints
 * it as one line and exits 2.
 */
import { Command, Option } from 'commander';
import { ConfigError } from '../shared/config-error.js';
import { createLogger, LOG_LEVELS } from '../shared/logger.js';
import { onSignals } from '../shared/signals.js';
import type { ClientTls } from '../shared/tls.js';
import { AGENT_DEFAULTS } from './options.js';
import { AGENT_PROGRAM_DEFAULTS, runAgent } from './program.js';

interface AgentFlags extends ClientTls {
  server: string;
  token?: string;
  tokenFile?: string;
  taskUids: string;
  taskEnv: string[];
  name: string;
  workDir?: string;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  drainSeconds: number;
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a positive integer, not "${value}"`);
    return n;
  };
}

/** Collects a repeatable option; a value from the environment may hold several, comma-separated. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

/**
 * The agent's environment as the agent sees it (the env secret provider
 * reads it; agent/task-env.ts passes only an allowlist on to tasks), without
 * Taskgate's own settings, its token among them.
 */
export function agentEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('TASKGATE_')) env[key] = value;
  }
  return env;
}

/** The agent command, named `name` (`agent` under `taskgate`, `taskgate-agent` alone). */
export function agentCommand(name: string): Command {
  return new Command(name)
    .description('run an agent: connect to the server and run the tasks of its targets')
    .addOption(new Option('--server <host:port>', 'server address').env('TASKGATE_SERVER').default(AGENT_PROGRAM_DEFAULTS.server))
    .addOption(new Option('--token-file <file>', 'file holding the agent token (taskgate agents token --name NAME)').env('TASKGATE_AGENT_TOKEN_FILE'))
    .addOption(new Option('--token <token>', 'the agent token itself (visible to local users in the process list: prefer --token-file)').env('TASKGATE_AGENT_TOKEN'))
    .addOption(
      new Option('--task-uids <first-last|off>', 'when the agent runs as root, each task runs as a uid/gid of its own from this range; off: as the agent\'s user')
        .env('TASKGATE_TASK_UIDS')
        .default(AGENT_PROGRAM_DEFAULTS.taskUids),
    )
    .addOption(new Option('--task-env <name>', 'also pass this variable (or PREFIX*) of the agent\'s environment to tasks (repeatable)').env('TASKGATE_TASK_ENV').argParser(collect).default([]))
    .addOption(new Option('--name <name>', 'agent name; targets name it').env('TASKGATE_AGENT_NAME').makeOptionMandatory())
    .addOption(new Option('--work-dir <dir>', 'where task directories and script files live').env('TASKGATE_AGENT_WORK_DIR'))
    .addOption(
      new Option('--drain-seconds <n>', 'on SIGTERM/SIGINT, how long running tasks may finish before they are killed')
        .env('TASKGATE_AGENT_DRAIN_SECONDS')
        .default(AGENT_DEFAULTS.drainMs / 1000)
        .argParser(positiveInt('--drain-seconds')),
    )
    .addOption(new Option('--log-level <level>', 'how much to log').env('TASKGATE_LOG_LEVEL').choices(LOG_LEVELS).default(AGENT_PROGRAM_DEFAULTS.logLevel))
    .addOption(new Option('--log-format <format>', 'json (one object per line) or pretty (for a terminal)').env('TASKGATE_LOG_FORMAT').choices(['json', 'pretty']).default(AGENT_PROGRAM_DEFAULTS.logFormat))
    .addOption(new Option('--tls', 'connect with TLS, verifying the server against the system roots').env('TASKGATE_TLS'))
    .addOption(new Option('--tls-ca <file>', 'connect with TLS, verifying the server against this CA (PEM)').env('TASKGATE_TLS_CA'))
    .addOption(new Option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS; its CN or a DNS name is the agent name').env('TASKGATE_AGENT_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'client certificate key (PEM)').env('TASKGATE_AGENT_TLS_KEY'))
    .action(async (flags: AgentFlags, cmd: Command) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-agent', format: flags.logFormat });
      // The token leaves the environment once read: tasks and child processes never see it.
      const tokenInEnv = process.env.TASKGATE_AGENT_TOKEN;
      delete process.env.TASKGATE_AGENT_TOKEN;
      const agent = runAgent({
        server: flags.server,
        name: flags.name,
        tokenFile: flags.tokenFile,
        token: flags.token,
        tokenFromEnv: flags.token !== undefined && flags.token === tokenInEnv,
        workDir: flags.workDir,
        taskUids: flags.taskUids,
        taskEnv: flags.taskEnv,
        drainMs: flags.drainSeconds * 1000,
        tls: flags.tls,
        tlsCa: flags.tlsCa,
        tlsCert: flags.tlsCert,
        tlsKey: flags.tlsKey,
        env: agentEnv(),
        logger,
      });
      // runAgent has returned (it is synchronous), so no signal came before
      // this. A second signal exits at once (onSignals); the server then
      // settles the running tasks ("agent restarted" or "agent lost").
      onSignals(logger, () => agent.stop());
      agent.finished.catch((err: unknown) => {
        const command = cmd.parent ? `${cmd.parent.name()} ${cmd.name()}` : cmd.name();
        process.stderr.write(`${command}: ${(err as Error).message}\n`);
        process.exit(1);
      });
    });
}
