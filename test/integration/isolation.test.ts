/**
 * Tasks isolated from the agent and from each other (docs/isolation.md), as
 * a hostile member would try it: two restricted targets on one agent (an
 * env-provider secret on one, a stored secret on the other) whose tasks are
 * running, and a member's task on an open target of the same agent that goes
 * looking for their secrets, the agent's token and work dir, and leaves a
 * survivor behind. Real agents, real ptys, real users (root needed; skipped
 * loudly elsewhere, a failure under CI=true).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus, type Task } from '../../gen/taskgate/v1/task.js';
import type { Api } from '../../cli/client.js';
import { TaskgateAgent } from '../../agent/agent.js';
import { processesWithIds } from '../../agent/processes.js';
import { untilOutput } from '../helpers/follow.js';
import { Harness } from '../helpers/harness.js';
import { CliProcess } from '../helpers/processes.js';
import { requireRoot } from '../helpers/root.js';
import { STORE_KINDS } from '../helpers/stores.js';

const ENV_SECRET = `env-secret-${randomBytes(6).toString('hex')}`;
const STORED_SECRET = `stored-secret-${randomBytes(6).toString('hex')}`;
const FILE_SECRET = `file-secret-${randomBytes(6).toString('hex')}`;

/** What the attacker's task tries, each step printing whatever it finds. */
function attack(workDir: string, tokenFile: string): string {
  return [
    'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"',
    'env',
    "tr '\\0' '\\n' </proc/$PPID/environ 2>&1",
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' <\"$f\" 2>/dev/null; done",
    "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <\"$f\" 2>/dev/null; echo; done",
    'ls -la "$HOME/.." 2>&1',
    'cat "$HOME"/../*/secret.txt "$HOME"/../*/.taskgate-script "$HOME"/../*/tmp/* 2>&1',
    `ls -la ${workDir} 2>&1; cat ${tokenFile} 2>&1`,
    'cat /tmp/victim-* 2>&1',
    // A survivor that ignores hang-ups and SIGTERM in a session of its own.
    // The task waits until it is up: until setsid's child has left the task's
    // session, the shell's exit would hang it up along with the task (then a
    // survivor-free run would prove nothing).
    `setsid -f bash -c "trap '' HUP TERM; : > /tmp/survivor-$TASKGATE_TASK_ID; sleep 120; true"`,
    'for i in $(seq 200); do [ -e /tmp/survivor-$TASKGATE_TASK_ID ] && echo SURVIVOR-UP && break; sleep 0.05; done',
    'echo ATTACK-DONE',
  ].join('\n');
}

/** Processes of the attacker's survivor, found by its command line. */
function survivorPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes("trap '' HUP TERM; : > /tmp/survivor-")) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** The uid the attacker's task printed. */
function uidOf(output: string): number {
  const m = /uid=(\d+) gid=(\d+)/.exec(output);
  if (!m) throw new Error(`no uid line in:\n${output}`);
  return Number(m[1]);
}

