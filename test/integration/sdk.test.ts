/**
 * The Go and Python SDKs (sdk/go, sdk/python), generated from proto/ by
 * `npm run gen`, driven the way their users drive them: each language's
 * example program creates a task on a live server, follows its logs and
 * exits with its status. A proto change that breaks either client fails
 * here.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const ROOT = process.cwd();
const CACHE = join(ROOT, '.cache');

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; env?: Record<string, string>; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env }, timeout: options.timeout ?? 60_000, encoding: 'buffer', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() }),
    );
  });
}

/** Builds the Go example into .cache; the Go build cache makes reruns quick. */
async function goExample(): Promise<string[]> {
  if (spawnSync('go', ['version']).status !== 0) throw new Error('Go is not installed: the Go SDK example needs it');
  const out = join(CACHE, 'sdk', 'go-example');
  const built = await run('go', ['build', '-o', out, './example'], { cwd: join(ROOT, 'sdk', 'go'), timeout: 600_000 });
  expect(built.code, `go build ./example in sdk/go:\n${built.stderr}`).to.equal(0);
  return [out];
}

/**
 * A virtualenv with only sdk/python/requirements.txt installed (what a user
 * of the generated code installs), reused while that file is unchanged.
 */
async function pythonExample(): Promise<string[]> {
  const venv = join(CACHE, 'sdk', 'python-venv');
  const requirements = join(ROOT, 'sdk', 'python', 'requirements.txt');
  const stamp = join(venv, 'requirements.txt');
  const python = join(venv, 'bin', 'python');
  if (!existsSync(python)) {
    mkdirSync(join(CACHE, 'sdk'), { recursive: true });
    const made = await run('python3', ['-m', 'venv', venv]);
    expect(made.code, `python3 -m venv:\n${made.stderr}`).to.equal(0);
  }
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== readFileSync(requirements, 'utf8')) {
    const installed = await run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', requirements], { timeout: 600_000 });
    expect(installed.code, `pip install -r sdk/python/requirements.txt:\n${installed.stderr}`).to.equal(0);
    writeFileSync(stamp, readFileSync(requirements));
  }
  return [python, join(ROOT, 'sdk', 'python', 'example.py')];
}

const LANGUAGES: Array<{ name: string; prepare: () => Promise<string[]> }> = [
  { name: 'Go', prepare: goExample },
  { name: 'Python', prepare: pythonExample },
];

for (const language of LANGUAGES) {
  describe(`${language.name} SDK example against a live server`, function () {
    let h: Harness;
    let command: string[];

    before(async function () {
      this.timeout(900_000);
      command = await language.prepare();
      h = await Harness.start((await STORE_KINDS[0]!.location())!);
      await h.startAgent('a1');
      await h.createTarget('t', 'a1');
      await h.createTarget('reviewed', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
    });

    after(async () => h?.close());

    function example(args: string[], token = h.adminToken, env: Record<string, string> = {}): Promise<Run> {
      return run(command[0]!, [...command.slice(1), ...args], { env: { TASKGATE_SERVER: h.address, TASKGATE_TOKEN: token, ...env } });
    }

    /** The task id the example prints first ("task ID: STATUS"). */
    function taskId(stderr: string): string {
      const id = /^task (\S+): /m.exec(stderr)?.[1];
      if (!id) throw new Error(`no task id in the example's stderr:\n${stderr}`);
      return id;
    }

    it('creates a task, prints every byte of its output as it comes and exits 0 on success', async () => {
      const script = 'for i in 1 2 3; do echo "line $i"; done; printf "é\\x01 no newline at the end"';
      const res = await example(['t', script]);
      expect(res.code, res.stderr).to.equal(0);
      const id = taskId(res.stderr);
      const stored = await h.finished(id);
      expect(stored.task.status).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect(res.stdout.equals(stored.output), `example printed ${JSON.stringify(res.stdout.toString())}, the store has ${JSON.stringify(stored.output.toString())}`).to.equal(true);
      expect(res.stdout.toString()).to.contain('line 3\r\n');
      expect(res.stdout.toString().endsWith('é\x01 no newline at the end')).to.equal(true);
      expect(res.stderr).to.contain(`task ${id} ended: TASK_STATUS_SUCCESS, exit code 0`);
    });

    it("exits with the task's own exit code when it fails", async () => {
      const res = await example(['t', 'echo failing >&2; exit 7']);
      expect(res.code, res.stderr).to.equal(7);
      expect(res.stdout.toString()).to.equal('failing\r\n');
      expect(res.stderr).to.contain('ended: TASK_STATUS_FAILURE, exit code 7');
    });

    it('says when the task waits for review, and exits 3', async () => {
      const res = await example(['reviewed', 'echo later']);
      expect(res.code, res.stderr).to.equal(3);
      expect(res.stderr).to.match(/TASK_STATUS_PENDING_REVIEW/);
      expect((await h.getTask(taskId(res.stderr))).status).to.equal(TaskStatus.TASK_STATUS_PENDING_REVIEW);
    });

    it("reports the server's status and message for a bad token and an unknown target", async () => {
      const denied = await example(['t', 'echo never'], 'tg_user_not-a-token');
      expect(denied.code).to.equal(1);
      expect(denied.stderr).to.match(/Unauthenticated|UNAUTHENTICATED/);
      const missing = await example(['no-such-target', 'echo never']);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.match(/NotFound|NOT_FOUND/).and.contain('no-such-target');
    });

    it('sends a request id of its own; run twice with the same TASKGATE_REQUEST_ID it makes one task, which runs once', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'taskgate-sdk-'));
      try {
        chmodSync(dir, 0o755);
        const marker = join(dir, 'ran');
        writeFileSync(marker, '');
        chmodSync(marker, 0o666); // tasks run as users of their own
        const fresh = await example(['t', 'echo fresh']);
        expect(fresh.code, fresh.stderr).to.equal(0);
        expect((await h.store.getTask(taskId(fresh.stderr)))?.requestId).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        const requestId = `sdk-${language.name}-${Date.now()}`;
        const twice = [await example(['t', `echo ran >> ${marker}`], h.adminToken, { TASKGATE_REQUEST_ID: requestId })];
        twice.push(await example(['t', `echo ran >> ${marker}`], h.adminToken, { TASKGATE_REQUEST_ID: requestId }));
        expect(twice.map((r) => r.code)).to.deep.equal([0, 0]);
        expect(taskId(twice[1]!.stderr)).to.equal(taskId(twice[0]!.stderr));
        expect(readFileSync(marker, 'utf8')).to.equal('ran\n');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('tries CreateTask again when the connection drops after the server made the task, and gets that task', async () => {
      const proxy = await TcpProxy.start(h.address);
      try {
        const script = `echo dropped-${language.name}-${Date.now()}`;
        const held = proxy.holdAnswerAfter(script);
        const before = (await h.store.listTasks({ limit: 500 })).length;
        const res = run(command[0]!, [...command.slice(1), 't', script], { env: { TASKGATE_SERVER: proxy.address, TASKGATE_TOKEN: h.adminToken } });
        await held;
        while ((await h.store.listTasks({ limit: 500 })).length === before) await new Promise((resolve) => setTimeout(resolve, 10));
        proxy.cut();
        proxy.restore();
        const { code, stderr } = await res;
        expect(code, stderr).to.equal(0);
        const made = (await h.store.listTasks({ limit: 500 })).filter((t) => t.script === script);
        expect(made.map((t) => t.id)).to.deep.equal([taskId(stderr)]);
      } finally {
        await proxy.close();
      }
    });
  });
}
