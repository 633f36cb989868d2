/**
 * Outgoing webhooks: a POST for every task status change (task.created ...
 * task.killed), queued in the store by the event publisher and sent by a
 * background loop, so a slow or failing receiver never blocks or fails the
 * change that caused it.
 *
 * Delivery is at least once: a delivery is retried with exponential backoff
 * until the receiver answers 2xx or `maxAttempts` is reached (then it is
 * marked failed and logged). Receivers deduplicate by the
 * `X-Taskgate-Delivery` header (the event id). JSON bodies are signed like
 * GitHub's: `X-Taskgate-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
 * The "slack" format posts an incoming-webhook `{"text": ...}` message instead.
 */
import { createHash, createHmac } from 'node:crypto';
import { backoffDelay } from '../shared/backoff.js';
import type { Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import type { TaskEventSink } from './audit.js';
import type { AuditEventRecord, DeliveryRecord, Store, TaskRecord } from './store/store.js';

/** Actions that are posted: one per task status. */
export const WEBHOOK_ACTIONS: ReadonlySet<string> = new Set([
  'task.created',
  'task.pending-review',
  'task.approved',
  'task.rejected',
  'task.ready',
  'task.running',
  'task.success',
  'task.failure',
  'task.killed',
]);

/** One configured receiver. */
export interface WebhookConfig {
  url: string;
  /** "json" (signed event, default) or "slack" (incoming-webhook text). */
  format: 'json' | 'slack';
}

/** Options of {@link WebhookSender}. */
export interface WebhookOptions {
  hooks: WebhookConfig[];
  /** HMAC-SHA256 key for the signature header; required for json hooks. */
  secret: string;
  /** Give up after this many attempts. Default 20 (about 2 hours with the default backoff). */
  maxAttempts?: number;
  /** First retry delay, in ms; doubles up to 10 minutes. Default 1000. */
  retryBaseMs?: number;
  /** Per-request timeout, in ms. Default 10000. */
  timeoutMs?: number;
  /** How often to look for due deliveries, in ms. Default 1000. */
  pollMs?: number;
}

/** The id of a hook: stable across restarts, so queued deliveries still match it. */
function hookId(hook: WebhookConfig): string {
  return createHash('sha256').update(`${hook.format} ${hook.url}`).digest('hex').slice(0, 12);
}

/** The `X-Taskgate-Signature-256` value for a body. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The JSON body of a task event. */
export function jsonBody(event: AuditEventRecord, task: TaskRecord): string {
  return JSON.stringify({
    id: event.id,
    type: event.action,
    time: event.time.toISOString(),
    actor: event.actor,
    from: event.from,
    to: event.to,
    detail: event.detail,
    task: {
      id: task.id,
      target: task.target,
      type: task.type,
      status: event.to,
      message: task.message,
      script: task.script,
      createdBy: task.createdBy,
      created: task.created.toISOString(),
      agent: task.agent,
      review: task.review.map((r) => ({ group: r.group, status: r.status, reviewer: r.reviewer, comment: r.comment })),
      exitCode: task.exitCode,
      signal: task.signal,
      failureReason: task.failureReason,
    },
  });
}

/** The Slack incoming-webhook body of a task event. */
export function slackBody(event: AuditEventRecord, task: TaskRecord): string {
  const head = `Task \`${task.id}\` on *${task.target}* by ${task.createdBy.replace(/^user:/, '')}`;
  let text: string;
  switch (event.action) {
    case 'task.pending-review': {
      const groups = task.review.map((r) => r.group || 'anyone').join(', ');
      const script = task.script.length > 2000 ? `${task.script.slice(0, 2000)}\n…` : task.script;
      text = [
        `:hourglass: ${head} waits for review by ${groups}.`,
        task.message ? `> ${task.message.split('\n').join('\n> ')}` : '',
        '```',
        script.replace(/```/g, '`\u200b``'),
        '```',
        `Approve: \`taskgate tasks review ${task.id} --approve\`   Reject: \`taskgate tasks review ${task.id} --reject -c "why"\``,
      ]
        .filter((line) => line !== '')
        .join('\n');
      break;
    }
    case 'task.approved':
      text = `:white_check_mark: ${head} was approved; run it with \`taskgate tasks run ${task.id}\`.`;
      break;
    case 'task.rejected':
      text = `:no_entry: ${head} was rejected by ${event.actor.replace(/^user:/, '')}: ${event.detail}`;
      break;
    case 'task.success':
      text = `:large_green_circle: ${head} succeeded.`;
      break;
    case 'task.failure':
      text = `:red_circle: ${head} failed: ${task.failureReason || `exit ${task.exitCode ?? '?'}`}.`;
      break;
    case 'task.killed':
      text = `:black_circle: ${head} was killed.`;
      break;
    default:
      text = `${head} is ${event.to}.`;
  }
  return JSON.stringify({ text });
}

/** Queues and sends webhook deliveries. */
export class WebhookSender implements TaskEventSink {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #hooks: Map<string, WebhookConfig>;
  readonly #secret: string;
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(store: Store, logger: Logger, options: WebhookOptions) {
    this.#store = store;
    this.#logger = logger;
    this.#hooks = new Map(options.hooks.map((h) => [hookId(h), h]));
    this.#secret = options.secret;
    this.#maxAttempts = options.maxAttempts ?? 20;
    this.#retryBaseMs = options.retryBaseMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#pollMs = options.pollMs ?? 1000;
    if (this.#secret === '' && options.hooks.some((h) => h.format === 'json')) {
      throw new Error('webhooks need a secret to sign with (--webhook-secret)');
    }
  }

  async enqueue(event: AuditEventRecord, task: TaskRecord): Promise<void> {
    if (!WEBHOOK_ACTIONS.has(event.action)) return;
    for (const [id, hook] of this.#hooks) {
      await this.#store.insertDelivery({
        id: `${id}:${event.id}`,
        hook: id,
        eventId: event.id,
        body: hook.format === 'slack' ? slackBody(event, task) : jsonBody(event, task),
        state: 'pending',
        attempts: 0,
        nextAttempt: new Date(),
        lastError: '',
        created: new Date(),
      });
    }
    this.wake();
  }

  /** Starts sending due deliveries. */
  start(): void {
    if (this.#hooks.size === 0) return;
    this.#timer = setInterval(() => this.wake(), this.#pollMs);
    this.#timer.unref();
    this.wake();
  }

  /** Sends what is due now. Passes never overlap. */
  wake(): void {
    if (this.#abort.signal.aborted || this.#hooks.size === 0) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass()
      .catch((err: unknown) => this.#logger.warn({ err }, 'webhook pass failed; will retry'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.wake();
        }
      });
  }

  async #pass(): Promise<void> {
    for (;;) {
      const now = new Date();
      const due = await this.#store.claimDueDeliveries(now, new Date(now.getTime() + this.#timeoutMs * 2), 16);
      await Promise.all(due.map((d) => this.#send(d)));
      if (due.length < 16 || this.#abort.signal.aborted) return;
    }
  }

  async #send(delivery: DeliveryRecord): Promise<void> {
    const hook = this.#hooks.get(delivery.hook);
    if (!hook) {
      // Queued for a hook this server is no longer configured with.
      await this.#store.updateDelivery(delivery.id, { state: 'failed', lastError: 'webhook no longer configured' });
      return;
    }
    const attempts = delivery.attempts + 1;
    let error = '';
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        body: delivery.body,
        headers: {
          'content-type': 'application/json',
          'user-agent': `taskgate/${VERSION}`,
          'x-taskgate-event': (JSON.parse(delivery.body) as { type?: string }).type ?? '',
          'x-taskgate-delivery': delivery.eventId,
          ...(this.#secret ? { 'x-taskgate-signature-256': signature(this.#secret, delivery.body) } : {}),
        },
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        await this.#store.updateDelivery(delivery.id, { state: 'delivered', attempts, lastError: '' });
        return;
      }
      error = `HTTP ${res.status}`;
    } catch (err) {
      if (this.#abort.signal.aborted) return; // stopping: the lease runs out and it is sent again later
      error = (err as Error).message;
    }
    if (attempts >= this.#maxAttempts) {
      this.#logger.error({ url: hook.url, event: delivery.eventId, attempts, error }, 'webhook delivery failed for good');
      await this.#store.updateDelivery(delivery.id, { state: 'failed', attempts, lastError: error });
      return;
    }
    const delay = backoffDelay(attempts, { initialMs: this.#retryBaseMs, multiplier: 2, maxMs: 600_000, jitter: 0.1 });
    this.#logger.warn({ url: hook.url, event: delivery.eventId, attempts, error, retryInMs: delay }, 'webhook delivery failed; will retry');
    await this.#store.updateDelivery(delivery.id, { attempts, lastError: error, nextAttempt: new Date(Date.now() + delay) });
  }

  /** Stops sending; deliveries in flight are retried by the next start. */
  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#timer);
    await this.#running;
  }
}
