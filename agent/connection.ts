/**
 * The agent's one stream to the server, as an explicit state machine:
 *
 *   idle -> connecting -> connected -> backoff -> connecting -> ...
 *   any state -> stopped (final)
 *
 * `connecting` has sent Hello and waits for Welcome; `connected` has the
 * Welcome and heartbeats; `backoff` waits a jittered, growing delay (reset
 * after each healthy connection) before trying again. The first delay after
 * a welcomed stream is lost is fully jittered, uniform in [0, 1 s]
 * (shared/backoff.ts `afterLoss`): a restarted server's agents come back
 * spread over that second instead of all at once; the delays after it stay
 * under 5 s (±20 %) for a minute, within the server's lease.
 *
 * The connection owns the process's boot id and the session secret of the
 * last Welcome, which it presents as Hello.resume_secret when it reconnects:
 * the server lets only the holder of that secret resume the boot
 * (docs/agent-protocol.md "Session secrets"). Until the first Welcome every
 * attempt uses a fresh boot id, since a boot never welcomed holds no task and
 * its Hello may have opened a session whose secret never arrived. The secret
 * is never logged.
 */
import { credentials as grpcCredentials, Metadata, status, type ChannelCredentials, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { AgentServiceClient, type ConnectRequest, type ConnectResponse, type TaskProgress, type Welcome } from '../gen/taskgate/v1/agent.js';
import { Backoff, type BackoffOptions } from '../shared/backoff.js';
import { randomId } from '../shared/ids.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../shared/limits.js';
import type { Logger } from '../shared/logger.js';
import { readClientTls, type ClientTls } from '../shared/tls.js';
import { NOT_TLS, speaksTls } from '../shared/tls-probe.js';

/** Where the connection stands. */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'stopped';

const LEGAL: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  idle: ['connecting', 'stopped'],
  connecting: ['connected', 'backoff', 'stopped'],
  connected: ['backoff', 'stopped'],
  backoff: ['connecting', 'stopped'],
  stopped: [],
};

/** Status codes after which retrying cannot help: the token or name is wrong. */
const FATAL = new Set<status>([status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.INVALID_ARGUMENT]);

/**
 * TLS alerts a server sends about the client's certificate (RFC 8446 6.2):
 * missing, malformed, revoked, expired, or from a CA it does not trust. A
 * handshake refused this way CERT_REFUSALS times in a row stops the agent,
 * saying why, instead of retrying forever. Taskgate's own agent address
 * answers a bad certificate with UNAUTHENTICATED instead (fatal at once);
 * this covers a TLS-terminating proxy in front of it.
 */
const CERT_ALERT = /alert (certificate required|bad certificate|unsupported certificate|certificate revoked|certificate expired|certificate unknown|unknown ca)/i;
export const CERT_REFUSALS = 5;

/** Unreachable attempts in a row after which a plaintext agent checks whether the server speaks TLS. */
const TLS_PROBE_AFTER = 3;

/**
 * Channel credentials for an agent's TLS settings (plaintext when they ask
 * for none); throws a one-line Error when a file cannot be read.
 */
export function agentCredentials(tls: ClientTls): ChannelCredentials {
  const pem = readClientTls(tls);
  return pem ? grpcCredentials.createSsl(pem.ca, pem.key, pem.cert) : grpcCredentials.createInsecure();
}

/** What the connection needs. */
export interface ConnectionOptions {
  /** host:port of the server. */
  server: string;
  token: string;
  name: string;
  version: string;
  credentials?: ChannelCredentials;
  backoff?: BackoffOptions;
  logger: Logger;
  /** Tasks this process holds, for Hello. */
  heldTasks(): string[];
  /** Running tasks whose dropped output grew since the last heartbeat, for the next one. */
  progress?(): TaskProgress[];
  /** Every message after Welcome. */
  onMessage(message: ConnectResponse): void;
  /** A stream was welcomed (first time or after a reconnect). */
  onConnected(welcome: Welcome): void;
  /** The state changed. */
  onState(state: ConnectionState): void;
  /** The server refused in a way retrying cannot fix. */
  onFatal(err: ServiceError): void;
}

/** The agent's stream, reconnecting until stopped. */
export class AgentConnection {
  #state: ConnectionState = 'idle';
  readonly #options: ConnectionOptions;
  readonly #client: AgentServiceClient;
  /** Handshakes in a row the server refused with a client-certificate alert. */
  #certRefusals = 0;
  /** Unreachable attempts in a row (a TLS probe follows the third). */
  #failures = 0;
  readonly #backoff: Backoff;
  #call: ClientDuplexStream<ConnectRequest, ConnectResponse> | null = null;
  #retryTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #bootId = randomId();
  /** A Welcome arrived in this process; from then on the boot id is fixed. */
  #welcomed = false;
  /** Session secret of the last Welcome; "" before the first. */
  #sessionSecret = '';

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#backoff = new Backoff(options.backoff);
    this.#client = new AgentServiceClient(options.server, options.credentials ?? grpcCredentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 15_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Reconnect pacing is ours (Backoff); keep the channel's own short.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  /** Identifies this agent process on its stream; fixed once a Welcome arrived. */
  get bootId(): string {
    return this.#bootId;
  }

  /** The current state. */
  get state(): ConnectionState {
    return this.#state;
  }

