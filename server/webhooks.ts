/**
 * Outgoing webhooks: a POST for every task status change (task.created ...
 * task.killed), queued in the store by the event publisher and sent by a
 * background loop, so a slow or failing receiver never blocks or fails the
 * change that caused it. docs/webhooks.md is the receiver's side of this.
 *
 * JSON hooks are signed as the Standard Webhooks spec says
 * (https://www.standardwebhooks.com, spec/standard-webhooks.md "Signature
 * scheme" and "Webhook headers"; Svix implements the same): each hook has its
 * own secret, `whsec_` + base64 of the key bytes; every attempt carries
 * `webhook-id` (the event id, the same on every retry and after a restart),
 * `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`
 * = `v1,` + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)), so a
 * receiver can refuse replays by their age and duplicates by their id.
 *
 * "slack" hooks post an incoming-webhook `{"text": ...}` message, unsigned:
 * Slack checks no signature on incoming webhooks (the URL is the secret), so
 * signing would only hand Slack's operator bodies signed with a key. User
 * text in it is escaped as Slack asks (`&`, `<`, `>`), so `<https://x|Approve>`
 * in a message stays text instead of becoming a link.
 *
 * Delivery is at least once: a delivery is retried with exponential backoff
 * until the receiver answers 2xx or `maxAttempts` is reached (then it is
 * marked failed and logged). Redirects are not followed (a 3xx is a failed
 * attempt, as the spec advises). Logs name a hook by its label and host,
 * never its URL: a Slack URL's path is its secret.
 */
import { createHash, createHmac } from 'node:crypto';
import { backoffDelay } from '../shared/backoff.js';
import { ConfigError } from '../shared/config-error.js';
import type { Logger } from '../shared/logger.js';
import { VERSION } from '../shared/version.js';
import type { TaskEventSink } from './audit.js';
import type { AuditEventRecord, DeliveryRecord, Store, TaskRecord } from './store/store.js';
import { SerialPass } from '../shared/serial-pass.js';

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
  /** "json" (Standard Webhooks signed event, default) or "slack" (incoming-webhook text, unsigned). */
  format: 'json' | 'slack';
  /** json hooks: this hook's own secret, `whsec_` + base64 of 24 to 64 random bytes. Slack hooks take none. */
  secret?: string;
  /** How logs and errors name the hook; default `webhook #N`, its position. Never the URL. */
  name?: string;
}

/** Options of {@link WebhookSender}. */
export interface WebhookOptions {
  hooks: WebhookConfig[];
  /** Give up after this many attempts. Default 20 (about 1 h 47 min with the default backoff). */
  maxAttempts?: number;
  /** First retry delay, in ms; doubles up to 10 minutes. Default 1000. */
  retryBaseMs?: number;
  /** Per-request timeout, in ms. Default 10000. */
  timeoutMs?: number;
  /** How often to look for due deliveries, in ms. Default 1000. */
  pollMs?: number;
}

/** The prefix of a Standard Webhooks symmetric secret. */
export const SECRET_PREFIX = 'whsec_';
/** Key sizes the spec allows for HMAC-SHA256 secrets ("At least 24 bytes", at most 512 bits), in bytes. */
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

/**
 * The key bytes of a Standard Webhooks secret (`whsec_` + base64). Throws a
 * {@link ConfigError} that never contains the secret.
 */
export function parseWebhookSecret(secret: string): Buffer {
  const text = secret.trim();
  const how = `make one with: echo "${SECRET_PREFIX}$(head -c 32 /dev/urandom | base64)"`;
  if (!text.startsWith(SECRET_PREFIX)) throw new ConfigError(`a webhook secret must be ${SECRET_PREFIX} followed by base64 (the Standard Webhooks format); ${how}`);
  const b64 = text.slice(SECRET_PREFIX.length);
  const key = Buffer.from(b64, 'base64');
  // Buffer.from skips what is not base64; re-encoding shows whether anything was skipped.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
    throw new ConfigError(`a webhook secret must be ${SECRET_PREFIX} followed by standard base64; ${how}`);
  }
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new ConfigError(`a webhook secret must hold ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes, not ${key.length}; ${how}`);
  }
  return key;
}

/** The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}` (timestamp in unix seconds). */
export function signature(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The Standard Webhooks headers of one attempt made at `at`. */
export function signedHeaders(key: Buffer, id: string, body: string, at: Date = new Date()): Record<string, string> {
  const timestamp = Math.floor(at.getTime() / 1000);
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature(key, id, timestamp, body) };
}

