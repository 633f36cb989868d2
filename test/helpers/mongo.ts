/**
 * The MongoDB-wire server for tests: TASKGATE_TEST_MONGODB_URI when set (e.g.
 * a real MongoDB), else FerretDB v1.24 built by test/ferretdb/build.mjs and
 * started here once per test process. Each caller gets a fresh database name
 * so suites never see each other's data.
 *
 * FerretDB's backend is PostgreSQL by default: a throwaway cluster (initdb in
 * a temporary directory, reachable only through a unix socket there) started
 * here too. Its queries use indexes, where the SQLite backend scans whole
 * collections and slows down as they grow (docs/testing.md, "MongoDB").
 * TASKGATE_TEST_FERRETDB_BACKEND=sqlite selects the SQLite backend.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { randomId } from '../../shared/ids.js';
import { asUser, INSTALL_HINT, ownedDir, postgresBin, startServer } from './databases.js';
import { freePort } from './processes.js';

const run = promisify(execFile);
const BINARY = join(process.cwd(), '.cache', 'ferretdb-test');

/** FerretDB's storage: `postgresql` (the default) or `sqlite`. */
export type FerretBackend = 'postgresql' | 'sqlite';

/**
 * Stands between this process and PostgreSQL: stops it (fast shutdown) when
 * its stdin closes, which is also what happens when this process dies, so a
 * crashed run cannot leave a postgres behind (PostgreSQL itself never looks
 * at its stdin). It exits with the server.
 */
const WATCHDOG = `
const { spawn } = require('node:child_process');
const [cmd, ...args] = process.argv.slice(1);
const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const stop = () => child.kill('SIGINT');
process.stdin.on('end', stop).on('error', stop).resume();
process.on('SIGTERM', stop);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
`;

interface Fixture {
  uri: string;
  backend: FerretBackend | 'external';
}

let started: Promise<Fixture | null> | null = null;
let ferret: ChildProcess | null = null;
let postgres: ChildProcess | null = null;
let dirs: string[] = [];

/** The processes this module keeps for the whole run (the leak check spares them and their children). */
export function sharedFixtures(): ChildProcess[] {
  return [ferret, postgres].filter((c): c is ChildProcess => c !== null);
}

/** The backend asked for, or the reason there is none. */
function chosenBackend(): FerretBackend {
  const asked = process.env.TASKGATE_TEST_FERRETDB_BACKEND ?? 'postgresql';
  if (asked !== 'postgresql' && asked !== 'sqlite') throw new Error(`TASKGATE_TEST_FERRETDB_BACKEND must be postgresql or sqlite, not "${asked}"`);
  return asked;
}

/** Starts a throwaway PostgreSQL cluster for FerretDB; resolves with its pgx connection string. */
async function startClusterForFerret(): Promise<string> {
  const bin = postgresBin();
  const dir = await ownedDir('taskgate-ferret-pg-', 'postgres');
  dirs.push(dir);
  const data = join(dir, 'data');
  // trust: the only way in is the unix socket in `dir`, which only root and postgres can reach.
  const initdb = asUser('postgres', [join(bin, 'initdb'), '-D', data, '-U', 'ferretdb', '--auth=trust', '-E', 'UTF8', '--no-instructions', '--no-sync']);
  await run(initdb[0]!, initdb.slice(1));
  const port = await freePort();
  const argv = asUser('postgres', [
    join(bin, 'postgres'),
    '-D', data,
    '-p', String(port),
    '-c', 'listen_addresses=',
    '-c', `unix_socket_directories=${dir}`,
    // A test database: losing it in a crash is fine, waiting for disks is not.
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    // FerretDB's pool holds up to 50 connections (pool_max_conns).
    '-c', 'max_connections=120',
  ]);
  postgres = await startServer([process.execPath, '-e', WATCHDOG, ...argv], /database system is ready to accept connections/, 'postgres (for FerretDB)', 'pipe');
  return `postgres:///postgres?host=${encodeURIComponent(dir)}&port=${port}&user=ferretdb`;
}

async function startFerret(): Promise<Fixture | null> {
  const fromEnv = process.env.TASKGATE_TEST_MONGODB_URI;
  if (fromEnv) return { uri: fromEnv.replace(/\/?$/, '/'), backend: 'external' };
  const ci = process.env.CI === 'true';
  if (!existsSync(BINARY)) {
    const why = `MongoDB suites need ${BINARY} (built by test/ferretdb/build.mjs with Go) or TASKGATE_TEST_MONGODB_URI`;
    if (ci) throw new Error(why);
    console.warn(`\n  !!! SKIPPING MongoDB suites: ${why}\n`);
    return null;
  }
  let backend = chosenBackend();
  let args: string[];
  if (backend === 'postgresql') {
    try {
      postgresBin();
    } catch (err) {
      if (ci) throw err;
      console.warn(`\n  !!! FerretDB on SQLite, not PostgreSQL: ${(err as Error).message}\n`);
      backend = 'sqlite';
    }
  }
  if (backend === 'postgresql') {
    args = ['-postgresql-url', await startClusterForFerret()];
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'taskgate-ferret-'));
    dirs.push(dir);
    args = ['-dir', dir];
  }
  const proc = spawn(BINARY, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  ferret = proc;
  const uri = await new Promise<string>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`ferretdb (${backend} backend) exited with ${code} before it was ready; ${INSTALL_HINT}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /^ready (\S+)$/.exec(line);
      if (m?.[1]) resolve(m[1]);
    });
  });
  return { uri, backend };
}

/** A URI of a fresh database on the test server, or null when MongoDB tests must be skipped. */
export async function mongoUri(): Promise<string | null> {
  started ??= startFerret();
  const fixture = await started;
  return fixture ? `${fixture.uri}tg_${randomId().slice(0, 12)}` : null;
}

/** What the MongoDB suites run on: FerretDB's backend, `external` for TASKGATE_TEST_MONGODB_URI, null when skipped. */
export async function mongoBackend(): Promise<Fixture['backend'] | null> {
  started ??= startFerret();
  return (await started)?.backend ?? null;
}

async function stopChild(proc: ChildProcess | null): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.stdin?.end();
    proc.kill('SIGTERM');
  });
}

/** Stops the test server (and its PostgreSQL) if this process started it. */
export async function stopMongo(): Promise<void> {
  const pending = started;
  started = null;
  // A start still under way must finish before there is anything to stop.
  await pending?.catch(() => null);
  await stopChild(ferret);
  ferret = null;
  await stopChild(postgres);
  postgres = null;
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs = [];
}
