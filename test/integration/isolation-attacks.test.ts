/**
 * Attacks by hostile task authors on an open target, against the kill shell
 * (agent/uid-killer.ts) and the removal of finished tasks' workspaces, found
 * by hostile reviews (2026-12-02, 2026-12-03). Each test asserts the attack
 * fails; on the code the reviews found, each attack worked. Needs root and gcc.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processesWithIds } from '../../agent/processes.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { requireRoot } from '../helpers/root.js';
import { STORE_KINDS } from '../helpers/stores.js';

const within = <T>(ms: number, p: Promise<T>): Promise<T | 'TIMEOUT'> =>
  Promise.race([p, new Promise<'TIMEOUT'>((r) => setTimeout(() => r('TIMEOUT'), ms).unref())]);

/**
 * Builds the racer (once): in DIR it makes `d/f` and a symlink `l` to
 * TARGET, then swaps them atomically (renameat2 RENAME_EXCHANGE) forever,
 * so a remover that checked `d` is a directory then walks `d` may walk TARGET.
 */
function swapper(base: string): string {
  const bin = join(base, 'swap');
  if (existsSync(bin)) return bin;
  const src = join(base, 'swap.c');
  writeFileSync(src, `#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/fs.h>
int main(int c, char **v) { if (chdir(v[1])) return 1; mkdir("d", 0777); close(open("d/f", O_CREAT|O_WRONLY, 0666)); symlink(v[2], "l");
 for (;;) syscall(SYS_renameat2, AT_FDCWD, "d", AT_FDCWD, "l", RENAME_EXCHANGE); }
`);
  execFileSync('gcc', ['-O2', '-o', bin, src]);
  chmodSync(bin, 0o755);
  return bin;
}

