/**
 * The web console in a real browser (issue 17): Debian's chromium driven by
 * playwright-core, against a real server (its HTTP listener serving
 * dist/console and the API) and a real agent. Each story is one a person
 * relies on: a reviewed task from creation to live output across two
 * people's browsers, a reload that loses and repeats no line, kill, a
 * rejected task that cannot be run, what a member may not see, hostile
 * text in every field, and the end of a session. Screenshots of the main
 * pages go to docs/console/ for the docs.
 */
import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const SHOTS = 'docs/console';

// The few browser globals the page functions below use: this program has no DOM types.
declare const document: { querySelector(selector: string): { textContent: string | null } | null };
declare const window: { __xss?: unknown };

describe('the web console (browser)', function () {
  this.timeout(60_000);
  let h: Harness;
  let url: string;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let dev: Awaited<ReturnType<Harness['user']>>;
  let dba: Awaited<ReturnType<Harness['user']>>;
  let member: Awaited<ReturnType<Harness['user']>>;

  before(async () => {
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { httpListen: '127.0.0.1:0' });
    url = h.server.httpUrl!;
    await h.startAgent('a1');
    await h.createTarget('box', 'a1');
    await h.createTarget('db', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_TEAM, reviewers: ['dba'] });
    dev = await h.user('dev@test', ['dev']);
    dba = await h.user('dba@test', ['dba']);
    member = await h.user('member@test', []);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'] });
    mkdirSync(SHOTS, { recursive: true });
  });

  after(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await h?.close();
  });

  /** A signed-in page for `token` in a browser context of its own; dialogs are recorded. */
  async function signedIn(token: string, path = '/tasks'): Promise<{ page: Page; dialogs: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.goto(url + path);
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('signed-in-as').waitFor();
    return { page, dialogs };
  }

  async function typeScript(page: Page, script: string): Promise<void> {
    await page.locator('[data-testid=script-editor] .cm-content').click();
    await page.keyboard.insertText(script);
  }

  async function status(page: Page, name: string): Promise<void> {
    await page.locator(`.fields [data-status="${name}"]`).waitFor({ timeout: 20_000 });
  }

  /** The terminal's text once the task's status is terminal and the feed finished. */
  async function terminalText(page: Page): Promise<string> {
    await page.waitForFunction(() => !document.querySelector('[data-testid=terminal-range]')?.textContent?.includes('following'), null, { timeout: 20_000 });
    return page.$eval('[data-testid=terminal]', (el) => (el as unknown as { taskgateText: () => string }).taskgateText());
  }

  it('takes a reviewed task from New task through the DBA’s live inbox to live output', async () => {
    const { page: devPage } = await signedIn(dev.token);
    const { page: dbaPage } = await signedIn(dba.token, '/reviews');
    await dbaPage.getByTestId('no-reviews').waitFor();
    expect(await dbaPage.getByTestId('review-count').textContent()).to.equal('0');

    await devPage.getByRole('link', { name: 'New task' }).click();
    await devPage.locator('#new-target').selectOption('db');
    expect(await devPage.getByTestId('review-rule').textContent()).to.contain('dba');
    await typeScript(devPage, 'for i in 1 2 3; do echo "row $i"; sleep 0.2; done');
    await devPage.locator('#new-message').fill('nightly fix');
    await devPage.screenshot({ path: `${SHOTS}/new-task.png` });
    await devPage.getByRole('button', { name: 'Create task' }).dblclick();
    await devPage.waitForURL(/\/tasks\/[0-9A-Z]+$/);
    const id = devPage.url().split('/').pop()!;
    await status(devPage, 'pending-review');

    // The DBA's inbox and nav count update live.
    const card = dbaPage.locator(`li[data-task-id="${id}"]`);
    await card.waitFor();
    await dbaPage.locator('[data-testid=review-count]', { hasText: '1' }).waitFor();
    await dbaPage.screenshot({ path: `${SHOTS}/reviews.png` });
    await card.locator('textarea').fill('looks fine');
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.waitFor({ state: 'detached' });
    await dbaPage.locator('[data-testid=review-count]', { hasText: '0' }).waitFor();

    await status(devPage, 'approved');
    expect(await devPage.getByTestId('review-comment').textContent()).to.equal('looks fine');
    await devPage.getByRole('button', { name: 'Run' }).click();
    await status(devPage, 'success');
    expect(await terminalText(devPage)).to.equal('row 1\nrow 2\nrow 3');
    await devPage.screenshot({ path: `${SHOTS}/task.png`, fullPage: true });
    // One task for the double click (request id).
    const mine = await dev.call(dev.tasks, dev.tasks.listTasks, { statuses: [], target: 'db', pageSize: 10, pageToken: '', awaitingMyReview: false, createdByMe: true });
    expect(mine.tasks.map((t) => t.id)).to.deep.equal([id]);
    await devPage.getByRole('link', { name: 'Tasks' }).first().click();
    await devPage.locator(`tr[data-task-id="${id}"]`).waitFor();
    await devPage.screenshot({ path: `${SHOTS}/tasks.png` });
  });

  it('shows every line exactly once across a reload during a running task', async () => {
    const task = await h.createTask('box', 'for i in $(seq 1 40); do echo "n$i"; sleep 0.1; done');
    const { page } = await signedIn(h.adminToken, `/tasks/${task.id}`);
    await page.waitForFunction(() => document.querySelector('[data-testid=terminal]')?.textContent?.includes('n5'), null, { timeout: 20_000 });
    await page.reload();
    await status(page, 'success');
    const text = await terminalText(page);
    const stored = (await h.finished(task.id)).output.toString('utf8').replace(/\r\n/g, '\n').trimEnd();
    expect(text).to.equal(stored);
    expect(text.split('\n')).to.deep.equal(Array.from({ length: 40 }, (_, i) => `n${i + 1}`));
  });

  it('kills a running task from its page', async () => {
    const task = await h.createTask('box', 'echo started; sleep 60');
    const { page } = await signedIn(h.adminToken, `/tasks/${task.id}`);
    await status(page, 'running');
    await page.getByRole('button', { name: 'Kill' }).click();
    await page.getByRole('button', { name: 'Confirm kill' }).click();
    await status(page, 'killed');
    expect(await page.getByRole('button', { name: 'Kill' }).count()).to.equal(0);
  });

  it('offers no Run for a rejected task', async () => {
    const created = await dev.call(dev.tasks, dev.tasks.createTask, { target: 'db', script: 'echo no', message: '', type: '', timeoutSeconds: 0, requestId: '' });
    const id = created.task!.id;
    const { page } = await signedIn(dba.token, `/tasks/${id}`);
    await page.locator('textarea').fill('not today');
    await page.getByRole('button', { name: 'Reject' }).click();
    await status(page, 'rejected');
    const { page: devPage } = await signedIn(dev.token, `/tasks/${id}`);
    await status(devPage, 'rejected');
    expect(await devPage.getByRole('button', { name: 'Run' }).count()).to.equal(0);
    expect(await devPage.getByRole('button', { name: 'Kill' }).count()).to.equal(0);
  });

  it('shows a member no admin pages, and the API refuses their admin calls', async () => {
    const { page } = await signedIn(member.token);
    expect(await page.getByRole('link', { name: 'Users & tokens' }).count()).to.equal(0);
    expect(await page.getByRole('link', { name: 'Audit' }).count()).to.equal(0);
    await page.goto(`${url}/admin/users`);
    await page.getByRole('heading', { name: 'Admins only' }).waitFor();
    const refused = await page.evaluate(async () => {
      const response = await fetch('/taskgate.v1.UserService/ListUsers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return { status: response.status, body: (await response.json()) as { code: string } };
    });
    expect(refused.status).to.equal(403);
    expect(refused.body.code).to.equal('permission_denied');
  });

  it('renders hostile text in script, message, comment and output as text', async () => {
    const html = '<img src=x onerror=window.__xss=1></script><script>window.__xss=1</script>';
    const escapes = String.raw`printf '\033]52;c;aGVsbG8=\007\033]8;;javascript:window.__xss=1\007click\033]8;;\007\033]0;pwned\007\n'`;
    const created = await dev.call(dev.tasks, dev.tasks.createTask, { target: 'db', script: `# ${html}\necho '${html}'\n${escapes}`, message: html, type: '', timeoutSeconds: 0, requestId: '' });
    const id = created.task!.id;
    const { page: dbaPage, dialogs: dbaDialogs } = await signedIn(dba.token, `/tasks/${id}`);
    await dbaPage.locator('textarea').fill(html);
    await dbaPage.getByRole('button', { name: 'Approve' }).click();
    await status(dbaPage, 'approved');
    const { page, dialogs } = await signedIn(dev.token, `/tasks/${id}`);
    await page.getByRole('button', { name: 'Run' }).click();
    await status(page, 'success');
    const text = await terminalText(page);
    expect(text).to.contain(html);
    expect(text).to.contain('click');
    await page.locator('[data-testid=terminal]').getByText('click').click({ timeout: 2000 }).catch(() => undefined);
    expect(await page.getByTestId('task-message').textContent()).to.equal(html);
    expect(await page.getByTestId('review-comment').textContent()).to.equal(html);
    expect(await page.locator('[data-testid=script] .cm-content').textContent()).to.contain('window.__xss=1</script>');
    for (const p of [page, dbaPage]) expect(await p.evaluate(() => window.__xss)).to.equal(undefined);
    expect(await page.title()).to.equal('Taskgate');
    expect([...dialogs, ...dbaDialogs]).to.deep.equal([]);
    await page.goto(`${url}/reviews`);
    await page.goto(`${url}/tasks`);
    expect(await page.evaluate(() => window.__xss)).to.equal(undefined);
  });

  it('ends the session on sign-out and when its token is revoked', async () => {
    const { page } = await signedIn(dev.token);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.goto(`${url}/tasks`);
    await page.locator('#token').waitFor();

    const extra = await h.api.call(h.api.users, h.api.users.createToken, { user: 'dev@test', name: 'revoked', ttl: undefined });
    const { page: second } = await signedIn(extra.secret, '/targets');
    await h.api.call(h.api.users, h.api.users.revokeToken, { id: extra.token!.id });
    // Its live streams end at once or the next call is refused: either way, the sign-in page.
    await second.goto(`${url}/agents`);
    await second.waitForURL(/\/sign-in\?next=%2Fagents/, { timeout: 20_000 });
  });
});
