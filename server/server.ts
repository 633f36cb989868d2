/**
 * The Taskgate control plane: a grpc-js server with TaskService,
 * TargetService and AgentService over one store, and the same services for
 * browsers and curl over Connect on the HTTP listener when configured.
 */
import { Server } from '@grpc/grpc-js';
import { MAX_GRPC_MESSAGE_BYTES } from '../shared/limits.js';
import type { Logger } from '../shared/logger.js';
import { ADMIN_GROUP } from './access.js';
import { EventPublisher } from './audit.js';
import { Metrics } from './metrics.js';
import { addReflection, Health } from './standard-services.js';
import { Authenticator } from './auth.js';
import { Dispatcher } from './dispatcher.js';
import { consoleRoutes, SignInLinks } from './console-http.js';
import { sessionCookieName } from './session-cookie.js';
import { HttpListener } from './http-listener.js';
import { Listener } from './listeners.js';
import { guardBrowsers } from './rpc/browser-guard.js';
import { ConnectTransport } from './rpc/connect.js';
import { GrpcTransport } from './rpc/grpc.js';
import { authenticate, guardStreams, limitCallers, mapErrors, recordMetrics, refuseNul, requireAccess } from './rpc/middleware.js';
import { AuthFailureLimits, RateLimits } from './rate-limits.js';
import { LiveStreams } from './live-streams.js';
import { agentService } from './services/agent-service.js';
import { eventService } from './services/event-service.js';
import { targetService } from './services/target-service.js';
import { taskService } from './services/task-service.js';
import { userService } from './services/user-service.js';
import { compileServerOptions, type ServerOptions } from './options.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';
import { TaskHub } from './task-hub.js';
import { PresenceWriter } from './presence.js';
import { formatRetention, Retention } from './retention.js';
import { SecretBox } from './secret-box.js';
import { Sweeper } from './sweeper.js';
import { TaskMachine } from './task-machine.js';
import { WebhookSender } from './webhooks.js';

export type { ServerOptions } from './options.js';

/** Whom a saved token must stand for: an active user of the admin group, or an agent. */
export type TokenHolder = { admin: string } | { agent: string };

/** A running control plane. */
export class TaskgateServer {
  /** The port it listens on. */
  readonly port: number;
  /** The mutual-TLS port for agents, when configured. */
  readonly agentPort: number | null;
  /** The metrics port, when configured. */
  readonly metricsPort: number | null;
  /** The HTTP listener's port (Connect, the console), when configured. */
  readonly httpPort: number | null;
  /** Where browsers and curl reach it ("http://127.0.0.1:7080"), when configured. */
  readonly httpUrl: string | null;
  readonly metrics: Metrics;
  readonly #store: Store;
  readonly #auth: Authenticator;
  readonly #grpc: Server;
  readonly #listeners: Listener[];
  readonly #http: HttpListener | null;
  readonly #publisher: EventPublisher;
  readonly #webhooks: WebhookSender;
  readonly #sweeper: Sweeper;
  /** Null when retention is off (retainMs 0). */
  readonly #retention: Retention | null;
  readonly #presence: PresenceWriter;
  readonly #live: LiveStreams;
  readonly #dispatcher: Dispatcher;
  readonly #shutdown: AbortController;
  readonly #logger: Logger;
  readonly #shutdownTimeoutMs: number;
  readonly #ownsStore: boolean;
  readonly #health: Health;
  readonly #closeMetrics: () => Promise<void>;
  readonly #drainMs: number;
  readonly #links: SignInLinks;
  #stopped = false;

