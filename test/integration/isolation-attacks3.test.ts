/**
 * Attacks on "no survivors" found by a hostile review (2026-12-03, third
 * round) of agent/task-users.ts and agent/uid-killer.ts. Each test asserts
 * the attack fails; on the code the review found, it worked. Needs root and
 * gcc.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killerUid, UidKiller } from '../../agent/uid-killer.js';
import { findTools, TaskUsers } from '../../agent/task-users.js';
import type { Logger } from '../../shared/logger.js';
import { requireRoot } from '../helpers/root.js';

/** Ids of this file alone (outside the agent tests' ranges). */
const ID = 64950;
const RANGE = { first: 64960, last: 64969 };

/** A chain that hops to a new pid every few microseconds of work, for LIFE seconds (it cannot be left behind). */
const HOP_C = `#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int c, char **v) {
  int life = atoi(v[1]), chains = atoi(v[2]); double t0 = now();
  signal(SIGHUP, SIG_IGN);
  for (int i = 0; i < chains; i++) if (fork() == 0) { setsid(); goto chain; }
  return 0;
chain:
  for (;;) {
    if (now() - t0 > life) _exit(0);
    for (volatile int i = 0; i < 20000; i++);
    if (fork() > 0) _exit(0);
  }
}
`;

function which(program: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** Every pid with `uid` as its real uid. */
function pidsOf(uid: number): Set<string> {
  const out = new Set<string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (new RegExp(`\\nUid:\\t${uid}\\t`).test(readFileSync(`/proc/${name}/status`, 'latin1'))) out.add(name);
    } catch {
      // gone
    }
  }
  return out;
}

/** How many new processes of `uid` appeared within `ms`. */
async function newPids(uid: number, ms: number): Promise<number> {
  const before = pidsOf(uid);
  await new Promise((r) => setTimeout(r, ms));
  return [...pidsOf(uid)].filter((p) => !before.has(p)).length;
}

const lines: string[] = [];
const logger = {
  info() {},
  debug() {},
  trace() {},
  warn: (o: unknown, m: string) => lines.push(`WARN ${JSON.stringify(o)} ${m}`),
  error: (o: unknown, m: string) => lines.push(`ERROR ${JSON.stringify(o)} ${m}`),
  child() {
    return logger;
  },
} as unknown as Logger;

describe('task isolation: survivors of a dead agent, and kill senders of two agents (third review)', function () {
  this.timeout(60_000);
  let base = '';
  let hop = '';
  let reap = '';
  const tools = () => findTools(process.env.PATH ?? '', (name) => which(name));

  before(function () {
    requireRoot(this, 'isolation attacks');
    base = mkdtempSync(join(tmpdir(), 'taskgate-review3-'));
    chmodSync(base, 0o711);
    hop = join(base, 'hop');
    writeFileSync(`${hop}.c`, HOP_C);
    execFileSync('gcc', ['-O2', '-o', hop, `${hop}.c`]);
    chmodSync(hop, 0o755);
    // The test's own cleanup: kill(-1) with euid UID, real and saved uid 64999.
    reap = join(base, 'reap');
    writeFileSync(`${reap}.c`, `#define _GNU_SOURCE
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
int main(int c, char **v) { uid_t u = atoi(v[1]); if (setgroups(0, 0) || setresgid(64999, 64999, 64999) || setresuid(64999, u, 64999)) return 2; kill(-1, SIGKILL); return 0; }
`);
    execFileSync('gcc', ['-O2', '-o', reap, `${reap}.c`]);
  });

  after(() => {
    if (reap) for (let i = 0; i < 3; i++) execFileSync(reap, [String(ID)]);
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("a dead agent's task that hops pids does not survive the takeover of its id and meet the id's next task", async () => {
    const t = tools();
    const lockDir = join(base, 'task-ids');
    mkdirSync(lockDir, { mode: 0o700 });
    // The lock of an agent process that died (SIGKILL, OOM) while its task ran: a pid beyond pid_max.
    writeFileSync(join(lockDir, String(ID)), '99999999 dead-agent\n');
    // What its task (uid ID of its own) left running: a chain that hops pids.
    execFileSync(t.setpriv, ['--reuid', String(ID), '--regid', String(ID), '--clear-groups', '--no-new-privs', '--', hop, '20', '2'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    const alive = await newPids(ID, 100);
    expect(alive, 'the survivor runs').to.be.greaterThan(0);
    // The next agent on the host starts and takes the id over ("kills what still runs under them").
    const users = await TaskUsers.open({ range: { first: ID, last: ID }, lockDir, owner: 'next-agent', tools: t, logger });
    let handedOut = '';
    let after = 0;
    try {
      const identity = await users.acquire('');
      handedOut = JSON.stringify(identity);
      after = await newPids(ID, 300);
      await users.release(identity, await users.killProcesses(identity));
    } catch (err) {
      handedOut = `none: ${(err as Error).message}`;
    } finally {
      await users.close();
    }
    const log = `before the takeover: ${alive} new pids of uid ${ID} in 100 ms\nagent log: ${lines.join(' | ')}\nhanded to a new task: ${handedOut}\nthen: ${after} new pids of uid ${ID} in 300 ms, while the new task would run as that uid`;
    process.stderr.write(`      ${log.replace(/\n/g, '\n      ')}\n`);
    expect(after, `a dead agent's survivor still ran under the id handed to a new task:\n${log}`).to.equal(0);
  });

  it("one agent's kill sender does not kill another agent's sender (each takes a real uid of its own)", async () => {
    const t = tools();
    // Another agent's sender in the middle of its kill: a real uid of the band, effective the task's, saved 0.
    // (Held here with a sleep; two real senders meet a few times in every few thousand kills.)
    const other = spawn(t.perl, ['-e', `$< = ${killerUid()}; $> = ${RANGE.first + 1}; sleep 20;`], { stdio: 'ignore' });
    const ended = new Promise<string | null>((resolve) => other.on('exit', (_c, signal) => resolve(signal)));
    await new Promise((r) => setTimeout(r, 300));
    const killer = new UidKiller(t, RANGE);
    try {
      await killer.kill(RANGE.first);
    } finally {
      killer.close();
    }
    const signal = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('still running'), 500))]);
    other.kill('SIGKILL');
    process.stderr.write(`      the other sender after this agent's kill as uid ${RANGE.first}: ${signal}\n`);
    expect(signal, "another agent's kill sender was killed by this agent's kill(-1)").to.equal('still running');
  });
});
