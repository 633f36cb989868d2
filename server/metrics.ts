/**
 * Prometheus metrics (prom-client), served on their own HTTP port so the
 * gRPC port stays gRPC-only (docs/operations.md lists every series).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TASK_STATUSES } from '../shared/task-status.js';
import type { Store, TaskRecord } from './store/store.js';

/** Every series Taskgate exports. */
export class Metrics {
  readonly registry = new Registry();
  readonly #transitions: Counter<'from' | 'to'>;
  readonly #scheduleToStart: Histogram;
  readonly #outputBytes: Counter;
  readonly #agentStreams: Counter<'kind'>;
  readonly #storeSeconds: Histogram<'op' | 'outcome'>;
  readonly #rpcHandled: Counter<'method' | 'code' | 'transport'>;
  readonly #rpcSeconds: Histogram<'method'>;
  readonly #seenAgents = new Set<string>();
  readonly #retainedTasks: Counter;
  readonly #retainedChunks: Counter;
  readonly #retentionPasses: Counter<'outcome'>;

  constructor(sources: { store: () => Store; connectedAgents: () => number }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'taskgate_' });
    this.#transitions = new Counter({
      name: 'taskgate_task_transitions_total',
      help: 'Task status changes, by from and to status ("none" for creation).',
      labelNames: ['from', 'to'],
      registers: [this.registry],
    });
    this.#scheduleToStart = new Histogram({
      name: 'taskgate_schedule_to_start_seconds',
      help: 'From a task becoming ready to its process being spawned on the agent.',
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
    this.#outputBytes = new Counter({
      name: 'taskgate_output_bytes_total',
      help: 'Task output bytes stored (after redaction on the agent).',
      registers: [this.registry],
    });
    this.#agentStreams = new Counter({
      name: 'taskgate_agent_streams_total',
      help: 'Agent streams accepted: kind "first" for an agent new to this server process, "reconnect" for one seen before.',
      labelNames: ['kind'],
      registers: [this.registry],
    });
    this.#storeSeconds = new Histogram({
      name: 'taskgate_store_operation_seconds',
      help: 'Latency of store operations, by operation and outcome.',
      labelNames: ['op', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [this.registry],
    });
    this.#rpcHandled = new Counter({
      name: 'taskgate_rpc_handled_total',
      help: 'Calls finished, by method ("TaskService/GetTask"), status code name ("OK", "NOT_FOUND", "CANCELLED", ...) and transport ("grpc", or "connect" for Connect and gRPC-Web on the HTTP listener); the agent stream counts when it is accepted or refused.',
      labelNames: ['method', 'code', 'transport'],
      registers: [this.registry],
    });
    this.#rpcSeconds = new Histogram({
      name: 'taskgate_rpc_handling_seconds',
      help: 'From a call arriving to its status, by method (streams: their whole life).',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300],
      registers: [this.registry],
    });
    this.#retainedTasks = new Counter({
      name: 'taskgate_retention_deleted_tasks_total',
      help: 'Tasks deleted by this server process because they ended longer ago than --retain.',
      registers: [this.registry],
    });
    this.#retainedChunks = new Counter({
      name: 'taskgate_retention_deleted_chunks_total',
      help: 'Output chunks of those tasks deleted by this server process.',
      registers: [this.registry],
    });
    this.#retentionPasses = new Counter({
      name: 'taskgate_retention_passes_total',
      help: 'Retention passes finished by this server process, by outcome ("ok" or "error").',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    // Both series from the start, so an alert on errors has a zero to compare with.
    for (const outcome of ['ok', 'error']) this.#retentionPasses.inc({ outcome }, 0);
    new Gauge({
      name: 'taskgate_connected_agents',
      help: 'Agents with a live stream to this server process.',
      registers: [this.registry],
      collect() {
        this.set(sources.connectedAgents());
      },
    });
    new Gauge({
      name: 'taskgate_tasks',
      help: 'Tasks in the store, by status (read from the store at each scrape).',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const counts = await sources.store().countTasksByStatus();
        for (const status of TASK_STATUSES) this.set({ status }, counts[status] ?? 0);
      },
    });
  }

  /** A task changed: counts the status changes among its last `newEvents` events. */
  changed(task: TaskRecord, newEvents = 1): void {
    for (const event of task.events.slice(-newEvents)) {
      if (event.from !== event.to) this.#transitions.inc({ from: event.from ?? 'none', to: event.to });
    }
  }

  /** The agent spawned a task's process at `started`. */
  started(task: TaskRecord, started: Date): void {
    const ready = [...task.events].reverse().find((e) => e.to === 'ready');
    if (ready) this.#scheduleToStart.observe(Math.max(0, (started.getTime() - ready.time.getTime()) / 1000));
  }

  output(bytes: number): void {
    this.#outputBytes.inc(bytes);
  }

  agentStream(name: string): void {
    this.#agentStreams.inc({ kind: this.#seenAgents.has(name) ? 'reconnect' : 'first' });
    this.#seenAgents.add(name);
  }

  /** Retention deleted this many tasks and output chunks. */
  retained(tasks: number, chunks: number): void {
    this.#retainedTasks.inc(tasks);
    this.#retainedChunks.inc(chunks);
  }

  /** A retention pass ended. */
  retentionPass(outcome: 'ok' | 'error'): void {
    this.#retentionPasses.inc({ outcome });
  }

  /**
   * A recorder of one method's calls: `handled(code, seconds)` per call.
   * Label children are looked up once per method and code, not per call.
   */
  rpc(method: string, transport: string): (code: string, seconds: number) => void {
    const seconds = this.#rpcSeconds.labels({ method });
    const counters = new Map<string, { inc: () => void }>();
    return (code, elapsed) => {
      let counter = counters.get(code);
      if (!counter) counters.set(code, (counter = this.#rpcHandled.labels({ method, code, transport })));
      counter.inc();
      seconds.observe(elapsed);
    };
  }

  /** `store` with the latency of every operation recorded. */
  measure(store: Store): Store {
    const histogram = this.#storeSeconds;
    // One wrapper per operation, made on first use, with its label
    // children: no allocation and no label hashing per call (startTimer
    // merges and hashes the labels on every call).
    const wrappers = new Map<PropertyKey, (...args: unknown[]) => unknown>();
    return new Proxy(store, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (typeof value !== 'function') return value;
        let wrapper = wrappers.get(key);
        if (!wrapper) {
          const op = String(key);
          const ok = histogram.labels({ op, outcome: 'ok' });
          let error: ReturnType<typeof histogram.labels> | undefined;
          const fn = value as (...a: unknown[]) => unknown;
          wrapper = (...args: unknown[]): unknown => {
            // Started before the call: the SQLite store does its work before returning the promise.
            const start = performance.now();
            const result = fn.apply(target, args);
            if (!(result instanceof Promise)) return result;
            return result.then(
              (v: unknown) => {
                ok.observe((performance.now() - start) / 1000);
                return v;
              },
              (err: unknown) => {
                (error ??= histogram.labels({ op, outcome: 'error' })).observe((performance.now() - start) / 1000);
                throw err;
              },
            );
          };
          wrappers.set(key, wrapper);
        }
        return wrapper;
      },
    });
  }

  /** Serves /metrics on `listen` (host:port); resolves with the bound port. */
  async serve(listen: string): Promise<{ port: number; close: () => Promise<void> }> {
    const at = listen.lastIndexOf(':');
    const host = listen.slice(0, at) || '0.0.0.0';
    const wanted = Number(listen.slice(at + 1));
    const server: HttpServer = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot serve metrics on ${listen}: ${err.message}`, { cause: err })));
      server.listen(wanted, host, resolve);
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : wanted;
    return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }
}
