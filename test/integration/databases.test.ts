/**
 * The postgres and mysql task types against real servers (PostgreSQL and
 * MariaDB from Debian, test/helpers/databases.ts): credentials only in the
 * agent's environment, never on a command line, in the server's files or in
 * any log line.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { TaskStatus } from '../../gen/taskgate/v1/task.js';
import { startMariadb, startPostgres, type Database } from '../helpers/databases.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { CliProcess, freePort } from '../helpers/processes.js';
import { STORE_KINDS } from '../helpers/stores.js';

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? filesUnder(path) : e.isFile() ? [path] : [];
  });
}

/** The command lines of every process on this machine. */
function allCommandLines(): string[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return ''; // exited meanwhile
      }
    });
}

describe('postgres target as a new user would set it up (CLI processes, real PostgreSQL)', function () {
  let pg: Database;
  let dir: string;
  const closers: Array<() => Promise<unknown>> = [];
  let server: CliProcess;
  let agent: CliProcess;
  let address: string;
  let adminToken: string;

  function taskgate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, TASKGATE_SERVER: address, TASKGATE_TOKEN: adminToken } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  before(async () => {
    pg = await startPostgres();
    closers.push(() => pg.stop());
    await pg.admin('create table orders (id int primary key, email text); insert into orders values (1, $$a@x.io$$), (2, $$b@x.io$$), (3, $$c@x.io$$); alter table orders owner to app');
    dir = mkdtempSync(join(tmpdir(), 'taskgate-pg-story-'));
    chmodSync(dir, 0o711); // the agent's work dir is inside: tasks run as users of their own
    address = `127.0.0.1:${await freePort()}`;
    // Debug level: the most a server or agent ever logs.
    server = new CliProcess(['server', '--listen', address, '--data-dir', join(dir, 'server'), '--log-level', 'debug']);
    closers.push(() => server.terminate());
    await server.until(/^First start: admin user admin@localhost, token written to/);
    adminToken = readFileSync(join(dir, 'server', 'admin.token'), 'utf8').trim();
    const token = (await taskgate('agents', 'token', '--name', 'db1')).stdout.trim();
    // The credentials exist only here, in the agent's environment.
    const config = JSON.stringify({ host: pg.host, port: pg.port, user: pg.user, password: pg.password, db: pg.database });
    agent = new CliProcess(['agent', '--server', address, '--token', token, '--name', 'db1', '--work-dir', join(dir, 'agent'), '--log-level', 'debug'], { SHOP_DB: config });
    closers.push(() => agent.terminate());
    await agent.until(/"msg":"connected"/);
  });

  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs select count(*) through psql and prints the result', async () => {
    const mapping = JSON.stringify({ PG_HOST: 'host', PG_PORT: 'port', PG_USER: 'user', PG_PASS: 'password', PG_DB: 'db' });
    const created = await taskgate('targets', 'create', '--name', 'shop', '--agent', 'db1', '--type', 'postgres', '--secret-provider', 'env', '--secret-path', 'SHOP_DB', '--secret-mapping', mapping, '--redact', 'EMAIL_ADDRESS');
    expect(created.code, created.stderr).to.equal(0);
    const count = await taskgate('tasks', 'create', '-t', 'shop', '-s', 'select count(*) from orders;', '--wait');
    expect([count.code, count.stdout, count.stderr]).to.deep.equal([0, ' count \n-------\n     3\n(1 row)\n\n', '']);
    // Redaction applies to query results like any other output.
    const emails = await taskgate('tasks', 'create', '-t', 'shop', '-s', 'select email from orders order by id;', '--wait');
    expect(emails.stdout).to.equal(' email  \n--------\n [EMAIL_ADDRESS]\n [EMAIL_ADDRESS]\n [EMAIL_ADDRESS]\n(3 rows)\n\n');
  });

  it('stops at the first error (ON_ERROR_STOP) and fails with psql\'s exit status', async () => {
    const r = await taskgate('tasks', 'create', '-t', 'shop', '-s', "select 'before';\nselect * from missing_table;\nselect 'after';", '--wait');
    expect(r.code).to.equal(3);
    expect(r.stdout).to.contain('before').and.contain('ERROR:  relation "missing_table" does not exist').and.not.contain('after');
    expect(r.stderr).to.match(/failure: exited with status 3\n$/);
  });

  it('fails a task missing connection secrets before running it, naming them', async () => {
    const mapping = JSON.stringify({ PG_HOST: 'host', PG_USER: 'user' });
    await taskgate('targets', 'create', '--name', 'half', '--agent', 'db1', '--type', 'postgres', '--secret-provider', 'env', '--secret-path', 'SHOP_DB', '--secret-mapping', mapping);
    const r = await taskgate('tasks', 'create', '-t', 'half', '-s', 'select 1;', '--wait');
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('could not start: a postgres task needs the secrets PG_HOST, PG_USER, PG_PASS, PG_DB; missing: PG_PASS, PG_DB');
  });

  it('leaves no password in the server\'s database files or in any server or agent log line', async () => {
    // Stop both, so every buffered write and log line is out.
    await agent.terminate();
    await server.terminate();
    const files = filesUnder(join(dir, 'server'));
    expect(files.some((f) => f.endsWith('.db') || f.includes('sqlite')), files.join(', ')).to.equal(true);
    const password = Buffer.from(pg.password);
    for (const file of files) {
      expect(readFileSync(file).includes(password), file).to.equal(false);
    }
    expect(server.output).to.contain('"level":20'); // debug lines were written, and searched
    expect(server.output.includes(pg.password)).to.equal(false);
    expect(agent.output.includes(pg.password)).to.equal(false);
    // The agent removed its task files.
    expect(filesUnder(join(dir, 'agent')).filter((f) => statSync(f).size > 0)).to.deep.equal([]);
  });
});

