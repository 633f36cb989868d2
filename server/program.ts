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
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writePrivateFile } from '../shared/private-files.js';
import { ConfigError } from '../shared/config-error.js';
import type { Logger } from '../shared/logger.js';
import type { ServerOptions } from './options.js';
import { SecretBox } from './secret-box.js';
import { TaskgateServer } from './server.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';
import { checkWebhooks, type WebhookConfig, type WebhookOptions } from './webhooks.js';

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
    | 'httpListen'
    | 'drainMs'
    | 'callsPerSecond'
    | 'callBurst'
    | 'streamsPerUser'
    | 'streamsPerConnection'
    | 'idleConnectionMs'
    | 'maxConnectionAgeMs'
    | 'handshakeTimeoutMs'
    | 'maxConnections'
    | 'authFailuresPerSecond'
    | 'retainMs'
  > {
  /** Embedded store and admin token directory. */
  dataDir: string;
  /** The admin user created on first start. */
  adminEmail: string;
  /** File with the 32-byte key (hex or base64) that encrypts stored secrets. */
  secretsKeyFile?: string;
  /** URLs that get Standard Webhooks signed JSON task events; `webhookSecretFiles[i]` holds the i-th one's secret. */
  webhookUrls: string[];
  /** Files holding each webhook's own secret (`whsec_` + base64), in the order of `webhookUrls`. */
  webhookSecretFiles: string[];
  /** Slack incoming-webhook URLs that get task events as messages (unsigned: the URL is the secret). */
  slackWebhookUrls: string[];
  /** A JSON file listing webhooks: `[{"url", "format"?, "secretFile"? | "secret"?, "name"?}]` (docs/webhooks.md). */
  webhooksFile?: string;
  /** No longer accepted (one key for every hook, readable in the process list); given, it is refused saying what to use. */
  webhookSecret?: string;
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
  /** Set on a first start: the admin user created and the file its token was saved in (never printed). */
  readonly firstStart: { email: string; tokenFile: string } | null;
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
    httpListen: config.httpListen,
    drainMs: config.drainMs,
    callsPerSecond: config.callsPerSecond,
    callBurst: config.callBurst,
    streamsPerUser: config.streamsPerUser,
    streamsPerConnection: config.streamsPerConnection,
    idleConnectionMs: config.idleConnectionMs,
    maxConnectionAgeMs: config.maxConnectionAgeMs,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    maxConnections: config.maxConnections,
    authFailuresPerSecond: config.authFailuresPerSecond,
    retainMs: config.retainMs,
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
      await keepAdminToken(running.server, tokenFile, config.adminEmail);
      firstStart = { email: config.adminEmail, tokenFile };
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
  if (config.webhookSecret !== undefined) {
    throw new ConfigError(
      '--webhook-secret (TASKGATE_WEBHOOK_SECRET) is no longer accepted: give each --webhook a secret of its own in a file, --webhook-secret-file FILE after each --webhook, or list hooks in --webhooks-file (docs/webhooks.md)',
    );
  }
  const urls = config.webhookUrls;
  const files = config.webhookSecretFiles;
  if (files.length !== urls.length) {
    throw new ConfigError(`each --webhook needs its own --webhook-secret-file, in the same order: got ${urls.length} --webhook and ${files.length} --webhook-secret-file`);
  }
  const hooks: WebhookConfig[] = [
    ...urls.map((url, i) => ({ url, format: 'json' as const, name: `--webhook #${i + 1}`, secret: readSecretFile(files[i]!, '--webhook-secret-file', config.logger) })),
    ...config.slackWebhookUrls.map((url, i) => ({ url, format: 'slack' as const, name: `--slack-webhook #${i + 1}` })),
    ...(config.webhooksFile ? readWebhooksFile(config.webhooksFile, config.logger) : []),
  ];
  checkWebhooks(hooks);
  return { hooks };
}

/** A file holding a secret; warns when other users may read it. */
function readSecretFile(file: string, flag: string, logger: Logger): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
    if ((statSync(file).mode & 0o077) !== 0) logger.warn({ file }, `${flag}: other users may read this file; chmod 600 it`);
  } catch (err) {
    throw new ConfigError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return text.trim();
}

const WEBHOOK_FILE_KEYS = new Set(['url', 'format', 'secret', 'secretFile', 'name']);

/** The hooks listed in a --webhooks-file; a relative `secretFile` is relative to the file's directory. */
function readWebhooksFile(file: string, logger: Logger): WebhookConfig[] {
  const flag = '--webhooks-file';
  let entries: unknown;
  try {
    entries = JSON.parse(readSecretFile(file, flag, logger));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${flag} ${file}: not JSON (${(err as Error).message})`, { cause: err });
  }
  if (!Array.isArray(entries)) throw new ConfigError(`${flag} ${file}: expected a JSON array of webhooks`);
  return entries.map((entry: unknown, i): WebhookConfig => {
    const where = `${flag} ${file}: webhook ${i + 1}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(`${where}: expected an object`);
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).filter((k) => !WEBHOOK_FILE_KEYS.has(k));
    if (unknown.length > 0) throw new ConfigError(`${where}: unknown field ${unknown.join(', ')} (fields: ${[...WEBHOOK_FILE_KEYS].join(', ')})`);
    for (const key of WEBHOOK_FILE_KEYS) {
      if (e[key] !== undefined && typeof e[key] !== 'string') throw new ConfigError(`${where}: "${key}" must be a string`);
    }
    const { url, format = 'json', secret, secretFile, name } = e as Record<string, string | undefined>;
    if (!url) throw new ConfigError(`${where}: "url" is required`);
    if (format !== 'json' && format !== 'slack') throw new ConfigError(`${where}: "format" is json or slack`);
    if (secret !== undefined && secretFile !== undefined) throw new ConfigError(`${where}: give "secret" or "secretFile", not both`);
    const key = secretFile !== undefined ? readSecretFile(resolve(dirname(file), secretFile), `${where} "secretFile"`, logger) : secret;
    return { url, format, name: name ?? `--webhooks-file #${i + 1}`, ...(key !== undefined ? { secret: key } : {}) };
  });
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
