// `npm run pack:agent`: builds the agent package, build/taskgate-agent-VERSION.tgz,
// an npm tarball that installs the `taskgate-agent` command on a host with
// Node 20 and no compiler (docs/install-agent.md).
//
// 1. Compiles the agent program alone (agent/tsconfig.json: agent/, shared/
//    and the agent protocol's gen/ files; an import of server/ or cli/ is a
//    compile error there) into build/agent-package/dist.
// 2. Keeps only the files reachable from dist/agent/main.js, and collects the
//    npm packages they import: those, at the versions package-lock.json
//    installed, are the package's dependencies. No store driver can slip in:
//    mongodb and better-sqlite3 are refused by name as well.
// 3. node-pty becomes the npm alias "npm:@lydell/node-pty@SAME_VERSION":
//    the same node-pty JavaScript with prebuilt binaries in per-platform
//    optional dependencies, so no node-gyp runs at install. The code still
//    imports 'node-pty'; the dev tree keeps node-pty itself (docs/install-agent.md
//    "Why @lydell/node-pty").
// 4. `npm pack` of the staged folder, with deploy/taskgate-agent.service and
//    docs/install-agent.md (as README.md) beside the code.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import process from 'node:process';

const root = resolve(import.meta.dirname, '..');
const buildDir = join(root, 'build');
const stage = join(buildDir, 'agent-package');
const dist = join(stage, 'dist');
const entry = join(dist, 'agent', 'main.js');
/** Folders of the agent program (docs/design.md "Program boundaries"). */
const ALLOWED = ['agent', 'shared', 'gen'].map((d) => join(dist, d) + sep);
/** Never in an agent: the server's store drivers. */
const REFUSED = ['mongodb', 'better-sqlite3'];

function fail(message) {
  process.stderr.write(`pack:agent: ${message}\n`);
  process.exit(1);
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));

// 1. Compile the agent program alone.
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [
  tsc, '-p', join(root, 'agent', 'tsconfig.json'),
  '--outDir', dist, '--noEmit', 'false', '--composite', 'false', '--declaration', 'false',
  '--sourceMap', 'false', '--incremental', 'false',
], { stdio: 'inherit' });

// 2. What main.js reaches, file by file, and the packages it imports.
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
const reached = new Set();
const packages = new Set();
const queue = [entry];
while (queue.length > 0) {
  const file = queue.pop();
  if (reached.has(file)) continue;
  if (!ALLOWED.some((dir) => file.startsWith(dir))) fail(`${relative(dist, file)} is outside agent/, shared/ and gen/`);
  reached.add(file);
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
    else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
      packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
}
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
for (const file of walk(dist)) if (!reached.has(file)) rmSync(file);
chmodSync(entry, 0o755);

// 3. Dependencies at the versions the dev tree installed and tests ran.
const dependencies = {};
for (const name of [...packages].sort()) {
  if (REFUSED.includes(name)) fail(`the agent imports ${name}, a store driver`);
  if (!pkg.dependencies[name]) fail(`the agent imports ${name}, which is not a dependency in package.json`);
  const installed = lock.packages[`node_modules/${name}`]?.version;
  if (!installed) fail(`${name} is not in package-lock.json; run npm install`);
  dependencies[name] = installed;
}
if (!dependencies['node-pty']) fail('the agent no longer imports node-pty: update this script and docs/install-agent.md');
// pty-runner.ts relies on node-pty internals of exactly this version.
if (pkg.dependencies['node-pty'] !== dependencies['node-pty']) fail(`node-pty must be pinned to an exact version in package.json, not ${pkg.dependencies['node-pty']}`);
dependencies['node-pty'] = `npm:@lydell/node-pty@${dependencies['node-pty']}`;

writeFileSync(join(stage, 'package.json'), `${JSON.stringify({
  name: 'taskgate-agent',
  version: pkg.version,
  description: 'The Taskgate agent: connects out to a Taskgate server and runs the tasks of its targets in ptys.',
  license: pkg.license,
  type: 'module',
  bin: { 'taskgate-agent': 'dist/agent/main.js' },
  engines: pkg.engines,
  os: ['linux'],
  dependencies,
}, null, 2)}\n`);

// 4. The service unit and the install guide travel with the code.
mkdirSync(join(stage, 'deploy'));
copyFileSync(join(root, 'deploy', 'taskgate-agent.service'), join(stage, 'deploy', 'taskgate-agent.service'));
copyFileSync(join(root, 'docs', 'install-agent.md'), join(stage, 'README.md'));

const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', buildDir], { cwd: stage, encoding: 'utf8' });
const [{ filename, files, size }] = JSON.parse(packed);
process.stdout.write(`${relative(process.cwd(), join(buildDir, filename))}: ${files.length} files, ${(size / 1024).toFixed(0)} KiB; dependencies ${Object.keys(dependencies).join(', ')}\n`);
