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
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus, type Task } from '../../gen/taskgate/v1/task.js';
import type { Api } from '../../cli/client.js';
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
    `setsid -f bash -c "trap '' HUP TERM; sleep 120; true"`,
    'echo ATTACK-DONE',
  ].join('\n');
}

/** Processes of the attacker's survivor, found by its command line. */
function survivorPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes("trap '' HUP TERM; sleep 120; true")) out.push(Number(name));
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
    expect(second.output).to.include('took over a task id left by an agent that died');
    const failed = await h.finished(task.id);
    expect(failed.task.failureReason).to.equal('agent restarted while the task was running');
    await second.terminate();
  });
});
