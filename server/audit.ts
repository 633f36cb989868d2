/**
 * The audit trail. Each task carries its own events, appended in the same
 * atomic write as the change they record, so a task's history can never
 * disagree with it. The task document is also the outbox: the
 * {@link EventPublisher} copies events past `task.published` into the audit
 * collection (for listing by actor and time) and into the webhook queue, then
 * advances `published`. A server that dies in between publishes them again
 * after restart (ids are fixed per task and index, so nothing is stored
 * twice); publishing never blocks or fails the change itself.
 *
 * Events that are not about a task (tokens, users, targets) are written
 * straight to the audit collection after the change they record.
 */
import { eventId } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { hasUnpublished, insertEvents, markPublished, taskAuditEvent, type AuditEventRecord, type AuditStore, type TaskStore, type TaskRecord } from './store/store.js';
import { SerialPass } from '../shared/serial-pass.js';

/** Receives published task events (the webhook sender). */
export interface TaskEventSink {
  /** Queues what this event should cause; must be idempotent per event id. */
  enqueue(event: AuditEventRecord, task: TaskRecord): Promise<void>;
}

export { taskAuditEvent } from './store/store.js';

/** Options of {@link EventPublisher}. */
export interface EventPublisherOptions {
  /** How often to look for unpublished events of any server, in ms. Default 2000. */
  sweepMs?: number;
  /**
   * How long announced changes wait to be published together, in ms
   * (flush() does not wait). Default 25: a short task's every event then
   * costs one publishing step, not one each.
   */
  batchMs?: number;
}

/** Copies task events to the audit trail and the webhook queue; records other events. */
export class EventPublisher {
  readonly #store: AuditStore & TaskStore;
  readonly #sinks: TaskEventSink[];
  readonly #logger: Logger;
  readonly #sweepMs: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #batchMs: number;
  #batchTimer: NodeJS.Timeout | undefined;
  readonly #passes = new SerialPass(
    async () => {
      if (!this.#stopped) await this.#pass();
    },
    (err) => this.#logger.warn({ err }, 'publishing task events failed; will retry'),
  );
  #stopped = false;
  /** Tasks announced since the last pass: published without scanning the store. */
  #announced = new Map<string, TaskRecord>();
  /** Whether the next pass must scan the store (at start and every sweep). */
  #scan = true;

  constructor(store: AuditStore & TaskStore, sinks: TaskEventSink[], logger: Logger, options: EventPublisherOptions = {}) {
    this.#store = store;
    this.#sinks = sinks;
    this.#logger = logger;
    this.#sweepMs = options.sweepMs ?? 2000;
    this.#batchMs = options.batchMs ?? 25;
  }

  /** Publishes what earlier processes left, then keeps sweeping. */
  start(): void {
    this.#sweep();
    this.#timer = setInterval(() => this.#sweep(), this.#sweepMs);
    this.#timer.unref();
  }

  /** A task changed here: publish its new events soon (no store scan needed). */
  announce(task: TaskRecord): void {
    if (!hasUnpublished(task)) return;
    this.#announced.set(task.id, task);
    if (this.#batchTimer || this.#stopped) return;
    this.#batchTimer = setTimeout(() => {
      this.#batchTimer = undefined;
      this.wake();
    }, this.#batchMs);
  }

  #sweep(): void {
    this.#scan = true;
    this.wake();
  }

  /** Runs a pass soon. Passes never overlap; a wake during one runs another. */
  wake(): void {
    if (this.#stopped) return;
    this.#passes.run();
  }

  /** Resolves once every event announced before the call is published (read-your-writes for ListEvents). */
  async flush(): Promise<void> {
    // A pass under way may have begun before the caller's events: ask for one more.
    this.wake();
    this.wake();
    await this.#passes.idle();
  }

  async #pass(): Promise<void> {
    const announced = [...this.#announced.values()];
    this.#announced.clear();
    // Each was just written by this process, and a store that records task
    // events itself did so in that write.
    await this.#publish(announced, this.#store.recordsTaskEvents === true);
    if (!this.#scan) return;
    this.#scan = false;
    for (;;) {
      const tasks = await this.#store.listUnpublished(100);
      await this.#publish(tasks, false);
      if (tasks.length < 100 || this.#stopped) return;
    }
  }

  /**
   * Publishes the new events of `tasks` together: their audit records in one
   * store step (none when `recorded`: the store wrote them with the tasks),
   * the sinks, then every task's `published` in one more (so a pass over
   * many tasks costs at most two round trips, not two per event).
   */
  async #publish(tasks: readonly TaskRecord[], recorded: boolean): Promise<void> {
    const pending = tasks.filter(hasUnpublished);
    if (pending.length === 0) return;
    const events: { event: AuditEventRecord; task: TaskRecord }[] = [];
    for (const task of pending) {
      for (let i = task.published; i < task.events.length; i++) events.push({ event: taskAuditEvent(task, i), task });
    }
    if (!recorded) {
      await insertEvents(
        this.#store,
        events.map((e) => e.event),
      );
    }
    for (const { event, task } of events) for (const sink of this.#sinks) await sink.enqueue(event, task);
    await markPublished(
      this.#store,
      pending.map((task) => ({ id: task.id, published: task.events.length })),
    );
  }

  /** Records an event that is not about a task. Failures are logged, never thrown. */
  async record(event: Omit<AuditEventRecord, 'id' | 'time' | 'from' | 'to'> & Partial<AuditEventRecord>): Promise<void> {
    const time = event.time ?? new Date();
    const full: AuditEventRecord = { from: '', to: '', ...event, time, id: event.id ?? eventId(time) };
    try {
      await this.#store.insertEvent(full);
    } catch (err) {
      this.#logger.error({ err, action: full.action, resource: full.resource }, 'could not record audit event');
    }
  }

  /** Stops sweeping; waits for a pass in progress. */
  async stop(): Promise<void> {
    if (this.#batchTimer) {
      // Announced changes waiting for their batch: published now.
      clearTimeout(this.#batchTimer);
      this.#batchTimer = undefined;
      this.wake();
    }
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#passes.idle();
  }
}