  private constructor(init: {
    port: number;
    agentPort: number | null;
    metricsPort: number | null;
    http: HttpListener | null;
    metrics: Metrics;
    health: Health;
    closeMetrics: () => Promise<void>;
    drainMs: number;
    store: Store;
    auth: Authenticator;
    grpc: Server;
    listeners: Listener[];
    dispatcher: Dispatcher;
    publisher: EventPublisher;
    webhooks: WebhookSender;
    sweeper: Sweeper;
    retention: Retention | null;
    presence: PresenceWriter;
    live: LiveStreams;
    shutdown: AbortController;
    logger: Logger;
    shutdownTimeoutMs: number;
    ownsStore: boolean;
    links: SignInLinks;
  }) {
    this.port = init.port;
    this.agentPort = init.agentPort;
    this.metricsPort = init.metricsPort;
    this.httpPort = init.http?.port ?? null;
    this.httpUrl = init.http?.url ?? null;
    this.#http = init.http;
    this.metrics = init.metrics;
    this.#health = init.health;
    this.#closeMetrics = init.closeMetrics;
    this.#drainMs = init.drainMs;
    this.#store = init.store;
    this.#auth = init.auth;
    this.#grpc = init.grpc;
    this.#listeners = init.listeners;
    this.#dispatcher = init.dispatcher;
    this.#publisher = init.publisher;
    this.#webhooks = init.webhooks;
    this.#sweeper = init.sweeper;
    this.#retention = init.retention;
    this.#presence = init.presence;
    this.#live = init.live;
    this.#shutdown = init.shutdown;
    this.#logger = init.logger;
    this.#shutdownTimeoutMs = init.shutdownTimeoutMs;
    this.#ownsStore = init.ownsStore;
    this.#links = init.links;
  }

