/**
 * Webhooks against a real HTTP receiver: every task status change arrives
 * once, signed, after retries when the receiver first fails; a Slack hook
 * gets a message reviewers can act on.
 */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const SECRET = 'test-webhook-secret';

interface Received {
  path: string;
  delivery: string;
  event: string;
  signature: string;
  body: string;
}

/** An HTTP receiver that answers 500 to the first attempt of every delivery and 200 after. */
class Receiver {
  readonly attempts: Received[] = [];
  readonly accepted: Received[] = [];
  #server!: Server;
  #waiters: Array<{ done: (r: Received[]) => boolean; resolve: () => void }> = [];

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const r: Received = {
          path: req.url ?? '',
          delivery: String(req.headers['x-taskgate-delivery'] ?? ''),
          event: String(req.headers['x-taskgate-event'] ?? ''),
          signature: String(req.headers['x-taskgate-signature-256'] ?? ''),
          body: Buffer.concat(parts).toString('utf8'),
        };
        const seen = this.attempts.some((a) => a.path === r.path && a.delivery === r.delivery);
        this.attempts.push(r);
        if (!seen) {
          res.writeHead(500).end('try again');
          return;
        }
        this.accepted.push(r);
        res.writeHead(204).end();
        this.#waiters = this.#waiters.filter((w) => (w.done(this.accepted) ? (w.resolve(), false) : true));
      });
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Resolves once `done` holds for the accepted deliveries. */
  until(done: (accepted: Received[]) => boolean): Promise<void> {
    if (done(this.accepted)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ done, resolve }));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

for (const kind of STORE_KINDS) {
  describe(`webhooks: ${kind.name}`, function () {
    let h: Harness;
    let receiver: Receiver;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      receiver = new Receiver();
      const base = await receiver.start();
      h = await Harness.start(location, {
        webhooks: {
          hooks: [
            { url: `${base}/json`, format: 'json' },
            { url: `${base}/slack`, format: 'slack' },
          ],
          secret: SECRET,
          retryBaseMs: 20,
          pollMs: 50,
        },
      });
    });

    afterEach(async () => {
      await h?.close();
      await receiver?.close();
    });

    it('posts every status change once, signed, after retrying a failing receiver', async () => {
      await h.startAgent('a1');
      await h.createTarget('plain', 'a1');
      await h.createTarget('reviewed', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
      const dev = await h.user('dev@x', ['dev']);
      const ops = await h.user('ops@x', ['ops']);
      const create = async (target: string, script: string) =>
        (await dev.call(dev.tasks, dev.tasks.createTask, { target, script, message: 'm', type: '', timeoutSeconds: 0 })).task!.id;
      const review = (id: string, decision: ReviewDecision) => ops.call(ops.tasks, ops.tasks.reviewTask, { id, decision, group: '', comment: 'c' });

      const ok = await create('plain', 'echo ok');
      const failed = await create('plain', 'exit 4');
      const approved = await create('reviewed', 'echo approved');
      const rejected = await create('reviewed', 'echo never');
      await review(approved, ReviewDecision.REVIEW_DECISION_APPROVE);
      await review(rejected, ReviewDecision.REVIEW_DECISION_REJECT);
      await dev.call(dev.tasks, dev.tasks.runTask, { id: approved });
      await Promise.all([ok, failed, approved].map((id) => h.finished(id)));

      const expected = [
        ...['task.created', 'task.ready', 'task.running', 'task.success'].map((t) => `${ok} ${t}`),
        ...['task.created', 'task.ready', 'task.running', 'task.failure'].map((t) => `${failed} ${t}`),
        ...['task.created', 'task.pending-review', 'task.approved', 'task.ready', 'task.running', 'task.success'].map((t) => `${approved} ${t}`),
        ...['task.created', 'task.pending-review', 'task.rejected'].map((t) => `${rejected} ${t}`),
      ].sort();
      const json = (accepted: Received[]) => accepted.filter((r) => r.path === '/json');
      await receiver.until((accepted) => json(accepted).length >= expected.length && accepted.length >= 2 * expected.length);

      const bodies = json(receiver.accepted).map((r) => {
        expect(r.signature).to.equal(`sha256=${createHmac('sha256', SECRET).update(r.body).digest('hex')}`);
        const body = JSON.parse(r.body) as { id: string; type: string; task: { id: string; status: string; script: string } };
        expect([r.event, r.delivery]).to.deep.equal([body.type, body.id]);
        return body;
      });
      expect(bodies.map((b) => `${b.task.id} ${b.type}`).sort()).to.deep.equal(expected);
      // Each was refused once before it was accepted, and never accepted twice.
      expect(new Set(bodies.map((b) => b.id)).size).to.equal(expected.length);
      for (const b of bodies) {
        expect(receiver.attempts.filter((a) => a.path === '/json' && a.delivery === b.id)).to.have.length(2);
      }
      const rejectedBody = bodies.find((b) => b.task.id === rejected && b.type === 'task.rejected');
      expect(rejectedBody).to.deep.include({ detail: 'rejected by user:ops@x: c', actor: 'user:ops@x' });

      const slack = receiver.accepted.filter((r) => r.path === '/slack').map((r) => (JSON.parse(r.body) as { text: string }).text);
      expect(slack).to.have.length(expected.length);
      const waiting = slack.find((t) => t.includes(`Task \`${approved}\``) && t.includes('waits for review'));
      expect(waiting).to.contain('```\necho approved\n```').and.contain(`taskgate tasks review ${approved} --approve`);
    });
  });
}
