/**
 * The CLI's connection to the server: clients for each service, the bearer
 * token on every call, promise-returning unary calls, a request_id on every
 * call that takes one, retries of those calls when the server could not be
 * reached or did not answer in time, and gRPC errors turned into one line a
 * person can act on.
 */
import {
  credentials,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentServiceClient } from '../gen/taskgate/v1/agent.js';
import { EventServiceClient } from '../gen/taskgate/v1/event.js';
import { TargetServiceClient } from '../gen/taskgate/v1/target.js';
import { TaskServiceClient, TaskServiceService } from '../gen/taskgate/v1/task.js';
import { UserServiceClient } from '../gen/taskgate/v1/user.js';
import { Backoff, type BackoffOptions } from '../shared/backoff.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../shared/limits.js';
import { readClientTls } from '../shared/tls.js';
import { NOT_TLS, speaksTls } from '../shared/tls-probe.js';
import { EXIT_USAGE } from './exit-codes.js';

/** Options every client command takes. */
export interface ClientOptions {
  server: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
  /** TLS with the system roots. */
  tls?: boolean;
  /** CA file that signed the server's certificate (implies TLS). */
  tlsCa?: string;
}

/** An error already phrased for the user; main prints it and exits non-zero. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** gRPC paths of the methods whose requests carry a request_id (AIP-155; docs/design.md "Retries and request ids"). */
const REQUEST_ID_METHODS: ReadonlySet<string> = new Set([
  TaskServiceService.createTask.path,
  TaskServiceService.runTask.path,
  TaskServiceService.reviewTask.path,
  TaskServiceService.killTask.path,
]);

/** A request as a caller gives it: `requestId` may be left out, and a fresh one is filled in. */
export type CallRequest<Req> = Req extends { requestId: string } ? Omit<Req, 'requestId'> & { requestId?: string } : Req;

/** A new request id: a random UUID. */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * The status codes after which a unary call that carries a request id is
 * tried again: the server was not reached, or did not answer in time. The
 * request id makes the repeat safe; any other status is the answer.
 */
export const RETRYABLE_CODES: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

/** How {@link Api.callWithRetry} tries again. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 7. */
  attempts?: number;
  /** Deadline of each attempt, in ms. Default 20000. */
  attemptTimeoutMs?: number;
  /** Delays between attempts. Default: 250 ms growing 1.6 times, capped at 4 s, jittered (about 8 s for 6 retries). */
  backoff?: BackoffOptions;
  /** Told once, before the first retry (the CLI prints it on stderr). */
  onRetry?: (err: ServiceError, requestId: string) => void;
}

const RETRY_DEFAULTS = { attempts: 7, attemptTimeoutMs: 20_000, backoff: { initialMs: 250, maxMs: 4000 } } as const;

/** The path of a grpc-js client method (grpc-js copies its definition onto the method). */
function pathOf(method: unknown): string {
  return (method as { path?: unknown }).path as string;
}

/** Default place `taskgate dev` writes the admin token. */
export const DEV_TOKEN_FILE = join('.taskgate', 'admin.token');

/**
 * The token: --token, else --token-file, else ./.taskgate/admin.token when
 * it exists. Spaces around it and a "Bearer " in front (as copied from a
 * header) are dropped.
 */
export function resolveToken(options: ClientOptions): string {
  if (options.token) return checkedToken(options.token, '--token (or TASKGATE_TOKEN)');
  const file = options.tokenFile ?? (existsSync(DEV_TOKEN_FILE) ? DEV_TOKEN_FILE : undefined);
  if (file) {
    let token: string;
    try {
      token = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT_USAGE);
    }
    return checkedToken(token, `token file ${file}`);
  }
  throw new CliError('no token: pass --token or --token-file (TASKGATE_TOKEN, TASKGATE_TOKEN_FILE), or run `taskgate dev` here to create .taskgate/admin.token', EXIT_USAGE);
}

/** A token fit for an authorization header; never echoes it (it is a secret). */
function checkedToken(given: string, from: string): string {
  const token = given.trim().replace(/^bearer(?:\s+|$)/i, '');
  if (token === '') throw new CliError(`the token in ${from} is empty`, EXIT_USAGE);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new CliError(`the token in ${from} contains characters no token has (spaces, control characters or non-ASCII); it must be the one line \`taskgate tokens create\` printed`, EXIT_USAGE);
  }
  return token;
}

/** Clients of every service, sharing one channel configuration. */
export class Api {
  readonly tasks: TaskServiceClient;
  readonly targets: TargetServiceClient;
  readonly agents: AgentServiceClient;
  readonly users: UserServiceClient;
  readonly events: EventServiceClient;
  readonly metadata: Metadata;
  readonly server: string;
  /** Whether it connects with TLS. */
  readonly tls: boolean;

  constructor(options: ClientOptions) {
    this.server = options.server;
    this.metadata = new Metadata();
    this.metadata.set('authorization', `Bearer ${resolveToken(options)}`);
    let creds: ChannelCredentials;
    try {
      const pem = readClientTls({ tls: options.tls, tlsCa: options.tlsCa });
      creds = pem ? credentials.createSsl(pem.ca) : credentials.createInsecure();
      this.tls = pem !== null;
    } catch (err) {
      throw new CliError((err as Error).message, EXIT_USAGE);
    }
    const channelOptions = { 'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES };
    this.tasks = new TaskServiceClient(options.server, creds, channelOptions);
    this.targets = new TargetServiceClient(options.server, creds, channelOptions);
    this.agents = new AgentServiceClient(options.server, creds, channelOptions);
    this.users = new UserServiceClient(options.server, creds, channelOptions);
    this.events = new EventServiceClient(options.server, creds, channelOptions);
  }

  /**
   * Calls a unary method of `client` with the token and returns its
   * response. A method that takes a request_id gets a fresh one unless the
   * request has one.
   */
  call<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, request: NoInfer<CallRequest<Req>>): Promise<Res> {
    return this.#invoke(client, method, withRequestId(method, request), {});
  }

