/**
 * The measurements behind docs/scaling.md: server memory and idle CPU per
 * connected agent stream, and end-to-end task throughput per store, on this
 * machine. Run: `npm run build && node dist/bench/scale-probe.js [agents] [tasks]`
 * (set TASKGATE_PROBE_MONGODB_URI to include a MongoDB-wire store).
 */
import { credentials, Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentServiceClient, ConnectRequest, type ConnectResponse } from '../gen/taskgate/v1/agent.js';
import { Target } from '../gen/taskgate/v1/target.js';
import { TaskStatus, type WatchTaskResponse } from '../gen/taskgate/v1/task.js';
import { TaskgateAgent } from '../agent/agent.js';
import { Api } from '../cli/client.js';
import { TaskgateServer } from '../server/server.js';
import { openStore } from '../server/store/open-store.js';
import { CliProcess, freePort } from '../test/helpers/processes.js';

function procStat(pid: number): { rssBytes: number; cpuTicks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssBytes: rssKb * 1024, cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

async function startServer(extra: string[]): Promise<{ proc: CliProcess; api: Api; address: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-probe-'));
  chmodSync(dir, 0o711);
  const port = await freePort();
  const proc = new CliProcess(['server', '--listen', `127.0.0.1:${port}`, '--data-dir', dir, '--log-level', 'warn', ...extra]);
  await proc.until(/token written to/);
  const address = `127.0.0.1:${port}`;
  return { proc, api: new Api({ server: address, tokenFile: join(dir, 'admin.token') }), address, dir };
}

async function idleStreams(n: number): Promise<void> {
  const { proc, api, address, dir } = await startServer([]);
  const pid = proc.child.pid!;
  await new Promise((r) => setTimeout(r, 1000));
  const before = procStat(pid);
  const streams: ClientDuplexStream<ConnectRequest, ConnectResponse>[] = [];
  const clients: AgentServiceClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: `sim-${i}`, ttl: undefined });
    // One TCP connection per simulated agent, as real agents have.
    const client = new AgentServiceClient(address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    clients.push(client);
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    const call = client.connect(md);
    call.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      call.once('data', (res: ConnectResponse) => {
        // Idle as a real agent is: a heartbeat at once, then one every interval the Welcome asks for.
        const beat = (): boolean => call.write(ConnectRequest.fromPartial({ message: { $case: 'heartbeat', value: { tasks: [] } } }));
        const interval = res.message?.$case === 'welcome' ? res.message.value.heartbeatIntervalMs : 10_000;
        beat();
        timers.push(setInterval(beat, Math.max(interval, 100)));
        resolve();
      });
      call.write(ConnectRequest.fromPartial({ message: { $case: 'hello', value: { name: `sim-${i}`, version: 'probe', bootId: `b${i}` } } }));
    });
    streams.push(call);
  }
  const connectMs = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 2000));
  const during = procStat(pid);
  await new Promise((r) => setTimeout(r, 10_000));
  const after = procStat(pid);
  const hz = 100;
  console.log(
    JSON.stringify({
      probe: 'idle-streams',
      agents: n,
      connectSeconds: connectMs / 1000,
      serverRssBeforeMiB: +(before.rssBytes / 2 ** 20).toFixed(1),
      serverRssAfterMiB: +(during.rssBytes / 2 ** 20).toFixed(1),
      rssPerAgentKiB: +((during.rssBytes - before.rssBytes) / n / 1024).toFixed(1),
      idleCpuPercent: +((((after.cpuTicks - during.cpuTicks) / hz) / 10) * 100).toFixed(2),
    }),
  );
  for (const t of timers) clearInterval(t);
  for (const s of streams) s.cancel();
  for (const c of clients) c.close();
  api.close();
  await proc.crash();
  rmSync(dir, { recursive: true, force: true });
}

