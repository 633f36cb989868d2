/**
 * `taskgate server`, `taskgate agent` and `taskgate dev`: the long-running
 * programs. Each command parses its flags, hands them to its program's
 * composition root (server/program.ts, agent/program.ts, cli/dev.ts) and
 * stops it gracefully on SIGINT/SIGTERM. Flag defaults come from the
 * programs' defaults tables, so each lives in one place.
 */
import { Command, Option } from 'commander';
import { agentCommand as agentProgramCommand, agentEnv } from '../../agent/command.js';
import { SERVER_DEFAULTS } from '../../server/options.js';
import { runServer, SERVER_PROGRAM_DEFAULTS, type ServerConfig } from '../../server/program.js';
import { formatRetention, parseRetention } from '../../server/retention.js';
import { ConfigError } from '../../shared/config-error.js';
import { createLogger, LOG_LEVELS, type Logger } from '../../shared/logger.js';
import { onSignals } from '../../shared/signals.js';
import { CliError } from '../client.js';
import { DEV_DEFAULTS, devBanner, runDev } from '../dev.js';

interface ServerFlags {
  listen: string;
  mongodbUri?: string;
  dataDir: string;
  maxTasksPerAgent: number;
  logLevel: string;
  adminEmail: string;
  webhook: string[];
  webhookSecretFile: string[];
  slackWebhook: string[];
  webhooksFile?: string;
  webhookSecret?: string;
  leaseSeconds: number;
  killGraceSeconds: number;
  maxOutputBytes: number;
  secretsKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  agentListen?: string;
  agentClientCa?: string;
  metricsListen?: string;
  httpListen?: string;
  drainSeconds: number;
  logFormat: 'json' | 'pretty';
  rateLimit: number;
  rateBurst: number;
  maxStreamsPerUser: number;
  maxStreamsPerConnection: number;
  idleConnectionSeconds: number;
  maxConnectionAgeSeconds: number;
  handshakeTimeoutSeconds: number;
  maxConnections: number;
  authFailureRate: number;
  /** In ms; 0: off. */
  retain: number;
}

function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a whole number of seconds, not "${value}"`, 2);
    return n;
  };
}

function nonNegativeNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`${name} must be 0 or more, not "${value}"`, 2);
    return n;
  };
}

function nonNegativeCount(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a whole number, 0 or more, not "${value}"`, 2);
    return n;
  };
}

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`${name} must be a positive integer, not "${value}"`, 2);
    return n;
  };
}

