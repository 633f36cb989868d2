/**
 * `taskgate server`, `taskgate agent` and `taskgate dev`: the long-running
 * programs. Each stops gracefully on SIGINT/SIGTERM.
 */
import { Command, Option } from 'commander';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { TaskgateAgent } from '../../agent/agent.js';
import { checkPassedNames } from '../../agent/task-env.js';
import { parseIdRange, type IdRange } from '../../agent/task-users.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { ADMIN_GROUP } from '../../server/access.js';
import { SecretBox } from '../../server/secret-box.js';
import { TaskgateServer } from '../../server/server.js';
import type { WebhookConfig } from '../../server/webhooks.js';
import { channelCredentials, usesTls, type ClientTls } from '../../shared/tls.js';
import { CliError } from '../client.js';

interface ServerFlags {
  listen: string;
  mongodbUri?: string;
  dataDir: string;
  maxTasksPerAgent: number;
  logLevel: string;
  adminEmail: string;
  webhook: string[];
  slackWebhook: string[];
  webhookSecret?: string;
  webhookSecretFile?: string;
  leaseSeconds: number;
  killGraceSeconds: number;
  maxOutputBytes: number;
  secretsKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  agentListen?: string;
  agentClientCa?: string;
  metricsListen?: string;
  drainSeconds: number;
  logFormat: 'json' | 'pretty';
}

function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a whole number of seconds, not "${value}"`, 2);
    return n;
  };
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CliError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
  }
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a positive integer, not "${value}"`, 2);
    return n;
  };
}

/** Collects a repeatable option; a value from the environment may hold several, comma-separated. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

function serverOptions(cmd: Command, defaults: { listen: string; logLevel: string; logFormat: string }): Command {
  return cmd
    .addOption(new Option('--tls-cert <file>', 'server certificate (PEM); with --tls-key, serve TLS (default: plaintext, for local development)').env('TASKGATE_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'server private key (PEM)').env('TASKGATE_TLS_KEY'))
    .addOption(new Option('--agent-listen <host:port>', 'also listen here for agents, with mutual TLS (needs --agent-client-ca); agents must then connect here').env('TASKGATE_AGENT_LISTEN'))
    .addOption(new Option('--agent-client-ca <file>', 'CA (PEM) that signs agent client certificates; the certificate CN or a DNS name must be the agent name').env('TASKGATE_AGENT_CLIENT_CA'))
    .addOption(new Option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics').env('TASKGATE_METRICS_LISTEN'))
    .addOption(
      new Option('--drain-seconds <n>', 'on SIGTERM, report NOT_SERVING to health checks this long before refusing new calls')
        .env('TASKGATE_DRAIN_SECONDS')
        .default(0)
        .argParser(nonNegativeInt('--drain-seconds')),
    )
    .addOption(new Option('--log-format <format>', 'json (one object per line) or pretty (for a terminal)').env('TASKGATE_LOG_FORMAT').choices(['json', 'pretty']).default(defaults.logFormat))
    .addOption(new Option('--listen <host:port>', 'address to listen on').env('TASKGATE_LISTEN').default(defaults.listen))
    .addOption(new Option('--mongodb-uri <uri>', 'store in MongoDB (default: embedded SQLite in --data-dir)').env('TASKGATE_MONGODB_URI'))
    .addOption(new Option('--data-dir <dir>', 'embedded store and admin token directory').env('TASKGATE_DATA_DIR').default('.taskgate'))
    .addOption(
      new Option('--max-tasks-per-agent <n>', 'tasks one agent runs at once')
        .env('TASKGATE_MAX_TASKS_PER_AGENT')
        .default(30)
        .argParser((v) => Number.parseInt(v, 10)),
    )
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('TASKGATE_LOG_LEVEL').default(defaults.logLevel))
    .addOption(
      new Option('--admin-email <email>', 'the admin user created on first start (its token goes to <data-dir>/admin.token)')
        .env('TASKGATE_ADMIN_EMAIL')
        .default('admin@localhost'),
    )
    .addOption(new Option('--webhook <url>', 'POST signed JSON task events here (repeatable)').env('TASKGATE_WEBHOOK').argParser(collect).default([]))
    .addOption(
      new Option('--slack-webhook <url>', 'post task events as Slack incoming-webhook messages (repeatable)')
        .env('TASKGATE_SLACK_WEBHOOK')
        .argParser(collect)
        .default([]),
    )
    .addOption(new Option('--webhook-secret <secret>', 'HMAC-SHA256 key that signs webhook bodies').env('TASKGATE_WEBHOOK_SECRET'))
    .addOption(new Option('--webhook-secret-file <path>', 'read the webhook key from a file').env('TASKGATE_WEBHOOK_SECRET_FILE'))
    .addOption(new Option('--secrets-key-file <path>', 'file with the 32-byte key (hex or base64) that encrypts stored secrets').env('TASKGATE_SECRETS_KEY_FILE'))
    .addOption(
      new Option('--lease-seconds <n>', 'an agent away longer than this has its running tasks failed ("agent lost")')
        .env('TASKGATE_LEASE_SECONDS')
        .default(60)
        .argParser(positiveInt('--lease-seconds')),
    )
    .addOption(
      new Option('--kill-grace-seconds <n>', 'between SIGTERM and SIGKILL when a task is killed or times out')
        .env('TASKGATE_KILL_GRACE_SECONDS')
        .default(10)
        .argParser(positiveInt('--kill-grace-seconds')),
    )
    .addOption(
      new Option('--max-output-bytes <n>', 'output kept per task; the rest is dropped with a marker')
        .env('TASKGATE_MAX_OUTPUT_BYTES')
        .default(1024 ** 3)
        .argParser(positiveInt('--max-output-bytes')),
    );
}

/**
 * Makes sure a token saved in `file` is valid for `who` (a user email or an
 * agent name), issuing and saving a new one (mode 0600) when the file is
 * missing or stale. Returns the token and whether it is new.
 */
