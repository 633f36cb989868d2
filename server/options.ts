/**
 * The server's options, its defaults table, and the one step that turns
 * given options into compiled ones (as Temporal's WorkerOptions ->
 * CompiledWorkerOptions): every field present, derived values computed once,
 * combinations that cannot work refused with one line. The CLI's flag
 * defaults are read from {@link SERVER_DEFAULTS}, so each default lives here
 * and nowhere else.
 */
import { ConfigError } from '../shared/config-error.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { formatRetention, MIN_RETAIN_MS } from './retention.js';
import { DEFAULT_DATA_DIR, type StoreOptions } from './store/open-store.js';
import type { Store } from './store/store.js';
import type { WebhookOptions } from './webhooks.js';

/** Options of {@link TaskgateServer}; defaults in {@link SERVER_DEFAULTS}. */
export interface ServerOptions extends StoreOptions {
  /** host:port to listen on; port 0 picks a free one. Default "127.0.0.1:7070". */
  listen?: string;
  /** Heartbeat interval asked of agents, in ms. Default 10000; at most half the lastSeen refresh (see {@link CompiledServerOptions}). */
  heartbeatIntervalMs?: number;
  /** Tasks one agent runs at once. Default 30 (as Runops agents). */
  maxTasksPerAgent?: number;
  /** How long an agent has to send Hello, in ms. Default 10000. */
  helloTimeoutMs?: number;
  /** How long an agent may be away before its running tasks fail ("agent lost"), in ms. Default 60000. */
  leaseMs?: number;
  /** Between SIGTERM and SIGKILL when a task is killed or times out, in ms. Default 10000. */
  killGraceMs?: number;
  /** Output kept per task; the agent drops the rest with a marker, in bytes. Default 1 GiB. */
  maxOutputBytes?: number;
  /** How often to look for ready tasks and kills made through other replicas, in ms. Default 1000. */
  pollMs?: number;
  /** How long a graceful stop may take before it forces, in ms. Default 10000. */
  shutdownTimeoutMs?: number;
  /** 32-byte key that encrypts stored secrets at rest; without it they are refused. */
  secretsKey?: Buffer;
  /** Outgoing webhooks for task events, each with its own secret (docs/webhooks.md); none by default. */
  webhooks?: WebhookOptions;
  /** How often the event publisher looks for events left by any server, in ms. Default 2000. */
  eventSweepMs?: number;
  /**
   * How often every open stream's token and user are read again, so a
   * revocation, expiry, deactivation or change of groups made on another
   * replica reaches its streams, in ms. Default 2000 (docs/access.md).
   */
  streamRecheckMs?: number;
  /** Calls per second each user may make on this server (token bucket); 0: no limit. Default 100. */
  callsPerSecond?: number;
  /** Calls a user may make at once above that rate. Default 200. */
  callBurst?: number;
  /** Open streams (log followers, watchers) per user on this server; 0: no limit. Default 100. */
  streamsPerUser?: number;
  /** Concurrent calls per HTTP/2 connection (grpc.max_concurrent_streams). Default 200. */
  streamsPerConnection?: number;
  /** A connection with no call for this long is closed (grpc.max_connection_idle_ms), in ms; 0: never. Default 300000. */
  idleConnectionMs?: number;
  /** A connection older than this is asked to reconnect (grpc.max_connection_age_ms), in ms; 0: never. Default 0. */
  maxConnectionAgeMs?: number;
  /** Time a new connection has to finish its TLS handshake, and then as long to send the HTTP/2 preface, in ms. Default 10000. */
  handshakeTimeoutMs?: number;
  /** Open connections per listening address; 0: no cap. Default 10000. */
  maxConnections?: number;
  /**
   * Failed authentications per second per client address (token bucket
   * holding five times as many) before calls from that address with a token
   * this server has not verified recently are refused without a store
   * lookup; 0: no limit. Default 10.
   */
  authFailuresPerSecond?: number;
  /** TLS for the listen address (PEM); without it the server is plaintext and says so at start-up. */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Mutual TLS for agents: a second address that requires a client
   * certificate signed by `clientCa` whose subject CN or a DNS name equals
   * the agent's name. With it, agents may connect only there. Needs `tls`.
   */
  agentTls?: { listen: string; clientCa: Buffer };
  /** host:port for Prometheus metrics over HTTP (/metrics); none by default. */
  metricsListen?: string;
  /**
   * host:port for the web console and its API (Connect and gRPC-Web over
   * HTTP) on one origin, with the `tls` certificate when given; none by
   * default (docs/console.md).
   */
  httpListen?: string;
  /** Where the console's build output is; default dist/console (tests point it elsewhere). */
  consoleDir?: string;
  /** After a stop begins, how long health reports NOT_SERVING before the server stops accepting calls, in ms. Default 0. */
  drainMs?: number;
  /**
   * Tasks that ended longer ago than this are deleted with their output, in
   * the background (server/retention.ts; audit events are kept), in ms; at
   * least a day ({@link MIN_RETAIN_MS}). Default 0: every task is kept. Off
   * by default because deleting is for good: a store never loses history
   * because it was upgraded or started without a flag.
   */
  retainMs?: number;
  /** A store to use instead of opening one from the options; the server then leaves it open when it stops. */
  store?: Store;
  /** Default: a logger that drops everything. */
  logger?: Logger;
}

