/**
 * The `taskgate` command as a user types it: a real child process against a
 * real server and agent.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('taskgate CLI', function () {
  let h: Harness;
  let cwd: string;

  function taskgate(...args: string[]): Promise<Result> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { cwd, env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  before(async () => {
    cwd = mkdtempSync(join(tmpdir(), 'taskgate-cli-'));
    const location = await STORE_KINDS[0]!.location();
    h = await Harness.start(location!);
    await h.startAgent('local');
  });

  after(async () => {
    await h.close();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('creates targets and lists them', async () => {
    const created = await taskgate('targets', 'create', '--name', 'local', '--agent', 'local', '--type', 'bash', '-m', 'here');
    expect(created.code, created.stderr).to.equal(0);
    const list = await taskgate('targets', 'list');
    expect(list.stdout).to.match(/^NAME\s+TYPE\s+AGENT\s+CREATED\s+MESSAGE\nlocal\s+bash\s+local\s+\S+ \S+\s+here\n$/);
  });

  it('runs a task with --wait: prints its output live and exits with its exit code', async () => {
    const ok = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo hello', '--wait');
    expect([ok.code, ok.stdout, ok.stderr]).to.deep.equal([0, 'hello\r\n', '']);
    const failed = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo oops; exit 7', '--wait');
    expect([failed.code, failed.stdout]).to.deep.equal([7, 'oops\r\n']);
    expect(failed.stderr).to.match(/failure: exited with status 7\n$/);
  });

  it('shows a task as proto3 JSON and as a table', async () => {
    const id = (await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo hi')).stdout.trim();
    await h.finished(id);
    const json = JSON.parse((await taskgate('tasks', 'get', id, '--json')).stdout) as Record<string, unknown>;
    expect(json).to.include({ id, status: 'TASK_STATUS_SUCCESS', script: 'echo hi', type: 'bash', target: 'local', exitCode: 0 });
    expect(Date.parse(json.created as string)).to.be.a('number').and.not.NaN;
    const table = await taskgate('tasks', 'get', id);
    expect(table.stdout).to.match(/^id\s+\S+\nstatus\s+success\n/);
    const logs = await taskgate('tasks', 'logs', id);
    expect(logs.stdout).to.equal('hi\r\n');
    const list = await taskgate('tasks', 'list', '--status', 'success', '--target', 'local');
    expect(list.stdout.split('\n')[0]).to.match(/^ID\s+STATUS\s+TARGET\s+TYPE\s+CREATED\s+SCRIPT$/);
    expect(list.stdout).to.contain(id);
  });

  it('reads the script from a file and follows logs with -f', async () => {
    const file = join(cwd, 'script.py');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'print("from file")\n');
    const id = (await taskgate('tasks', 'create', '-t', 'local', '-f', file, '--type', 'python')).stdout.trim();
    const follow = await taskgate('tasks', 'logs', id, '-f');
    expect(follow.stdout).to.equal('from file\r\n');
  });

  it('turns each error into one line and a non-zero exit', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['tasks', 'create', '-t', 'nope', '-s', 'x'], /^taskgate: target "nope" not found \(NOT_FOUND\)\n$/],
      [['tasks', 'create', '-t', 'local', '-s', ''], /^taskgate: script must not be empty \(INVALID_ARGUMENT\)\n$/],
      [['tasks', 'create', '-t', 'local', '-s', 'x', '--type', 'cobol'], /^taskgate: type "cobol" is not supported.*\(INVALID_ARGUMENT\)\n$/],
      [['tasks', 'get', 'nope'], /^taskgate: task nope not found \(NOT_FOUND\)\n$/],
      [['tasks', 'list', '--token', 'wrong'], /^taskgate: not authenticated: unknown token/],
      [['tasks', 'list', '--server', '127.0.0.1:1'], /^taskgate: cannot reach the Taskgate server at 127.0.0.1:1/],
      [['tasks', 'create', '-t', 'local'], /^taskgate: give the script with exactly one of -s SCRIPT or -f FILE\n$/],
    ];
    for (const [args, message] of cases) {
      const r = await taskgate(...args);
      expect(r.code, args.join(' ')).to.not.equal(0);
      expect(r.stderr, args.join(' ')).to.match(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
    }
  });

  it('issues agent tokens and lists agents', async () => {
    const token = await taskgate('agents', 'token', '--name', 'edge-1');
    expect(token.stdout).to.match(/^tg_agent_\S+\n$/);
    const list = await taskgate('agents', 'list');
    expect(list.stdout).to.match(/edge-1\s+offline/);
    expect(list.stdout).to.match(/local\s+connected/);
  });
});
