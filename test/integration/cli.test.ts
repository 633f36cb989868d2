/**
 * The `taskgate` command as a user types it: a real child process against a
 * real server and agent.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { Harness } from '../helpers/harness.js';
import { taskRecord } from '../helpers/records.js';
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

  function taskgateAs(token: string, ...args: string[]): Promise<Result> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { cwd, env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: token } },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  function taskgate(...args: string[]): Promise<Result> {
    return taskgateAs(h.adminToken, ...args);
  }

  /** Runs a command that must succeed; returns its stdout. */
  async function ok(token: string, ...args: string[]): Promise<string> {
    const r = await taskgateAs(token, ...args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
    return r.stdout;
  }

  let dataDir: string;

  before(async () => {
    cwd = mkdtempSync(join(tmpdir(), 'taskgate-cli-'));
    const location = await STORE_KINDS[0]!.location();
    dataDir = location!.options.dataDir!;
    h = await Harness.start(location!);
    await h.startAgent('local');
  });

  after(async () => {
    await h.close();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('creates targets and lists them', async () => {
    const created = await taskgate('targets', 'create', '--name', 'local', '--agent', 'local', '--type', 'bash', '-m', 'here', '--allow-type-override');
    expect(created.code, created.stderr).to.equal(0);
    const list = await taskgate('targets', 'list');
    expect(list.stdout).to.match(/^NAME\s+TYPE\s+AGENT\s+REVIEW\s+GROUPS\s+CREATED\s+MESSAGE\nlocal\s+bash\s+local\s+none\s+everyone\s+\S+ \S+\s+here\n$/);
  });

  it('runs a task with --wait: prints its output live and exits with its exit code', async () => {
    const ok = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo hello', '--wait');
    expect([ok.code, ok.stdout, ok.stderr]).to.deep.equal([0, 'hello\n', '']);
    const failed = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo oops; exit 7', '--wait');
    expect([failed.code, failed.stdout]).to.deep.equal([7, 'oops\n']);
    expect(failed.stderr).to.match(/failure: exited with status 7\n$/);
  });

  it('tasks logs of output damaged in the store prints what is intact, then one line naming the bytes to skip, and --offset reads past them', async () => {
    const t = taskRecord({ status: 'success', target: 'local', agent: 'local' });
    await h.store.insertTask(t);
    const lines = (n: number): Buffer => Buffer.from(Array.from({ length: 400 }, (_, i) => `line ${n}.${i} of the report\r\n`).join(''));
    const parts = [lines(0), lines(1), lines(2)];
    let offset = 0;
    for (const [seq, data] of parts.entries()) {
      await h.store.putChunk({ taskId: t.id, seq, offset, data });
      offset += data.length;
    }
    const db = new Database(join(dataDir, 'taskgate.db'));
    db.prepare('UPDATE chunks SET data = ? WHERE task_id = ? AND seq = 1').run(Buffer.from('damaged'), t.id);
    db.close();
    const from = parts[0]!.length;
    const to = from + parts[1]!.length;
    const logs = await taskgate('tasks', 'logs', t.id, '--raw');
    expect(logs.code).to.equal(1);
    expect(logs.stdout).to.equal(parts[0]!.toString());
    expect(logs.stderr).to.equal(`taskgate: stored output of task ${t.id} is damaged at chunk 1 (bytes ${from}-${to}): it does not decompress; read from offset ${to} to skip it (DATA_LOSS)\n`);
    const rest = await taskgate('tasks', 'logs', t.id, '--raw', '--offset', String(to));
    expect([rest.code, rest.stdout]).to.deep.equal([0, parts[2]!.toString()]);
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
    expect(logs.stdout).to.equal('hi\n');
    const list = await taskgate('tasks', 'list', '--status', 'success', '--target', 'local');
    expect(list.stdout.split('\n')[0]).to.match(/^ID\s+STATUS\s+TARGET\s+TYPE\s+CREATED\s+SCRIPT$/);
    expect(list.stdout).to.contain(id);
  });

  it('reads the script from a file and follows logs with -f', async () => {
    const file = join(cwd, 'script.py');
    writeFileSync(file, 'print("from file")\n');
    const id = (await taskgate('tasks', 'create', '-t', 'local', '-f', file, '--type', 'python')).stdout.trim();
    const follow = await taskgate('tasks', 'logs', id, '-f');
    expect(follow.stdout).to.equal('from file\n');
  });

  it('turns each error into one line and its exit code: 2 for a usage error, 1 when the server refused', async () => {
    const USAGE = 2;
    const REFUSED = 1;
    const bigScript = join(cwd, 'big.sh');
    const cases: Array<[string[], number, RegExp]> = [
      [['tasks', 'create', '-t', 'nope', '-s', 'x'], REFUSED, /^taskgate: target "nope" not found \(NOT_FOUND\)\n$/],
      [['tasks', 'create', '-t', 'local', '-s', ''], REFUSED, /^taskgate: script must not be empty \(INVALID_ARGUMENT\)\n$/],
      [['tasks', 'create', '-t', 'local', '-s', 'x', '--type', 'cobol'], REFUSED, /^taskgate: type "cobol" is not supported.*\(INVALID_ARGUMENT\)\n$/],
      [['tasks', 'get', 'nope'], REFUSED, /^taskgate: task nope not found \(NOT_FOUND\)\n$/],
      [['tasks', 'list', '--token', 'tg_user_wrongsecret'], REFUSED, /^taskgate: not authenticated: unknown token \(--token, TASKGATE_TOKEN\)\n$/],
      [['tasks', 'list', '--token', '  Bearer   tg_user_wrongsecret  '], REFUSED, /^taskgate: not authenticated: unknown token \(--token, TASKGATE_TOKEN\)\n$/],
      [['tasks', 'list', '--server', '127.0.0.1:1'], REFUSED, /^taskgate: cannot reach the Taskgate server at 127.0.0.1:1/],
      [['tasks', 'create', '-t', 'local'], USAGE, /^taskgate: give the script with exactly one of -s SCRIPT or -f FILE\n$/],
      [['tasks', 'create', '-s', 'x'], USAGE, /^taskgate: required option '-t, --target <name>' not specified\n$/],
      [['tasks', 'list', '--bogus'], USAGE, /^taskgate: unknown option '--bogus'/],
      [['tasks', 'frobnicate'], USAGE, /^taskgate: unknown command 'frobnicate'/],
      [['tasks', 'create', '-t', 'local', '-s', 'x', '--timeout', 'abc'], USAGE, /^taskgate: --timeout must be a whole number of seconds, not "abc"\n$/],
      [['tasks', 'create', '-t', 'local', '-f', './missing.py'], USAGE, /^taskgate: -f \.\/missing\.py: no such file\n$/],
      [['tasks', 'list', '--server', 'http://127.0.0.1:7070'], USAGE, /^taskgate: --server takes HOST:PORT, not a URL: use --server 127\.0\.0\.1:7070\n$/],
      [['tasks', 'list', '--server', '127.0.0.2'], REFUSED, /^taskgate: cannot reach the Taskgate server at 127\.0\.0\.2:7070 /],
      [['tasks', 'list', '--token', 'tg_user_secretpart\nsecond-line'], USAGE, /^taskgate: the token in --token \(or TASKGATE_TOKEN\) contains characters no token has \(spaces, control characters or non-ASCII\); it must be the one line `taskgate tokens create` printed\n$/],
      [['tasks', 'list', '--token', 'Bearer tg_user_secret part'], USAGE, /^taskgate: the token in --token \(or TASKGATE_TOKEN\) contains characters no token has \(spaces, control characters or non-ASCII\); it must be the one line `taskgate tokens create` printed\n$/],
      [['tasks', 'list', '--token', ' Bearer   '], USAGE, /^taskgate: the token in --token \(or TASKGATE_TOKEN\) is empty\n$/],
      [['tasks', 'list', '--token', '', '--token-file', './no-such-token'], USAGE, /^taskgate: cannot read token file \.\/no-such-token: ENOENT\n$/],
      [['tasks', 'logs', 'x', '--offset', '-5'], USAGE, /^taskgate: --offset must be a whole number, not "-5"\n$/],
      [['tasks', 'list', '--server', '127.0.0.1:70700'], USAGE, /^taskgate: --server takes HOST, HOST:PORT or dns:\/\/\/HOST:PORT \(port 1-65535\), not "127\.0\.0\.1:70700"\n$/],
      [['tasks', 'list', '--server', 'host:port:extra'], USAGE, /^taskgate: --server takes HOST, HOST:PORT or dns:\/\/\/HOST:PORT/],
      // Checked before sending: the server's limit, not grpc-js's "message larger than max".
      [['tasks', 'create', '-t', 'local', '-f', bigScript], USAGE, /^taskgate: the script is 10485760 bytes; the limit is 1048576 bytes \(1 MiB\)\n$/],
      [['tasks', 'create', '-t', 'local', '-s', 'x', '-m', 'm'.repeat(20_000)], USAGE, /^taskgate: the message is 20000 bytes; the limit is 16384 bytes \(16 KiB\)\n$/],
      // TLS against this plaintext server: said once, with no DEP0123 warning for the IP.
      [['tasks', 'list', '--tls'], REFUSED, /^taskgate: the server at 127\.0\.0\.1:\d+ does not speak TLS: call it without --tls\/--tls-ca/],
    ];
    writeFileSync(bigScript, 'x'.repeat(10 * 1024 * 1024));
    for (const [args, code, message] of cases) {
      const r = await taskgate(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(code);
      expect(r.stderr, args.join(' ')).to.match(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(r.stderr, 'never prints a token').to.not.contain('secret');
    }
  });

  it('says in one line when the address a server should listen on is taken', async () => {
    const r = await taskgate('server', '--listen', h.address, '--data-dir', join(cwd, 'second-server'));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(new RegExp(`^taskgate: cannot listen on ${h.address.replace(/\./g, '\\.')}: the address is in use \\(another server on that port\\?\\)\n$`));
  });

  it('takes a token with spaces around it or a "Bearer " in front, from --token and from a token file', async () => {
    expect(await ok(`  Bearer   ${h.adminToken}  `, 'whoami')).to.match(/^admin@test /);
    const file = join(cwd, 'token-with-spaces');
    writeFileSync(file, `\n  bearer ${h.adminToken} \n`);
    expect(await ok('', 'whoami', '--token-file', file)).to.match(/^admin@test /);
  });

  it('walks a reviewed task from creation to success, and a rejected one to its end, as users would', async () => {
    await ok(h.adminToken, 'users', 'create', '--email', 'dev@example.com', '--name', 'Dev', '--groups', 'dev');
    await ok(h.adminToken, 'users', 'create', '--email', 'dba@example.com', '--groups', 'dba');
    const dev = (await ok(h.adminToken, 'tokens', 'create', '--user', 'dev@example.com', '--name', 'laptop')).trim();
    const dba = (await ok(h.adminToken, 'tokens', 'create', '--user', 'dba@example.com')).trim();
    expect(await ok(dev, 'whoami')).to.match(/^dev@example.com \(Dev\)\ngroups: dev\n/);
    const target = await ok(h.adminToken, 'targets', 'create', '--name', 'prod-db', '--agent', 'local', '--review', 'team', '--reviewers', 'dba', '--groups', 'dev');
    expect(target).to.match(/review\s+team: dba\ngroups\s+dev\n/);

    // The dev user creates a task; --wait says it awaits review, with its own exit code.
    const waiting = await taskgateAs(dev, 'tasks', 'create', '-t', 'prod-db', '-s', 'echo reviewed run', '-m', 'fix the index', '--wait');
    expect(waiting.code).to.equal(3);
    const id = /^task (\S+) awaits review by dba;/.exec(waiting.stderr)?.[1];
    expect(id, waiting.stderr).to.be.a('string');
    const selfApproval = await taskgateAs(dev, 'tasks', 'review', id!, '--approve');
    expect([selfApproval.code, selfApproval.stderr]).to.deep.equal([1, 'taskgate: not allowed: you created this task; someone else must review it\n']);
    expect(await ok(dev, 'reviews', 'list')).to.not.contain(id);
    expect(await ok(dba, 'reviews', 'list')).to.match(new RegExp(`${id}\\s+prod-db\\s+user:dev@example.com\\s+\\S+ \\S+\\s+dba\\s+fix the index`));
    expect(await ok(dba, 'tasks', 'review', id!, '--approve', '-c', 'lgtm')).to.equal(
      `task ${id} is approved; its creator runs it with \`taskgate tasks run ${id}\`\n`,
    );
    const notCreator = await taskgateAs(dba, 'tasks', 'run', id!);
    expect(notCreator.stderr).to.match(/only the task's creator \(user:dev@example.com\) or an admin may run it/);
    const run = await taskgateAs(dev, 'tasks', 'run', id!, '--wait');
    expect([run.code, run.stdout, run.stderr]).to.deep.equal([0, 'reviewed run\n', '']);

    // A second task is rejected with a comment the creator sees, and can never run.
    const second = (await ok(dev, 'tasks', 'create', '-t', 'prod-db', '-s', 'drop table users')).trim();
    await ok(dba, 'tasks', 'review', second, '--reject', '-c', 'use a replica');
    expect(await ok(dev, 'tasks', 'get', second)).to.match(/status\s+rejected\n[\s\S]*review\s+dba: rejected by user:dba@example.com at \S+ \S+ "use a replica"/);
    const runRejected = await taskgateAs(dev, 'tasks', 'run', second);
    expect(runRejected.stderr).to.match(/task \S+ is rejected; only an approved task can be run \(FAILED_PRECONDITION\)/);
    const approveRejected = await taskgateAs(h.adminToken, 'tasks', 'review', second, '--approve');
    expect(approveRejected.stderr).to.match(/it can no longer be reviewed \(FAILED_PRECONDITION\)/);

    // The whole story, with actors, in order.
    const events = (await ok(dev, 'tasks', 'events', id!)).trim().split('\n');
    expect(events[0]).to.match(/^TIME\s+ACTOR\s+ACTION\s+STATUS\s+DETAIL$/);
    expect(events.slice(1).map((line) => line.split(/\s{2,}/).slice(1, 4))).to.deep.equal([
      ['user:dev@example.com', 'task.created', 'created'],
      ['system', 'task.pending-review', 'created -> pending-review'],
      ['user:dba@example.com', 'task.review', 'pending-review'],
      ['user:dba@example.com', 'task.approved', 'pending-review -> approved'],
      ['user:dev@example.com', 'task.ready', 'approved -> ready'],
      ['agent:local', 'task.running', 'ready -> running'],
      ['agent:local', 'task.success', 'running -> success'],
    ]);
    expect(events[3]).to.match(/approved for dba: lgtm$/);
    // The admin reads the same from the audit trail, by actor.
    const byDba = await ok(h.adminToken, 'events', 'list', '--actor', 'user:dba@example.com', '--since', '1h');
    expect(byDba).to.contain(`tasks/${id}`).and.contain(`tasks/${second}`).and.match(/task\.rejected\s+tasks\/\S+\s+pending-review -> rejected\s+rejected by user:dba@example.com: use a replica/);
    const tokens = await ok(dev, 'tokens', 'list');
    expect(tokens).to.match(/^ID\s+KIND\s+SUBJECT\s+NAME\s+CREATED\s+EXPIRES\s+LAST USED\s+STATE\n/);
    expect(tokens).to.match(/\buser\s+dev@example.com\s+laptop\s+\S+ \S+\s+never\s+\S+ \S+\s+valid\n$/);
    const tokenId = tokens.trim().split('\n')[1]!.split(/\s+/)[0]!;
    await ok(dev, 'tokens', 'revoke', tokenId);
    const after = await taskgateAs(dev, 'whoami');
    expect(after.stderr).to.equal(`taskgate: not authenticated: token ${tokenId} was revoked (--token, TASKGATE_TOKEN)\n`);
  });

  it('issues agent tokens and lists agents', async () => {
    const token = await taskgate('agents', 'token', '--name', 'edge-1');
    expect(token.stdout).to.match(/^tg_agent_\S+\n$/);
    expect(token.stderr).to.contain(`  taskgate agent --server ${h.address} --name edge-1 --token-file FILE   (FILE holds the token, mode 0600)\n`);
    const list = await taskgate('agents', 'list');
    expect(list.stdout).to.match(/edge-1\s+offline/);
    expect(list.stdout).to.match(/local\s+connected/);
  });

  it('follows logs again across a server restart, printing every byte once', async () => {
    const created = await ok(h.adminToken, 'tasks', 'create', '-t', 'local', '-s', 'for i in $(seq 1 40); do echo line-$i; sleep 0.05; done', '--json');
    const id = (JSON.parse(created) as { id: string }).id;
    const child = spawn(process.execPath, [CLI, 'tasks', 'logs', '-f', id], { cwd, env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('line-5')) resolve();
      }),
    );
    await h.restart();
    expect(await exited, stderr).to.equal(0);
    expect(stderr).to.match(new RegExp(`^taskgate: server stopping; follow again; following task ${id} again from byte \\d+\n$`));
    const lines = Array.from({ length: 40 }, (_, i) => `line-${i + 1}`);
    expect(stdout.split(/\r?\n/).filter((l) => l !== '')).to.deep.equal(lines);
  });

  it('says what a followed task waits for when it has not started', async () => {
    await ok(h.adminToken, 'targets', 'create', '--name', 'gated', '--agent', 'local', '--review', 'anyone');
    const id = (await ok(h.adminToken, 'tasks', 'create', '-t', 'gated', '-s', 'echo later')).trim();
    const child = spawn(process.execPath, [CLI, 'tasks', 'logs', '-f', id], { cwd, env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } });
    let stderr = '';
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('\n')) resolve();
      }),
    );
    child.kill('SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(stderr.split('\n')[0]).to.equal(`taskgate: task ${id} is pending-review; it runs once approved by someone who may use the target (taskgate tasks review ${id} --approve); following`);
  });

  /** Starts the CLI; `line()` resolves once stderr has a whole line, `exited` with its exit code. */
  function start(...args: string[]): { line: () => Promise<string>; exited: Promise<number | null>; stdout: () => string; stderr: () => string } {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH, TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const firstLine = new Promise<string>((resolve) =>
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('\n')) resolve(stderr.split('\n')[0]!);
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { line: () => firstLine, exited, stdout: () => stdout, stderr: () => stderr };
  }

  it('gives a script "\\n" line ends when stdout is not a terminal, the stored bytes with --raw or on a terminal', async () => {
    // V=$(taskgate tasks create ... --wait): the shell strips the last "\n", and no "\r" is left.
    const waited = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo 42', '--wait');
    expect([waited.code, waited.stdout]).to.deep.equal([0, '42\n']);
    const raw = await taskgate('tasks', 'create', '-t', 'local', '-s', 'echo 42', '--wait', '--raw');
    expect(raw.stdout).to.equal('42\r\n');
    // A lone "\r" (a progress bar) stays; the pty's onlcr made every "\n" a "\r\n".
    const id = (await ok(h.adminToken, 'tasks', 'create', '-t', 'local', '-s', 'printf "10%%\\r100%%\\nline 2\\n"')).trim();
    await h.finished(id);
    expect((await taskgate('tasks', 'logs', id)).stdout).to.equal('10%\r100%\nline 2\n');
    expect((await taskgate('tasks', 'logs', id, '--raw')).stdout).to.equal('10%\r100%\r\nline 2\r\n');
    expect((await taskgate('tasks', 'logs', id, '-f')).stdout).to.equal('10%\r100%\nline 2\n');
    // On a terminal the stored "\r\n" is written as is: that terminal's own onlcr then shows "\r\r\n".
    const pty = await import('node-pty');
    const term = pty.spawn(process.execPath, [CLI, 'tasks', 'logs', id], { cwd, env: { PATH: process.env.PATH ?? '', TASKGATE_SERVER: h.address, TASKGATE_TOKEN: h.adminToken } });
    let seen = '';
    term.onData((d) => (seen += d));
    const code = await new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    expect([code, seen]).to.deep.equal([0, '10%\r100%\r\r\nline 2\r\r\n']);
  });

  it('tasks logs -f exits as the task did, like create --wait; without -f it exits 0', async () => {
    const id = (await ok(h.adminToken, 'tasks', 'create', '-t', 'local', '-s', 'echo oops; exit 7')).trim();
    const followed = await taskgate('tasks', 'logs', id, '-f');
    expect([followed.code, followed.stdout, followed.stderr]).to.deep.equal([7, 'oops\n', `task ${id} failure: exited with status 7\n`]);
    const printed = await taskgate('tasks', 'logs', id);
    expect([printed.code, printed.stdout, printed.stderr]).to.deep.equal([0, 'oops\n', '']);
    const signalled = await taskgate('tasks', 'create', '-t', 'local', '-s', 'kill -TERM $$', '--wait');
    expect([signalled.code, signalled.stderr]).to.match(/^143,task \S+ failure: killed by signal SIGTERM\n$/);
  });

  it("warns when a target's agent never connected, and says so while create --wait, logs -f and watch wait for it", async () => {
    const created = await taskgate('targets', 'create', '--name', 'edge', '--agent', 'edge-9');
    expect(created.code, created.stderr).to.equal(0);
    expect(created.stderr).to.equal('taskgate: warning: agent edge-9 has never connected (it has no token yet: taskgate agents token --name edge-9); tasks on target edge wait until it does\n');
    await ok(h.adminToken, 'agents', 'token', '--name', 'edge-10');
    const updated = await taskgate('targets', 'update', 'edge', '--agent', 'edge-10');
    expect([updated.code, updated.stderr]).to.deep.equal([0, 'taskgate: warning: agent edge-10 has never connected (it has a token); tasks on target edge wait until it does\n']);
    const connected = await taskgate('targets', 'update', 'edge', '-m', 'now on local', '--agent', 'local');
    expect([connected.code, connected.stderr]).to.deep.equal([0, '']);
    await ok(h.adminToken, 'targets', 'update', 'edge', '--agent', 'edge-10');

    const waiting = start('tasks', 'create', '-t', 'edge', '-s', 'echo never', '--wait');
    const line = await waiting.line();
    const id = /^taskgate: task (\S+) is ready/.exec(line)?.[1];
    expect(line).to.equal(`taskgate: task ${id} is ready, waiting for agent edge-10, which is not connected (it never connected); waiting`);
    const following = start('tasks', 'logs', '-f', id!);
    expect(await following.line()).to.equal(`taskgate: task ${id} is ready, waiting for agent edge-10, which is not connected (it never connected); following`);
    const watching = start('tasks', 'watch', id!);
    expect(await watching.line()).to.equal(`taskgate: task ${id} is ready, waiting for agent edge-10, which is not connected (it never connected); watching`);
    await ok(h.adminToken, 'tasks', 'kill', id!, '-r', 'no agent');
    // Killed before it ran: the followers end with the task-failed code and say why; watch just ends.
    expect(await waiting.exited).to.equal(1);
    expect(waiting.stderr().split('\n')[1]).to.equal(`task ${id} killed: killed by user:admin@test before it ran: no agent`);
    expect(await following.exited).to.equal(1);
    expect(await watching.exited).to.equal(0);
    expect(watching.stdout()).to.match(/ killed /);
  });
});