  /**
   * Like {@link call}, for a method that takes a request_id: when the server
   * cannot be reached or does not answer in time (RETRYABLE_CODES), sends the
   * same request, with the same request id, again, a few times with backoff.
   * The server answers a repeat without acting twice.
   */
  async callWithRetry<Req extends { requestId: string }, Res>(
    client: Client,
    method: UnaryMethod<Req, Res>,
    request: NoInfer<CallRequest<Req>>,
    options: RetryOptions = {},
  ): Promise<Res> {
    const full = withRequestId(method, request);
    if (!REQUEST_ID_METHODS.has(pathOf(method))) throw new Error(`${pathOf(method)} takes no request_id, so it is not retried`);
    const attempts = options.attempts ?? RETRY_DEFAULTS.attempts;
    const backoff = new Backoff(options.backoff ?? RETRY_DEFAULTS.backoff);
    for (let attempt = 1; ; attempt++) {
      const deadline = new Date(Date.now() + (options.attemptTimeoutMs ?? RETRY_DEFAULTS.attemptTimeoutMs));
      try {
        return await this.#invoke(client, method, full, { deadline });
      } catch (err) {
        if (!isServiceError(err) || !RETRYABLE_CODES.has(err.code) || attempt >= attempts) throw err;
        // Retrying cannot mend a TLS mismatch or an untrusted certificate: say so at once.
        if (attempt === 1 && ((await diagnoseUnreachable(err, this)) !== null || certificateProblem(err) !== null)) throw err;
        if (attempt === 1) options.onRetry?.(err, full.requestId);
      }
      await new Promise((resolve) => setTimeout(resolve, backoff.next()));
    }
  }

  #invoke<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, request: Req, options: Partial<CallOptions>): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, this.metadata, options, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  close(): void {
    this.tasks.close();
    this.targets.close();
    this.agents.close();
    this.users.close();
    this.events.close();
  }
}

/** A unary method of a grpc-js client, as ts-proto generates it. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The request with a request id when its method takes one and it has none. */
function withRequestId<Req>(method: UnaryMethod<Req, unknown>, request: CallRequest<Req>): Req {
  if (!REQUEST_ID_METHODS.has(pathOf(method))) return request as Req;
  const given = (request as { requestId?: string }).requestId;
  return { ...request, requestId: given ?? newRequestId() } as Req;
}

/** Whether a value is a gRPC ServiceError. */
export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'details' in err && 'metadata' in err;
}

/**
 * For a server that cannot be reached, whether TLS is the reason: one line
 * saying so, or null. A TLS client against a plaintext server sees OpenSSL's
 * "wrong version number"; a plaintext client against a TLS server sees only
 * a dropped connection, so it tries a TLS handshake of its own to tell.
 */
export async function diagnoseUnreachable(err: ServiceError, api: Api): Promise<string | null> {
  if (err.code !== status.UNAVAILABLE) return null;
  if (api.tls && NOT_TLS.test(err.details)) {
    return `the server at ${api.server} does not speak TLS: call it without --tls/--tls-ca (TASKGATE_TLS, TASKGATE_TLS_CA), or start it with --tls-cert and --tls-key`;
  }
  if (api.tls) return null;
  return (await speaksTls(api.server)) ? `the server at ${api.server} speaks TLS: add --tls-ca FILE (the CA of its certificate) or --tls (system roots); TASKGATE_TLS_CA, TASKGATE_TLS` : null;
}

/** For an error that a TLS certificate check caused, one line saying what to do; otherwise null. */
export function certificateProblem(err: ServiceError): string | null {
  if (err.code !== status.UNAVAILABLE) return null;
  const m = /(self[- ]signed certificate[^;)]*|unable to (?:verify|get) [^;)]*certificate[^;)]*|certificate has expired|Hostname\/IP does not match[^;)]*|ERR_TLS_CERT_ALTNAME_INVALID[^;)]*)/i.exec(err.details);
  if (!m) return null;
  return `the server's TLS certificate is not trusted (${m[1]!.trim()}): pass --tls-ca FILE with the CA that signed it (TASKGATE_TLS_CA)`;
}

/** grpc-js's details without its empty trailing notes ("Resolution note: "). */
function cleanDetails(details: string): string {
  return details.replace(/\.?\s*Resolution note:\s*$/, '').trim();
}

/** One line describing a gRPC error. */
export function describeError(err: ServiceError, server: string): string {
  const certificate = certificateProblem(err);
  if (certificate) return certificate;
  switch (err.code) {
    case status.UNAVAILABLE:
      return `cannot reach the Taskgate server at ${server} (${cleanDetails(err.details)}); is it running? (--server, TASKGATE_SERVER)`;
    case status.UNAUTHENTICATED:
      return `not authenticated: ${err.details} (--token, TASKGATE_TOKEN)`;
    case status.PERMISSION_DENIED:
      return `not allowed: ${err.details}`;
    case status.DEADLINE_EXCEEDED:
      return `the server at ${server} did not answer in time`;
    default:
      return `${err.details} (${status[err.code]})`;
  }
}
