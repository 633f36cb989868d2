/**
 * Webhook signing, secrets, Slack escaping and the server program's webhook
 * settings, without a server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { serverOptions, type ServerConfig } from '../../server/program.js';
import type { AuditEventRecord, TaskRecord } from '../../server/store/store.js';
import { parseWebhookSecret, signature, signedHeaders, slackBody } from '../../server/webhooks.js';
import { ConfigError } from '../../shared/config-error.js';
import { silentLogger } from '../../shared/logger.js';

describe('Standard Webhooks signatures', () => {
  it('match the reference vector', () => {
    // The "sign function works" case of standard-webhooks libraries/javascript/src/webhook.test.ts.
    const key = parseWebhookSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    expect(signature(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).to.equal('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('sign the id and the attempt time with the body', () => {
    const key = parseWebhookSecret(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
    const headers = signedHeaders(key, 'e1', '{}', new Date(1_700_000_000_999));
    expect(headers).to.deep.equal({ 'webhook-id': 'e1', 'webhook-timestamp': '1700000000', 'webhook-signature': signature(key, 'e1', 1_700_000_000, '{}') });
    expect(signature(key, 'e1', 1_700_000_001, '{}')).not.to.equal(headers['webhook-signature']);
    expect(signature(key, 'e2', 1_700_000_000, '{}')).not.to.equal(headers['webhook-signature']);
  });

  it('take only whsec_ secrets of 24 to 64 bytes, and never repeat one in an error', () => {
    for (const bad of ['hunter2-hunter2-hunter2-hunter2', 'whsec_', 'whsec_c2hvcnQ=', `whsec_${Buffer.alloc(65).toString('base64')}`, 'whsec_MfKQ9r8GKYqrTwjU!D8ILPZIo2LaLaSw']) {
      expect(() => parseWebhookSecret(bad)).to.throw(ConfigError, /whsec_|random bytes/).with.property('message').that.does.not.contain(bad.slice(6) || '\u0000');
    }
    expect(parseWebhookSecret(' whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n')).to.have.length(24);
  });
});

describe('Slack messages', () => {
  it("escape &, < and > in every person's text: names, target, groups, message, script, comments", () => {
    const task = {
      id: '01TASK',
      target: 'db<x>',
      createdBy: 'user:<b>@x',
      message: 'see <https://evil|Approve>',
      script: 'a && b > c',
      review: [{ group: 'g<1>', status: 'pending', reviewer: '', comment: '' }],
      failureReason: 'missing <PG_HOST>',
      exitCode: null,
    } as unknown as TaskRecord;
    const event = (action: string, extra: Partial<AuditEventRecord> = {}) => ({ action, actor: 'user:<r>@x', detail: 'no <!channel> & bye', to: 'x', ...extra }) as AuditEventRecord;
    const text = (action: string) => (JSON.parse(slackBody(event(action), task)) as { text: string }).text;
    const waiting = text('task.pending-review');
    expect(waiting).to.contain('*db&lt;x&gt;* by &lt;b&gt;@x waits for review by g&lt;1&gt;.');
    expect(waiting).to.contain('> see &lt;https://evil|Approve&gt;').and.contain('a &amp;&amp; b &gt; c');
    expect(text('task.rejected')).to.contain('rejected by &lt;r&gt;@x: no &lt;!channel&gt; &amp; bye');
    expect(text('task.failure')).to.contain('failed: missing &lt;PG_HOST&gt;.');
    for (const action of ['task.pending-review', 'task.rejected', 'task.failure', 'task.created']) expect(text(action)).not.to.match(/<(?!\/)/);
  });
});

describe('server program webhook settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-webhooks-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const SECRET = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const base = (extra: Partial<ServerConfig>): ServerConfig => ({
    dataDir: dir,
    adminEmail: 'a@x',
    webhookUrls: [],
    webhookSecretFiles: [],
    slackWebhookUrls: [],
    logger: silentLogger(),
    ...extra,
  });
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };

  it('pairs each --webhook with its own secret file, and reads a --webhooks-file (relative secretFile from its directory)', () => {
    const hooksFile = file(
      'hooks.json',
      JSON.stringify([
        { url: 'https://c.example.com/in', secretFile: 'c.secret', name: 'ci' },
        { url: 'https://hooks.slack.com/services/T/B/X', format: 'slack' },
        { url: 'https://d.example.com/in', secret: SECRET },
      ]),
    );
    file('c.secret', `${SECRET}\n`);
    const options = serverOptions(
      base({
        webhookUrls: ['https://a.example.com/x', 'https://b.example.com/y'],
        webhookSecretFiles: [file('a', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), file('b', SECRET)],
        slackWebhookUrls: ['https://hooks.slack.com/services/T/B/Y'],
        webhooksFile: hooksFile,
      }),
    );
    expect(options.webhooks?.hooks).to.deep.equal([
      { url: 'https://a.example.com/x', format: 'json', name: '--webhook #1', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
      { url: 'https://b.example.com/y', format: 'json', name: '--webhook #2', secret: SECRET },
      { url: 'https://hooks.slack.com/services/T/B/Y', format: 'slack', name: '--slack-webhook #1' },
      { url: 'https://c.example.com/in', format: 'json', name: 'ci', secret: SECRET },
      { url: 'https://hooks.slack.com/services/T/B/X', format: 'slack', name: '--webhooks-file #2' },
      { url: 'https://d.example.com/in', format: 'json', name: '--webhooks-file #3', secret: SECRET },
    ]);
  });

  it('refuses what cannot work in one line that names the hook, never its URL path', () => {
    const refused = (extra: Partial<ServerConfig>) => {
      try {
        serverOptions(base(extra));
      } catch (err) {
        expect(err).to.be.instanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused({ webhookSecret: 's' })).to.match(/^--webhook-secret \(TASKGATE_WEBHOOK_SECRET\) is no longer accepted/);
    expect(refused({ webhookUrls: ['https://a.example.com/x'] })).to.equal(
      'each --webhook needs its own --webhook-secret-file, in the same order: got 1 --webhook and 0 --webhook-secret-file',
    );
    expect(refused({ webhookUrls: ['https://a.example.com/x'], webhookSecretFiles: [join(dir, 'missing')] })).to.equal(`--webhook-secret-file ${join(dir, 'missing')}: ENOENT`);
    expect(refused({ slackWebhookUrls: ['ftp://hooks.slack.com/services/T/B/SLACKSECRET'] })).to.equal('--slack-webhook #1: not an http(s) URL');
    expect(refused({ slackWebhookUrls: ['https://hooks.slack.com/services/T/B/SLACKSECRET', 'https://hooks.slack.com/services/T/B/SLACKSECRET'] })).to.equal(
      '--slack-webhook #1 and --slack-webhook #2 are the same slack webhook URL',
    );
    const hooks = (entries: unknown) => refused({ webhooksFile: file('h.json', JSON.stringify(entries)) });
    expect(hooks({ url: 'x' })).to.match(/expected a JSON array of webhooks$/);
    expect(hooks([{ url: 'https://a.example.com/x', secret_file: 'f' }])).to.match(/webhook 1: unknown field secret_file/);
    expect(hooks([{ url: 'https://a.example.com/SECRETPATH' }])).to.equal('--webhooks-file #1 (a.example.com): a JSON hook needs a secret of its own to sign with (whsec_...)');
    expect(hooks([{ url: 'https://a.example.com/x', secret: SECRET, secretFile: 'f' }])).to.match(/give "secret" or "secretFile", not both$/);
    expect(hooks([{ url: 'https://hooks.slack.com/services/T/B/SLACKSECRET', format: 'slack', secret: SECRET }])).to.equal(
      '--webhooks-file #1: a Slack hook takes no secret (Slack does not check signatures; its URL is the secret)',
    );
    expect(refused({ webhooksFile: file('bad.json', '[{') })).to.match(/: not JSON \(/);
  });
});
