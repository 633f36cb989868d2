import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandFor } from '../../agent/interpreters.js';
import { PtyRun, type RunResult } from '../../agent/pty-runner.js';
import type { ScriptType } from '../../shared/limits.js';

describe('PtyRun (real ptys)', function () {
  let dir: string;
  let n = 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskgate-pty-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function run(type: ScriptType, script: string, env: Record<string, string> = {}): Promise<RunResult & { output: string; bytes: Buffer; pid: number }> {
    const scriptPath = join(dir, `script-${n++}`);
    writeFileSync(scriptPath, script);
    const parts: Buffer[] = [];
    let pid = 0;
    const fullEnv = { PATH: process.env.PATH ?? '', ...env };
    const writePrivate = async (name: string, content: string): Promise<string> => {
      writeFileSync(join(dir, name), content, { mode: 0o600 });
      return join(dir, name);
    };
    const command = await commandFor(type, { scriptPath, writePrivate, secrets: {}, path: fullEnv.PATH });
    const r = PtyRun.start(
      { file: command.file, args: command.args, cwd: dir, env: fullEnv },
      { onStart: (p) => (pid = p), onData: (d) => parts.push(Buffer.from(d)) },
    );
    const result = await r.done;
    const bytes = Buffer.concat(parts);
    return { ...result, output: bytes.toString(), bytes, pid };
  }

  it('runs bash, sh, python and node scripts from a file', async () => {
    const cases: Array<[ScriptType, string]> = [
      ['bash', 'echo "bash $BASH_VERSINFO" | cut -c1-4'],
      ['sh', 'echo sh-ok'],
      ['python', 'import sys\nprint("py", sys.version_info[0])'],
      ['node', 'console.log("node", typeof process.version)'],
    ];
    const outputs = await Promise.all(cases.map(([type, script]) => run(type, script)));
    expect(outputs.map((o) => o.output)).to.deep.equal(['bash\r\n', 'sh-ok\r\n', 'py 3\r\n', 'node string\r\n']);
    expect(outputs.map((o) => o.exitCode)).to.deep.equal([0, 0, 0, 0]);
  });

  it('reports exit codes', async () => {
    const results = await Promise.all([0, 1, 42, 255].map((code) => run('bash', `exit ${code}`)));
    expect(results.map((r) => [r.exitCode, r.signal])).to.deep.equal([[0, ''], [1, ''], [42, ''], [255, '']]);
  });

  it('reports the signal that ended the process', async () => {
    const term = await run('bash', 'echo before; kill -TERM $$; echo after');
    expect([term.exitCode, term.signal, term.output]).to.deep.equal([null, 'SIGTERM', 'before\r\n']);
    const kill = await run('python', 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)');
    expect(kill.signal).to.equal('SIGKILL');
  });

  it('runs in a pty, in its own process group, in the working directory with the environment', async () => {
    const r = await run('bash', '[ -t 1 ] && echo tty; echo "$PWD"; echo "$FOO"; ps -o pgid= -p $$ | tr -d " "; echo $$', { FOO: 'bar' });
    const [tty, cwd, foo, pgid, pid] = r.output.trim().split(/\r\n/);
    expect([tty, cwd, foo]).to.deep.equal(['tty', dir, 'bar']);
    expect(pgid).to.equal(pid);
    expect(Number(pid)).to.equal(r.pid);
  });

  it('keeps a script that reads stdin from hanging: it reads end-of-file', async () => {
    const r = await run('bash', 'cat; echo "done $?"');
    expect(r.output).to.equal('done 0\r\n');
  });

  it('passes the script as a file: quotes and $ stay literal to the interpreter', async () => {
    const r = await run('bash', `echo '$HOME "quoted" \`not run\`'`);
    expect(r.output).to.equal('$HOME "quoted" `not run`\r\n');
  });

  it('fails clearly when the interpreter is missing', async () => {
    const err = await run('python', 'print(1)', { PATH: '/nonexistent' }).catch((e: unknown) => e);
    expect((err as Error).message).to.equal('interpreter "python3" not found on the task\'s PATH (or not executable by the task\'s user)');
  });

  it('ends when the script exits even if a background child keeps the pty open', async () => {
    const r = await run('bash', 'sleep 30 & echo started');
    expect([r.exitCode, r.output]).to.deep.equal([0, 'started\r\n']);
    // The background child is not the task's output; clean it up.
    try {
      process.kill(-r.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });

  // node-pty issues #72 and #726: without the end-marker drain, about 20% of
  // these runs lose their tail on Linux.
  it('delivers every byte of a 20 KB write-and-exit, 200 runs out of 200', async function () {
    this.timeout(180_000);
    const expected = 'x'.repeat(20_000);
    const short: number[] = [];
    for (let i = 0; i < 200; i++) {
      const r = await run('sh', `printf '%s' '${expected}'`);
      if (r.output !== expected || r.exitCode !== 0) short.push(r.output.length);
    }
    expect(short, 'lengths of incomplete runs').to.deep.equal([]);
  });
});