  /** Opens the store (unless one is given), binds the port and starts serving; defaults in server/options.ts. */
  static async start(given: ServerOptions = {}): Promise<TaskgateServer> {
    const options = compileServerOptions(given);
    const { logger } = options;
    const rawStore = options.store ?? (await openStore(options));
    const dispatcher = new Dispatcher(logger);
    const metrics = new Metrics({ store: () => rawStore, connectedAgents: () => dispatcher.sessions().length });
    const store = metrics.measure(rawStore);
    const hub = new TaskHub();
    let webhooks: WebhookSender;
    try {
      webhooks = new WebhookSender(store, logger, options.webhooks);
    } catch (err) {
      if (!options.store) await store.close();
      throw err;
    }
    const publisher = new EventPublisher(store, [webhooks], logger, { sweepMs: options.eventSweepMs });
    const machine = new TaskMachine(store, hub, logger, (task, newEvents) => {
      if (task.status === 'ready') dispatcher.wake(task.agent);
      metrics.changed(task, newEvents);
      publisher.announce(task);
    });
    const auth = new Authenticator(store);
    const live = new LiveStreams(auth, logger, { everyMs: options.streamRecheckMs });
    const shutdown = new AbortController();
    const grpc = new Server({
      'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
      // Find dead agent connections within seconds (docs/agent-protocol.md: keepalive on both sides).
      'grpc.keepalive_time_ms': 20_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // No channelz service is served, so its per-call and per-message
      // bookkeeping (call counters, timestamps, a socket record per
      // connection) is work for no one (issue 18).
      'grpc.enable_channelz': 0,
      // Limits per connection (docs/limits.md); 0 turns the time limits off.
      'grpc.max_concurrent_streams': options.streamsPerConnection,
      ...(options.idleConnectionMs > 0 ? { 'grpc.max_connection_idle_ms': options.idleConnectionMs } : {}),
      ...(options.maxConnectionAgeMs > 0 ? { 'grpc.max_connection_age_ms': options.maxConnectionAgeMs, 'grpc.max_connection_age_grace_ms': 60_000 } : {}),
    });
    const secretBox = options.secretsKey ? new SecretBox(options.secretsKey) : null;
    const { leaseMs } = options;
    const presence = new PresenceWriter(store, logger);
    const sessionDeps = {
      presence,
      store,
      machine,
      hub,
      dispatcher,
      logger,
      options: {
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        maxTasksPerAgent: options.maxTasksPerAgent,
        helloTimeoutMs: options.helloTimeoutMs,
        killGraceMs: options.killGraceMs,
        maxOutputBytes: options.maxOutputBytes,
        lastSeenEveryMs: options.lastSeenEveryMs,
      },
      secretBox,
      metrics,
      requireAgentCertificate: options.agentTls !== undefined,
      live,
    };
    const sweeper = new Sweeper(store, dispatcher, machine, logger, { pollMs: options.pollMs, leaseMs });
    const retention = options.retainMs > 0 ? new Retention(store, logger, metrics, { retainMs: options.retainMs }) : null;
    // Every method, on every transport, runs through the same middleware
    // (docs/design.md "The RPC layer"), and so shares its limits.
    const authFailures = new AuthFailureLimits(options.authFailuresPerSecond);
    const callerLimits = new RateLimits({ callsPerSecond: options.callsPerSecond, burst: options.callBurst, streams: options.streamsPerUser });
    const middleware = [
      recordMetrics(metrics),
      mapErrors(logger),
      authenticate(auth, authFailures),
      requireAccess(),
      limitCallers(callerLimits),
      refuseNul(),
      guardStreams(live),
    ];
    const rpc = new GrpcTransport(grpc, { middleware, shutdown: shutdown.signal, logger });
    const connect = new ConnectTransport({ middleware, shutdown: shutdown.signal, logger, sessionCookie: sessionCookieName(options.tls !== undefined) });
    const links = new SignInLinks();
    for (const spec of [
      taskService(
        store,
        machine,
        hub,
        (task) => dispatcher.get(task.agent)?.kill(task.id, true),
        // Only where the insert cannot be in doubt (Store.claimsAtCreation).
        store.claimsAtCreation === true ? (task, target) => dispatcher.claimNew(task, target) : undefined,
      ),
      targetService(store, publisher, secretBox, () => live.recheckAll()),
      agentService(auth, sessionDeps, publisher),
      userService(store, auth, publisher),
      eventService(store, publisher),
    ]) {
      rpc.add(spec);
      connect.add(spec);
    }
    const health = new Health(grpc, rawStore, logger);
    addReflection(grpc);

    const { listen } = options;
    const listeners: Listener[] = [];
    let served: { port: number; close: () => Promise<void> } | null = null;
    let http: HttpListener | null = null;
    try {
      const limits = { handshakeTimeoutMs: options.handshakeTimeoutMs, maxConnections: options.maxConnections, logger };
      listeners.push(await Listener.open(grpc, { listen, tls: options.tls, ...limits }));
      if (options.agentTls) {
        const { cert, key, clientCa } = options.agentTls;
        listeners.push(await Listener.open(grpc, { listen: options.agentTls.listen, tls: { cert, key, clientCa }, ...limits }));
      }
      if (options.metricsListen) served = await metrics.serve(options.metricsListen);
      if (options.httpListen) {
        const tls = options.tls !== undefined;
        const api = guardBrowsers(connect.handler(), { tls });
        const handler = consoleRoutes({ auth, store, audit: publisher, links, failures: authFailures, limits: callerLimits, tls, api, logger, ...(options.consoleDir ? { staticDir: options.consoleDir } : {}) });
        http = await HttpListener.open({ listen: options.httpListen, tls: options.tls, handler, ...limits });
      }
    } catch (err) {
      for (const listener of listeners) listener.destroy();
      await served?.close();
      grpc.forceShutdown();
      if (!options.store) await rawStore.close();
      throw err;
    }
    const port = listeners[0]!.port;
    const agentPort = listeners[1]?.port ?? null;
    const server = new TaskgateServer({
      port,
      agentPort,
      metricsPort: served?.port ?? null,
      http,
      metrics,
      health,
      closeMetrics: served?.close ?? (async () => undefined),
      drainMs: options.drainMs,
      store,
      auth,
      grpc,
      listeners,
      dispatcher,
      publisher,
      webhooks,
      sweeper,
      retention,
      presence,
      live,
      shutdown,
      logger,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      ownsStore: !options.store,
      links,
    });
    await server.#recover(machine);
    publisher.start();
    webhooks.start();
    sweeper.start();
    retention?.start();
    live.start();
    health.start();
    const host = listen.replace(/:\d+$/, '');
    logger.info(
      {
        listen: `${host}:${port}`,
        tls: options.tls ? 'on' : 'off (plaintext: for local development only)',
        agentListen: agentPort === null ? undefined : `${options.agentTls!.listen.replace(/:\d+$/, '')}:${agentPort}`,
        metrics: served ? `http://${options.metricsListen!.replace(/:\d+$/, '')}:${served.port}/metrics` : undefined,
        http: http?.url,
        store: options.mongodbUri ? 'mongodb' : 'embedded',
        retain: formatRetention(options.retainMs),
      },
      'taskgate server listening',
    );
    if (!options.tls) logger.warn('TLS is off: tokens and output cross the network in plaintext; use --tls-cert and --tls-key beyond local development');
    return server;
  }