/** The default of every server option that has one (units as in {@link ServerOptions}). */
export const SERVER_DEFAULTS = {
  listen: '127.0.0.1:7070',
  dataDir: DEFAULT_DATA_DIR,
  heartbeatIntervalMs: 10_000,
  maxTasksPerAgent: 30,
  helloTimeoutMs: 10_000,
  leaseMs: 60_000,
  killGraceMs: 10_000,
  maxOutputBytes: 1024 ** 3,
  pollMs: 1000,
  shutdownTimeoutMs: 10_000,
  eventSweepMs: 2000,
  streamRecheckMs: 2000,
  callsPerSecond: 100,
  callBurst: 200,
  streamsPerUser: 100,
  streamsPerConnection: 200,
  idleConnectionMs: 300_000,
  maxConnectionAgeMs: 0,
  handshakeTimeoutMs: 10_000,
  maxConnections: 10_000,
  authFailuresPerSecond: 10,
  drainMs: 0,
  retainMs: 0,
} as const satisfies Partial<Record<keyof ServerOptions, unknown>>;

/** Longest interval between refreshes of an agent's lastSeen, in ms (however long the lease). */
const MAX_LAST_SEEN_EVERY_MS = 30_000;
/** Shortest heartbeat interval asked of agents, in ms (however short the lease). */
const MIN_HEARTBEAT_MS = 50;

/** {@link ServerOptions} with every default applied and derived values computed. */
export interface CompiledServerOptions {
  listen: string;
  /** Empty: the embedded store in `dataDir`. */
  mongodbUri: string | undefined;
  dataDir: string;
  /** The given interval, clamped to half of `lastSeenEveryMs` so heartbeats refresh lastSeen in time. */
  heartbeatIntervalMs: number;
  maxTasksPerAgent: number;
  helloTimeoutMs: number;
  leaseMs: number;
  /** How often a live agent's lastSeen is written: a third of the lease, at most 30 s, in ms. */
  lastSeenEveryMs: number;
  killGraceMs: number;
  maxOutputBytes: number;
  pollMs: number;
  shutdownTimeoutMs: number;
  secretsKey: Buffer | undefined;
  webhooks: WebhookOptions;
  eventSweepMs: number;
  streamRecheckMs: number;
  callsPerSecond: number;
  callBurst: number;
  streamsPerUser: number;
  streamsPerConnection: number;
  idleConnectionMs: number;
  maxConnectionAgeMs: number;
  handshakeTimeoutMs: number;
  maxConnections: number;
  authFailuresPerSecond: number;
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** With the server's certificate and key, which the agent address presents too. */
  agentTls: { listen: string; clientCa: Buffer; cert: Buffer; key: Buffer } | undefined;
  metricsListen: string | undefined;
  httpListen: string | undefined;
  consoleDir: string | undefined;
  drainMs: number;
  /** 0: retention is off. */
  retainMs: number;
  store: Store | undefined;
  logger: Logger;
}