describe('database task types (in-process server and agent)', function () {
  let h: Harness;
  let pg: Database;
  let my: Database;

  before(async () => {
    [pg, my] = await Promise.all([startPostgres(), startMariadb()]);
    await pg.admin('create table items (n int); insert into items select generate_series(1, 5); alter table items owner to app');
    await my.admin('create table items (n int); insert into items values (1), (2), (3), (4)');
    h = await Harness.start((await STORE_KINDS[0]!.location())!);
    const config = (db: Database): string => JSON.stringify({ host: db.host, port: String(db.port), user: db.user, pass: db.password, name: db.database });
    await h.startAgent('a1', { env: { PATH: process.env.PATH ?? '', PG: config(pg), MY: config(my), WRONG: config({ ...pg, password: 'not-it' }) } });
    const pgMap = { PG_HOST: 'host', PG_PORT: 'port', PG_USER: 'user', PG_PASS: 'pass', PG_DB: 'name' };
    const myMap = { MYSQL_HOST: 'host', MYSQL_PORT: 'port', MYSQL_USER: 'user', MYSQL_PASS: 'pass', MYSQL_DB: 'name' };
    await h.createTarget('pg', 'a1', 'postgres', { secretProvider: 'env', secretPath: 'PG', secretMapping: pgMap });
    await h.createTarget('pg-wrong', 'a1', 'postgres', { secretProvider: 'env', secretPath: 'WRONG', secretMapping: pgMap });
    await h.createTarget('my', 'a1', 'mysql', { secretProvider: 'env', secretPath: 'MY', secretMapping: myMap });
    await h.createTarget('my-bare', 'a1', 'mysql', {});
  });

  after(async () => {
    await h?.close();
    await Promise.all([pg?.stop(), my?.stop()]);
  });

  it('mysql: runs the script in batch mode with table output', async () => {
    const r = await h.finished((await h.createTask('my', 'select count(*) as n from items;\nselect sum(n) as total from items;')).id);
    expect([r.task.status, r.output.toString()]).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, '+---+\r\n| n |\r\n+---+\r\n| 4 |\r\n+---+\r\n+-------+\r\n| total |\r\n+-------+\r\n|    10 |\r\n+-------+\r\n']);
  });

  it('mysql: stops at the first error with its line number', async () => {
    const r = await h.finished((await h.createTask('my', "select 'one';\nselect * from nope;\nselect 'three';")).id);
    expect([r.task.status, r.task.exitCode]).to.deep.equal([TaskStatus.TASK_STATUS_FAILURE, 1]);
    expect(r.output.toString()).to.contain("ERROR 1146 (42S02) at line 2: Table 'shop.nope' doesn't exist").and.not.contain('three');
  });

  it('mysql: a task without connection secrets fails before running, naming them', async () => {
    const r = await h.finished((await h.createTask('my-bare', 'select 1;')).id);
    expect(r.task.failureReason).to.equal('could not start: a mysql task needs the secrets MYSQL_HOST, MYSQL_USER, MYSQL_PASS, MYSQL_DB; missing: MYSQL_HOST, MYSQL_USER, MYSQL_PASS, MYSQL_DB (set the target\'s --secret-provider and --secret-mapping)');
  });

  it('postgres: masks the password if a script prints it, but not the connection address', async () => {
    const r = await h.finished((await h.createTask('pg', '\\getenv p PGPASSWORD\n\\echo pass=:p db=:DBNAME')).id);
    expect(r.output.toString()).to.equal('pass=*** db=shop\r\n');
  });

  it('postgres: a wrong password fails the task with the server\'s answer, without prompting', async () => {
    const r = await h.finished((await h.createTask('pg-wrong', 'select 1;')).id);
    expect([r.task.status, r.task.exitCode]).to.deep.equal([TaskStatus.TASK_STATUS_FAILURE, 2]);
    expect(r.output.toString()).to.contain('password authentication failed for user "app"');
  });

  it('passes no password on any command line while the clients run', async () => {
    const sleepers = await Promise.all([h.createTask('pg', "select 'pg-up';\nselect pg_sleep(3);"), h.createTask('my', "select 'my-up';\nselect sleep(3);")]);
    await Promise.all([untilOutput(h.api, sleepers[0].id, 'pg-up'), untilOutput(h.api, sleepers[1].id, 'my-up')]);
    const lines = allCommandLines();
    expect(lines.some((l) => l.includes('psql') && l.includes('--set ON_ERROR_STOP=1')), 'psql is running').to.equal(true);
    expect(lines.some((l) => / --table$/.test(l.trim()) || l.includes('--defaults-extra-file')), 'mysql is running').to.equal(true);
    for (const line of lines) {
      expect(line.includes(pg.password) || line.includes(my.password), line).to.equal(false);
    }
    const done = await Promise.all(sleepers.map((t) => h.finished(t.id)));
    expect(done.map((d) => d.task.status)).to.deep.equal([TaskStatus.TASK_STATUS_SUCCESS, TaskStatus.TASK_STATUS_SUCCESS]);
  });
});
