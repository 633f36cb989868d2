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

describe("the README's commands, as written", function () {
  this.timeout(180_000);
  let checkout: string;
  let start: ChildProcess | undefined;
  let startOutput = '';

  before(async function () {
    const refuse = (why: string): void => {
      if (process.env.CI) throw new Error(`the README test cannot run: ${why}`);
      console.warn(`    SKIPPED (the README's commands): ${why}`);
      this.skip();
    };
    if (!(await portFree(7070))) refuse('port 7070 is taken, so `npm start` cannot listen where the README says');
    for (const made of MADE) if (existsSync(join(ROOT, made))) refuse(`${made} exists in the checkout (a newcomer's has none; move it away to run this)`);
    checkout = ROOT;
    // The README's command; its own process group, so Ctrl-C reaches npm and what it started.
    start = spawn('npm', ['start'], { cwd: checkout, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = new Promise<void>((resolve, reject) => {
      for (const stream of [start!.stdout!, start!.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          startOutput += `${line}\n`;
          if (line === 'Ctrl-C stops both.') resolve();
        });
      }
      start!.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${startOutput}`)));
    });
    await ready;
  });

  after(async () => {
    if (start?.pid && start.exitCode === null) {
      const exited = new Promise((resolve) => start!.once('exit', resolve));
      process.kill(-start.pid, 'SIGINT');
      await exited;
    }
    if (checkout) for (const made of MADE) rmSync(join(checkout, made), { recursive: true, force: true });
  });

  it('npm start prints how to run the first task, and that first command prints hello', async () => {
    expect(startOutput).to.contain("npx taskgate tasks create -t local -s 'echo hello' --wait");
    const first = await paste(blockAfter('Then, in another shell in the same directory:'), checkout);
    expect([first.code, first.stdout, first.stderr]).to.deep.equal([0, 'hello\n', '']);
  });

  it("npm start prints the console's one-time sign-in link, which signs a browser in once, and serves the console", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).to.contain('`http://127.0.0.1:7080/auth/link?code=…`');
    const link = /^\s+(http:\/\/127\.0\.0\.1:7080\/auth\/link\?code=\S+)$/m.exec(startOutput)?.[1];
    expect(link, startOutput).to.be.a('string');
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
