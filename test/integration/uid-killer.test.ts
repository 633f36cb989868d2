/**
 * kill(-1, SIGKILL) as a task's uid through the agent's long-lived root
 * kill shell (agent/uid-killer.ts), on real processes, and the workspace
 * removal shell (agent/workspace.ts) on real directories. Needs root (to switch
 * uids); says so loudly and skips elsewhere.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KILL_ANSWER_MS, KILL_PERL, killerUid, UidKiller } from '../../agent/uid-killer.js';
import { RootShell } from '../../agent/root-shell.js';
import { REMOVE_LOOP } from '../../agent/workspace.js';

const RANGE = { first: 64900, last: 64909 };

/** The pid of this test's kill sender: a child of this process whose argv names the test's range. */
function senderPid(): number | null {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== process.pid) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0');
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${name}/status`, 'latin1'))?.[1];
      if (argv.includes('taskgate-kill') && argv.includes(String(RANGE.first)) && state !== 'T' && state !== 'Z') return Number(name);
    } catch {
      // gone
    }
  }
  return null;
}

function which(program: string): string {
  return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
}

describe('UidKiller: kill(-1) as a task uid from one process no task can signal', function () {
  let setpriv = '';
  let sh = '';
  let bash = '';
  let perl = '';

  before(function () {
    if (process.getuid?.() !== 0) {
      console.warn('!!! SKIPPING UidKiller tests: they need root to switch uids');
      this.skip();
    }
    setpriv = which('setpriv');
    sh = which('sh');
    bash = which('bash');
    perl = which('perl');
  });

  /** A sleep running as `uid`, and how it ended. */
  function sleeper(uid: number): { pid: number; ended: Promise<NodeJS.Signals | null> } {
    const child = spawn(setpriv, ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', 'sleep', '60'], { stdio: 'ignore' });
    return { pid: child.pid!, ended: new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal))) };
  }

  it('kills every process of the uid and nothing else, again and again through the same shell', async () => {
    const killer = new UidKiller({ perl, bash }, RANGE);
    try {
      const victims = [sleeper(64901), sleeper(64901)];
      const bystander = sleeper(64902);
      const roots = spawn('sleep', ['60'], { stdio: 'ignore' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await killer.kill(64901);
      expect(await Promise.all(victims.map((v) => v.ended))).to.deep.equal(['SIGKILL', 'SIGKILL']);
      expect(() => process.kill(bystander.pid, 0), 'another uid is untouched').not.to.throw();
      expect(() => process.kill(roots.pid!, 0), "root's processes are untouched").not.to.throw();
      roots.kill('SIGKILL');
      await killer.kill(64901); // nothing left: still fine
      await killer.kill(64902);
      expect(await bystander.ended).to.equal('SIGKILL');
    } finally {
      killer.close();
    }
  });

  it('refuses a uid outside the range before asking the shell, and the shell refuses anything but an id of its range', async () => {
    const killer = new UidKiller({ perl, bash }, RANGE);
    try {
      for (const uid of [0, -1, 64899, 64910, 1.5, Number.NaN]) {
        let refused: unknown;
        await killer.kill(uid).catch((err: unknown) => (refused = err));
        expect(refused, `uid ${uid}`).to.be.an('error');
      }
    } finally {
      killer.close();
    }
    // The process itself, fed what a confused caller might write.
    const lines = ['0', '-1', '64901;id', '', ' 64901', '99999999999999999999', '064910', '64910', '64899', '1e4', '0x64901', '64903'];
    const out = execFileSync(perl, ['-e', KILL_PERL, 'taskgate-kill', String(RANGE.first), String(RANGE.last), String(killerUid())], {
      input: lines.join('\n') + '\n',
      encoding: 'utf8',
    });
    expect(out.trim().split('\n')).to.deep.equal([...lines.slice(0, -1).map(() => 'refused'), 'ok']);
  });

  it("kills a uid whose processes kill every other process of theirs in a loop: the sender is not one of them", async () => {
    // The attack that stopped the kill when the sender ran as the task's uid (setpriv, then sh).
    const signaller = spawn(setpriv, ['--reuid', '64905', '--regid', '64905', '--clear-groups', '--', sh, '-c', 'trap "" USR1 HUP TERM; while :; do kill -9 -1 2>/dev/null; kill -STOP -1 2>/dev/null; done'], { stdio: 'ignore' });
    const ended = new Promise((resolve) => signaller.on('exit', (_code, signal) => resolve(signal)));
    const killer = new UidKiller({ perl, bash }, RANGE);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (let i = 0; i < 20; i++) await killer.kill(64905); // every one is sent
      expect(await ended).to.equal('SIGKILL');
    } finally {
      killer.close();
      signaller.kill('SIGKILL');
    }
  });

  it('gives up on an answer past its deadline (a stalled sender), and serves the calls behind it and the next from a new process', async function () {
    this.timeout(20_000);
    const killer = new UidKiller({ perl, bash }, RANGE);
    try {
      await killer.kill(64906); // starts the process
      // No task can stop it (the test above); a host might. Stop it from here.
      const sender = senderPid();
      expect(sender, 'the kill sender is running').to.be.a('number');
      process.kill(sender!, 'SIGSTOP');
      const t0 = Date.now();
      let refused: unknown;
      const stalled = killer.kill(64906).catch((err: unknown) => (refused = err));
      const queued = killer.kill(64907).catch((err: unknown) => err);
      await stalled;
      expect(refused, 'a stalled kill is not taken as sent').to.be.an('error');
      expect(Date.now() - t0).to.be.within(KILL_ANSWER_MS - 100, KILL_ANSWER_MS + 3000);
      expect(await queued, 'the call behind it is sent by a new process').to.equal(undefined);
      const victim = sleeper(64908);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await killer.kill(64908);
      expect(await victim.ended).to.equal('SIGKILL');
      expect(senderPid(), 'a new process').to.not.equal(sender);
    } finally {
      killer.close();
    }
  });

  it('rejects once closed, so a caller never takes a task as killed on no answer', async () => {
    const killer = new UidKiller({ perl, bash }, RANGE);
    await killer.kill(64904);
    killer.close();
    let refused: unknown;
    await killer.kill(64904).catch((err: unknown) => (refused = err));
    expect(refused).to.be.an('error');
  });
});

describe("the workspace removal shell: empties a task's directory as the task, never as root", function () {
  let runs = '';

  before(function () {
    if (process.getuid?.() !== 0) {
      console.warn('!!! SKIPPING the removal shell tests: they need root to switch uids');
      this.skip();
    }
    runs = mkdtempSync(join(tmpdir(), 'taskgate-remove-'));
    chmodSync(runs, 0o711);
  });

  after(() => {
    if (runs) rmSync(runs, { recursive: true, force: true });
  });

  /** A task directory owned by uid:gid with a read-only subdirectory, one of mode 000, and files in them. */
  function workspace(id: string, uid: number): string {
    const dir = join(runs, id);
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'sub', 'f'), 'x');
    writeFileSync(join(dir, 'mine'), 'x');
    mkdirSync(join(dir, 'shut', 'in'), { recursive: true });
    writeFileSync(join(dir, 'shut', 'in', 'f'), 'x');
    for (const p of [dir, join(dir, 'sub'), join(dir, 'sub', 'f'), join(dir, 'mine'), join(dir, 'shut'), join(dir, 'shut', 'in'), join(dir, 'shut', 'in', 'f')]) chownSync(p, uid, uid);
    chmodSync(join(dir, 'sub'), 0o500); // the task made it unwritable: it may undo that
    chmodSync(join(dir, 'shut'), 0o000); // not even enterable by its owner until it chmods it (a hostile review: a remover that could not undo this locked the id for good)
    return dir;
  }

  it('answers one line per line: empties what the identity owns, refuses root, foreign gids and odd task ids', () => {
    const dir = workspace('T1', 64901);
    const rootsDir = workspace('T2', 64902);
    mkdirSync(join(rootsDir, 'roots'));
    writeFileSync(join(rootsDir, 'roots', 'precious'), 'x');
    chmodSync(join(rootsDir, 'roots'), 0o755); // root's: the task cannot delete in it
    const which = (p: string): string => execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim();
    const lines = [
      '0 64901 - T1', // as root
      '64901 0 - T1', // gid outside the range
      '64901 64899 - T1',
      '64901 64901 - ../T1', // out of the runs dir
      '64901 64901 - T1/..',
      '64901 64901 0;id T1',
      '64901 64901 -',
      'x 64901 - T1',
      '64901 64901 - T1',
      '64902 64902 - T2',
    ];
    const out = execFileSync(which('sh'), ['-c', REMOVE_LOOP, 'taskgate-remove', which('setpriv'), which('chmod'), which('find'), runs, String(RANGE.first), String(RANGE.last)], {
      input: lines.join('\n') + '\n',
      encoding: 'utf8',
    });
    const answers = out.trim().split('\n');
    expect(answers.slice(0, -2)).to.deep.equal(lines.slice(0, -2).map(() => 'refused'));
    expect(answers.at(-2), 'its own files, read-only ones included').to.equal('ok');
    expect(readdirSync(dir)).to.deep.equal([]);
    expect(answers.at(-1), 'a root file in its directory is not the task’s to remove').to.match(/^failed /);
    expect(readdirSync(join(rootsDir, 'roots'))).to.deep.equal(['precious']);
  });
  it('a removal stuck past its deadline fails alone: what it ran is killed, the removals behind it go to a new shell', async function () {
    this.timeout(20_000);
    const which = (p: string): string => execFileSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).trim();
    const stuck = workspace('STUCK', 64903);
    const next = workspace('T3', 64904);
    // A find that stops itself on STUCK (as another process of a run-as user could stop it).
    const stoppingFind = join(runs, 'find');
    writeFileSync(stoppingFind, `#!${which('sh')}\ncase "$1" in */STUCK) kill -STOP $$;; esac\nexec ${which('find')} "$@"\n`, { mode: 0o755 });
    const shell = new RootShell({
      bash: which('bash'),
      file: which('sh'),
      args: ['-c', REMOVE_LOOP, 'taskgate-remove', which('setpriv'), which('chmod'), stoppingFind, runs, String(RANGE.first), String(RANGE.last)],
      answerMs: 1000,
    });
    try {
      const [a, b] = await Promise.all([shell.ask('64903 64903 - STUCK'), shell.ask('64904 64904 - T3')]);
      expect([a, b]).to.deep.equal([null, 'ok']);
      expect(readdirSync(next)).to.deep.equal([]);
      expect(readdirSync(stuck).length, 'the stuck one was not emptied').to.be.greaterThan(0);
      let left = '';
      try {
        left = execFileSync('pgrep', ['-f', `${stoppingFind} ${stuck}`], { encoding: 'utf8' }).trim();
      } catch {
        // pgrep: none
      }
      expect(left, 'the stopped find outlived its shell').to.equal('');
    } finally {
      shell.close();
    }
  });
});