/** `--retain`: "30d", "36h", "0" or "off" (server/retention.ts), in ms. */
function retention(value: string): number {
  try {
    return parseRetention(value);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

/** Collects a repeatable option; a value from the environment may hold several, comma-separated. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

/** Runs a program's root; a setting it refuses becomes one line and exit code 2. */
async function start<T>(root: () => T | Promise<T>): Promise<T> {
  try {
    return await root();
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

function serverOptions(cmd: Command, defaults: { listen: string; logLevel: string; logFormat: string; httpListen?: string }): Command {
  const httpListen = new Option('--http-listen <host:port>', 'serve the API to browsers and curl (Connect, gRPC-Web) over HTTP here, with --tls-cert when given; "" turns it off (docs/console.md)').env(
    'TASKGATE_HTTP_LISTEN',
  );
  return cmd
    .addOption(new Option('--tls-cert <file>', 'server certificate (PEM); with --tls-key, serve TLS (default: plaintext, for local development)').env('TASKGATE_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'server private key (PEM)').env('TASKGATE_TLS_KEY'))
    .addOption(new Option('--agent-listen <host:port>', 'also listen here for agents, with mutual TLS (needs --agent-client-ca); agents must then connect here').env('TASKGATE_AGENT_LISTEN'))
    .addOption(new Option('--agent-client-ca <file>', 'CA (PEM) that signs agent client certificates; the certificate CN or a DNS name must be the agent name').env('TASKGATE_AGENT_CLIENT_CA'))
    .addOption(new Option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics').env('TASKGATE_METRICS_LISTEN'))
    .addOption(defaults.httpListen === undefined ? httpListen : httpListen.default(defaults.httpListen))
    .addOption(
      new Option('--drain-seconds <n>', 'on SIGTERM, report NOT_SERVING to health checks this long before refusing new calls')
        .env('TASKGATE_DRAIN_SECONDS')
        .default(SERVER_DEFAULTS.drainMs / 1000)
        .argParser(nonNegativeInt('--drain-seconds')),
    )
    .addOption(new Option('--log-format <format>', 'json (one object per line) or pretty (for a terminal)').env('TASKGATE_LOG_FORMAT').choices(['json', 'pretty']).default(defaults.logFormat))
    .addOption(new Option('--listen <host:port>', 'address to listen on').env('TASKGATE_LISTEN').default(defaults.listen))
    .addOption(new Option('--mongodb-uri <uri>', 'store in MongoDB (default: embedded SQLite in --data-dir)').env('TASKGATE_MONGODB_URI'))
    .addOption(new Option('--data-dir <dir>', 'embedded store and admin token directory').env('TASKGATE_DATA_DIR').default(SERVER_DEFAULTS.dataDir))
    .addOption(
      new Option('--max-tasks-per-agent <n>', 'tasks one agent runs at once')
        .env('TASKGATE_MAX_TASKS_PER_AGENT')
        .default(SERVER_DEFAULTS.maxTasksPerAgent)
        .argParser((v) => Number.parseInt(v, 10)),
    )
    .addOption(new Option('--log-level <level>', 'how much to log').env('TASKGATE_LOG_LEVEL').choices(LOG_LEVELS).default(defaults.logLevel))
    .addOption(
      new Option('--admin-email <email>', 'the admin user created on first start (its token goes to <data-dir>/admin.token)')
        .env('TASKGATE_ADMIN_EMAIL')
        .default(SERVER_PROGRAM_DEFAULTS.adminEmail),
    )
    .addOption(
      new Option('--webhook <url>', 'POST task events here as JSON signed per Standard Webhooks (repeatable; each needs a --webhook-secret-file)')
        .env('TASKGATE_WEBHOOK')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--webhook-secret-file <path>', "file holding a --webhook's own secret (whsec_...): one per --webhook, in the same order")
        .env('TASKGATE_WEBHOOK_SECRET_FILE')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--slack-webhook <url>', 'post task events as Slack messages (repeatable; the URL is a secret that the process list shows: prefer the variable or --webhooks-file)')
        .env('TASKGATE_SLACK_WEBHOOK')
        .argParser(collect)
        .default([]),
    )
    .addOption(new Option('--webhooks-file <path>', 'JSON list of webhooks: url, format (json or slack), secretFile or secret, name (docs/webhooks.md)').env('TASKGATE_WEBHOOKS_FILE'))
    // Refused with what to use instead (server/program.ts): one key for every hook, on the command line.
    .addOption(new Option('--webhook-secret <secret>').env('TASKGATE_WEBHOOK_SECRET').hideHelp())
    .addOption(new Option('--secrets-key-file <path>', 'file with the 32-byte key (hex or base64) that encrypts stored secrets').env('TASKGATE_SECRETS_KEY_FILE'))
    .addOption(
      new Option('--lease-seconds <n>', 'an agent away longer than this has its running tasks failed ("agent lost")')
        .env('TASKGATE_LEASE_SECONDS')
        .default(SERVER_DEFAULTS.leaseMs / 1000)
        .argParser(positiveInt('--lease-seconds')),
    )
    .addOption(
      new Option('--kill-grace-seconds <n>', 'between SIGTERM and SIGKILL when a task is killed or times out')
        .env('TASKGATE_KILL_GRACE_SECONDS')
        .default(SERVER_DEFAULTS.killGraceMs / 1000)
        .argParser(positiveInt('--kill-grace-seconds')),
    )
    .addOption(
      new Option('--max-output-bytes <n>', 'output kept per task; the rest is dropped with a marker')
        .env('TASKGATE_MAX_OUTPUT_BYTES')
        .default(SERVER_DEFAULTS.maxOutputBytes)
        .argParser(positiveInt('--max-output-bytes')),
    )
    .addOption(
      new Option('--rate-limit <calls>', 'calls per second each user may make on this server; 0: no limit')
        .env('TASKGATE_RATE_LIMIT')
        .default(SERVER_DEFAULTS.callsPerSecond)
        .argParser(nonNegativeNumber('--rate-limit')),
    )
    .addOption(
      new Option('--rate-burst <calls>', 'calls a user may make at once above --rate-limit')
        .env('TASKGATE_RATE_BURST')
        .default(SERVER_DEFAULTS.callBurst)
        .argParser(positiveInt('--rate-burst')),
    )
    .addOption(
      new Option('--max-streams-per-user <n>', 'open log followers and watchers per user on this server; 0: no limit')
        .env('TASKGATE_MAX_STREAMS_PER_USER')
        .default(SERVER_DEFAULTS.streamsPerUser)
        .argParser(nonNegativeNumber('--max-streams-per-user')),
    )
    .addOption(
      new Option('--max-streams-per-connection <n>', 'concurrent calls per HTTP/2 connection')
        .env('TASKGATE_MAX_STREAMS_PER_CONNECTION')
        .default(SERVER_DEFAULTS.streamsPerConnection)
        .argParser(positiveInt('--max-streams-per-connection')),
    )
    .addOption(
      new Option('--idle-connection-seconds <n>', 'close a connection with no call for this long; 0: never')
        .env('TASKGATE_IDLE_CONNECTION_SECONDS')
        .default(SERVER_DEFAULTS.idleConnectionMs / 1000)
        .argParser(nonNegativeInt('--idle-connection-seconds')),
    )
    .addOption(
      new Option('--max-connection-age-seconds <n>', 'ask clients to reconnect after this long (spreads load over replicas); 0: never')
        .env('TASKGATE_MAX_CONNECTION_AGE_SECONDS')
        .default(SERVER_DEFAULTS.maxConnectionAgeMs / 1000)
        .argParser(nonNegativeInt('--max-connection-age-seconds')),
    )
    .addOption(
      new Option('--handshake-timeout-seconds <n>', 'close a connection that has not finished its TLS handshake, or then sent HTTP/2, within this long')
        .env('TASKGATE_HANDSHAKE_TIMEOUT_SECONDS')
        .default(SERVER_DEFAULTS.handshakeTimeoutMs / 1000)
        .argParser(positiveInt('--handshake-timeout-seconds')),
    )
    .addOption(
      new Option('--max-connections <n>', 'open connections per listening address (each needs a file descriptor); 0: no cap')
        .env('TASKGATE_MAX_CONNECTIONS')
        .default(SERVER_DEFAULTS.maxConnections)
        .argParser(nonNegativeCount('--max-connections')),
    )
    .addOption(
      new Option('--auth-failure-rate <n>', 'failed authentications per second per client address before its unverified tokens are refused unchecked; 0: no limit')
        .env('TASKGATE_AUTH_FAILURE_RATE')
        .default(SERVER_DEFAULTS.authFailuresPerSecond)
        .argParser(nonNegativeNumber('--auth-failure-rate')),
    )
    .addOption(
      new Option('--retain <duration>', 'delete tasks that ended longer ago than this, with their output, in the background (30d, 36h; at least 1d); audit events are kept; 0 or off: keep every task (docs/operations.md#retention)')
        .env('TASKGATE_RETAIN')
        .default(SERVER_DEFAULTS.retainMs, formatRetention(SERVER_DEFAULTS.retainMs))
        .argParser(retention),
    );
}

/** The server program's config from the flags (seconds become ms). */
function serverConfig(flags: ServerFlags, logger: Logger): ServerConfig {
  return {
    listen: flags.listen,
    mongodbUri: flags.mongodbUri,
    dataDir: flags.dataDir,
    adminEmail: flags.adminEmail,
    maxTasksPerAgent: flags.maxTasksPerAgent,
    leaseMs: flags.leaseSeconds * 1000,
    killGraceMs: flags.killGraceSeconds * 1000,
    maxOutputBytes: flags.maxOutputBytes,
    secretsKeyFile: flags.secretsKeyFile,
    webhookUrls: flags.webhook,
    webhookSecretFiles: flags.webhookSecretFile,
    slackWebhookUrls: flags.slackWebhook,
    webhooksFile: flags.webhooksFile,
    webhookSecret: flags.webhookSecret,
    tlsCertFile: flags.tlsCert,
    tlsKeyFile: flags.tlsKey,
    agentListen: flags.agentListen,
    agentClientCaFile: flags.agentClientCa,
    metricsListen: flags.metricsListen,
    httpListen: flags.httpListen || undefined,
    drainMs: flags.drainSeconds * 1000,
    callsPerSecond: flags.rateLimit,
    callBurst: flags.rateBurst,
    streamsPerUser: flags.maxStreamsPerUser,
    streamsPerConnection: flags.maxStreamsPerConnection,
    idleConnectionMs: flags.idleConnectionSeconds * 1000,
    maxConnectionAgeMs: flags.maxConnectionAgeSeconds * 1000,
    handshakeTimeoutMs: flags.handshakeTimeoutSeconds * 1000,
    maxConnections: flags.maxConnections,
    authFailuresPerSecond: flags.authFailureRate,
    retainMs: flags.retain,
    logger,
  };
}

/** Warns when a secret was given on the command line, where every local user can read it (/proc/PID/cmdline). */
function warnSecretsOnCommandLine(cmd: Command, logger: Logger): void {
  if (cmd.getOptionValueSource('slackWebhook') === 'cli') {
    logger.warn('--slack-webhook: a Slack URL is its own secret and the process list shows it to every local user; prefer TASKGATE_SLACK_WEBHOOK or --webhooks-file');
  }
}

/** `taskgate server`. */
export function serverCommand(): Command {
  return serverOptions(new Command('server'), SERVER_PROGRAM_DEFAULTS)
    .description('run the control plane')
    .action(async (flags: ServerFlags, cmd: Command) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-server', format: flags.logFormat });
      warnSecretsOnCommandLine(cmd, logger);
      const started = start(() => runServer(serverConfig(flags, logger)));
      // Listening for signals before anything starts: a SIGTERM during start-up stops it once started.
      onSignals(logger, async () => (await started).stop());
      const server = await started;
      if (server.firstStart) {
        // The token itself is never printed: service logs keep stderr.
        const { email, tokenFile } = server.firstStart;
        process.stderr.write(`First start: admin user ${email}, token written to ${tokenFile} (mode 0600; read it there: TASKGATE_TOKEN=$(cat ${tokenFile}))\n`);
      }
    });
}

/** `taskgate agent`: the agent's command line (agent/command.ts), shared with the standalone `taskgate-agent`. */
export function agentCommand(): Command {
  return agentProgramCommand('agent');
}

/** `taskgate dev`. */
export function devCommand(): Command {
  return serverOptions(new Command('dev'), DEV_DEFAULTS)
    .description('run a server on the embedded store plus a local agent "local" and a bash target "local"')
    .action(async (flags: ServerFlags, cmd: Command) => {
      const logger = createLogger({ level: flags.logLevel, name: 'taskgate-dev', format: flags.logFormat });
      warnSecretsOnCommandLine(cmd, logger);
      const config = { ...serverConfig(flags, logger), agentEnv: agentEnv() };
      const started = start(() => runDev(config));
      onSignals(logger, async () => (await started).stop());
      process.stdout.write(devBanner(config, await started));
    });
}
