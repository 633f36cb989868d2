/**
 * The MongoDB-wire server for tests: TASKGATE_TEST_MONGODB_URI when set (e.g.
 * a real MongoDB), else FerretDB v1.24 (SQLite backend) built by
 * test/ferretdb/build.mjs and started here once per run. Each caller gets a
 * fresh database name so suites never see each other's data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomId } from '../../shared/ids.js';

const BINARY = join(process.cwd(), '.cache', 'ferretdb-test');

let started: Promise<string | null> | null = null;
let child: ChildProcess | null = null;
let dataDir: string | null = null;

async function startFerret(): Promise<string | null> {
  const fromEnv = process.env.TASKGATE_TEST_MONGODB_URI;
  if (fromEnv) return fromEnv.replace(/\/?$/, '/');
  if (!existsSync(BINARY)) {
    const why = `MongoDB suites need ${BINARY} (built by test/ferretdb/build.mjs with Go) or TASKGATE_TEST_MONGODB_URI`;
    if (process.env.CI === 'true') throw new Error(why);
    console.warn(`\n  !!! SKIPPING MongoDB suites: ${why}\n`);
    return null;
  }
  dataDir = mkdtempSync(join(tmpdir(), 'taskgate-ferret-'));
  const proc = spawn(BINARY, ['-dir', dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  child = proc;
  return new Promise<string>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`ferretdb exited with ${code} before it was ready`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /^ready (\S+)$/.exec(line);
      if (m?.[1]) resolve(m[1]);
    });
  });
}

/** A URI of a fresh database on the test server, or null when MongoDB tests must be skipped. */
export async function mongoUri(): Promise<string | null> {
  started ??= startFerret();
  const base = await started;
  return base ? `${base}tg_${randomId().slice(0, 12)}` : null;
}

/** Stops the test server if this process started it. */
export async function stopMongo(): Promise<void> {
  const proc = child;
  child = null;
  started = null;
  if (proc && proc.exitCode === null) {
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.stdin?.end();
      proc.kill('SIGTERM');
    });
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
}
