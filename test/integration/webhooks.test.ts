/**
 * Webhooks against a real HTTP receiver, on both stores: each JSON hook's
 * events arrive signed per Standard Webhooks with that hook's own secret and
 * the same webhook-id on every retry; Slack gets unsigned, escaped text;
 * redirects are failures, not followed; logs never show a hook's URL; and
 * deliveries pending or in flight when the server stops arrive once after it
 * starts again on the same store.
 *
 * The signatures are checked by {@link verify}, written here from the spec
 * text (standard-webhooks/standard-webhooks spec/standard-webhooks.md,
 * "Signature scheme", "Webhook headers", "Verifying signatures"), not with
 * the server's code: the `standardwebhooks` npm package is not installed.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { pino, type Logger } from 'pino';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision } from '../../gen/taskgate/v1/task.js';
import type { WebhookOptions } from '../../server/webhooks.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS, type StoreLocation } from '../helpers/stores.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
const SECRET_A = newSecret();
const SECRET_B = newSecret();

/**
 * A Standard Webhooks receiver's check, from the spec: the key is the base64
 * after `whsec_`; the signed content is `{msg_id}.{timestamp}.{payload}`;
 * `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>`,
 * compared in constant time; the timestamp must be near now (5 minutes, as the
 * reference libraries use). Returns why it fails, or '' when it verifies.
 */
function verify(secret: string, headers: IncomingHttpHeaders, body: string, nowSeconds = Date.now() / 1000): string {
  const [id, timestamp, signatures] = ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => headers[h]);
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return 'missing headers';
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return 'timestamp out of tolerance';
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  const match = signatures.split(' ').some((s) => {
    const [version, value] = s.split(',');
    const given = Buffer.from(value ?? '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
  return match ? '' : 'no matching signature';
}

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the receiver answered; 0 while held, -1 when the sender hung up first. */
  status: number;
}

/** What to answer: a status, or 'hold' (no answer until the sender gives up). */
type Policy = (r: Received, earlier: Received[]) => number | 'hold';

/** An HTTP receiver whose answers a test steers with a {@link Policy}. */
class Receiver {
  readonly attempts: Received[] = [];
  policy: Policy = () => 204;
  #server!: Server;
  #held = new Map<Received, ServerResponse>();
  #waiters: Array<{ done: () => boolean; resolve: () => void }> = [];
  base = '';

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const r: Received = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(parts).toString('utf8'), status: 0 };
        const earlier = this.attempts.filter((a) => a.path === r.path && a.headers['webhook-id'] === r.headers['webhook-id'] && a.body === r.body);
        this.attempts.push(r);
        const answer = this.policy(r, earlier);
        if (answer === 'hold') {
          this.#held.set(r, res);
          res.on('close', () => {
            if (this.#held.delete(r)) r.status = -1;
            this.#changed();
          });
        } else {
          r.status = answer;
          if (answer >= 300 && answer < 400) res.setHeader('location', `${this.base}/elsewhere`);
          res.writeHead(answer).end();
        }
        this.#changed();
      });
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.base;
  }

  /** Requests held open now. */
  get held(): number {
    return this.#held.size;
  }

  /** Attempts answered 2xx. */
  accepted(path?: string): Received[] {
    return this.attempts.filter((a) => a.status >= 200 && a.status < 300 && (path === undefined || a.path === path));
  }

  #changed(): void {
    this.#waiters = this.#waiters.filter((w) => (w.done() ? (w.resolve(), false) : true));
  }

  /** Resolves once `done` holds. */
  until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ done, resolve }));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** A logger that keeps every line, to check what logs say about hooks. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'debug' }, { write: (line: string) => lines.push(line) }), lines };
}

/** The JSON body's id and type. */
function parsed(r: Received): { id: string; type: string; task: { id: string } } {
  return JSON.parse(r.body) as { id: string; type: string; task: { id: string } };
}

