/**
 * The Go and Python SDKs (sdk/go, sdk/python), generated from proto/ by
 * `npm run gen`, installed and driven the way their users do: the Go example
 * built in a module of its own against sdk/go, the Python one run from a
 * fresh virtualenv after `pip install ./sdk/python`. Each creates a task on
 * a live server, follows its logs and exits with its status. A proto change that breaks either client fails
 * here.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ReviewMode } from '../../gen/taskgate/v1/target.js';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const ROOT = process.cwd();

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

/** What a language's example needs: the command that runs it, and what to remove afterwards. */
interface Example {
  command: string[];
  dir: string;
}

/**
 * The Go example as a user of the SDK builds it: main.go alone in a module
 * of its own that requires github.com/taskgate/taskgate/sdk/go, replaced by
 * this checkout's sdk/go (docs/api.md "Using the SDKs"); `go get .` fills in
 * go.mod and go.sum through the Go module proxy, then `go build`. The Go
 * module and build caches make reruns quick.
 */
async function goExample(): Promise<Example> {
  if (spawnSync('go', ['version']).status !== 0) throw new Error('Go is not installed: the Go SDK example needs it');
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-go-user-'));
  copyFileSync(join(ROOT, 'sdk', 'go', 'example', 'main.go'), join(dir, 'main.go'));
  writeFileSync(join(dir, 'go.mod'), 'module example.com/taskgate-user\n\ngo 1.26.0\n');
  const steps: string[][] = [
    ['mod', 'edit', '-require=github.com/taskgate/taskgate/sdk/go@v0.0.0', `-replace=github.com/taskgate/taskgate/sdk/go=${join(ROOT, 'sdk', 'go')}`],
    ['get', '.'],
    ['build', '-o', 'example', '.'],
  ];
  for (const args of steps) {
    const r = await run('go', args, { cwd: dir, timeout: 600_000 });
    expect(r.code, `go ${args.join(' ')} in a module of its own:\n${r.stderr}`).to.equal(0);
  }
  return { command: [join(dir, 'example')], dir };
}

/**
 * The Python example as a user runs it: a fresh virtualenv, `pip install
 * ./sdk/python` (pyproject.toml; grpcio and protobuf as requirements.txt
 * says, from PyPI or pip's cache), and example.py copied out of the
 * checkout, so `import taskgate` finds the installed package and not the
 * source tree beside it.
 */
async function pythonExample(): Promise<Example> {
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-python-user-'));
  const venv = join(dir, 'venv');
  const made = await run('python3', ['-m', 'venv', venv]);
  expect(made.code, `python3 -m venv:\n${made.stderr}`).to.equal(0);
  const installed = await run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', './sdk/python'], { timeout: 600_000 });
  expect(installed.code, `pip install ./sdk/python:\n${installed.stderr}`).to.equal(0);
  copyFileSync(join(ROOT, 'sdk', 'python', 'example.py'), join(dir, 'example.py'));
  const where = await run(join(venv, 'bin', 'python'), ['-c', 'import taskgate.v1.task_pb2 as m; print(m.__file__)'], { cwd: dir });
  expect(where.stdout.toString()).to.contain(join(venv, 'lib'));
  return { command: [join(venv, 'bin', 'python'), join(dir, 'example.py')], dir };
}

const LANGUAGES: Array<{ name: string; prepare: () => Promise<Example> }> = [
  { name: 'Go', prepare: goExample },
  { name: 'Python', prepare: pythonExample },
];

for (const language of LANGUAGES) {
  describe(`${language.name} SDK example against a live server`, function () {
    let h: Harness;
    let command: string[];
    let installed: Example | undefined;

    before(async function () {
      this.timeout(900_000);
      installed = await language.prepare();
      command = installed.command;
      h = await Harness.start((await STORE_KINDS[0]!.location())!);
      await h.startAgent('a1');
      await h.createTarget('t', 'a1');
      await h.createTarget('reviewed', 'a1', 'bash', { review: ReviewMode.REVIEW_MODE_ANYONE });
    });

    after(async () => {
      await h?.close();
      if (installed) rmSync(installed.dir, { recursive: true, force: true });
    });

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
