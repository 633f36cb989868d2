/**
 * Issue 16: the agent package. Runs `npm run pack:agent` as
 * docs/install-agent.md says, installs the tarball with npm into a fresh
 * prefix on a PATH that holds node and sh and nothing else (no cc, make or
 * python: a node-gyp build would fail the install), checks nothing was
 * compiled and no server code came along, then starts the installed
 * `taskgate-agent` with --token-file and TLS against a live TLS server and
 * runs tasks through it. The install needs the npm registry once (for
 * @lydell/node-pty); after that npm's cache serves it (--prefer-offline).
 * As root (CI) the installed agent isolates its tasks, and the test checks
 * that they ran as task ids; otherwise they run as the agent's user.
 */
import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Target } from '../../gen/taskgate/v1/target.js';
import { TaskStatus, type GetTaskLogsResponse, type Task } from '../../gen/taskgate/v1/task.js';
import type * as PtyRunner from '../../agent/pty-runner.js';
import { Api } from '../../cli/client.js';
import { VERSION } from '../../shared/version.js';
import { Pki, type Pem } from '../helpers/certs.js';
import { Harness } from '../helpers/harness.js';
import { IS_ROOT } from '../helpers/root.js';
import { STORE_KINDS } from '../helpers/stores.js';

const ROOT = process.cwd();
const TARBALL = join(ROOT, 'build', `taskgate-agent-${VERSION}.tgz`);

/** Runs a command; resolves its exit code and everything it printed. */
function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { ...options, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** npm's own script (npm-cli.js), found through the npm on PATH, so that npm runs without a PATH. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, 'npm'))) return realpathSync(join(dir, 'npm'));
  }
  throw new Error('npm is not on PATH');
}

/** Every file under `dir`. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** The installed `taskgate-agent` as a process, with its output as lines. */
class AgentProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly lines: string[] = [];
  readonly #waiters: Array<() => void> = [];

  constructor(bin: string, args: string[]) {
    this.child = spawn(bin, args, { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.lines.push(line);
        for (const w of this.#waiters.splice(0)) w();
      });
    }
  }

  /** Resolves when a line matches; rejects if the process exits first or `limitMs` passes (an agent that cannot connect retries for ever). */
  until(pattern: RegExp, limitMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`taskgate-agent printed no ${pattern} in ${limitMs} ms:\n${this.lines.join('\n')}`)), limitMs);
      const check = (): void => {
        if (this.lines.some((l) => pattern.test(l))) {
          clearTimeout(timer);
          resolve();
        } else this.#waiters.push(check);
      };
      check();
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`taskgate-agent exited (${code}) before printing ${pattern}:\n${this.lines.join('\n')}`));
      });
    });
  }

  async terminate(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exited;
  }
}

