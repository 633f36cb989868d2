/**
 * The `taskgate server` program's composition root. From a config that
 * mirrors its command line (file names, not their contents) it reads the
 * key and certificate files, opens the store, starts the control plane and,
 * on a first start (no users yet), creates the admin user and saves its
 * token in DATA_DIR/admin.token (mode 0600). `taskgate dev` (cli/dev.ts)
 * builds on {@link startServer} and {@link keepAdminToken}.
 *
 * Settings that cannot work are refused with a {@link ConfigError} before
 * anything starts; the messages name the flags, as the config mirrors them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writePrivateFile } from '../shared/private-files.js';
import { join } from 'node:path';
import { ConfigError } from '../shared/config-error.js';
import type { Logger } from '../shared/logger.js';
import type { ServerOptions } from './options.js';
import { SecretBox } from './secret-box.js';
import { TaskgateServer } from './server.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';
import type { WebhookConfig, WebhookOptions } from './webhooks.js';

/** Defaults of the server program beyond the server's own (SERVER_DEFAULTS in server/options.ts). */
export const SERVER_PROGRAM_DEFAULTS = {
  /** Every interface: the server program is reached from other hosts (the library default is loopback). */
  listen: '0.0.0.0:7070',
  adminEmail: 'admin@localhost',
  logLevel: 'info',
  logFormat: 'json',
} as const;

/** What the server program is started with: server options, with files where the command line names files. */
export interface ServerConfig
  extends Pick<
    ServerOptions,
    | 'listen'
    | 'mongodbUri'
    | 'heartbeatIntervalMs'
    | 'maxTasksPerAgent'
    | 'helloTimeoutMs'
    | 'leaseMs'
    | 'killGraceMs'
    | 'maxOutputBytes'
    | 'pollMs'
    | 'shutdownTimeoutMs'
    | 'eventSweepMs'
    | 'metricsListen'
    | 'drainMs'
    | 'callsPerSecond'
    | 'callBurst'
    | 'streamsPerUser'
    | 'streamsPerConnection'
    | 'idleConnectionMs'
    | 'maxConnectionAgeMs'
  > {
  /** Embedded store and admin token directory. */
  dataDir: string;
  /** The admin user created on first start. */
  adminEmail: string;
  /** File with the 32-byte key (hex or base64) that encrypts stored secrets. */
  secretsKeyFile?: string;
  /** URLs that get signed JSON task events. */
  webhookUrls: string[];
  /** Slack incoming-webhook URLs that get task events as messages. */
  slackWebhookUrls: string[];
  /** HMAC-SHA256 key that signs webhook bodies (or `webhookSecretFile`). */
  webhookSecret?: string;
  webhookSecretFile?: string;
  /** PEM certificate and key of the listen address (both or neither). */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Mutual TLS for agents: their address and the CA (PEM file) of their certificates (both or neither). */
  agentListen?: string;
  agentClientCaFile?: string;
  logger: Logger;
}

/** A started server with the store its root opened. */
export interface RunningServer {
  readonly server: TaskgateServer;
  readonly store: Store;
  /** Stops the server, then closes the store. */
  stop(): Promise<void>;
}

/** The running server program. */
export interface ServerProgram {
  readonly server: TaskgateServer;
  /** Set on a first start: the admin user created and the token saved for it (shown once). */
  readonly firstStart: { email: string; tokenFile: string; token: string } | null;
  /** Stops the server, then closes the store. */
  stop(): Promise<void>;
}

/** Server options from the config: the files read, each setting checked. */
export function serverOptions(config: ServerConfig): ServerOptions {
  if (config.maxTasksPerAgent !== undefined && (!Number.isInteger(config.maxTasksPerAgent) || config.maxTasksPerAgent < 1)) {
    throw new ConfigError('--max-tasks-per-agent must be a positive integer');
  }
  return {
    listen: config.listen,
    mongodbUri: config.mongodbUri,
    dataDir: config.dataDir,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    maxTasksPerAgent: config.maxTasksPerAgent,
    helloTimeoutMs: config.helloTimeoutMs,
    leaseMs: config.leaseMs,
    killGraceMs: config.killGraceMs,
    maxOutputBytes: config.maxOutputBytes,
    pollMs: config.pollMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    eventSweepMs: config.eventSweepMs,
    metricsListen: config.metricsListen,
    drainMs: config.drainMs,
    callsPerSecond: config.callsPerSecond,
    callBurst: config.callBurst,
    streamsPerUser: config.streamsPerUser,
    streamsPerConnection: config.streamsPerConnection,
    idleConnectionMs: config.idleConnectionMs,
    maxConnectionAgeMs: config.maxConnectionAgeMs,
    logger: config.logger,
    secretsKey: config.secretsKeyFile ? readSecretsKey(config.secretsKeyFile) : undefined,
    webhooks: webhookOptions(config),
    tls: tlsOptions(config),
    agentTls: config.agentListen || config.agentClientCaFile ? agentTlsOptions(config) : undefined,
  };
}

