/**
 * `taskgate server`, `taskgate agent` and `taskgate dev`: the long-running
 * programs. Each stops gracefully on SIGINT/SIGTERM.
 */
import { Command, Option } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskgateAgent } from '../../agent/agent.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import type { Authenticator } from '../../server/auth.js';
import { TaskgateServer } from '../../server/server.js';
import { CliError } from '../client.js';

interface ServerFlags {
  listen: string;
  mongodbUri?: string;
  dataDir: string;
  maxTasksPerAgent: number;
  logLevel: string;
}

function serverOptions(cmd: Command, defaults: { listen: string; logLevel: string }): Command {
  return cmd
    .addOption(new Option('--listen <host:port>', 'address to listen on').env('TASKGATE_LISTEN').default(defaults.listen))
    .addOption(new Option('--mongodb-uri <uri>', 'store in MongoDB (default: embedded SQLite in --data-dir)').env('TASKGATE_MONGODB_URI'))
    .addOption(new Option('--data-dir <dir>', 'embedded store and admin token directory').env('TASKGATE_DATA_DIR').default('.taskgate'))
    .addOption(
      new Option('--max-tasks-per-agent <n>', 'tasks one agent runs at once')
        .env('TASKGATE_MAX_TASKS_PER_AGENT')
        .default(30)
        .argParser((v) => Number.parseInt(v, 10)),
    )
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('TASKGATE_LOG_LEVEL').default(defaults.logLevel));
}

/**
 * Makes sure a token saved in `file` is valid, issuing and saving a new one
 * (mode 0600) when the file is missing or stale. Returns the token and
 * whether it is new.
 */
async function savedToken(auth: Authenticator, file: string, kind: 'admin' | 'agent', subject: string): Promise<{ token: string; fresh: boolean }> {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (await auth.isValid(token, kind)) return { token, fresh: false };
  }
  const { secret } = await auth.issue(kind, subject);
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { token: secret, fresh: true };
}

/** Runs `stop` once on SIGINT or SIGTERM, then exits. */
function onSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal; exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

async function startServer(flags: ServerFlags, logger: Logger): Promise<TaskgateServer> {
  if (!Number.isInteger(flags.maxTasksPerAgent) || flags.maxTasksPerAgent < 1) {
    throw new CliError('--max-tasks-per-agent must be a positive integer', 2);
  }
  return TaskgateServer.start({
    listen: flags.listen,
    mongodbUri: flags.mongodbUri,
    dataDir: flags.dataDir,
    maxTasksPerAgent: flags.maxTasksPerAgent,
    logger,
  });
}

/** The task environment: the agent's own, without Taskgate's settings (its token among them). */
function taskEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('TASKGATE_')) env[key] = value;
  }
  return env;
}

/** `taskgate server`. */
export function serverCommand(): Command {
  return serverOptions(new Command('server'), { listen: '0.0.0.0:7070', logLevel: 'info' })
    .description('run the control plane')
    .action(async (flags: ServerFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-server' });
      const server = await startServer(flags, logger);
      if ((await server.store.countTokens('admin')) === 0) {
        const file = join(flags.dataDir, 'admin.token');
        const { token } = await savedToken(server.auth, file, 'admin', 'admin');
        process.stderr.write(`First start: admin token written to ${file} (shown once):\n${token}\n`);
      }
      onSignals(logger, () => server.stop());
    });
}

/** `taskgate agent`. */
export function agentCommand(): Command {
  return new Command('agent')
    .description('run an agent: connect to the server and run the tasks of its targets')
    .addOption(new Option('--server <host:port>', 'server address').env('TASKGATE_SERVER').default('127.0.0.1:7070'))
    .addOption(new Option('--token <token>', 'agent token (taskgate agents token --name NAME)').env('TASKGATE_AGENT_TOKEN').makeOptionMandatory())
    .addOption(new Option('--name <name>', 'agent name; targets name it').env('TASKGATE_AGENT_NAME').makeOptionMandatory())
    .addOption(new Option('--work-dir <dir>', 'where task directories and script files live').env('TASKGATE_AGENT_WORK_DIR'))
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('TASKGATE_LOG_LEVEL').default('info'))
    .action(async (flags: { server: string; token: string; name: string; workDir?: string; logLevel: string }) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-agent' });
      const agent = new TaskgateAgent({
        server: flags.server,
        token: flags.token,
        name: flags.name,
        workDir: flags.workDir,
        env: taskEnv(),
        logger,
      });
      agent.on('fatal', () => {
        process.exitCode = 1;
        void agent.stop();
      });
      agent.start();
      onSignals(logger, () => agent.stop());
    });
}

/** `taskgate dev`. */
export function devCommand(): Command {
  return serverOptions(new Command('dev'), { listen: '127.0.0.1:7070', logLevel: 'warn' })
    .description('run a server on the embedded store plus a local agent "local" and a bash target "local"')
    .action(async (flags: ServerFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-dev' });
      const server = await startServer(flags, logger);
      const admin = await savedToken(server.auth, join(flags.dataDir, 'admin.token'), 'admin', 'admin');
      const agentToken = await savedToken(server.auth, join(flags.dataDir, 'agent-local.token'), 'agent', 'local');
      if (!(await server.store.getTarget('local'))) {
        const now = new Date();
        await server.store.insertTarget({ name: 'local', type: 'bash', agent: 'local', message: 'runs on this machine', created: now, updated: now });
      }
      const address = `127.0.0.1:${server.port}`;
      const agent = new TaskgateAgent({
        server: address,
        token: agentToken.token,
        name: 'local',
        workDir: join(flags.dataDir, 'agent'),
        env: taskEnv(),
        logger,
      });
      await new Promise<void>((resolve) => {
        agent.on('state', (state) => state === 'connected' && resolve());
        agent.start();
      });
      const defaultServer = address === '127.0.0.1:7070' ? '' : ` --server ${address}`;
      process.stdout.write(
        [
          `Taskgate dev: server on ${address} (${flags.mongodbUri ? 'MongoDB' : `embedded store in ${flags.dataDir}`}), agent "local" connected.`,
          `Admin token (in ${join(flags.dataDir, 'admin.token')}): ${admin.token}`,
          '',
          'In another shell, from this directory:',
          `  npx taskgate tasks create -t local -s 'echo hello' --wait${defaultServer}`,
          `  npx taskgate tasks list${defaultServer}`,
          '',
          'Ctrl-C stops both.',
          '',
        ].join('\n'),
      );
      onSignals(logger, async () => {
        await agent.stop();
        await server.stop();
      });
    });
}