/** Applies {@link SERVER_DEFAULTS}, derives the lastSeen and heartbeat intervals, and refuses what cannot work. */
export function compileServerOptions(options: ServerOptions): CompiledServerOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as ServerOptions;
  const o = { ...SERVER_DEFAULTS, ...given };
  positive('maxTasksPerAgent', o.maxTasksPerAgent, { integer: true });
  for (const name of ['heartbeatIntervalMs', 'helloTimeoutMs', 'leaseMs', 'killGraceMs', 'maxOutputBytes', 'pollMs', 'shutdownTimeoutMs', 'eventSweepMs', 'streamRecheckMs', 'handshakeTimeoutMs'] as const) {
    positive(name, o[name]);
  }
  for (const name of ['drainMs', 'callsPerSecond', 'streamsPerUser', 'idleConnectionMs', 'maxConnectionAgeMs', 'authFailuresPerSecond'] as const) {
    if (!Number.isFinite(o[name]) || o[name] < 0) throw new ConfigError(`${name} must be 0 or more, not ${o[name]}`);
  }
  positive('callBurst', o.callBurst, { integer: true });
  positive('streamsPerConnection', o.streamsPerConnection, { integer: true });
  if (!Number.isInteger(o.maxConnections) || o.maxConnections < 0) throw new ConfigError(`maxConnections must be a whole number, 0 or more, not ${o.maxConnections}`);
  if (o.retainMs !== 0 && !(Number.isSafeInteger(o.retainMs) && o.retainMs >= MIN_RETAIN_MS)) {
    throw new ConfigError(
      `a retention of ${Number.isSafeInteger(o.retainMs) && o.retainMs > 0 ? formatRetention(o.retainMs) : o.retainMs} is too short: keep tasks at least ${formatRetention(MIN_RETAIN_MS)}, as long as a retried CreateTask with a request id is answered from its task (a task deleted sooner would be made and run again); or 0 (off) to keep every task`,
    );
  }
  if (o.agentTls && !o.tls) throw new ConfigError('mutual TLS for agents needs the server certificate and key (--tls-cert, --tls-key)');
  // lastSeen must be refreshed well within the lease, and heartbeats (which
  // trigger the refresh) at least as often.
  const lastSeenEveryMs = Math.min(MAX_LAST_SEEN_EVERY_MS, Math.floor(o.leaseMs / 3));
  return {
    listen: o.listen,
    mongodbUri: o.mongodbUri,
    dataDir: o.dataDir,
    heartbeatIntervalMs: Math.min(o.heartbeatIntervalMs, Math.max(MIN_HEARTBEAT_MS, Math.floor(lastSeenEveryMs / 2))),
    maxTasksPerAgent: o.maxTasksPerAgent,
    helloTimeoutMs: o.helloTimeoutMs,
    leaseMs: o.leaseMs,
    lastSeenEveryMs,
    killGraceMs: o.killGraceMs,
    maxOutputBytes: o.maxOutputBytes,
    pollMs: o.pollMs,
    shutdownTimeoutMs: o.shutdownTimeoutMs,
    secretsKey: o.secretsKey,
    webhooks: o.webhooks ?? { hooks: [] },
    eventSweepMs: o.eventSweepMs,
    streamRecheckMs: o.streamRecheckMs,
    callsPerSecond: o.callsPerSecond,
    callBurst: o.callBurst,
    streamsPerUser: o.streamsPerUser,
    streamsPerConnection: o.streamsPerConnection,
    idleConnectionMs: o.idleConnectionMs,
    maxConnectionAgeMs: o.maxConnectionAgeMs,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    maxConnections: o.maxConnections,
    authFailuresPerSecond: o.authFailuresPerSecond,
    tls: o.tls,
    agentTls: o.agentTls && o.tls ? { ...o.agentTls, cert: o.tls.cert, key: o.tls.key } : undefined,
    metricsListen: o.metricsListen,
    httpListen: o.httpListen,
    consoleDir: o.consoleDir,
    drainMs: o.drainMs,
    retainMs: o.retainMs,
    store: o.store,
    logger: o.logger ?? silentLogger(),
  };
}

function positive(name: string, value: number, { integer = false } = {}): void {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new ConfigError(`${name} must be a positive ${integer ? 'integer' : 'number'}, not ${value}`);
  }
}