  /** Routes tasks a previous process stored but did not route before it stopped. */
  async #recover(machine: TaskMachine): Promise<void> {
    for (;;) {
      const created = await this.#store.listTasks({ statuses: ['created'], limit: 500 });
      for (const task of created) await machine.route(task);
      if (created.length < 500) return;
    }
  }

  /**
   * Makes sure an admin user with this email exists (creating it in the
   * admin group when missing); used by `taskgate dev` and a first
   * `taskgate server` start. An existing user is left as it is.
   */
  async ensureAdmin(email: string): Promise<void> {
    if (await this.#store.getUser(email)) return;
    const now = new Date();
    await this.#store.insertUser({ email, name: 'Administrator', groups: [ADMIN_GROUP], active: true, created: now, updated: now });
    await this.#publisher.record({ actor: 'system', action: 'user.created', resource: `users/${email}`, detail: `groups ${ADMIN_GROUP} (bootstrap)` });
  }

  /** Issues a user token and records it in the audit trail. */
  async issueUserToken(email: string, name: string): Promise<string> {
    const { secret, record } = await this.#auth.issue('user', email, { name, createdBy: 'system' });
    await this.#publisher.record({ actor: 'system', action: 'token.created', resource: `tokens/${record.id}`, detail: `user token for ${email} (${name})` });
    return secret;
  }

  /**
   * A one-time link that signs a browser in to the console as the user of
   * `token` (a user token): used once, within a day, on this server
   * (docs/console.md "Signing in"). Null without an HTTP listener.
   */
  async signInLink(token: string): Promise<string | null> {
    if (!this.httpUrl) return null;
    const principal = await this.#auth.verify(token);
    if (principal.kind !== 'user') throw new Error('a sign-in link needs a user token');
    return `${this.httpUrl}/auth/link?code=${this.#links.create(principal.tokenId)}`;
  }

  /**
   * Whether `token` is a live token of `holder` (a saved token file is still
   * good); false for an unknown, revoked or other principal's token.
   */
  async verifiesAs(token: string, holder: TokenHolder): Promise<boolean> {
    const principal = await this.#auth.verify(token).catch(() => undefined);
    if ('admin' in holder) {
      return principal?.kind === 'user' && principal.email === holder.admin && principal.groups.includes(ADMIN_GROUP);
    }
    return principal?.kind === 'agent' && principal.name === holder.agent;
  }

  /** Agents with a live stream on this server. */
  connectedAgents(): string[] {
    return this.#dispatcher.sessions().map((s) => s.name);
  }

  /**
   * Stops accepting calls, tells agents to reconnect elsewhere, lets running
   * calls finish until the deadline, then forces. Closes the store it opened.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Load balancers and probes see NOT_SERVING first, while calls still work.
    this.#health.drain();
    if (this.#drainMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#drainMs));
    this.#health.stop();
    this.#shutdown.abort();
    await this.#webhooks.stop();
    await this.#sweeper.stop();
    await this.#retention?.stop();
    this.#live.stop();
    for (const session of this.#dispatcher.sessions()) session.shutdown();
    for (const listener of this.#listeners) listener.stopAccepting();
    this.#http?.stopAccepting();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#logger.warn('graceful stop timed out; forcing');
        this.#grpc.forceShutdown();
        resolve();
      }, this.#shutdownTimeoutMs);
      const grpcDone = new Promise<void>((done) => this.#grpc.tryShutdown(() => done()));
      void Promise.all([grpcDone, this.#http?.drained()]).then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    for (const listener of this.#listeners) listener.destroy();
    this.#http?.destroy();
    await this.#presence.flush();
    await this.#publisher.stop();
    await this.#closeMetrics();
    if (this.#ownsStore) await this.#store.close();
  }
}

