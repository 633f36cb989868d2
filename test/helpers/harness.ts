/**
 * A real control plane for integration tests: a TaskgateServer on
 * 127.0.0.1:0 over a real store that the harness opens (and tests may read
 * directly as `h.store`), real agents, and the CLI's API client.
 * Waiting is done on events (log streams that end when a task ends, agent
 * state changes), never on sleeps.
 */
import { Target } from '../../gen/taskgate/v1/target.js';
import type { GetTaskLogsResponse, Task } from '../../gen/taskgate/v1/task.js';
import { User } from '../../gen/taskgate/v1/user.js';
import { TaskgateAgent, type AgentOptions } from '../../agent/agent.js';
import { Api } from '../../cli/client.js';
import { TaskgateServer, type ServerOptions } from '../../server/server.js';
import { openStore } from '../../server/store/open-store.js';
import type { Store } from '../../server/store/store.js';
import type { StoreLocation } from './stores.js';

/** A finished task and every byte of its output. */
export interface Finished {
  task: Task;
  output: Buffer;
}

/** The admin user every harness starts with. */
export const ADMIN_EMAIL = 'admin@test';

/** Server, admin client and agents of one test. */
export class Harness {
  server!: TaskgateServer;
  /** The server's store, opened by the harness: what a test reads behind the API's back. */
  store!: Store;
  api!: Api;
  adminToken = '';
  readonly agents: TaskgateAgent[] = [];
  readonly #clients: Api[] = [];
  readonly #location: StoreLocation;
  readonly #serverOptions: ServerOptions;
  #port = 0;

  private constructor(location: StoreLocation, serverOptions: ServerOptions) {
    this.#location = location;
    this.#serverOptions = serverOptions;
  }

  /** Starts a server on a fresh port over `location`, with an admin token. */
  static async start(location: StoreLocation, serverOptions: ServerOptions = {}): Promise<Harness> {
    // The per-user limits are off unless a test sets them: one admin token
    // drives most tests, some with thousands of calls (test/integration/limits.test.ts
    // tests the limits; the CLI and README tests run servers with their defaults).
    const h = new Harness(location, { callsPerSecond: 0, streamsPerUser: 0, authFailuresPerSecond: 0, ...serverOptions });
    await h.#startServer('127.0.0.1:0');
    await h.server.ensureAdmin(ADMIN_EMAIL);
    h.adminToken = await h.server.issueUserToken(ADMIN_EMAIL, 'harness');
    h.api = new Api({ server: h.address, token: h.adminToken });
    return h;
  }

  async #startServer(listen: string): Promise<void> {
    this.store = await openStore({ ...this.#location.options, ...this.#serverOptions });
    try {
      this.server = await TaskgateServer.start({ ...this.#location.options, ...this.#serverOptions, listen, store: this.store });
    } catch (err) {
      await this.store.close();
      throw err;
    }
    this.#port = this.server.port;
  }

  /** host:port of the server. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Stops the server, closes its store, and starts a new one on the same port over the same data. */
  async restart(): Promise<void> {
    await this.server.stop();
    await this.store.close();
    await this.#startServer(this.address);
  }

  /** A client with another token; closed with the harness. */
  client(token: string): Api {
    const api = new Api({ server: this.address, token });
    this.#clients.push(api);
    return api;
  }

  /** Creates a user in `groups` through the API and returns a client with a token of theirs. */
  async user(email: string, groups: string[]): Promise<Api & { token: string }> {
    await this.api.call(this.api.users, this.api.users.createUser, { user: User.fromPartial({ email, groups }) });
    const { secret } = await this.api.call(this.api.users, this.api.users.createToken, { user: email, name: 'test', ttl: undefined });
    return Object.assign(this.client(secret), { token: secret });
  }

  /** Issues an agent token through the admin API (AgentService.CreateAgentToken). */
  async agentToken(name: string): Promise<string> {
    return (await this.api.call(this.api.agents, this.api.agents.createAgentToken, { name, ttl: undefined })).token;
  }

  /** Starts an agent and waits until the server welcomed it. */
  async startAgent(name: string, options: Partial<AgentOptions> = {}): Promise<TaskgateAgent> {
    const agent = new TaskgateAgent({
      server: this.address,
      token: options.token ?? (await this.agentToken(name)),
      name,
      backoff: { initialMs: 50, maxMs: 500 },
      ...options,
    });
    this.agents.push(agent);
    agent.start();
    await agent.connected();
    return agent;
  }

  /** Creates a target through the API; `rules` sets review, groups and the like. */
  async createTarget(name: string, agent: string, type = 'bash', rules: Partial<Target> = {}): Promise<void> {
    await this.api.call(this.api.targets, this.api.targets.createTarget, {
      target: Target.fromPartial({ name, agent, type, ...rules }),
    });
  }

  async createTask(target: string, script: string, type = '', timeoutSeconds = 0): Promise<Task> {
    const res = await this.api.call(this.api.tasks, this.api.tasks.createTask, { target, script, message: '', type, timeoutSeconds });
    if (!res.task) throw new Error('no task returned');
    return res.task;
  }

  async getTask(id: string): Promise<Task> {
    const res = await this.api.call(this.api.tasks, this.api.tasks.getTask, { id });
    if (!res.task) throw new Error('no task returned');
    return res.task;
  }

  /** Reads a task's log stream; with follow, until the task ends. */
  async logs(id: string, options: { follow: boolean; offset?: number }): Promise<{ output: Buffer; finished: Task | null; chunks: number }> {
    const call = this.api.tasks.getTaskLogs({ id, offset: options.offset ?? 0, follow: options.follow, limitBytes: 0, tailBytes: 0 }, this.api.metadata);
    const parts: Buffer[] = [];
    let finished: Task | null = null;
    for await (const message of call as AsyncIterable<GetTaskLogsResponse>) {
      const event = message.event;
      if (event?.$case === 'chunk') parts.push(Buffer.from(event.value.data));
      else if (event?.$case === 'finished') finished = event.value;
    }
    return { output: Buffer.concat(parts), finished, chunks: parts.length };
  }

  /** Follows a task until it ends; returns it with all its output. */
  async finished(id: string): Promise<Finished> {
    const { output, finished } = await this.logs(id, { follow: true });
    if (!finished) throw new Error(`log stream of ${id} ended without the finished task`);
    return { task: finished, output };
  }

  /** Stops agents and the server; cleans the store location. */
  async close(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
    this.api?.close();
    for (const client of this.#clients) client.close();
    await this.server?.stop();
    await this.store?.close();
    this.#location.cleanup();
  }
}
