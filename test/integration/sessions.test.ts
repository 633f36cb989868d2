/**
 * Console sessions and the HTTP listener's own routes (docs/console.md
 * "Signing in"): a user token is exchanged for an HttpOnly, SameSite=Strict
 * cookie; RPCs authenticate with it; requests from other sites are refused
 * even with it; sign-out, a revoked token and a deactivated user end it; the
 * one-time link signs in once; raw downloads follow the task's visibility;
 * the console's files carry a CSP with no inline script. Over real HTTP(S)
 * on a real server.
 */
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskService } from '../../gen/es/taskgate/v1/task_pb.js';
import { Target } from '../../gen/taskgate/v1/target.js';
import { ListEventsRequest } from '../../gen/taskgate/v1/event.js';
import { TokenKind, User } from '../../gen/taskgate/v1/user.js';
import { CONTENT_SECURITY_POLICY } from '../../server/console-http.js';
import { Pki } from '../helpers/certs.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const JSON_TYPE = { 'content-type': 'application/json' };

/** The `name=value` of a Set-Cookie header, and its attributes in lower case. */
function parseSetCookie(header: string | null): { pair: string; attributes: string[] } {
  expect(header, 'a Set-Cookie header').to.be.a('string');
  const [pair, ...attributes] = header!.split(';').map((p) => p.trim());
  return { pair: pair!, attributes: attributes.map((a) => a.toLowerCase()) };
}