async function savedToken(server: TaskgateServer, file: string, kind: 'user' | 'agent', who: string): Promise<{ token: string; fresh: boolean }> {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    const principal = await server.auth.verify(token).catch(() => undefined);
    const valid =
      kind === 'user'
        ? principal?.kind === 'user' && principal.email === who && principal.groups.includes(ADMIN_GROUP)
        : principal?.kind === 'agent' && principal.name === who;
    if (valid) return { token, fresh: false };
  }
  const secret = kind === 'user' ? await server.issueUserToken(who, 'admin.token') : (await server.auth.issue('agent', who)).secret;
  // With MongoDB nothing else creates the data directory.
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { token: secret, fresh: true };
}

/** The stored-secrets key from its file. */
function readSecretsKey(file: string): Buffer {
  try {
    return SecretBox.parseKey(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`--secrets-key-file ${file}: ${(err as Error).message}`, 2);
  }
}

/** Webhook settings from the flags. */
function webhookOptions(flags: ServerFlags): { hooks: WebhookConfig[]; secret: string } {
  const hooks: WebhookConfig[] = [
    ...flags.webhook.map((url) => ({ url, format: 'json' as const })),
    ...flags.slackWebhook.map((url) => ({ url, format: 'slack' as const })),
  ];
  for (const hook of hooks) {
    if (!URL.canParse(hook.url) || !/^https?:$/.test(new URL(hook.url).protocol)) {
      throw new CliError(`webhook "${hook.url}" is not an http(s) URL`, 2);
    }
  }
  let secret = flags.webhookSecret ?? '';
  if (flags.webhookSecretFile) secret = readFileSync(flags.webhookSecretFile, 'utf8').trim();
  if (flags.webhook.length > 0 && secret === '') {
    throw new CliError('--webhook needs --webhook-secret or --webhook-secret-file to sign its requests', 2);
  }
  return { hooks, secret };
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
    leaseMs: flags.leaseSeconds * 1000,
    killGraceMs: flags.killGraceSeconds * 1000,
    maxOutputBytes: flags.maxOutputBytes,
    secretsKey: flags.secretsKeyFile ? readSecretsKey(flags.secretsKeyFile) : undefined,
    webhooks: webhookOptions(flags),
    tls: tlsOptions(flags),
    agentTls: flags.agentListen || flags.agentClientCa ? agentTlsOptions(flags) : undefined,
    metricsListen: flags.metricsListen,
    drainMs: flags.drainSeconds * 1000,
    logger,
  });
}

function tlsOptions(flags: ServerFlags): { cert: Buffer; key: Buffer } | undefined {
  if (!flags.tlsCert && !flags.tlsKey) return undefined;
  if (!flags.tlsCert || !flags.tlsKey) throw new CliError('TLS needs both --tls-cert and --tls-key', 2);
  return { cert: readPem(flags.tlsCert, '--tls-cert'), key: readPem(flags.tlsKey, '--tls-key') };
}

