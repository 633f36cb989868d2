// Builds the FerretDB test server (test/ferretdb/main.go) into
// .cache/ferretdb-test when Go is available and the binary is missing or
// older than its sources. Without Go it says so; test/helpers/mongo.ts then
// skips the MongoDB suites loudly, or fails them under CI=true.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(root, '.cache', 'ferretdb-test');
const sources = ['main.go', 'go.mod', 'go.sum'].map((f) => join(here, f));

if (process.env.TASKGATE_TEST_MONGODB_URI) {
  console.log('ferretdb: TASKGATE_TEST_MONGODB_URI is set; not building the test server');
  process.exit(0);
}
if (spawnSync('go', ['version']).status !== 0) {
  console.warn('ferretdb: Go is not installed; MongoDB test suites will be skipped (failed under CI=true)');
  process.exit(0);
}
const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
if (existsSync(out) && statSync(out).mtimeMs >= newest) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
console.log('ferretdb: building the MongoDB-wire test server (FerretDB v1.24.2, PostgreSQL and SQLite backends)...');
execFileSync('go', ['build', '-o', out, '.'], { cwd: here, stdio: 'inherit' });