describe('console sessions and HTTP routes', function () {
  let h: Harness;
  let url: string;
  let consoleDir: string;

  before(async () => {
    consoleDir = mkdtempSync(join(tmpdir(), 'taskgate-console-'));
    mkdirSync(join(consoleDir, 'assets'));
    writeFileSync(join(consoleDir, 'index.html'), '<!doctype html><script type="module" src="/assets/app-1.js"></script>');
    writeFileSync(join(consoleDir, 'assets', 'app-1.js'), 'console.log(1)');
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { httpListen: '127.0.0.1:0', consoleDir });
    url = h.server.httpUrl!;
    await h.startAgent('a1');
    await h.createTarget('box', 'a1', 'bash', { groups: ['dev'] });
  });

  after(async () => {
    await h?.close();
    rmSync(consoleDir, { recursive: true, force: true });
  });

  async function signIn(token: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${url}/auth/sign-in`, { method: 'POST', headers: { ...JSON_TYPE, ...headers }, body: JSON.stringify({ token }) });
  }

  /** Signs in and returns the cookie pair to send back. */
  async function cookieOf(token: string): Promise<string> {
    const res = await signIn(token);
    expect(res.status, await res.clone().text()).to.equal(200);
    return parseSetCookie(res.headers.get('set-cookie')).pair;
  }

  /** A unary Connect call in JSON, as the console's pages make it: the cookie and no authorization header. */
  async function call(method: string, body: object, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${url}/taskgate.v1.${method}`, { method: 'POST', headers: { ...JSON_TYPE, ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('exchanges a user token for an HttpOnly, SameSite=Strict session cookie that RPCs accept', async () => {
    const dev = await h.user('dev1@x', ['dev']);
    const res = await signIn(dev.token);
    expect(res.status).to.equal(200);
    const answer = (await res.json()) as { email: string; expires: string };
    expect(answer.email).to.equal('dev1@x');
    const hours = (Date.parse(answer.expires) - Date.now()) / 3_600_000;
    expect(hours).to.be.within(11.9, 12);
    const { pair, attributes } = parseSetCookie(res.headers.get('set-cookie'));
    expect(pair).to.match(/^taskgate_session=tg_session_/);
    expect(attributes).to.include.members(['httponly', 'samesite=strict', 'path=/']);
    // Plain HTTP: a Secure cookie would never be sent back.
    expect(attributes).not.to.include('secure');
    const who = await call('UserService/WhoAmI', {}, { cookie: pair });
    expect(who.status).to.equal(200);
    expect((who.body.user as { email: string }).email).to.equal('dev1@x');
    // The session is a token of its own the user sees (and may revoke), and the audit trail has it.
    const { tokens } = await dev.call(dev.users, dev.users.listTokens, { subject: '' });
    expect(tokens.filter((t) => t.kind === TokenKind.TOKEN_KIND_SESSION)).to.have.length(1);
    const { events } = await h.api.call(h.api.events, h.api.events.listEvents, ListEventsRequest.fromPartial({ actor: 'user:dev1@x' }));
    expect(events.map((e) => e.action)).to.include('session.created');
  });

  it('refuses to sign in with what is not a valid user token, in one line', async () => {
    const cases: Array<[Promise<Response>, number, RegExp]> = [
      [signIn('tg_user_nope'), 401, /^unknown token$/],
      [signIn(await h.agentToken('a7')), 401, /^sign in with a user token/],
      [signIn(''), 400, /^send \{"token"/],
      [fetch(`${url}/auth/sign-in`, { method: 'POST', headers: JSON_TYPE, body: 'token=x' }), 400, /not JSON/],
      [fetch(`${url}/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' }), 415, /not an RPC content type/],
    ];
    for (const [pending, status, message] of cases) {
      const res = await pending;
      const body = (await res.json()) as { code: string; message: string };
      expect([res.status, body.message]).to.satisfy(([s, m]: [number, string]) => s === status && message.test(m), `${res.status} ${body.message}`);
      expect(res.headers.get('set-cookie')).to.equal(null);
    }
    // A session's own secret does not make another session.
    const secret = (await cookieOf(h.adminToken)).split('=')[1]!;
    const again = await signIn(secret);
    expect(again.status).to.equal(401);
  });

  it('refuses a cross-site sign-in and cross-site calls that carry the cookie, before anything acts', async () => {
    const dev = await h.user('dev2@x', ['dev']);
    const forged = await signIn(dev.token, { origin: 'https://evil.example' });
    expect(forged.status).to.equal(403);
    expect(forged.headers.get('set-cookie')).to.equal(null);
    const cookie = await cookieOf(dev.token);
    const before = (await h.api.call(h.api.tasks, h.api.tasks.listTasks, { statuses: [], target: 'box', pageSize: 500, pageToken: '', awaitingMyReview: false, createdByMe: false })).tasks.length;
    const attempts = [
      call('TaskService/CreateTask', { target: 'box', script: 'echo pwned' }, { cookie, origin: 'https://evil.example' }),
      call('TaskService/CreateTask', { target: 'box', script: 'echo pwned' }, { cookie, 'sec-fetch-site': 'cross-site' }),
      fetch(`${url}/taskgate.v1.TaskService/CreateTask`, { method: 'POST', headers: { cookie, 'content-type': 'text/plain' }, body: '{"target":"box","script":"echo pwned"}' }).then(async (r) => ({ status: r.status })),
      fetch(`${url}/auth/sign-out`, { method: 'POST', headers: { cookie, ...JSON_TYPE, origin: 'https://evil.example' }, body: '{}' }).then(async (r) => ({ status: r.status })),
    ];
    expect((await Promise.all(attempts)).map((a) => a.status)).to.deep.equal([403, 403, 415, 403]);
    const after = (await h.api.call(h.api.tasks, h.api.tasks.listTasks, { statuses: [], target: 'box', pageSize: 500, pageToken: '', awaitingMyReview: false, createdByMe: false })).tasks.length;
    expect(after).to.equal(before);
    // The forged sign-out did not sign the user out; the same request from the console's own origin works.
    expect((await call('UserService/WhoAmI', {}, { cookie })).status).to.equal(200);
    const own = await call('TaskService/CreateTask', { target: 'box', script: 'echo mine' }, { cookie, origin: url, 'sec-fetch-site': 'same-origin' });
    expect(own.status).to.equal(200);
  });

  it('signs out: the cookie is cleared and the session refused from then on', async () => {
    const dev = await h.user('dev3@x', ['dev']);
    const cookie = await cookieOf(dev.token);
    const out = await fetch(`${url}/auth/sign-out`, { method: 'POST', headers: { cookie, ...JSON_TYPE }, body: '{}' });
    expect(out.status).to.equal(200);
    const cleared = parseSetCookie(out.headers.get('set-cookie'));
    expect(cleared.pair).to.equal('taskgate_session=');
    expect(cleared.attributes).to.include('max-age=0');
    const who = await call('UserService/WhoAmI', {}, { cookie });
    expect([who.status, who.body.message]).to.deep.equal([401, 'signed out: sign in again']);
    // The token it was made from is untouched.
    expect((await dev.call(dev.users, dev.users.whoAmI, {})).user?.email).to.equal('dev3@x');
  });

  it('ends a session when its token is revoked or its user deactivated, open streams included', async () => {
    const dev = await h.user('dev4@x', ['dev']);
    const cookie = await cookieOf(dev.token);
    // A followed list over Connect with the cookie, as the console holds one.
    const tasks = createClient(TaskService, createConnectTransport({ baseUrl: url, httpVersion: '1.1', useBinaryFormat: true }));
    const stream = tasks.watchTasks({}, { headers: { cookie } });
    const ended = (async () => {
      try {
        for await (const message of stream) void message;
        return 'ended OK';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    const self = (await dev.call(dev.users, dev.users.whoAmI, {})).token!.id;
    await h.api.call(h.api.users, h.api.users.revokeToken, { id: self });
    const who = await call('UserService/WhoAmI', {}, { cookie });
    expect([who.status, who.body.message]).to.deep.equal([401, `the session ended: token ${self} was revoked; sign in again`]);
    expect(await ended).to.match(/\[unauthenticated\] the session ended: token \S+ was revoked/);

    const other = await h.user('dev5@x', ['dev']);
    const second = await cookieOf(other.token);
    await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'dev5@x', active: false }), updateMask: ['active'] });
    const refused = await call('UserService/WhoAmI', {}, { cookie: second });
    expect([refused.status, refused.body.message]).to.deep.equal([401, 'the session ended: user dev5@x is deactivated; sign in again']);
    // Reactivated, the user signs in again; the browser (or stolen cookie) signed in before stays out.
    await h.api.call(h.api.users, h.api.users.updateUser, { user: User.fromPartial({ email: 'dev5@x', active: true }), updateMask: ['active'] });
    expect((await call('UserService/WhoAmI', {}, { cookie: second })).body.message).to.equal('signed out: sign in again');
    expect((await other.call(other.users, other.users.whoAmI, {})).user?.email).to.equal('dev5@x');
  });

  it('ties a token made in a session to the token the session was signed in with', async () => {
    const dev = await h.user('dev6@x', ['dev']);
    const cookie = await cookieOf(dev.token);
    const made = await call('UserService/CreateToken', { name: 'from-console' }, { cookie });
    expect(made.status).to.equal(200);
    const minted = made.body.secret as string;
    const api = h.client(minted);
    expect((await api.call(api.users, api.users.whoAmI, {})).user?.email).to.equal('dev6@x');
    // Revoking the token the browser signed in with ends the session and what it made.
    const root = (await dev.call(dev.users, dev.users.whoAmI, {})).token!.id;
    await h.api.call(h.api.users, h.api.users.revokeToken, { id: root });
    const err = await api.call(api.users, api.users.whoAmI, {}).then(() => undefined, (e: Error) => e.message);
    expect(err).to.match(/^16 UNAUTHENTICATED: token \S+ was made in a console session whose token was revoked$/);
  });

  it('checks open streams again when a target changes: a follower who may no longer see the task is cut off', async () => {
    await h.createTarget('shared', 'a1', 'bash', { groups: ['dev', 'qa'] });
    const qa = await h.user('qa1@x', ['qa']);
    const task = await h.createTask('shared', 'for i in $(seq 1 600); do echo tick $i; sleep 0.05; done');
    const cookie = await cookieOf(qa.token);
    const tasks = createClient(TaskService, createConnectTransport({ baseUrl: url, httpVersion: '1.1', useBinaryFormat: true }));
    let chunks = 0;
    const ended = (async () => {
      try {
        for await (const m of tasks.getTaskLogs({ id: task.id, follow: true }, { headers: { cookie } })) if (m.event.case === 'chunk') chunks++;
        return 'ended OK';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    while (chunks === 0) await new Promise((r) => setTimeout(r, 20));
    await h.api.call(h.api.targets, h.api.targets.updateTarget, { target: Target.fromPartial({ name: 'shared', groups: ['dev'] }), updateMask: ['groups'] });
    expect(await ended).to.equal(`[not_found] task ${task.id} not found`);
    await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: task.id, reason: '', requestId: '' });
  });

  it('signs in once with the one-time link, then sends the link back to the sign-in page', async () => {
    const link = await h.server.signInLink(h.adminToken);
    expect(link).to.match(new RegExp(`^${url}/auth/link\\?code=[\\w-]{32}$`));
    const preview = await fetch(link!, { method: 'HEAD', redirect: 'manual' });
    expect([preview.status, preview.headers.get('set-cookie')]).to.deep.equal([204, null]);
    const first = await fetch(link!, { redirect: 'manual' });
    expect([first.status, first.headers.get('location')]).to.deep.equal([303, '/']);
    const cookie = parseSetCookie(first.headers.get('set-cookie')).pair;
    expect(((await call('UserService/WhoAmI', {}, { cookie })).body.user as { email: string }).email).to.equal('admin@test');
    const second = await fetch(link!, { redirect: 'manual' });
    expect(second.status).to.equal(303);
    expect(second.headers.get('location')).to.match(/^\/sign-in\?error=this%20sign-in%20link%20is%20used%20up/);
    expect(second.headers.get('set-cookie')).to.equal(null);
  });

  it("downloads a task's raw output for those who may read it", async () => {
    const task = await h.createTask('box', 'printf "a\\x00b\\n"; seq 1 20000');
    const { output } = await h.finished(task.id);
    const cookie = await cookieOf(h.adminToken);
    const res = await fetch(`${url}/download/tasks/${task.id}/output`, { headers: { cookie } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-disposition')).to.equal(`attachment; filename="task-${task.id}.log"`);
    expect(Buffer.from(await res.arrayBuffer()).equals(output)).to.equal(true);
    const outsider = await h.user('ops1@x', ['ops']);
    const hidden = await fetch(`${url}/download/tasks/${task.id}/output`, { headers: { authorization: `Bearer ${outsider.token}` } });
    expect([hidden.status, ((await hidden.json()) as { message: string }).message]).to.deep.equal([404, `task ${task.id} not found`]);
    const anonymous = await fetch(`${url}/download/tasks/${task.id}/output`);
    expect(anonymous.status).to.equal(401);
    // A HEAD answers the headers without reading the output; a malformed id is a task no one has.
    const head = await fetch(`${url}/download/tasks/${task.id}/output`, { method: 'HEAD', headers: { cookie } });
    expect([head.status, head.headers.get('x-taskgate-task-status')]).to.deep.equal([200, 'success']);
    const malformed = await fetch(`${url}/download/tasks/%ZZ/output`, { headers: { cookie } });
    expect(malformed.status).to.equal(404);
  });

  it("serves the console's files with a CSP that allows no inline script, and its routes as index.html", async () => {
    const page = await fetch(`${url}/tasks/01JABC`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).to.equal(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).to.match(/script-src 'self';/).and.not.match(/unsafe-inline'[^;]*;\s*style/);
    // docs/console.md quotes the policy as sent.
    expect(readFileSync(join(process.cwd(), 'docs', 'console.md'), 'utf8')).to.contain(`\n${CONTENT_SECURITY_POLICY}\n`);
    expect(page.headers.get('x-frame-options')).to.equal('DENY');
    expect(await page.text()).to.contain('/assets/app-1.js');
    const asset = await fetch(`${url}/assets/app-1.js`);
    expect([asset.status, asset.headers.get('content-type'), asset.headers.get('cache-control')]).to.deep.equal([200, 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable']);
    symlinkSync('/etc/hostname', join(consoleDir, 'assets', 'link.txt'));
    for (const path of ['/assets/../../package.json', '/%2e%2e/%2e%2e/package.json', '/assets/nope.js', '/assets/link.txt']) {
      expect((await fetch(`${url}${path}`)).status, path).to.equal(404);
    }
    rmSync(join(consoleDir, 'index.html'));
    const unbuilt = await fetch(`${url}/`);
    expect([unbuilt.status, await unbuilt.text()]).to.deep.equal([503, 'The web console is not built: run "npm run build" (it writes dist/console), then reload.\n']);
    writeFileSync(join(consoleDir, 'index.html'), '<!doctype html>');
  });

  it('under TLS, names the cookie __Host- and marks it Secure', async () => {
    const pki = new Pki();
    const ca = pki.ca('session-ca');
    const pem = pki.issue(ca, 'localhost', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
    const tlsServer = await Harness.start((await STORE_KINDS.find((k) => k.name === 'sqlite')!.location())!, {
      httpListen: '127.0.0.1:0',
      tls: { cert: pki.read(pem.cert), key: pki.read(pem.key) },
    });
    try {
      const target = new URL(tlsServer.server.httpUrl!);
      const header = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(
          { host: target.hostname, port: target.port, path: '/auth/sign-in', method: 'POST', ca: pki.read(ca.cert), headers: JSON_TYPE },
          (res) => {
            res.resume();
            resolve(String(res.headers['set-cookie'] ?? ''));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ token: tlsServer.adminToken }));
      });
      const { pair, attributes } = parseSetCookie(header);
      expect(pair).to.match(/^__Host-taskgate_session=tg_session_/);
      expect(attributes).to.include.members(['secure', 'httponly', 'samesite=strict', 'path=/']);
    } finally {
      await tlsServer.close();
      pki.close();
    }
  });
});
