/**
 * The CLI's connection to the server: clients for each service, the bearer
 * token on every call, promise-returning unary calls, and gRPC errors turned
 * into one line a person can act on.
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
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentServiceClient } from '../gen/taskgate/v1/agent.js';
import { EventServiceClient } from '../gen/taskgate/v1/event.js';
import { TargetServiceClient } from '../gen/taskgate/v1/target.js';
import { TaskServiceClient } from '../gen/taskgate/v1/task.js';
import { UserServiceClient } from '../gen/taskgate/v1/user.js';
import { MAX_GRPC_MESSAGE_BYTES } from '../shared/limits.js';
import { readClientTls } from '../shared/tls.js';

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

/** Default place `taskgate dev` writes the admin token. */
export const DEV_TOKEN_FILE = join('.taskgate', 'admin.token');

/** The token: --token, else --token-file, else ./.taskgate/admin.token when it exists. */
export function resolveToken(options: ClientOptions): string {
  if (options.token) return options.token.trim();
  const file = options.tokenFile ?? (existsSync(DEV_TOKEN_FILE) ? DEV_TOKEN_FILE : undefined);
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new CliError(`cannot read token file ${file}: ${(err as Error).message}`);
    }
  }
  throw new CliError('no token: pass --token, set TASKGATE_TOKEN, or run `taskgate dev` here to create .taskgate/admin.token');
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

  constructor(options: ClientOptions) {
    this.server = options.server;
    this.metadata = new Metadata();
    this.metadata.set('authorization', `Bearer ${resolveToken(options)}`);
    let creds: ChannelCredentials;
    try {
      const pem = readClientTls({ tls: options.tls, tlsCa: options.tlsCa });
      creds = pem ? credentials.createSsl(pem.ca) : credentials.createInsecure();
    } catch (err) {
      throw new CliError((err as Error).message, 2);
    }
    const channelOptions = { 'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES };
    this.tasks = new TaskServiceClient(options.server, creds, channelOptions);
    this.targets = new TargetServiceClient(options.server, creds, channelOptions);
    this.agents = new AgentServiceClient(options.server, creds, channelOptions);
    this.users = new UserServiceClient(options.server, creds, channelOptions);
    this.events = new EventServiceClient(options.server, creds, channelOptions);
  }

  /** Calls a unary method of `client` with the token and returns its response. */
  call<Req, Res>(
    client: Client,
    method: (
      request: Req,
      metadata: Metadata,
      options: Partial<CallOptions>,
      callback: (err: ServiceError | null, response: Res) => void,
    ) => ClientUnaryCall,
    request: Req,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, this.metadata, {}, (err, res) => (err ? reject(err) : resolve(res)));
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

/** Whether a value is a gRPC ServiceError. */
export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'details' in err && 'metadata' in err;
}

/** One line describing a gRPC error. */
export function describeError(err: ServiceError, server: string): string {
  switch (err.code) {
    case status.UNAVAILABLE:
      return `cannot reach the Taskgate server at ${server} (${err.details}); is it running? (--server, TASKGATE_SERVER)`;
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