describe('the agent package (npm run pack:agent, installed without a compiler)', function () {
  this.timeout(180_000);
  let base: string;
  let prefix: string;
  let packOutput: string;

  before(async function () {
    base = mkdtempSync(join(tmpdir(), 'taskgate-agent-package-'));
    chmodSync(base, 0o711); // the agent's work dir inside: tasks run as ids of their own when root
    const packed = await run('npm', ['run', 'pack:agent'], { cwd: ROOT });
    packOutput = packed.output;
    expect(packed.code, packed.output).to.equal(0);
    expect(existsSync(TARBALL), `${TARBALL} after npm run pack:agent`).to.equal(true);

    // node and sh (npm runs install scripts through sh), and no compiler.
    const bin = join(base, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    prefix = join(base, 'prefix');
    // A clean environment: no npm_config_nodedir (CI sets one for the dev
    // tree's node-gyp builds), none of the npm_* variables `npm test` sets.
    // Kept: a CA the host adds for its registry (NODE_EXTRA_CA_CERTS), or npm
    // cannot reach the registry at all behind a TLS-inspecting proxy.
    const env = {
      PATH: bin,
      HOME: process.env.HOME ?? base,
      ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    };
    const installed = await run(process.execPath, [npmCli(), 'install', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', TARBALL], { env });
    expect(installed.code, installed.output).to.equal(0);
  });

  after(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('installs with prebuilt node-pty binaries, compiles nothing, and brings no server code or store driver', () => {
    const modules = join(prefix, 'node_modules');
    const pty = JSON.parse(readFileSync(join(modules, 'node-pty', 'package.json'), 'utf8')) as { name: string; version: string };
    expect(pty, 'node-pty is the npm alias of @lydell/node-pty').to.deep.equal({ ...pty, name: '@lydell/node-pty', version: '1.1.0' });
    const files = filesUnder(modules);
    const natives = files.filter((f) => f.endsWith('.node')).map((f) => f.slice(modules.length + 1));
    expect(natives, 'native addons: only the prebuilt pty').to.deep.equal([`@lydell/node-pty-${process.platform}-${process.arch}/pty.node`]);
    expect(files.filter((f) => f.includes('/build/') && f.endsWith('.node')), 'no node-gyp build output').to.deep.equal([]);
    expect(existsSync(join(modules, 'mongodb')), 'mongodb').to.equal(false);
    expect(existsSync(join(modules, 'better-sqlite3')), 'better-sqlite3').to.equal(false);
    const own = filesUnder(join(modules, 'taskgate-agent')).map((f) => f.slice(join(modules, 'taskgate-agent').length + 1));
    expect(own.filter((f) => !/^dist\/(agent|shared|gen)\/|^(package\.json|README\.md|deploy\/taskgate-agent\.service)$/.test(f)), 'files beyond the agent program').to.deep.equal([]);
    expect(own).to.include.members(['dist/agent/main.js', 'dist/agent/pty-runner.js', 'deploy/taskgate-agent.service']);
    expect(packOutput).to.contain(`build/taskgate-agent-${VERSION}.tgz`);
  });

  it('delivers every byte of a 20 KB write-and-exit through the packaged node-pty, 200 runs out of 200', async () => {
    // The completeness guarantee of agent/pty-runner.ts rests on node-pty
    // internals; this is test/integration/pty-runner.test.ts's check, run on
    // the installed copy, which loads @lydell/node-pty.
    const installed = join(prefix, 'node_modules', 'taskgate-agent', 'dist', 'agent', 'pty-runner.js');
    const { PtyRun } = (await import(pathToFileURL(installed).href)) as typeof PtyRunner;
    const expected = 'x'.repeat(20_000);
    const short: number[] = [];
    for (let i = 0; i < 200; i++) {
      const parts: Buffer[] = [];
      const r = await PtyRun.start(
        { file: '/bin/sh', args: ['-c', `printf '%s' '${expected}'`], cwd: base, env: { PATH: process.env.PATH ?? '' } },
        { onStart: () => undefined, onData: (d) => parts.push(Buffer.from(d)) },
      ).done;
      const output = Buffer.concat(parts).toString();
      if (output !== expected || r.exitCode !== 0) short.push(output.length);
    }
    expect(short, 'lengths of incomplete runs').to.deep.equal([]);
  });

  describe('taskgate-agent against a TLS server', function () {
    let pki: Pki;
    let ca: Pem;
    let h: Harness;
    let api: Api;
    let agent: AgentProcess | undefined;

    before(async () => {
      pki = new Pki();
      ca = pki.ca('taskgate-package-ca');
      const serverPem = pki.issue(ca, 'localhost', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
      h = await Harness.start((await STORE_KINDS[0]!.location())!, { tls: { cert: pki.read(serverPem.cert), key: pki.read(serverPem.key) } });
      api = new Api({ server: h.address, token: h.adminToken, tlsCa: ca.cert });
    });

    after(async () => {
      if (agent) await agent.terminate();
      api?.close();
      await h?.close();
      pki?.close();
    });

    async function finished(id: string): Promise<{ task: Task; output: string }> {
      const parts: Buffer[] = [];
      let task: Task | undefined;
      for await (const m of api.tasks.getTaskLogs({ id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, api.metadata) as AsyncIterable<GetTaskLogsResponse>) {
        if (m.event?.$case === 'chunk') parts.push(Buffer.from(m.event.value.data));
        else if (m.event?.$case === 'finished') task = m.event.value;
      }
      if (!task) throw new Error(`log stream of ${id} ended without the task`);
      return { task, output: Buffer.concat(parts).toString() };
    }

    it('connects with --token-file and --tls-ca, and runs a task', async () => {
      const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: 'edge-1', ttl: undefined });
      const tokenFile = join(base, 'agent.token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      await api.call(api.targets, api.targets.createTarget, { target: Target.fromPartial({ name: 'edge', agent: 'edge-1', type: 'bash' }) });

      const bin = join(prefix, 'node_modules', '.bin', 'taskgate-agent');
      const args = ['--server', h.address, '--name', 'edge-1', '--token-file', tokenFile, '--tls-ca', ca.cert, '--work-dir', join(base, 'work'), '--log-level', 'info'];
      agent = new AgentProcess(bin, args);
      await agent.until(/"msg":"connected"/, 30_000);

      const { task } = await api.call(api.tasks, api.tasks.createTask, {
        target: 'edge',
        script: 'echo "hello from the packaged agent"; id -u; head -c 20000 /dev/zero | tr "\\0" x; echo',
        message: '',
        type: '',
        timeoutSeconds: 0,
      });
      const done = await finished(task!.id);
      expect(done.task.status, done.output).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      expect(done.task.agent).to.equal('edge-1');
      const [hello, uid, xs] = done.output.split('\r\n');
      expect(hello).to.equal('hello from the packaged agent');
      if (IS_ROOT) expect(Number(uid), 'an isolated task id').to.be.within(61000, 61999);
      else expect(Number(uid)).to.equal(process.getuid!());
      expect(xs).to.equal('x'.repeat(20_000));
      expect(agent.lines.join('\n')).not.to.contain(token);
    });
  });
});