describe('task isolation: a hostile task on a shared agent (sqlite)', function () {
  this.timeout(120_000);
  let h: Harness;
  let base: string;
  let member: Api;

  before(async function () {
    requireRoot(this, 'the isolation story');
    const location = (await STORE_KINDS[0]!.location())!;
    h = await Harness.start(location, { secretsKey: randomBytes(32) });
    base = mkdtempSync(join(tmpdir(), 'taskgate-isolation-'));
    chmodSync(base, 0o711);
    writeFileSync(join(base, 'file-secret.json'), JSON.stringify({ FILE_PASS: FILE_SECRET }), { mode: 0o600 });
    await h.createTarget('prodenv', 'a1', 'bash', { groups: ['ops'], secretProvider: 'env', secretPath: 'PROD_SECRETS', secretMapping: { DB_PASS: 'password' } });
    await h.createTarget('vault', 'a1', 'bash', { groups: ['ops'], secretProvider: 'stored' });
    await h.createTarget('files', 'a1', 'bash', { groups: ['ops'], secretProvider: 'file', secretPath: join(base, 'file-secret.json') });
    await h.createTarget('scratch', 'a1', 'bash', { groups: ['dev'] });
    await h.api.call(h.api.targets, h.api.targets.setSecret, { target: 'vault', key: 'API_KEY', value: STORED_SECRET });
    member = await h.user('mallory@example.com', ['dev']);
  });

  after(async () => {
    await h?.close();
    if (base) rmSync(base, { recursive: true, force: true });
    for (const name of readdirSync('/tmp')) {
      if (/^(victim|survivor)-/.test(name)) rmSync(join('/tmp', name), { force: true });
    }
  });

  /** Starts the victims on the restricted targets and waits until they run. */
  async function victims(): Promise<Task[]> {
    const script = (name: string, value: string): string =>
      `echo "${name}" > "$HOME/secret.txt"; echo "$${name}" >> "$HOME/secret.txt"; cp "$HOME/secret.txt" "$TMPDIR/"; echo "$${name}" > /tmp/victim-$TASKGATE_TASK_ID; echo ready ${value.length}; sleep 60`;
    const tasks = [await h.createTask('prodenv', script('DB_PASS', ENV_SECRET)), await h.createTask('vault', script('API_KEY', STORED_SECRET)), await h.createTask('files', script('FILE_PASS', FILE_SECRET))];
    for (const task of tasks) await untilOutput(h.api, task.id, 'ready');
    return tasks;
  }

  async function endVictims(tasks: Task[]): Promise<void> {
    for (const task of tasks) await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: task.id, reason: 'test over' });
    for (const task of tasks) await h.finished(task.id);
  }

  it("finds none of another target's secrets, the agent's token or its files, and leaves no process behind", async () => {
    const workDir = join(base, 'work');
    const tokenFile = join(base, 'agent.token');
    const token = await h.agentToken('a1');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const agent = await h.startAgent('a1', {
      token,
      workDir,
      env: { PATH: process.env.PATH ?? '', PROD_SECRETS: JSON.stringify({ password: ENV_SECRET }), AGENT_ONLY: 'agent-only-value' },
    });
    expect(agent.isolated).to.equal(true);
    const running = await victims();

    const { task } = await member.call(member.tasks, member.tasks.createTask, { target: 'scratch', script: attack(workDir, tokenFile), message: 'just looking', type: '', timeoutSeconds: 0 });
    const { task: done, output } = await h.finished(task!.id);
    const text = output.toString();
    expect(done.status, text).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    expect(text).to.include('ATTACK-DONE');
    expect(text, 'the survivor started before the task ended').to.include('SURVIVOR-UP');
    for (const secret of [ENV_SECRET, STORED_SECRET, FILE_SECRET, token, 'agent-only-value', 'PROD_SECRETS']) {
      expect(text, `found ${secret}`).not.to.include(secret);
    }
    const uid = uidOf(text);
    expect(uid).to.be.within(61000, 61999);
    expect(await processesWithIds(new Set([uid])), 'processes of the finished task').to.deep.equal([]);
    expect(survivorPids(), 'the setsid survivor').to.deep.equal([]);

    // The victims' own environment had them (so the attacker looked where they were).
    await endVictims(running);
    const prod = await h.finished(running[0]!.id);
    expect(prod.output.toString()).to.include(`ready ${ENV_SECRET.length}`);
    await agent.stop();
  });

  it('the same attack finds them on an agent that does not isolate (the test sees a leak when there is one)', async () => {
    const workDir = join(base, 'work-open');
    const tokenFile = join(base, 'agent-open.token');
    const token = await h.agentToken('a1');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const agent = await h.startAgent('a1', {
      token,
      workDir,
      isolate: false,
      env: { PATH: process.env.PATH ?? '', PROD_SECRETS: JSON.stringify({ password: ENV_SECRET }) },
    });
    const running = await victims();
    const { task } = await member.call(member.tasks, member.tasks.createTask, { target: 'scratch', script: attack(workDir, tokenFile), message: '', type: '', timeoutSeconds: 0 });
    const { output } = await h.finished(task!.id);
    const text = output.toString();
    expect(text).to.include(ENV_SECRET);
    expect(text).to.include(STORED_SECRET);
    expect(text).to.include(token);
    expect(text, 'the survivor started before the task ended').to.include('SURVIVOR-UP');
    // Its survivor outlived the task: the promise above is real only with isolation.
    const survivors = survivorPids();
    expect(survivors.length).to.be.above(0);
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
    await endVictims(running);
    await agent.stop();
  });
});

