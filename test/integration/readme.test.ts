/**
 * The README's first commands as a newcomer types them: `npm start` in the
 * checkout, then the block "in another shell" and the short tour, each
 * pasted into bash as written, in the checkout itself (`npx taskgate` finds
 * this checkout's CLI only there). So the test needs what a newcomer's
 * checkout has: port 7070 free, and no `.taskgate/` or `report.py` of a
 * previous run; it removes what it made. Without those it fails under CI
 * and is skipped, loudly, elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';

const ROOT = process.cwd();

/** What `npm start` and the tour leave in the checkout. */
const MADE = ['.taskgate', 'report.py'];

/** The ```sh blocks of the README, in order. */
function shellBlocks(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The block that follows the paragraph containing `marker`. */
function blockAfter(marker: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README has no "${marker}"`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`no sh block after "${marker}"`);
  return block[1]!;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Runs a pasted block in bash (stopping at the first failing line), in `cwd`. */
function paste(block: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', block], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs `npm <args>` in `cwd` (its own process group, so Ctrl-C reaches npm
 * and what it started) until it prints "Ctrl-C stops both."; `output`
 * keeps growing with what it prints after.
 */
async function npmStart(cwd: string, args: string[]): Promise<{ child: ChildProcess; output: { text: string } }> {
  const child = spawn('npm', args.length > 0 ? args : ['start'], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { text: '' };
  await new Promise<void>((resolve, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        output.text += `${line}\n`;
        if (line === 'Ctrl-C stops both.') resolve();
      });
    }
    child.once('exit', (code) => reject(new Error(`npm ${args.join(' ') || 'start'} exited (${code}):\n${output.text}`)));
  });
  return { child, output };
}

/** Ctrl-C to what {@link npmStart} started; resolves once it exited. */
async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid, 'SIGINT');
  await exited;
}

describe("the README's commands, as written", function () {
  this.timeout(180_000);
  let checkout: string;
  let start: ChildProcess | undefined;
  let startOutput = { text: '' };

  before(async function () {
    const refuse = (why: string): void => {
      if (process.env.CI) throw new Error(`the README test cannot run: ${why}`);
      console.warn(`    SKIPPED (the README's commands): ${why}`);
      this.skip();
    };
    if (!(await portFree(7070))) refuse('port 7070 is taken, so `npm start` cannot listen where the README says');
    for (const made of MADE) if (existsSync(join(ROOT, made))) refuse(`${made} exists in the checkout (a newcomer's has none; move it away to run this)`);
    checkout = ROOT;
    ({ child: start, output: startOutput } = await npmStart(checkout, []));
  });

  after(async () => {
    await stop(start);
    if (checkout) for (const made of MADE) rmSync(join(checkout, made), { recursive: true, force: true });
  });

  it('npm start prints how to run the first task, and that first command prints hello', async () => {
    expect(startOutput.text).to.contain("npx taskgate tasks create -t local -s 'echo hello' --wait");
    const first = await paste(blockAfter('Then, in another shell in the same directory:'), checkout);
    expect([first.code, first.stdout, first.stderr]).to.deep.equal([0, 'hello\n', '']);
  });

  it("npm start prints the console's one-time sign-in link, which signs a browser in once, and serves the console", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).to.contain('`http://127.0.0.1:7080/auth/link?code=…`');
    const link = /^\s+(http:\/\/127\.0\.0\.1:7080\/auth\/link\?code=\S+)$/m.exec(startOutput.text)?.[1];
    expect(link, startOutput.text).to.be.a('string');
    const signedIn = await fetch(link!, { redirect: 'manual' });
    expect([signedIn.status, signedIn.headers.get('location')]).to.deep.equal([303, '/']);
    const cookie = signedIn.headers.get('set-cookie')!.split(';')[0]!;
    const who = await fetch('http://127.0.0.1:7080/taskgate.v1.UserService/WhoAmI', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
    expect(((await who.json()) as { user: { email: string } }).user.email).to.equal('admin@localhost');
    const page = await fetch('http://127.0.0.1:7080/');
    expect([page.status, page.headers.get('content-type')]).to.deep.equal([200, 'text/html; charset=utf-8']);
    expect((await fetch(link!, { redirect: 'manual' })).headers.get('location')).to.match(/^\/sign-in\?error=/);
  });

  it('the short tour runs line by line, with the output it promises', async () => {
    const tour = blockAfter('## A short tour');
    expect(shellBlocks()).to.include(tour);
    const r = await paste(tour, checkout);
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(0);
    expect(r.stdout).to.contain('1\n2\n3\n4\n5\n'); // tasks logs -f
    expect(r.stdout).to.match(/report from \S+\n/); // the python script from a file
    expect(r.stdout).to.contain('mail [EMAIL_ADDRESS]\n'); // redaction
    expect(r.stdout).to.match(/user:dba@example\.com\s+task\.approved\s/); // tasks events: who approved is in the story
  });
});

describe("the README's npm start with options, as written", function () {
  this.timeout(180_000);
  let start: ChildProcess | undefined;
  let printed = { text: '' };

  before(async function () {
    const refuse = (why: string): void => {
      if (process.env.CI) throw new Error(`the README test cannot run: ${why}`);
      console.warn(`    SKIPPED (the README's npm start with options): ${why}`);
      this.skip();
    };
    for (const port of [7071, 7081]) if (!(await portFree(port))) refuse(`port ${port} is taken, so the README's example cannot listen where it says`);
    for (const made of MADE) if (existsSync(join(ROOT, made))) refuse(`${made} exists in the checkout (a newcomer's has none; move it away to run this)`);
  });

  after(async () => {
    await stop(start);
    for (const made of MADE) rmSync(join(ROOT, made), { recursive: true, force: true });
  });

  it('starts on the ports it names, and the commands it prints run as printed', async () => {
    // The inline example, as the README's paragraph gives it (a line break in the Markdown is a space).
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = /e\.g\. `(npm start\s+--[^`]+)`/.exec(readme)?.[1]?.replace(/\s+/g, ' ');
    expect(example).to.equal('npm start -- --listen 127.0.0.1:7071 --http-listen 127.0.0.1:7081');
    const [, ...args] = example!.split(' ');
    ({ child: start, output: printed } = await npmStart(ROOT, args));
    const first = /^\s+(npx taskgate tasks create .*)$/m.exec(printed.text)?.[1];
    expect(first, printed.text).to.equal("npx taskgate tasks create -t local -s 'echo hello' --wait --server 127.0.0.1:7071");
    const r = await paste(first!, ROOT);
    expect([r.code, r.stdout, r.stderr]).to.deep.equal([0, 'hello\n', '']);
    const page = await fetch('http://127.0.0.1:7081/');
    expect(page.status).to.equal(200);
  });
});