describe('task isolation: attacks on the kill shell and on workspace removal (sqlite)', function () {
  this.timeout(120_000);
  let h: Harness;
  let base: string;
  let swap: string;

  /** A root-owned directory of 2000 files, 0755: no task can delete in it. */
  const makeVictim = (name: string): string => {
    const victim = join(base, name);
    mkdirSync(victim, { mode: 0o755 });
    chmodSync(victim, 0o755);
    for (let i = 0; i < 2000; i++) writeFileSync(join(victim, `precious-${i}`), 'x');
    return victim;
  };

  before(async function () {
    requireRoot(this, 'isolation attacks');
    const location = (await STORE_KINDS[0]!.location())!;
    h = await Harness.start(location, { killGraceMs: 300 });
    base = mkdtempSync(join(tmpdir(), 'taskgate-review-'));
    chmodSync(base, 0o711);
    swap = swapper(base);
    await h.startAgent('a1', { workDir: join(base, 'work'), env: { PATH: process.env.PATH ?? '' } });
    await h.createTarget('open', 'a1');
  });

  after(async () => {
    // Root cleanup of whatever the attacks left (by pid, uids of the task range only).
    const ids = new Set<number>();
    for (let id = 61000; id <= 61999; id++) ids.add(id);
    for (const { pid } of await processesWithIds(ids)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await within(10_000, h?.close() ?? Promise.resolve());
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("a task that spins kill(-1, SIGSTOP) cannot stall the agent's kill shell (its own and other tasks' ends)", async () => {
    // A: leaves one process that stops every other process of its uid, including the kill
    // shell's child once setpriv has switched to that uid (before it runs kill -9 -1).
    const a = await h.createTask('open', `M=$$; setsid -f sh -c "while :; do kill -STOP -1 2>/dev/null; kill -CONT $M 2>/dev/null; done"; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo gid=$M`);
    await untilOutput(h.api, a.id, 'gid=');
    await new Promise((r) => setTimeout(r, 1500));
    // B: an unrelated task ending later, leaving a process behind.
    const b = await h.createTask('open', `setsid -f sleep 300; echo gid=$(id -g)`);
    const [endA, endB] = await Promise.all([within(20_000, h.finished(a.id)), within(20_000, h.finished(b.id))]);
    const stuck = execFileSync('sh', ['-c', "ps -eo pid,user,stat,args | grep -E 'kill -9 -1|sleep 300|kill -STOP' | grep -v grep || true"]).toString();
    expect(endA, `task A's end was never reported:\n${stuck}`).to.not.equal('TIMEOUT');
    expect(endB, `task B (another task) never ended either; its leftover lives:\n${stuck}`).to.not.equal('TIMEOUT');
  });

  it("a running task cannot turn the agent's root removal of another task's workspace onto a root-owned directory", async () => {
    const victim = makeVictim('victim');
    for (let attempt = 0; attempt < 5 && readdirSync(victim).length === 2000; attempt++) {
      const tag = `${process.pid}-${attempt}`;
      // A: opens its own workspace to everyone, says where it is, waits until B races, exits.
      const a = await h.createTask('open', [
        'chmod 0777 "$HOME"',
        'for i in $(seq 50); do mkdir "$HOME/a$i"; : > "$HOME/a$i/f"; done',
        `echo "$HOME" > /tmp/review-ws-${tag}; chmod 0644 /tmp/review-ws-${tag}`,
        `for i in $(seq 200); do [ -e /tmp/review-racing-${tag} ] && break; sleep 0.05; done`,
        'echo A-DONE',
      ].join('\n'));
      // B: another task of the same open target (another uid), still running when A ends.
      const b = await h.createTask('open', [
        `for i in $(seq 200); do [ -s /tmp/review-ws-${tag} ] && break; sleep 0.05; done`,
        `W=$(cat /tmp/review-ws-${tag})`,
        `${swap} "$W" ${victim} & : > /tmp/review-racing-${tag}; chmod 0644 /tmp/review-racing-${tag}`,
        'sleep 5; kill %1; echo B-DONE',
      ].join('\n'));
      await h.finished(a.id);
      await h.finished(b.id);
    }
    expect(readdirSync(victim).length, 'root-owned files deleted by the agent through a task-made symlink').to.equal(2000);
  });
  it("leftovers of a dead agent's tasks cannot turn the next agent's root cleanup onto a root-owned directory", async () => {
    // An agent that died leaves runs-INSTANCE with its tasks' directories; a
    // survivor of one of them (here uid 61998, in a directory uid 61997
    // opened to everyone) races the next agent's removal of that runs dir.
    const victim = makeVictim('victim-dead');
    for (let attempt = 0; attempt < 5 && readdirSync(victim).length === 2000; attempt++) {
      const work = join(base, `work-dead-${attempt}`);
      mkdirSync(work, { mode: 0o711 });
      chmodSync(work, 0o711);
      const runs = join(work, 'runs-deadbeef0000');
      mkdirSync(runs, { mode: 0o711 });
      chmodSync(runs, 0o711);
      writeFileSync(join(runs, '.owner'), '4194303 deadbeef0000\n'); // no such process
      const ws = join(runs, 'task-1');
      mkdirSync(ws);
      chmodSync(ws, 0o777);
      chownSync(ws, 61997, 61997);
      for (let i = 0; i < 50; i++) {
        mkdirSync(join(ws, `a${i}`));
        writeFileSync(join(ws, `a${i}`, 'f'), '');
      }
      const racer = spawn('setpriv', ['--reuid', '61998', '--regid', '61998', '--clear-groups', '--', swap, ws, victim], { stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 300));
        const agent = await h.startAgent(`dead-${attempt}`, { workDir: work, env: { PATH: process.env.PATH ?? '' } });
        await agent.stop();
      } finally {
        racer.kill('SIGKILL');
        await new Promise((r) => racer.once('exit', r));
      }
      // With the racer gone the next agent's cleanup finishes, and a stopped agent leaves nothing.
      const next = await h.startAgent(`dead-${attempt}`, { workDir: work, env: { PATH: process.env.PATH ?? '' } });
      await next.stop();
      expect(readdirSync(work), 'what the agents left in their work dir').to.deep.equal([]);
    }
    expect(readdirSync(victim).length, "root-owned files deleted by the agent's cleanup through a task-made symlink").to.equal(2000);
  });
  it("a task holds no descriptor of the agent's: not another running task's pty, not what the agent inherited", async () => {
    // A: a task running beside B, whose terminal B would reach through a leaked pty master.
    const a = await h.createTask('open', 'echo A-UP; sleep 20');
    await untilOutput(h.api, a.id, 'A-UP');
    // B lists its shell's descriptors, as another process sees them.
    const b = await h.createTask('open', 'ls -l /proc/$$/fd; echo B-DONE');
    const { output } = await h.finished(b.id);
    await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: a.id, reason: 'done' });
    await h.finished(a.id);
    const listing = output.toString();
    expect(listing, "B's output").to.contain('B-DONE');
    // Its own: 0-2 (the pty) and 255 (bash's script file).
    const leaked = [...listing.matchAll(/ (\d+) -> (.*?)\r?$/gm)].filter(([, n]) => Number(n) > 2 && Number(n) !== 255).map(([, n, what]) => `${n} -> ${what}`);
    expect(leaked, 'descriptors B inherited from the agent').to.deep.equal([]);
  });
});