/** Opens the store, starts the server over it; closes the store again if the start fails. */
export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const options = serverOptions(config);
  const store = await openStore(options);
  let server: TaskgateServer;
  try {
    server = await TaskgateServer.start({ ...options, store });
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return {
    server,
    store,
    async stop() {
      await server.stop();
      await store.close();
    },
  };
}

/** `taskgate server`: starts the control plane; on a first start creates the admin and saves its token. */
export async function runServer(config: ServerConfig): Promise<ServerProgram> {
  const running = await startServer(config);
  try {
    let firstStart: ServerProgram['firstStart'] = null;
    if ((await running.store.countUsers()) === 0) {
      const tokenFile = join(config.dataDir, 'admin.token');
      const { token } = await keepAdminToken(running.server, tokenFile, config.adminEmail);
      firstStart = { email: config.adminEmail, tokenFile, token };
    }
    return { server: running.server, firstStart, stop: () => running.stop() };
  } catch (err) {
    await running.stop().catch(() => undefined);
    throw err;
  }
}

/**
 * Makes sure the admin user `email` exists and that `file` holds a token of
 * theirs, issuing (and auditing) a new one when the file is missing or stale.
 */
export async function keepAdminToken(server: TaskgateServer, file: string, email: string): Promise<{ token: string; fresh: boolean }> {
  await server.ensureAdmin(email);
  return keepToken(file, (token) => server.verifiesAs(token, { admin: email }), () => server.issueUserToken(email, 'admin.token'));
}

/**
 * Returns the token saved in `file` when `valid` accepts it; otherwise gets a
 * new one from `issue` and saves it (mode 0600, the directory 0700 when it
 * has to be made). `fresh` says which.
 */
export async function keepToken(
  file: string,
  valid: (token: string) => Promise<boolean>,
  issue: () => Promise<string>,
): Promise<{ token: string; fresh: boolean }> {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (await valid(token)) return { token, fresh: false };
  }
  const token = await issue();
  // With MongoDB nothing else creates the data directory.
  writePrivateFile(file, `${token}\n`);
  return { token, fresh: true };
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** The stored-secrets key from its file. */
function readSecretsKey(file: string): Buffer {
  try {
    return SecretBox.parseKey(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--secrets-key-file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function webhookOptions(config: ServerConfig): WebhookOptions {
  const hooks: WebhookConfig[] = [
    ...config.webhookUrls.map((url) => ({ url, format: 'json' as const })),
    ...config.slackWebhookUrls.map((url) => ({ url, format: 'slack' as const })),
  ];
  for (const hook of hooks) {
    if (!URL.canParse(hook.url) || !/^https?:$/.test(new URL(hook.url).protocol)) {
      throw new ConfigError(`webhook "${hook.url}" is not an http(s) URL`);
    }
  }
  let secret = config.webhookSecret ?? '';
  // A file that cannot be read is not a ConfigError: its message stays the system's own.
  if (config.webhookSecretFile) secret = readFileSync(config.webhookSecretFile, 'utf8').trim();
  if (config.webhookUrls.length > 0 && secret === '') {
    throw new ConfigError('--webhook needs --webhook-secret or --webhook-secret-file to sign its requests');
  }
  return { hooks, secret };
}

function tlsOptions(config: ServerConfig): ServerOptions['tls'] {
  if (!config.tlsCertFile && !config.tlsKeyFile) return undefined;
  if (!config.tlsCertFile || !config.tlsKeyFile) throw new ConfigError('TLS needs both --tls-cert and --tls-key');
  return { cert: readPem(config.tlsCertFile, '--tls-cert'), key: readPem(config.tlsKeyFile, '--tls-key') };
}

function agentTlsOptions(config: ServerConfig): ServerOptions['agentTls'] {
  if (!config.agentListen || !config.agentClientCaFile) throw new ConfigError('mutual TLS for agents needs both --agent-listen and --agent-client-ca');
  if (!config.tlsCertFile) throw new ConfigError('mutual TLS for agents needs the server certificate: --tls-cert and --tls-key');
  return { listen: config.agentListen, clientCa: readPem(config.agentClientCaFile, '--agent-client-ca') };
}
