/**
 * Real database servers for the postgres and mysql task types: PostgreSQL and
 * MariaDB from Debian's packages (.ci/run installs them), each started in a
 * temporary directory on a free loopback port and removed afterwards.
 *
 * Both servers refuse to run as root, so under root their commands run as the
 * packages' own system users (postgres, mysql) through setpriv, which execs
 * (no intermediate process to forward signals through).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './processes.js';

const run = promisify(execFile);

/** A running database server with one application user and database. */
export interface Database {
  host: string;
  port: number;
  user: string;
  /** Contains quotes, a backslash and a dollar sign, to prove no layer splices it into a command. */
  password: string;
  database: string;
  /** Runs SQL as the administrator in `database`; returns the client's output. */
  admin(sql: string): Promise<string>;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
}

/** How to get the servers, for error messages. */
export const INSTALL_HINT = 'install it with: apt-get install -y postgresql mariadb-server (bash .ci/run does)';

/** `argv` run as `user` (through setpriv) when we are root, else as is. */
export function asUser(user: string, argv: string[]): string[] {
  if (userInfo().uid !== 0) return argv;
  return ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--', ...argv];
}

/** A new temporary directory owned by `user` when we are root. */
export async function ownedDir(prefix: string, user: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (userInfo().uid === 0) {
    const { stdout } = await run('id', ['-u', user]);
    const { stdout: gid } = await run('id', ['-g', user]);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  return dir;
}

/**
 * Spawns a server and resolves once its log says it is ready. With
 * `stdin: 'pipe'` the child's stdin is a pipe from this process (for a
 * watchdog that stops the server when the pipe closes).
 */
export function startServer(argv: string[], ready: RegExp, name: string, stdin: 'ignore' | 'pipe' = 'ignore'): Promise<ChildProcess> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, 'pipe', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s:\n${log}`)), 60_000);
    let isReady = false;
    const onData = (data: Buffer): void => {
      if (isReady) return;
      log += data.toString();
      if (ready.test(log)) {
        isReady = true;
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => reject(new Error(`${name} could not start (${err.message}); ${INSTALL_HINT}`)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${log}`));
    });
  });
}

async function stopServer(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

/** The application user and database every server gets, stopped with `stop`. */
function appDatabase(port: number, admin: (sql: string, database: string) => Promise<string>, stop: () => Promise<void>): Database {
  return { host: '127.0.0.1', port, user: 'app', password: newPassword(), database: 'shop', admin: (sql) => admin(sql, 'shop'), stop };
}

function newPassword(): string {
  return `pw'"\\$${randomBytes(9).toString('base64url')}`;
}

/** The bin directory of the newest PostgreSQL installed from Debian's packages. */
export function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error(`PostgreSQL server is not installed (no ${root}/*/bin/postgres); ${INSTALL_HINT}`);
  return join(root, newest, 'bin');
}

/** Starts PostgreSQL with password (SCRAM) authentication on 127.0.0.1. */
export async function startPostgres(): Promise<Database> {
  const bin = postgresBin();
  const dir = await ownedDir('taskgate-pg-', 'postgres');
  const adminPassword = newPassword();
  const pwfile = join(dir, 'admin.pw');
  writeFileSync(pwfile, adminPassword, { mode: 0o644 });
  const initdb = asUser('postgres', [join(bin, 'initdb'), '-D', join(dir, 'data'), '-U', 'admin', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-instructions']);
  await run(initdb[0]!, initdb.slice(1));
  rmSync(pwfile);
  const port = await freePort();
  const argv = asUser('postgres', [
    join(bin, 'postgres'),
    '-D', join(dir, 'data'),
    '-p', String(port),
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `unix_socket_directories=${dir}`,
    '-c', 'fsync=off',
  ]);
  const child = await startServer(argv, /database system is ready to accept connections/, 'postgres');
  const admin = async (sql: string, database = 'postgres'): Promise<string> => {
    const { stdout } = await run(join(bin, 'psql'), ['-X', '-w', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'admin', '-d', database, '-c', sql], {
      env: { PATH: process.env.PATH ?? '', PGPASSWORD: adminPassword },
    });
    return stdout;
  };
  const db = appDatabase(port, admin, () => stopServer(child, dir));
  await admin(`create user app password '${db.password.replace(/'/g, "''")}'`);
  await admin('create database shop owner app');
  return db;
}

/** Starts MariaDB on 127.0.0.1 with one password-protected application user. */
export async function startMariadb(): Promise<Database> {
  const server = ['/usr/sbin/mariadbd', '/usr/sbin/mysqld'].find((p) => existsSync(p));
  if (!server) throw new Error(`MariaDB server is not installed (no /usr/sbin/mariadbd); ${INSTALL_HINT}`);
  const dir = await ownedDir('taskgate-mysql-', 'mysql');
  const data = join(dir, 'data');
  const install = asUser('mysql', ['mysql_install_db', '--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db']);
  await run(install[0]!, install.slice(1));
  const port = await freePort();
  const socket = join(dir, 'sock');
  const argv = asUser('mysql', [
    server,
    '--no-defaults',
    `--datadir=${data}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${socket}`,
    '--innodb-buffer-pool-size=16M',
    '--skip-log-bin',
  ]);
  const child = await startServer(argv, /ready for connections/, 'mariadbd');
  // root has no password but only exists @localhost: reachable through the socket alone.
  const admin = async (sql: string, database = ''): Promise<string> => {
    const args = ['--no-defaults', '-uroot', `--socket=${socket}`, '-e', sql];
    if (database) args.push(database);
    const { stdout } = await run('mariadb', args);
    return stdout;
  };
  const db = appDatabase(port, admin, () => stopServer(child, dir));
  const quoted = db.password.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  await admin(`create database shop; create user 'app'@'%' identified by '${quoted}'; grant all on shop.* to 'app'@'%'`);
  return db;
}