/** Escapes text for Slack's mrkdwn: `&`, `<` and `>` are control characters there (Slack's "Escaping text" rule). */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
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

/** The Slack incoming-webhook body of a task event; every value that comes from a person is escaped. */
export function slackBody(event: AuditEventRecord, task: TaskRecord): string {
  const e = slackEscape;
  const id = e(task.id);
  const head = `Task \`${id}\` on *${e(task.target)}* by ${e(task.createdBy.replace(/^user:/, ''))}`;
  let text: string;
  switch (event.action) {
    case 'task.pending-review': {
      const groups = task.review.map((r) => e(r.group || 'anyone')).join(', ');
      const script = task.script.length > 2000 ? `${task.script.slice(0, 2000)}\n…` : task.script;
      text = [
        `:hourglass: ${head} waits for review by ${groups}.`,
        task.message ? `> ${e(task.message).split('\n').join('\n> ')}` : '',
        '```',
        e(script).replace(/```/g, '`\u200b``'),
        '```',
        `Approve: \`taskgate tasks review ${id} --approve\`   Reject: \`taskgate tasks review ${id} --reject -c "why"\``,
      ]
        .filter((line) => line !== '')
        .join('\n');
      break;
    }
    case 'task.approved':
      text = `:white_check_mark: ${head} was approved; run it with \`taskgate tasks run ${id}\`.`;
      break;
    case 'task.rejected':
      text = `:no_entry: ${head} was rejected by ${e(event.actor.replace(/^user:/, ''))}: ${e(event.detail)}`;
      break;
    case 'task.success':
      text = `:large_green_circle: ${head} succeeded.`;
      break;
    case 'task.failure':
      text = `:red_circle: ${head} failed: ${e(task.failureReason || `exit ${task.exitCode ?? '?'}`)}.`;
      break;
    case 'task.killed':
      text = `:black_circle: ${head} was killed.`;
      break;
    default:
      text = `${head} is ${e(event.to)}.`;
  }
  return JSON.stringify({ text });
}

/** The id of a hook in the store: stable across restarts (and secret changes), so queued deliveries still match it. */
function hookId(hook: WebhookConfig): string {
  return createHash('sha256').update(`${hook.format} ${hook.url}`).digest('hex').slice(0, 12);
}

/** A configured hook, checked, with what logs may say about it. */
interface Hook {
  url: string;
  format: 'json' | 'slack';
  /** The signing key of a json hook. */
  key: Buffer | undefined;
  /** How logs name it: its name, or `webhook #N`. */
  label: string;
  /** host[:port] of its URL: the part of it logs may show. */
  host: string;
}

function checkedHook(config: WebhookConfig, index: number): Hook {
  const label = config.name ?? `webhook #${index + 1}`;
  const url = URL.canParse(config.url) ? new URL(config.url) : null;
  // The message never repeats the URL: a Slack URL is a secret.
  if (!url || !/^https?:$/.test(url.protocol)) throw new ConfigError(`${label}: not an http(s) URL`);
  if (config.format === 'slack') {
    if (config.secret !== undefined) {
      throw new ConfigError(`${label}: a Slack hook takes no secret (Slack does not check signatures; its URL is the secret)`);
    }
    return { url: config.url, format: 'slack', key: undefined, label, host: url.host };
  }
  if (config.secret === undefined || config.secret.trim() === '') {
    throw new ConfigError(`${label} (${url.host}): a JSON hook needs a secret of its own to sign with (${SECRET_PREFIX}...)`);
  }
  let key: Buffer;
  try {
    key = parseWebhookSecret(config.secret);
  } catch (err) {
    throw new ConfigError(`${label} (${url.host}): ${(err as Error).message}`, { cause: err });
  }
  return { url: config.url, format: 'json', key, label, host: url.host };
}

function checkedHooks(configs: WebhookConfig[]): Map<string, Hook> {
  const hooks = new Map<string, Hook>();
  configs.forEach((config, i) => {
    const hook = checkedHook(config, i);
    const id = hookId(config);
    const twin = hooks.get(id);
    if (twin) throw new ConfigError(`${twin.label} and ${hook.label} are the same ${hook.format} webhook URL`);
    hooks.set(id, hook);
  });
  return hooks;
}

/** Refuses, with a {@link ConfigError}, hooks a {@link WebhookSender} would refuse: before anything starts. */
export function checkWebhooks(configs: WebhookConfig[]): void {
  checkedHooks(configs);
}

/** An error's text for logs and the store, with the hook's URL path, query and credentials taken out. */
function describeError(err: unknown, hook: Hook): string {
  const e = err as Error & { cause?: { code?: unknown; message?: unknown } };
  let text = e.name === 'TimeoutError' ? 'no answer in time' : e.message;
  if (e.cause && typeof e.cause.message === 'string') text = `${text}: ${e.cause.message}`;
  const url = new URL(hook.url);
  for (const secret of [hook.url, `${url.pathname}${url.search}`, url.username, url.password]) {
    if (secret.length > 1) text = text.split(secret).join('…');
  }
  return text;
}

/** Queues and sends webhook deliveries. */
export class WebhookSender implements TaskEventSink {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #hooks: Map<string, Hook>;
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  readonly #passes = new SerialPass(
    async () => {
      if (!this.#abort.signal.aborted) await this.#pass();
    },
    (err) => this.#logger.warn({ err }, 'webhook pass failed; will retry'),
  );

  /** Throws a {@link ConfigError} for a hook that cannot work (bad URL, missing or malformed secret, a URL given twice). */
  constructor(store: Store, logger: Logger, options: WebhookOptions) {
    this.#store = store;
    this.#logger = logger;
    this.#hooks = checkedHooks(options.hooks);
    this.#maxAttempts = options.maxAttempts ?? 20;
    this.#retryBaseMs = options.retryBaseMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#pollMs = options.pollMs ?? 1000;
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

  /** Starts sending due deliveries, those earlier processes left included. */
  start(): void {
    if (this.#hooks.size === 0) return;
    for (const hook of this.#hooks.values()) {
      this.#logger.info({ hook: hook.label, host: hook.host, format: hook.format, signed: hook.key !== undefined }, 'webhook configured');
    }
    this.#timer = setInterval(() => this.wake(), this.#pollMs);
    this.#timer.unref();
    this.wake();
  }

  /** Sends what is due now. Passes never overlap. */
  wake(): void {
    if (this.#abort.signal.aborted || this.#hooks.size === 0) return;
    this.#passes.run();
  }

  async #pass(): Promise<void> {
    for (;;) {
      const now = new Date();
      const due = await this.#store.claimDueDeliveries(now, new Date(now.getTime() + this.#timeoutMs * 2), 16);
      await Promise.all(due.map((d) => this.#send(d)));
      if (due.length < 16 || this.#abort.signal.aborted) return;
    }
  }

  #headers(hook: Hook, delivery: DeliveryRecord): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': `taskgate/${VERSION}` };
    if (!hook.key) return headers;
    return {
      ...headers,
      ...signedHeaders(hook.key, delivery.eventId, delivery.body),
      'x-taskgate-event': (JSON.parse(delivery.body) as { type?: string }).type ?? '',
      // Kept from the earlier scheme; the same value as webhook-id.
      'x-taskgate-delivery': delivery.eventId,
    };
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
        headers: this.#headers(hook, delivery),
        // A redirect is a failure (Standard Webhooks, "Delivery success and failure"): following one would
        // send the signed event, or a Slack message, wherever the receiver points.
        redirect: 'manual',
        signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        await this.#store.updateDelivery(delivery.id, { state: 'delivered', attempts, lastError: '' });
        return;
      }
      error = res.status >= 300 && res.status < 400 ? `receiver redirected (HTTP ${res.status}); redirects are not followed: configure the final URL` : `HTTP ${res.status}`;
    } catch (err) {
      if (this.#abort.signal.aborted) {
        // Stopping: hand it back, uncounted, so the next start (or another replica) sends it at once.
        await this.#store.updateDelivery(delivery.id, { nextAttempt: new Date() }).catch(() => undefined);
        return;
      }
      error = describeError(err, hook);
    }
    const fields = { hook: hook.label, host: hook.host, event: delivery.eventId, attempts, error };
    if (attempts >= this.#maxAttempts) {
      this.#logger.error(fields, 'webhook delivery failed for good');
      await this.#store.updateDelivery(delivery.id, { state: 'failed', attempts, lastError: error });
      return;
    }
    const delay = backoffDelay(attempts, { initialMs: this.#retryBaseMs, multiplier: 2, maxMs: 600_000, jitter: 0.1 });
    this.#logger.warn({ ...fields, retryInMs: delay }, 'webhook delivery failed; will retry');
    await this.#store.updateDelivery(delivery.id, { attempts, lastError: error, nextAttempt: new Date(Date.now() + delay) });
  }

  /** Stops sending; deliveries in flight are handed back to the store, due at once. */
  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#timer);
    await this.#passes.idle();
  }
}
