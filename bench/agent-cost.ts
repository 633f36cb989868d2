/**
 * The agent's own CPU per task, beside what a bare node-pty spawn of the
 * same script costs the process that spawns it (issue 18: "agent overhead
 * per task beyond the bare spawn measured and ≤ 0.5 ms of CPU").
 *
 * The agent runs as its own process (`taskgate agent`, as installed), so
 * its CPU is not mixed with the benchmark's clients. Counted: the agent
 * process, and its root shells (the kill shell, agent/uid-killer.ts, and
 * the workspace removal shell, agent/workspace.ts) with everything they
 * ran (setpriv, kill, chmod, find); not counted: the tasks themselves.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliProcess } from '../test/helpers/processes.js';
import { ptyRun, type ScriptDir } from './baselines.js';
import { figure, nowMs, ServerProcess, sleep, workers, type Figure } from './lib.js';
import { countSucceeded, createTask, type StoreChoice } from './suites.js';

/** CPU seconds of a process, its own and (with `children`) that of the children it waited for. */
function cpuSeconds(pid: number, children: boolean): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime (fields 14-17), in clock ticks of 1/100 s.
  const own = Number(f[11]) + Number(f[12]);
  return (children ? own + Number(f[13]) + Number(f[14]) : own) / 100;
}

/** The agent's root shells: its children whose argv holds "taskgate-kill" or "taskgate-remove" (none before the first task ended). */
function rootShells(agentPid: number): number[] {
  const shells: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === agentPid && /taskgate-(kill|remove)/.test(readFileSync(`/proc/${name}/cmdline`, 'latin1'))) shells.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return shells;
}

/** CPU seconds of the agent so far: the process itself, and its root shells with what they ran. */
function agentCpu(agentPid: number): { own: number; shells: number } {
  return { own: cpuSeconds(agentPid, false), shells: rootShells(agentPid).reduce((sum, pid) => sum + cpuSeconds(pid, true), 0) };
}

/** `count` tasks of `true` through one agent process; its CPU per task against a bare spawn's. */
export async function agentCost(store: StoreChoice, count: number, scripts: ScriptDir): Promise<Figure[]> {
  const server = await ServerProcess.start(await store.uri());
  let agent: CliProcess | null = null;
  try {
    await server.target('t0', 'a0');
    const { token } = await server.api.call(server.api.agents, server.api.agents.createAgentToken, { name: 'a0', ttl: undefined });
    agent = new CliProcess(['agent', '--server', server.address, '--token', token, '--name', 'a0', '--work-dir', join(server.dir, 'agent-a0'), '--log-level', 'warn']);
    const deadline = nowMs() + 30_000;
    for (;;) {
      const { agents } = await server.api.call(server.api.agents, server.api.agents.listAgents, {});
      if (agents.some((a) => a.name === 'a0' && a.connected)) break;
      if (nowMs() > deadline) throw new Error(`the agent did not connect:\n${agent.output}`);
      await sleep(50);
    }
    const pid = agent.child.pid!;
    // Warm up (JIT, the kill shell, the store's statements), then measure.
    const warm = 20;
    await workers(warm, 8, () => createTask(server, 't0', 'true').then(() => undefined));
    while ((await countSucceeded(server)) < warm) await sleep(50);
    const cpu0 = agentCpu(pid);
    await workers(count, 16, () => createTask(server, 't0', 'true').then(() => undefined));
    while ((await countSucceeded(server)) < warm + count) await sleep(50);
    const cpu1 = agentCpu(pid);
    const ownMs = ((cpu1.own - cpu0.own) * 1000) / count;
    const agentMs = ownMs + ((cpu1.shells - cpu0.shells) * 1000) / count;

    // Baseline: what spawning the same script in a pty and reading it to its
    // exit costs the spawning process, here (otherwise idle meanwhile).
    const file = scripts.write('true');
    for (let i = 0; i < 10; i++) await ptyRun(file);
    const before = process.cpuUsage();
    await workers(count, 16, () => ptyRun(file).then(() => undefined));
    const used = process.cpuUsage(before);
    const bareMs = (used.user + used.system) / 1000 / count;
    const params = { tasks: count, store: store.name, isolation: process.getuid?.() === 0 ? 'a uid of its own per task' : 'the agent user' };
    return [
      figure('throughput', `agent CPU per task (${store.name})`, agentMs, 'ms', 'lower', { name: 'bare node-pty spawn+exit, CPU of the spawning process', value: bareMs }, params),
      figure('throughput', `agent CPU per task beyond a bare spawn (${store.name})`, agentMs - bareMs, 'ms', 'lower', null, params),
      figure('throughput', `agent CPU per task, its own process alone (${store.name})`, ownMs, 'ms', 'lower', { name: 'bare node-pty spawn+exit, CPU of the spawning process', value: bareMs }, params),
    ];
  } finally {
    await agent?.terminate();
    await server.stop();
  }
}