for (const kind of STORE_KINDS) {
  describe(`webhooks: ${kind.name}`, function () {
    let location: StoreLocation | null;
    let h: Harness | undefined;
    let receiver: Receiver;
    let log: ReturnType<typeof capturingLogger>;

    beforeEach(async function () {
      location = await kind.location();
      if (!location) this.skip();
      receiver = new Receiver();
      await receiver.start();
      log = capturingLogger();
      h = undefined;
    });

    afterEach(async () => {
      await h?.close();
      await receiver?.close();
    });

    async function start(webhooks: Partial<WebhookOptions> & Pick<WebhookOptions, 'hooks'>): Promise<Harness> {
      h = await Harness.start(location!, { logger: log.logger, webhooks: { retryBaseMs: 20, pollMs: 50, ...webhooks } });
      return h;
    }

    /** A dev user and a reviewer, a reviewed target on agent a1 (not started unless asked). */
    async function people(harness: Harness) {
      await harness.createTarget('reviewed', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
      const dev = await harness.user('dev@x', ['dev']);
      const ops = await harness.user('ops@x', ['ops']);
      const create = async (target: string, script: string, message = 'm') =>
        (await dev.call(dev.tasks, dev.tasks.createTask, { target, script, message, type: '', timeoutSeconds: 0 })).task!.id;
      const review = (id: string, decision: ReviewDecision, comment = 'c') => ops.call(ops.tasks, ops.tasks.reviewTask, { id, decision, group: '', comment });
      return { dev, create, review };
    }

    it('signs each JSON hook with its own secret (Standard Webhooks), keeps webhook-id across retries, and posts Slack unsigned', async () => {
      // The first attempt of every delivery fails, the retry succeeds.
      receiver.policy = (_r, earlier) => (earlier.length === 0 ? 500 : 204);
      const harness = await start({
        hooks: [
          { url: `${receiver.base}/a`, format: 'json', secret: SECRET_A },
          { url: `${receiver.base}/b?token=QUERYSECRET`, format: 'json', secret: SECRET_B, name: 'ci' },
          { url: `${receiver.base}/services/T0/B0/SLACKSECRET`, format: 'slack' },
        ],
      });
      await harness.startAgent('a1');
      await harness.createTarget('plain', 'a1');
      const { dev, create, review } = await people(harness);
      const ok = await create('plain', 'echo ok');
      const failed = await create('plain', 'exit 4');
      const approved = await create('reviewed', 'echo approved');
      const rejected = await create('reviewed', 'echo never');
      await review(approved, ReviewDecision.REVIEW_DECISION_APPROVE);
      await review(rejected, ReviewDecision.REVIEW_DECISION_REJECT);
      await dev.call(dev.tasks, dev.tasks.runTask, { id: approved });
      await Promise.all([ok, failed, approved].map((id) => harness.finished(id)));

      const expected = [
        ...['task.created', 'task.ready', 'task.running', 'task.success'].map((t) => `${ok} ${t}`),
        ...['task.created', 'task.ready', 'task.running', 'task.failure'].map((t) => `${failed} ${t}`),
        ...['task.created', 'task.pending-review', 'task.approved', 'task.ready', 'task.running', 'task.success'].map((t) => `${approved} ${t}`),
        ...['task.created', 'task.pending-review', 'task.rejected'].map((t) => `${rejected} ${t}`),
      ].sort();
      const paths = ['/a', '/b?token=QUERYSECRET', '/services/T0/B0/SLACKSECRET'];
      await receiver.until(() => paths.every((p) => receiver.accepted(p).length >= expected.length));

      for (const [path, own, other] of [
        ['/a', SECRET_A, SECRET_B],
        ['/b?token=QUERYSECRET', SECRET_B, SECRET_A],
      ] as const) {
        const accepted = receiver.accepted(path);
        const bodies = accepted.map((r) => {
          expect(verify(own, r.headers, r.body), `${path} verifies with its own secret`).to.equal('');
          expect(verify(other, r.headers, r.body), `${path} does not verify with another hook's secret`).to.equal('no matching signature');
          // The timestamp is signed: a replay with a fresh timestamp does not verify.
          const replayed = { ...r.headers, 'webhook-timestamp': String(Number(r.headers['webhook-timestamp']) + 1) };
          expect(verify(own, replayed, r.body)).to.equal('no matching signature');
          expect(r.headers['x-taskgate-signature-256'], 'the body-only signature is gone').to.equal(undefined);
          const body = parsed(r);
          expect([r.headers['webhook-id'], r.headers['x-taskgate-delivery'], r.headers['x-taskgate-event']]).to.deep.equal([body.id, body.id, body.type]);
          return body;
        });
        expect(bodies.map((b) => `${b.task.id} ${b.type}`).sort()).to.deep.equal(expected);
        // Each was refused once, then accepted once; both attempts carried the same id, each signed for its own time.
        expect(new Set(bodies.map((b) => b.id)).size).to.equal(expected.length);
        for (const b of bodies) {
          const tries = receiver.attempts.filter((a) => a.path === path && a.headers['webhook-id'] === b.id);
          expect(tries.map((t) => t.status)).to.deep.equal([500, 204]);
          for (const t of tries) expect(verify(own, t.headers, t.body)).to.equal('');
        }
      }
      const rejectedBody = receiver.accepted('/a').map(parsed).find((b) => b.task.id === rejected && b.type === 'task.rejected');
      expect(rejectedBody).to.deep.include({ detail: 'rejected by user:ops@x: c', actor: 'user:ops@x' });

      const slack = receiver.attempts.filter((r) => r.path === '/services/T0/B0/SLACKSECRET');
      for (const r of slack) {
        expect(Object.keys(r.headers).filter((k) => k.startsWith('webhook-') || k.startsWith('x-taskgate-')), 'Slack is not signed').to.deep.equal([]);
      }
      const texts = receiver.accepted('/services/T0/B0/SLACKSECRET').map((r) => (JSON.parse(r.body) as { text: string }).text);
      expect(texts).to.have.length(expected.length);
      const waiting = texts.find((t) => t.includes(`Task \`${approved}\``) && t.includes('waits for review'));
      expect(waiting).to.contain('```\necho approved\n```').and.contain(`taskgate tasks review ${approved} --approve`);

      // Every failure was logged, naming the hook and its host, never its URL's path or query.
      const warnings = log.lines.filter((l) => l.includes('webhook delivery failed; will retry')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const host = new URL(receiver.base).host;
      expect(new Set(warnings.map((w) => `${String(w.hook)} ${String(w.host)}`))).to.deep.equal(new Set([`webhook #1 ${host}`, `ci ${host}`, `webhook #3 ${host}`]));
      expect(warnings.map((w) => w.error)).to.include('HTTP 500');
      for (const line of log.lines) expect(line).not.to.match(/SLACKSECRET|QUERYSECRET|services\/T0/);
    });

    it("escapes &, < and > in users' text for Slack, so <https://evil|Approve> arrives as text, not a link", async () => {
      const harness = await start({ hooks: [{ url: `${receiver.base}/slack`, format: 'slack' }] });
      const { create, review } = await people(harness);
      const evil = '<https://evil|Approve>';
      const id = await create('reviewed', `echo '${evil}' && true`, `${evil} & <!channel>`);
      await review(id, ReviewDecision.REVIEW_DECISION_REJECT, `no ${evil}`);
      await receiver.until(() => receiver.accepted('/slack').length >= 3);
      const texts = receiver.accepted('/slack').map((r) => (JSON.parse(r.body) as { text: string }).text);
      const waiting = texts.find((t) => t.includes('waits for review'))!;
      const rejection = texts.find((t) => t.includes('was rejected'))!;
      for (const text of [waiting, rejection]) {
        expect(text).not.to.contain('<https://evil');
        expect(text).to.contain('&lt;https://evil|Approve&gt;');
      }
      expect(waiting).to.contain('> &lt;https://evil|Approve&gt; &amp; &lt;!channel&gt;');
      expect(waiting).to.contain("echo '&lt;https://evil|Approve&gt;' &amp;&amp; true");
      expect(rejection).to.contain('no &lt;https://evil|Approve&gt;');
      // Slack shows an escaped entity as the character: the reader sees exactly what the user wrote.
      const shown = (t: string) => t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
      expect(shown(waiting)).to.contain(`> ${evil} & <!channel>`);
    });

    it('does not follow redirects: a 3xx is a failed delivery, retried, and logged as a redirect', async () => {
      // Two redirects per delivery, then the receiver accepts.
      receiver.policy = (r, earlier) => (r.path === '/elsewhere' ? 204 : earlier.length < 2 ? 307 : 204);
      const harness = await start({
        hooks: [
          { url: `${receiver.base}/moved?k=QUERYSECRET`, format: 'json', secret: SECRET_A },
          { url: `${receiver.base}/services/T0/B0/SLACKSECRET`, format: 'slack' },
        ],
      });
      const { create } = await people(harness);
      const id = await create('reviewed', 'echo hi');
      await receiver.until(() => receiver.accepted().length >= 4); // created and pending-review, to both hooks
      expect(receiver.attempts.filter((a) => a.path === '/elsewhere'), 'the redirect target was never called').to.deep.equal([]);
      for (const path of ['/moved?k=QUERYSECRET', '/services/T0/B0/SLACKSECRET']) {
        const tries = receiver.attempts.filter((a) => a.path === path);
        expect(tries.map((t) => t.status).sort()).to.deep.equal([204, 204, 307, 307, 307, 307]);
      }
      expect(receiver.accepted('/moved?k=QUERYSECRET').map((r) => parsed(r).task.id)).to.deep.equal([id, id]);
      const warnings = log.lines.filter((l) => l.includes('webhook delivery failed; will retry')).map((l) => JSON.parse(l) as { hook: string; error: string });
      expect(warnings).to.have.length(8);
      for (const w of warnings) expect(w.error).to.match(/^receiver redirected \(HTTP 307\); redirects are not followed/);
      expect(new Set(warnings.map((w) => w.hook))).to.deep.equal(new Set(['webhook #1', 'webhook #2']));
      for (const line of log.lines) expect(line).not.to.match(/SLACKSECRET|QUERYSECRET|elsewhere/);
    });

    it('delivers each event exactly once after a restart, with the same webhook-id, when deliveries were failing or in flight at the stop', async () => {
      receiver.policy = () => 503;
      const harness = await start({
        hooks: [
          { url: `${receiver.base}/json`, format: 'json', secret: SECRET_A },
          { url: `${receiver.base}/slack`, format: 'slack' },
        ],
        // Long enough that a delivery the stop did not hand back (its lease is twice this) would miss the test's timeout.
        timeoutMs: 60_000,
      });
      const { create } = await people(harness);
      const tasks = [await create('reviewed', 'echo one'), await create('reviewed', 'echo two')];
      // Four events (created, pending-review of each) to two hooks.
      const key = (r: Received) => `${r.path} ${r.path === '/json' ? String(r.headers['webhook-id']) : r.body}`;
      const deliveries = () => new Set(receiver.attempts.map(key));
      const triedTwice = () => [...deliveries()].filter((k) => receiver.attempts.filter((a) => key(a) === k).length >= 2).length;
      await receiver.until(() => deliveries().size === 8 && triedTwice() === 8);
      // Then the receiver stops answering, so attempts are in flight when the server stops.
      receiver.policy = () => 'hold';
      await receiver.until(() => receiver.held >= 1);
      const inFlight = receiver.attempts.filter((a) => a.status === 0).map(key);
      receiver.policy = () => 503;
      const before = new Map(receiver.attempts.filter((a) => a.path === '/json').map((a) => [parsed(a).id, a.headers['webhook-id']]));

      await harness.restart();
      // The stopped server hung up on what it had in flight; none of it was accepted.
      await receiver.until(() => receiver.held === 0);
      expect(receiver.accepted()).to.deep.equal([]);
      receiver.policy = () => 204;
      await receiver.until(() => receiver.accepted().length >= 8);

      const accepted = receiver.accepted().map(key).sort();
      expect(accepted, 'each delivery accepted exactly once').to.deep.equal([...deliveries()].sort());
      for (const k of inFlight) expect(accepted).to.include(k);
      const json = receiver.accepted('/json');
      expect(json.map((r) => parsed(r).task.id).sort()).to.deep.equal([...tasks, ...tasks].sort());
      for (const r of json) {
        expect(r.headers['webhook-id'], 'the same webhook-id as before the restart').to.equal(before.get(parsed(r).id));
        expect(verify(SECRET_A, r.headers, r.body)).to.equal('');
      }
      // Nothing more is sent once everything is delivered: the stop waits for the sender.
      const count = receiver.attempts.length;
      await harness.close();
      h = undefined;
      expect(receiver.attempts.length).to.equal(count);
    });
  });
}

describe('webhook flags', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-webhook-flags-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function server(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [CLI, 'server', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...args],
        { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
        (_err, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
      );
    });
  }

  it('refuses --webhook-secret and TASKGATE_WEBHOOK_SECRET in one line saying what to use instead', async () => {
    for (const run of [
      () => server(['--webhook', 'https://hooks.example.com/x', '--webhook-secret', 'shared']),
      () => server(['--webhook', 'https://hooks.example.com/x'], { TASKGATE_WEBHOOK_SECRET: 'shared' }),
    ]) {
      const { code, stderr } = await run();
      expect(code).to.equal(2);
      expect(stderr.trim().split('\n')).to.have.length(1);
      expect(stderr).to.contain('--webhook-secret (TASKGATE_WEBHOOK_SECRET) is no longer accepted').and.contain('--webhook-secret-file').and.contain('--webhooks-file');
    }
  });

  it('needs one secret file per --webhook, in whsec_ form, and never prints a Slack URL', async () => {
    const secretFile = join(dir, 'a.secret');
    writeFileSync(secretFile, 'not-a-standard-secret\n', { mode: 0o600 });
    const twoHooks = await server(['--webhook', 'https://a.example.com/x', '--webhook', 'https://b.example.com/y', '--webhook-secret-file', secretFile]);
    expect([twoHooks.code, twoHooks.stderr.trim()]).to.deep.equal([
      2,
      'taskgate: each --webhook needs its own --webhook-secret-file, in the same order: got 2 --webhook and 1 --webhook-secret-file',
    ]);
    const badSecret = await server(['--webhook', 'https://a.example.com/x', '--webhook-secret-file', secretFile]);
    expect(badSecret.code).to.equal(2);
    expect(badSecret.stderr).to.contain('--webhook #1 (a.example.com): a webhook secret must be whsec_ followed by base64').and.not.contain('not-a-standard');
    const hooksFile = join(dir, 'hooks.json');
    writeFileSync(hooksFile, JSON.stringify([{ url: 'https://hooks.slack.com/services/T/B/SLACKSECRET', format: 'slack', secret: newSecret() }]), { mode: 0o600 });
    const slackSigned = await server(['--webhooks-file', hooksFile]);
    expect(slackSigned.code).to.equal(2);
    expect(slackSigned.stderr).to.contain('--webhooks-file #1: a Slack hook takes no secret').and.not.contain('SLACKSECRET');
  });
});