async function throughput(storeName: string, extra: string[], tasks: number, agentCount: number): Promise<void> {
  const { proc, api, address, dir } = await startServer(extra);
  const agents: TaskgateAgent[] = [];
  for (let i = 0; i < agentCount; i++) {
    await api.call(api.targets, api.targets.createTarget, { target: Target.fromPartial({ name: `t${i}`, agent: `a${i}` }) });
    const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: `a${i}`, ttl: undefined });
    const agent = new TaskgateAgent({ server: address, token, name: `a${i}`, workDir: join(dir, `agent-${i}`) });
    await new Promise<void>((resolve) => {
      agent.on('state', (s) => s === 'connected' && resolve());
      agent.start();
    });
    agents.push(agent);
  }
  let done = 0;
  const allDone = new Promise<void>((resolve) => {
    for (const a of agents) a.on('task-exit', () => ++done === tasks && resolve());
  });
  const cpuBefore = procStat(proc.child.pid!).cpuTicks;
  const t0 = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < tasks; i++) {
    const { task } = await api.call(api.tasks, api.tasks.createTask, { target: `t${i % agentCount}`, script: 'true', message: '', type: '', timeoutSeconds: 0 });
    ids.push(task!.id);
  }
  await allDone;
  // The last task is recorded as success once its exit is stored.
  const last = api.tasks.watchTask({ id: ids[ids.length - 1]! }, api.metadata);
  for await (const { task } of last as AsyncIterable<WatchTaskResponse>) if (task?.status === TaskStatus.TASK_STATUS_SUCCESS) break;
  last.cancel();
  const seconds = (Date.now() - t0) / 1000;
  const serverCpuMsPerTask = +((((procStat(proc.child.pid!).cpuTicks - cpuBefore) / 100) * 1000) / tasks).toFixed(2);
  console.log(
    JSON.stringify({ probe: 'throughput', store: storeName, tasks, agents: agentCount, seconds, tasksPerSecond: +(tasks / seconds).toFixed(1), serverCpuMsPerTask }),
  );
  await Promise.all(agents.map((a) => a.stop()));
  api.close();
  await proc.crash();
  rmSync(dir, { recursive: true, force: true });
}

/** Store calls per task, counted by wrapping the store of an in-process server. */
async function storeOpsPerTask(tasks: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-probe-'));
  chmodSync(dir, 0o711);
  const inner = await openStore({ dataDir: dir });
  const counts = new Map<string, number>();
  let counting = false;
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (counting) counts.set(String(key), (counts.get(String(key)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const server = await TaskgateServer.start({ store, listen: '127.0.0.1:0' });
  await server.ensureAdmin('probe@localhost');
  const api = new Api({ server: `127.0.0.1:${server.port}`, token: await server.issueUserToken('probe@localhost', 'probe') });
  await api.call(api.targets, api.targets.createTarget, { target: Target.fromPartial({ name: 't', agent: 'a' }) });
  const { token } = await api.call(api.agents, api.agents.createAgentToken, { name: 'a', ttl: undefined });
  const agent = new TaskgateAgent({ server: `127.0.0.1:${server.port}`, token, name: 'a', workDir: join(dir, 'agent') });
  await new Promise<void>((resolve) => {
    agent.on('state', (st) => st === 'connected' && resolve());
    agent.start();
  });
  let done = 0;
  const allDone = new Promise<void>((resolve) => agent.on('task-exit', () => ++done === tasks && resolve()));
  counting = true;
  for (let i = 0; i < tasks; i++) {
    await api.call(api.tasks, api.tasks.createTask, { target: 't', script: 'echo x', message: '', type: '', timeoutSeconds: 0 });
  }
  await allDone;
  await new Promise((r) => setTimeout(r, 500));
  counting = false;
  const perTask = Object.fromEntries([...counts].sort().map(([k, v]) => [k, +(v / tasks).toFixed(2)]));
  const total = [...counts.values()].reduce((a, b) => a + b, 0) / tasks;
  console.log(JSON.stringify({ probe: 'store-ops-per-task', tasks, totalPerTask: +total.toFixed(1), perTask }));
  await agent.stop();
  api.close();
  await server.stop();
  await inner.close();
  rmSync(dir, { recursive: true, force: true });
}

const agents = Number(process.argv[2] ?? 2000);
const tasks = Number(process.argv[3] ?? 500);
await storeOpsPerTask(200);
await idleStreams(agents);
await throughput('sqlite', [], tasks, 4);
const mongo = process.env.TASKGATE_PROBE_MONGODB_URI;
if (mongo) await throughput('mongodb (FerretDB)', ['--mongodb-uri', mongo], tasks, 4);