function agentTlsOptions(flags: ServerFlags): { listen: string; clientCa: Buffer } {
  if (!flags.agentListen || !flags.agentClientCa) throw new CliError('mutual TLS for agents needs both --agent-listen and --agent-client-ca', 2);
  if (!flags.tlsCert) throw new CliError('mutual TLS for agents needs the server certificate: --tls-cert and --tls-key', 2);
  return { listen: flags.agentListen, clientCa: readPem(flags.agentClientCa, '--agent-client-ca') };
}

/**
 * The agent's environment as the agent sees it (the env secret provider
 * reads it; agent/task-env.ts passes only an allowlist on to tasks), without
 * Taskgate's own settings, its token among them.
 */
function agentEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('TASKGATE_')) env[key] = value;
  }
  return env;
}

/**
 * The agent's token, from --token-file, --token or TASKGATE_AGENT_TOKEN,
 * trimmed; the variable is removed from the process environment once read.
 * A token on the command line is readable by every local user in
 * /proc/PID/cmdline, so that is warned about.
 */
function agentToken(flags: AgentFlags, logger: Logger): string {
  const fromEnv = process.env.TASKGATE_AGENT_TOKEN;
  delete process.env.TASKGATE_AGENT_TOKEN;
  let token: string;
  if (flags.tokenFile) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8');
    } catch (err) {
      throw new CliError(`--token-file ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
    }
  } else if (flags.token !== undefined) {
    token = flags.token;
    if (flags.token !== fromEnv) {
      logger.warn("the agent token was given with --token, where every local user can read it (/proc/PID/cmdline); use --token-file");
    }
  } else {
    throw new CliError('the agent needs its token: --token-file FILE (or TASKGATE_AGENT_TOKEN)', 2);
  }
  token = token.trim();
  if (token === '') throw new CliError(`the agent token${flags.tokenFile ? ` in ${flags.tokenFile}` : ''} is empty`, 2);
  if (/\s/.test(token)) throw new CliError('the agent token contains white space; it must be the one line `taskgate agents token` printed', 2);
  return token;
}

/** Options of the agent's task isolation from its flags. */
function isolationOptions(flags: AgentFlags): { isolate?: boolean; taskIds?: IdRange; passEnv: string[] } {
  let passEnv: string[];
  try {
    passEnv = checkPassedNames(flags.taskEnv);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  if (flags.taskUids === 'off') return { isolate: false, passEnv };
  try {
    return { taskIds: parseIdRange(flags.taskUids), passEnv };
  } catch (err) {
    throw new CliError(`--task-uids: ${(err as Error).message}`, 2);
  }
}

/** Where `taskgate dev` keeps its agent's task directories: outside the data dir, which holds the admin token. */
function devWorkDir(dataDir: string): string {
  const id = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 12);
  return join(tmpdir(), `taskgate-dev-agent-${id}`);
}

/** `taskgate server`. */
export function serverCommand(): Command {
  return serverOptions(new Command('server'), { listen: '0.0.0.0:7070', logLevel: 'info', logFormat: 'json' })
    .description('run the control plane')
    .action(async (flags: ServerFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-server', format: flags.logFormat });
      const server = await startServer(flags, logger);
      if ((await server.store.countUsers()) === 0) {
        await server.ensureAdmin(flags.adminEmail);
        const file = join(flags.dataDir, 'admin.token');
        const { token } = await savedToken(server, file, 'user', flags.adminEmail);
        process.stderr.write(`First start: admin user ${flags.adminEmail}, token written to ${file} (shown once):\n${token}\n`);
      }
      onSignals(logger, () => server.stop());
    });
}

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

/** `taskgate agent`. */
export function agentCommand(): Command {
  return new Command('agent')
    .description('run an agent: connect to the server and run the tasks of its targets')
    .addOption(new Option('--server <host:port>', 'server address').env('TASKGATE_SERVER').default('127.0.0.1:7070'))
    .addOption(new Option('--token-file <file>', 'file holding the agent token (taskgate agents token --name NAME)').env('TASKGATE_AGENT_TOKEN_FILE'))
    .addOption(new Option('--token <token>', 'the agent token itself (visible to local users in the process list: prefer --token-file)').env('TASKGATE_AGENT_TOKEN'))
    .addOption(
      new Option('--task-uids <first-last|off>', 'when the agent runs as root, each task runs as a uid/gid of its own from this range; off: as the agent\'s user')
        .env('TASKGATE_TASK_UIDS')
        .default('61000-61999'),
    )
    .addOption(new Option('--task-env <name>', 'also pass this variable (or PREFIX*) of the agent\'s environment to tasks (repeatable)').env('TASKGATE_TASK_ENV').argParser(collect).default([]))
    .addOption(new Option('--name <name>', 'agent name; targets name it').env('TASKGATE_AGENT_NAME').makeOptionMandatory())
    .addOption(new Option('--work-dir <dir>', 'where task directories and script files live').env('TASKGATE_AGENT_WORK_DIR'))
    .addOption(
      new Option('--drain-seconds <n>', 'on SIGTERM/SIGINT, how long running tasks may finish before they are killed')
        .env('TASKGATE_AGENT_DRAIN_SECONDS')
        .default(60)
        .argParser(positiveInt('--drain-seconds')),
    )
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug').env('TASKGATE_LOG_LEVEL').default('info'))
    .addOption(new Option('--log-format <format>', 'json (one object per line) or pretty (for a terminal)').env('TASKGATE_LOG_FORMAT').choices(['json', 'pretty']).default('json'))
    .addOption(new Option('--tls', 'connect with TLS, verifying the server against the system roots').env('TASKGATE_TLS'))
    .addOption(new Option('--tls-ca <file>', 'connect with TLS, verifying the server against this CA (PEM)').env('TASKGATE_TLS_CA'))
    .addOption(new Option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS; its CN or a DNS name is the agent name').env('TASKGATE_AGENT_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'client certificate key (PEM)').env('TASKGATE_AGENT_TLS_KEY'))
    .action(async (flags: AgentFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-agent', format: flags.logFormat });
      let credentials;
      try {
        credentials = channelCredentials(flags);
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
      if (!usesTls(flags)) logger.warn({ server: flags.server }, 'TLS is off: the agent token and task output cross the network in plaintext; use --tls-ca beyond local development');
      const agent = new TaskgateAgent({
        server: flags.server,
        token: agentToken(flags, logger),
        name: flags.name,
        workDir: flags.workDir,
        env: agentEnv(),
        ...isolationOptions(flags),
        credentials,
        logger,
      });
      agent.run().catch((err: unknown) => {
        process.stderr.write(`taskgate agent: ${(err as Error).message}\n`);
        process.exit(1);
      });
      // A second signal exits at once (onSignals); the server then settles
      // the running tasks ("agent restarted" or "agent lost").
      onSignals(logger, () => agent.drain(flags.drainSeconds * 1000));
    });
}

/** `taskgate dev`. */
export function devCommand(): Command {
  return serverOptions(new Command('dev'), { listen: '127.0.0.1:7070', logLevel: 'warn', logFormat: 'pretty' })
    .description('run a server on the embedded store plus a local agent "local" and a bash target "local"')
    .action(async (flags: ServerFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-dev', format: flags.logFormat });
      // Stored secrets work out of the box in dev: a key kept in the data directory.
      if (!flags.secretsKeyFile) {
        const keyFile = join(flags.dataDir, 'secrets.key');
        if (!existsSync(keyFile)) {
          mkdirSync(flags.dataDir, { recursive: true, mode: 0o700 });
          writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
        }
        flags.secretsKeyFile = keyFile;
      }
      const server = await startServer(flags, logger);
      await server.ensureAdmin(flags.adminEmail);
      const admin = await savedToken(server, join(flags.dataDir, 'admin.token'), 'user', flags.adminEmail);
      const localAgentToken = await savedToken(server, join(flags.dataDir, 'agent-local.token'), 'agent', 'local');
      if (!(await server.store.getTarget('local'))) {
        const now = new Date();
        await server.store.insertTarget({
          name: 'local',
          type: 'bash',
          agent: 'local',
          message: 'runs on this machine',
          review: 'none',
          reviewers: [],
          groups: [],
          allowTypeOverride: true,
          active: true,
          timeoutSeconds: 0,
          redact: [],
          customDetectors: [],
          secretProvider: '',
          secretPath: '',
          secretMapping: {},
          created: now,
          updated: now,
        });
      }
      const address = `127.0.0.1:${server.port}`;
      const agent = new TaskgateAgent({
        server: address,
        token: localAgentToken.token,
        name: 'local',
        workDir: devWorkDir(flags.dataDir),
        env: agentEnv(),
        logger,
      });
      agent.start();
      await agent.connected();
      const defaultServer = address === '127.0.0.1:7070' ? '' : ` --server ${address}`;
      process.stdout.write(
        [
          `Taskgate dev: server on ${address} (${flags.mongodbUri ? 'MongoDB' : `embedded store in ${flags.dataDir}`}), agent "local" connected.`,
          `Admin ${flags.adminEmail}, token (in ${join(flags.dataDir, 'admin.token')}): ${admin.token}`,
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