  #transition(to: ConnectionState): void {
    const from = this.#state;
    if (!LEGAL[from].includes(to)) throw new Error(`agent connection: illegal move ${from} -> ${to}`);
    this.#state = to;
    this.#options.logger.debug({ from, to }, 'connection state');
    this.#options.onState(to);
  }

  /** Starts connecting. */
  start(): void {
    this.#connect();
  }

  /** Sends a message if a welcomed stream is open; returns whether it was written. */
  send(message: ConnectRequest): boolean {
    if (this.#state !== 'connected' || !this.#call) return false;
    this.#call.write(message);
    return true;
  }

  #connect(): void {
    this.#transition('connecting');
    if (!this.#welcomed) this.#bootId = randomId();
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${this.#options.token}`);
    const call = this.#client.connect(metadata);
    this.#call = call;
    call.on('data', (message: ConnectResponse) => {
      if (call !== this.#call) return;
      if (this.#state === 'connecting') {
        if (message.message?.$case !== 'welcome') return;
        const welcome = message.message.value;
        this.#welcomed = true;
        // A server that predates session secrets sends none; keep the last one then.
        if (welcome.sessionSecret !== '') this.#sessionSecret = welcome.sessionSecret;
        this.#transition('connected');
        this.#backoff.reset();
        this.#certRefusals = 0;
        this.#failures = 0;
        // Speaking at once tells the server the Welcome (and its secret) arrived; only then does it push tasks.
        this.send({ message: { $case: 'heartbeat', value: { tasks: [] } } });
        this.#startHeartbeat(welcome.heartbeatIntervalMs);
        this.#options.logger.info({ server: this.#options.server }, 'connected');
        this.#options.onConnected(welcome);
        return;
      }
      this.#options.onMessage(message);
    });
    call.on('error', (err: ServiceError) => this.#lost(call, err));
    call.on('end', () => this.#lost(call, null));
    call.write({
      message: {
        $case: 'hello',
        value: {
          name: this.#options.name,
          version: this.#options.version,
          bootId: this.#bootId,
          heldTaskIds: this.#options.heldTasks(),
          resumeSecret: this.#sessionSecret,
        },
      },
    });
  }

  /** Stops for good on a TLS mismatch, with the reason as the error's details. */
  #mismatch(err: ServiceError, details: string): void {
    const fatal = Object.assign(err, { details });
    this.#options.logger.error({ details }, 'cannot talk to this server');
    this.stop();
    this.#options.onFatal(fatal);
  }

  #startHeartbeat(intervalMs: number): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => this.send({ message: { $case: 'heartbeat', value: { tasks: this.#options.progress?.() ?? [] } } }), Math.max(intervalMs, 100));
    this.#heartbeat.unref();
  }

  #lost(call: ClientDuplexStream<ConnectRequest, ConnectResponse>, err: ServiceError | null): void {
    if (call !== this.#call || this.#state === 'stopped') return;
    const wasConnected = this.#state === 'connected';
    this.#call = null;
    clearInterval(this.#heartbeat);
    call.cancel();
    const alert = err?.code === status.UNAVAILABLE ? CERT_ALERT.exec(err.details) : null;
    this.#certRefusals = alert ? this.#certRefusals + 1 : 0;
    if (err && alert && this.#certRefusals >= CERT_REFUSALS) {
      err = Object.assign(err, {
        details: `the TLS handshake was refused ${CERT_REFUSALS} times in a row (alert "${alert[1]!.toLowerCase()}"): give the agent a client certificate signed by the server's --agent-client-ca and naming it (--tls-cert, --tls-key)`,
      });
      this.#options.logger.error({ details: err.details }, 'server refused this agent');
      this.stop();
      this.#options.onFatal(err);
      return;
    }
    if (err && FATAL.has(err.code)) {
      this.#options.logger.error({ code: status[err.code], details: err.details }, 'server refused this agent');
      this.stop();
      this.#options.onFatal(err);
      return;
    }
    // TLS on one side only never works, however often it is tried: say which side.
    const secure = this.#options.credentials?._isSecure() ?? false;
    if (err?.code === status.UNAVAILABLE && secure && NOT_TLS.test(err.details)) {
      return this.#mismatch(err, `the server at ${this.#options.server} does not speak TLS: start the agent without --tls/--tls-ca, or the server with --tls-cert and --tls-key`);
    }
    this.#failures = err?.code === status.UNAVAILABLE ? this.#failures + 1 : 0;
    if (!secure && this.#failures === TLS_PROBE_AFTER) {
      void speaksTls(this.#options.server).then((yes) => {
        if (yes && this.#state !== 'stopped' && this.#state !== 'connected') {
          this.#mismatch(err!, `the server at ${this.#options.server} speaks TLS: start the agent with --tls-ca FILE (the CA of its certificate) or --tls`);
        }
      });
    }
    // A welcomed stream lost: its server may have lost every agent at once (restart).
    const delay = wasConnected ? this.#backoff.afterLoss() : this.#backoff.next();
    this.#options.logger.warn(
      { code: err ? status[err.code] : 'END', details: err?.details, retryInMs: delay },
      'stream lost; reconnecting',
    );
    this.#transition('backoff');
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** Closes the stream and stops reconnecting. */
  stop(): void {
    if (this.#state === 'stopped') return;
    this.#transition('stopped');
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const call = this.#call;
    this.#call = null;
    if (call) {
      call.end();
      call.cancel();
    }
    this.#client.close();
  }
}
