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
import { pino } from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { ReviewDecision, TaskStatus } from '../../gen/taskgate/v1/task.js';
import { startPostgres, type Database } from '../helpers/databases.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const SHOTS = 'docs/console';

// The few browser globals the page functions below use: this program has no DOM types.
declare const document: { querySelector(selector: string): { textContent: string | null } | null; documentElement: { scrollWidth: number } };
declare const window: { __xss?: unknown; innerWidth: number };
declare function requestAnimationFrame(callback: () => void): number;

const MiB = 1024 * 1024;

/** The last lines of a component's debug log, kept to explain a failure. */
class RecentLog {
  readonly lines: string[] = [];
  readonly logger = pino({ level: 'debug' }, { write: (line: string) => this.#keep(line) });

  #keep(line: string): void {
    this.lines.push(line.trimEnd());
    if (this.lines.length > 60) this.lines.shift();
  }
}

describe('the web console (browser)', function () {
  this.timeout(60_000);
  let h: Harness;
  let url: string;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let dev: Awaited<ReturnType<Harness['user']>>;
  let dba: Awaited<ReturnType<Harness['user']>>;
  let member: Awaited<ReturnType<Harness['user']>>;
  const agentLog = new RecentLog();
  const serverLog = new RecentLog();

  before(async () => {
    const sqlite = STORE_KINDS.find((k) => k.name === 'sqlite')!;
    h = await Harness.start((await sqlite.location())!, { httpListen: '127.0.0.1:0', logger: serverLog.logger });
    url = h.server.httpUrl!;
    await h.startAgent('a1', { logger: agentLog.logger });
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
  async function signedIn(token: string, path = '/tasks', viewport = { width: 1280, height: 860 }): Promise<{ page: Page; dialogs: string[] }> {
    const context = await browser.newContext({ viewport });
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

  /**
   * Waits for the page to show the task's status `name`. Timing out, it
   * says what the server and the agent say of the task, so a failure in CI
   * tells the page's fault from the system's.
   */
  async function status(page: Page, name: string): Promise<void> {
    try {
      await page.locator(`.fields [data-status="${name}"]`).waitFor({ timeout: 20_000 });
    } catch (err) {
      const id = page.url().split('/').pop() ?? '';
      const shown = await page.locator('.fields [data-status]').getAttribute('data-status', { timeout: 1000 }).catch(() => '(none)');
      const stored = await h.getTask(id).then((task) => String(task.status), (e: Error) => e.message);
      const agent = h.agents.map((a) => `${a.state} holding [${a.heldTasks.join(', ')}]`).join('; ');
      throw new Error(
        [`the page shows ${shown}, the server says ${stored}, agents: ${agent}`, (err as Error).message.split('\n')[0], 'agent log:', ...agentLog.lines, 'server log:', ...serverLog.lines.slice(-20)].join('\n'),
      );
    }
  }

  /** The terminal's text once the task's status is terminal and the feed finished. */
  async function terminalText(page: Page): Promise<string> {
    await page.waitForFunction(() => !document.querySelector('[data-testid=terminal-range]')?.textContent?.includes('following'), null, { timeout: 20_000 });
    return page.$eval('[data-testid=terminal]', (el) => (el as unknown as { taskgateText: () => string }).taskgateText());
  }

  /** The text of the terminal's rendered rows (what is on its screen), trailing blank rows dropped. */
  async function screenRows(page: Page): Promise<string[]> {
    const rows = await page.$$eval('[data-testid=terminal] .xterm-rows > div', (els) => els.map((el) => (el as unknown as { textContent: string | null }).textContent ?? ''));
    const text = rows.map((row) => row.replace(/\u00a0/g, ' ').trimEnd());
    while (text.length > 0 && text[text.length - 1] === '') text.pop();
    return text;
  }

  /**
   * The page's live JS heap after a full collection, in bytes (CDP): V8's
   * heap plus the typed arrays' backing stores (xterm keeps its buffer in
   * them, outside the V8 heap proper).
   */
  async function heapUsed(page: Page): Promise<{ used: number; backing: number; total: number }> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('HeapProfiler.collectGarbage');
    const usage = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; backingStorageSize?: number };
    await cdp.detach();
    const backing = usage.backingStorageSize ?? 0;
    return { used: usage.usedSize, backing, total: usage.usedSize + backing };
  }

  /** Waits until the task has a terminal status; the task. */
  async function settled(id: string, timeoutMs: number): Promise<Awaited<ReturnType<Harness['getTask']>>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const task = await h.getTask(id);
      if (![TaskStatus.TASK_STATUS_CREATED, TaskStatus.TASK_STATUS_PENDING_REVIEW, TaskStatus.TASK_STATUS_APPROVED, TaskStatus.TASK_STATUS_READY, TaskStatus.TASK_STATUS_RUNNING].includes(task.status)) return task;
      if (Date.now() > until) throw new Error(`task ${id} still ${task.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  it('takes a reviewed task from New task through the DBA’s live inbox to live output', async () => {
    const { page: devPage } = await signedIn(dev.token);
    const { page: dbaPage } = await signedIn(dba.token, '/reviews');
    await dbaPage.getByTestId('no-reviews').waitFor();
    expect(await dbaPage.getByTestId('review-count').textContent()).to.equal('0');

    await devPage.getByRole('link', { name: 'New task' }).click();
    await devPage.locator('#new-target').selectOption('db');
    expect(await devPage.getByTestId('review-rule').textContent()).to.contain('dba');
    // Typed key by key, a half-written "$( " once froze the tab (CodeMirror's legacy shell mode); the page must keep answering.
    await devPage.locator('[data-testid=script-editor] .cm-content').click();
    await devPage.keyboard.type('echo $( "x', { delay: 5 });
    expect(await devPage.evaluate(() => 'alive')).to.equal('alive');
    await devPage.keyboard.press('Control+A');
    await devPage.keyboard.press('Delete');
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
    // The bash script is highlighted: its keywords, string and variable are tokens of their own.
    const tokens = await devPage.locator('[data-testid=script] .cm-line span').allTextContents();
    expect(tokens).to.include.members(['for', 'do', 'done', '"row $i"']);
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

  /**
   * Holds the answer to the page's next `method` call until `until` settles:
   * the answer then arrives after what the page's streams showed meanwhile.
   * Resolves once the page has the answer and has drawn two frames since.
   */
  async function answerLate(page: Page, method: string, until: () => Promise<unknown>): Promise<() => Promise<void>> {
    const pattern = `**/taskgate.v1.TaskService/${method}`;
    let answered!: () => void;
    const delivered = new Promise<void>((resolve) => (answered = resolve));
    await page.route(pattern, async (route) => {
      const response = await route.fetch();
      await until();
      await route.fulfill({ response });
      answered();
    });
    return async () => {
      await delivered;
      await page.waitForEvent('requestfinished', { predicate: (request) => request.url().endsWith(`/${method}`), timeout: 20_000 }).catch(() => undefined);
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(null)))));
      await page.unroute(pattern);
    };
  }

  it('keeps what followed when the answer to Run or Kill comes after the task ended', async () => {
    // The stream shows the task's end and closes; the action's older answer must not put the page back.
    const created = await dev.call(dev.tasks, dev.tasks.createTask, { target: 'db', script: 'echo quick', message: '', type: '', timeoutSeconds: 0, requestId: '' });
    const id = created.task!.id;
    await dba.call(dba.tasks, dba.tasks.reviewTask, { id, decision: ReviewDecision.REVIEW_DECISION_APPROVE, group: '', comment: '', requestId: '' });
    const { page } = await signedIn(dev.token, `/tasks/${id}`);
    await status(page, 'approved');
    const ran = await answerLate(page, 'RunTask', () => status(page, 'success'));
    await page.getByRole('button', { name: 'Run' }).click();
    await ran();
    await status(page, 'success');
    expect(await page.getByRole('button', { name: 'Kill' }).count()).to.equal(0);

    const task = await h.createTask('box', 'echo started; sleep 60');
    const { page: killing } = await signedIn(h.adminToken, `/tasks/${task.id}`);
    await status(killing, 'running');
    const killed = await answerLate(killing, 'KillTask', () => status(killing, 'killed'));
    await killing.getByRole('button', { name: 'Kill' }).click();
    await killing.getByRole('button', { name: 'Confirm kill' }).click();
    await killed();
    await status(killing, 'killed');
    expect(await killing.locator('.fields').textContent()).not.to.contain('kill requested');
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
    await page.locator('#token').waitFor();
    // Signed out on purpose: no page to return to.
    expect(new URL(page.url()).search).to.equal('');
    await page.goto(`${url}/tasks`);
    await page.locator('#token').waitFor();

    const extra = await h.api.call(h.api.users, h.api.users.createToken, { user: 'dev@test', name: 'revoked', ttl: undefined });
    const { page: second } = await signedIn(extra.secret, '/targets');
    await h.api.call(h.api.users, h.api.users.revokeToken, { id: extra.token!.id });
    // Its live streams end at once or the next call is refused: either way, the sign-in page.
    await second.goto(`${url}/agents`);
    await second.waitForURL(/\/sign-in\?next=%2Fagents/, { timeout: 20_000 });
  });
  it('opens a 50 MB task at its tail with a bounded heap, and loads 1 MiB earlier on request', async function () {
    this.timeout(120_000);
    // 50 MB of 35-byte lines, then a last line to find on the screen.
    const began = Date.now();
    const task = await h.createTask('box', "yes 'some log line with text 1234567890' | head -n 1428572; echo 'the very last line: 50 MB done'");
    const done = await settled(task.id, 90_000);
    console.log(`      the 50 MB task ran in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    expect(done.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    const total = Number(done.outputBytes);
    expect(total).to.be.greaterThan(50_000_000);
    const totalText = `${Math.round(total / MiB)} MiB`;

    const { page } = await signedIn(h.adminToken, `/tasks/${task.id}`);
    const range = page.getByTestId('terminal-range');
    await range.filter({ hasText: `Showing the last 1.0 MiB of ${totalText}` }).waitFor({ timeout: 20_000 });
    expect(await range.textContent()).to.equal(`Showing the last 1.0 MiB of ${totalText}`); // not following: the feed has all of it
    await page.waitForFunction(() => document.querySelector('[data-testid=terminal] .xterm-rows')?.textContent?.includes('the very last line'), null, { timeout: 20_000 });
    const rows = await screenRows(page);
    expect(rows[rows.length - 1]).to.equal('the very last line: 50 MB done');
    expect(rows[rows.length - 2]).to.equal('some log line with text 1234567890');
    // The heap bound: the terminal holds at most 10,000 lines of scrollback;
    // nothing else of the output may stay in memory.
    const HEAP_BOUND = 60 * MiB;
    const mib = (n: number): string => (n / MiB).toFixed(1);
    const heap = await heapUsed(page);
    console.log(`      JS heap with the last 1 MiB of ${totalText} shown: ${mib(heap.used)} MiB + ${mib(heap.backing)} MiB array buffers (bound ${HEAP_BOUND / MiB} MiB)`);
    expect(heap.total).to.be.lessThan(HEAP_BOUND);

    await page.getByRole('button', { name: 'Load earlier' }).click();
    await range.filter({ hasText: `Showing the last 2.0 MiB of ${totalText}` }).waitFor({ timeout: 30_000 });
    // Past 1 MiB shown, the bar says the terminal keeps only its last lines.
    expect(await range.textContent()).to.equal(`Showing the last 2.0 MiB of ${totalText} (the terminal keeps the last 10,000 lines)`);
    await page.waitForFunction(() => document.querySelector('[data-testid=terminal] .xterm-rows')?.textContent?.includes('the very last line'), null, { timeout: 20_000 });
    expect((await screenRows(page)).pop()).to.equal('the very last line: 50 MB done');
    const after = await heapUsed(page);
    console.log(`      JS heap after Load earlier (2 MiB shown): ${mib(after.used)} MiB + ${mib(after.backing)} MiB array buffers`);
    expect(after.total).to.be.lessThan(HEAP_BOUND);
  });

  it('works at a phone’s width: the nav, the tasks list, a task page and one-click Approve', async () => {
    const phone = { width: 390, height: 844 };
    const created = await dev.call(dev.tasks, dev.tasks.createTask, { target: 'db', script: 'echo phone-approved', message: 'from a phone', type: '', timeoutSeconds: 0, requestId: '' });
    const id = created.task!.id;
    const { page } = await signedIn(dba.token, '/tasks', phone);
    const noSideScroll = (): Promise<boolean> => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
    await page.locator(`tr[data-task-id="${id}"]`).waitFor();
    expect(await noSideScroll(), 'horizontal scroll on /tasks').to.equal(true);
    for (const name of ['Tasks', 'Reviews', 'New task', 'Targets', 'Agents']) {
      const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
      expect(await link.isVisible(), `nav link ${name}`).to.equal(true);
    }
    await page.screenshot({ path: `${SHOTS}/tasks-phone.png` });

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Reviews' }).click();
    const card = page.locator(`li[data-task-id="${id}"]`);
    await card.waitFor();
    expect(await noSideScroll(), 'horizontal scroll on /reviews').to.equal(true);
    const approve = card.getByRole('button', { name: 'Approve' });
    await approve.scrollIntoViewIfNeeded();
    expect(await approve.isVisible()).to.equal(true);
    await approve.click(); // fails if anything covers it
    await card.waitFor({ state: 'detached' });

    await page.goto(`${url}/tasks/${id}`);
    await status(page, 'approved');
    expect(await noSideScroll(), 'horizontal scroll on the task page').to.equal(true);
  });

  it('lands a bad sign-in link on the sign-in page with the server’s message', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${url}/auth/link?code=bogus`);
    await page.waitForURL(/\/sign-in\?error=/);
    await page.locator('#token').waitFor();
    expect(await page.getByTestId('sign-in-error').textContent()).to.equal('this sign-in link is used up or expired: sign in with a token, or restart taskgate dev for a new link');
    expect(await page.getByRole('alert').count()).to.equal(1);
  });

  describe('a postgres task’s Table view (real PostgreSQL)', () => {
    let pg: Database;

    before(async function () {
      this.timeout(90_000);
      pg = await startPostgres();
      const config = JSON.stringify({ host: pg.host, port: String(pg.port), user: pg.user, pass: pg.password, name: pg.database });
      await h.startAgent('pg-agent', { env: { PATH: process.env.PATH ?? '', PG: config } });
      const pgMap = { PG_HOST: 'host', PG_PORT: 'port', PG_USER: 'user', PG_PASS: 'pass', PG_DB: 'name' };
      await h.createTarget('pg', 'pg-agent', 'postgres', { secretProvider: 'env', secretPath: 'PG', secretMapping: pgMap });
    });

    after(async () => {
      await pg?.stop();
    });

    it('shows psql’s aligned output as an HTML table of text cells', async () => {
      const hostile = '<b>bold</b> | pipe';
      const task = await h.createTask('pg', `select n, 'item ' || n as name from generate_series(1, 3) n;\nselect '${hostile}' as "odd | column";`);
      expect((await settled(task.id, 30_000)).status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const { page } = await signedIn(h.adminToken, `/tasks/${task.id}`);
      const button = page.getByRole('button', { name: 'Table' });
      await button.waitFor({ timeout: 20_000 });
      expect(await button.getAttribute('aria-pressed')).to.equal('false');
      await button.click();
      expect(await button.getAttribute('aria-pressed')).to.equal('true');
      const tables = page.locator('.output-tables table');
      await tables.first().waitFor();
      expect(await tables.count()).to.equal(2);
      const cells = (table: number): Promise<string[][]> =>
        tables.nth(table).locator('tr').evaluateAll((trs) => trs.map((tr) => Array.from((tr as unknown as { children: ArrayLike<{ textContent: string | null }> }).children, (c) => c.textContent ?? '')));
      expect(await cells(0)).to.deep.equal([
        ['n', 'name'],
        ['1', 'item 1'],
        ['2', 'item 2'],
        ['3', 'item 3'],
      ]);
      expect(await cells(1)).to.deep.equal([['odd | column'], [hostile]]);
      expect(await tables.nth(1).locator('b').count()).to.equal(0);
      await page.screenshot({ path: `${SHOTS}/task-table.png`, fullPage: true });
    });
  });
});