describe('task isolation: no survivors across agent crashes (sqlite)', function () {
  this.timeout(120_000);
  let h: Harness;
  let base: string;
  const agents: CliProcess[] = [];

  before(async function () {
    requireRoot(this, 'survivor sweeping');
    const location = (await STORE_KINDS[0]!.location())!;
    h = await Harness.start(location);
    base = mkdtempSync(join(tmpdir(), 'taskgate-sweep-'));
    chmodSync(base, 0o711);
    await h.createTarget('t1', 'edge-1');
  });

  after(async () => {
    for (const agent of agents) await agent.crash().catch(() => undefined);
    await h?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("kills what a SIGKILLed agent's tasks left running when the next agent process starts", async () => {
    const tokenFile = join(base, 'agent.token');
    writeFileSync(tokenFile, `${await h.agentToken('edge-1')}\n`, { mode: 0o600 });
    const args = ['agent', '--server', h.address, '--name', 'edge-1', '--token-file', tokenFile, '--work-dir', join(base, 'work'), '--log-level', 'info'];
    const first = new CliProcess(args);
    agents.push(first);
    await first.until(/"msg":"connected"/);
    const task = await h.createTask('t1', `setsid -f bash -c "trap '' HUP TERM; exec sleep 300"; echo "uid=$(id -u) gid=$(id -g)"; sleep 300`);
    await untilOutput(h.api, task.id, 'gid=');
    const { output } = await h.logs(task.id, { follow: false });
    const uid = uidOf(output.toString());
    expect((await processesWithIds(new Set([uid]))).length, 'the task and its survivor').to.be.at.least(2);
    await first.crash();
    // The pty's hang-up ended the task's shell; its survivor ignores that.
    expect((await processesWithIds(new Set([uid]))).length, 'still running after the agent died').to.be.at.least(1);

    const second = new CliProcess(args);
    agents.push(second);
    await second.until(/"msg":"connected"/);
    expect(await processesWithIds(new Set([uid]))).to.deep.equal([]);
    expect(second.output, `the next agent's log:\n${second.output}`).to.include('took over a task id left by an agent that died');
    const failed = await h.finished(task.id);
    expect(failed.task.failureReason).to.equal('agent restarted while the task was running');
    await second.terminate();
  });
});

describe('task isolation: run-as users, kills and work dirs (sqlite)', function () {
  this.timeout(120_000);
  let h: Harness;
  let base: string;

  before(async function () {
    requireRoot(this, 'run-as users');
    const location = (await STORE_KINDS[0]!.location())!;
    h = await Harness.start(location, { killGraceMs: 300 });
    base = mkdtempSync(join(tmpdir(), 'taskgate-runas-'));
    chmodSync(base, 0o711);
    await h.startAgent('a1', { workDir: join(base, 'work'), env: { PATH: process.env.PATH ?? '' } });
  });

  after(async () => {
    await h?.close();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("runs a run-as target's task as that user, with a gid of its own, and kills only its processes", async () => {
    const nobody = Number(execFileSync('id', ['-u', 'nobody']).toString().trim());
    await h.createTarget('as-nobody', 'a1', 'bash', { runAs: 'nobody' });
    // A process of the run-as user that is not the task's: it must survive the task.
    const bystander = spawn('setpriv', ['--reuid', String(nobody), '--regid', String(nobody), '--clear-groups', '--', 'sleep', '60'], { stdio: 'ignore' });
    try {
      const task = await h.createTask('as-nobody', 'echo "user=$(id -un) uid=$(id -u) gid=$(id -g) home=$HOME"; stat -c "%U %g %a" "$HOME"; setsid -f sleep 300');
      const { task: done, output } = await h.finished(task.id);
      const text = output.toString();
      expect(done.status, text).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
      const m = /user=(\S+) uid=(\d+) gid=(\d+) home=(\S+)\r\nroot (\d+) 770/.exec(text);
      expect(m, text).to.not.equal(null);
      expect(m![1]).to.equal('nobody');
      expect(Number(m![2])).to.equal(nobody);
      const gid = Number(m![3]);
      expect(gid).to.be.within(61000, 61999);
      expect(m![5]).to.equal(String(gid));
      expect(await processesWithIds(new Set([gid])), 'the task left its sleep behind').to.deep.equal([]);
      expect(bystander.exitCode, "the run-as user's other process").to.equal(null);
    } finally {
      bystander.kill('SIGKILL');
    }
  });

  it('fails a task whose run-as user does not exist or is root, naming it, and runs nothing', async () => {
    await h.createTarget('as-ghost', 'a1', 'bash', { runAs: 'no-such-user-x' });
    await h.createTarget('as-root', 'a1', 'bash', { runAs: 'root' });
    const ghost = await h.finished((await h.createTask('as-ghost', 'echo ran')).id);
    expect(ghost.task.failureReason).to.equal('could not start: run-as user "no-such-user-x" does not exist on this agent\'s host');
    const root = await h.finished((await h.createTask('as-root', 'echo ran')).id);
    expect(root.task.failureReason).to.equal('could not start: run-as user "root" is root; tasks never run as root');
    expect(ghost.output.length + root.output.length).to.equal(0);
  });

  it('leaves nothing of a killed or timed-out task running, even what it started in a session of its own', async () => {
    await h.createTarget('plain', 'a1');
    const script = `setsid -f bash -c "trap '' HUP TERM; sleep 300; true"; echo "gid=$(id -g)"; sleep 300`;
    const killed = await h.createTask('plain', script);
    await untilOutput(h.api, killed.id, 'gid=');
    await h.api.call(h.api.tasks, h.api.tasks.killTask, { id: killed.id, reason: 'test' });
    const timedOut = await h.createTask('plain', script, '', 1);
    const ends = [await h.finished(killed.id), await h.finished(timedOut.id)];
    expect(ends.map((e) => TaskStatus[e.task.status])).to.deep.equal(['TASK_STATUS_KILLED', 'TASK_STATUS_FAILURE']);
    for (const { output } of ends) {
      const gid = Number(/gid=(\d+)/.exec(output.toString())?.[1]);
      expect(gid).to.be.within(61000, 61999);
      expect(await processesWithIds(new Set([gid]))).to.deep.equal([]);
    }
  });

  it('kills survivors that hide from a /proc scan: a zombie main thread with live threads, a chain that forks and exits', async () => {
    await h.createTarget('hiders', 'a1');
    // Each survivor appends to a file of its own here as long as it lives: a scan can miss a
    // chain of processes that each live 2 ms, its heartbeat cannot.
    const beats = join(base, 'beats');
    mkdirSync(beats, { mode: 0o777 });
    chmodSync(beats, 0o777);
    const script = [
      'echo "gid=$(id -g)"',
      "/usr/bin/python3 - <<'EOF'",
      'import ctypes, os, threading, time',
      `def beat(name):\n    with open("${beats}/" + name, "a") as f: f.write(".")`,
      'if os.fork() == 0:',
      '    os.setsid()',
      '    def loop():\n        while True:\n            beat("thread"); time.sleep(0.005)',
      '    threading.Thread(target=loop).start()',
      '    ctypes.CDLL(None).pthread_exit(None)',
      'if os.fork() == 0:',
      '    os.setsid()',
      '    while True:',
      '        if os.fork():',
      '            os._exit(0)',
      '        beat("chain"); time.sleep(0.002)',
      'EOF',
      'sleep 0.3',
    ].join('\n');
    const { task, output } = await h.finished((await h.createTask('hiders', script)).id);
    expect(task.status, output.toString()).to.equal(TaskStatus.TASK_STATUS_SUCCESS);
    const gid = Number(/gid=(\d+)/.exec(output.toString())?.[1]);
    expect(gid).to.be.within(61000, 61999);
    const sizes = (): number[] => ['thread', 'chain'].map((f) => statSync(join(beats, f)).size);
    const before = sizes();
    expect(before.every((n) => n > 0), 'both survivors ran').to.equal(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sizes(), 'heartbeats after the task ended').to.deep.equal(before);
    expect(await processesWithIds(new Set([gid]))).to.deep.equal([]);
  });

  it('keeps working when tasks suspend their terminal output and exit (no thread of the agent blocks)', async function () {
    this.timeout(90_000);
    await h.createTarget('stoppers', 'a1');
    const stop = "/usr/bin/python3 -c 'import sys, termios; print(\"stopping\", flush=True); termios.tcflow(sys.stdout.fileno(), termios.TCOOFF)'";
    const stoppers = await Promise.all(Array.from({ length: 5 }, () => h.createTask('stoppers', stop)));
    const ends = await Promise.all(stoppers.map((t) => h.finished(t.id)));
    for (const end of ends) expect(TaskStatus[end.task.status]).to.equal('TASK_STATUS_SUCCESS');
    // The agent still prepares, runs and reaps tasks (secrets, /proc scans and cleanup use its thread pool).
    const after = await h.finished((await h.createTask('stoppers', 'echo still-here')).id);
    expect(after.output.toString()).to.equal('still-here\r\n');
  });

  it("refuses to start on a work dir others can write or whose parent task users cannot search, in one line", async () => {
    const open = join(base, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    const closed = mkdtempSync(join(tmpdir(), 'taskgate-closed-'));
    try {
      for (const [workDir, message] of [
        [open, /^work dir .*open is writable by others \(mode 777\); chmod 0700 it or use another$/],
        [join(closed, 'work'), /^work dir .*: .*taskgate-closed-\w+ is not searchable by task users \(mode 700\); use a work dir such as \/var\/lib\/taskgate-agent$/],
      ] as const) {
        const agent = new TaskgateAgent({ server: h.address, token: await h.agentToken('a9'), name: 'a9', workDir });
        const err = (await agent.run().then(() => null, (e: unknown) => e)) as Error;
        expect(err?.message).to.match(message);
        expect(agent.lifecycle).to.equal('failed');
      }
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });
});
