/**
 * 6. The cost as history grows (issue 18): with N finished tasks and their
 * output already stored, CreateTask/s, ready → spawned on a real agent,
 * ListTasks' first page (an admin's, and a member's who sees a third of the
 * tasks) and GetTask, each beside the same figure on the empty store in the
 * same run (ratio = grown / empty; the goal: within 1.2×, i.e. ≤ 1.2 for
 * latencies and ≥ 0.83 for rates). The history is seeded through the store
 * classes before the server starts on them (bench/growth-history.ts); each
 * size adds to the last, so one store grows through the sizes, and the
 * tasks the measurements themselves created are finished before it grows.
 */
import { Metadata, type ClientReadableStream } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskStatus, type Task, type TaskServiceClient, type WatchTaskResponse } from '../gen/taskgate/v1/task.js';
import { User } from '../gen/taskgate/v1/user.js';
import { openStore } from '../server/store/open-store.js';
import type { Store } from '../server/store/store.js';
import { historyTargets, MEMBER, seedHistory } from './growth-history.js';
import { closedLoop, epochMs, figure, nowMs, percentiles, ServerProcess, type Figure } from './lib.js';
import type { StoreChoice } from './suites.js';

/** How much the growth benchmark does. */
export interface GrowthSizes {
  /** Stored tasks to measure at on the embedded store, ascending; 0 is the baseline and must come first. */
  embedded: number[];
  /** The same on MongoDB. */
  mongodb: number[];
  /** Sequential ready → spawned tasks at each size (after 5 untimed), and the most seconds they may take. */
  spawnTasks: number;
  spawnSeconds: number;
  /** Seconds of each closed loop: ListTasks (admin, member), GetTask. */
  readSeconds: number;
  /** Seconds of concurrent CreateTask, and its clients (each on its own connection). */
  createSeconds: number;
  createClients: number;
  /** Measure the empty embedded store once more after the largest size: how far the machine's noise alone moves a figure. */
  recheckEmpty: boolean;
}

/** What one size measured. */
interface Point {
  createPerSecond: number;
  createP99: number;
  spawnP50: number;
  spawnP99: number;
  listAdminP50: number;
  listAdminP99: number;
  listMemberP50: number;
  listMemberP99: number;
  getP50: number;
  scrapeMs: number;
}

/** Each figure of a point: its name, unit and which way is better. */
const METRICS: { key: keyof Point; name: string; unit: string; better: 'higher' | 'lower' }[] = [
  { key: 'createPerSecond', name: 'CreateTask/s', unit: 'calls/s', better: 'higher' },
  { key: 'createP99', name: 'CreateTask p99', unit: 'ms', better: 'lower' },
  { key: 'spawnP50', name: 'ready → spawned p50', unit: 'ms', better: 'lower' },
  { key: 'spawnP99', name: 'ready → spawned p99', unit: 'ms', better: 'lower' },
  { key: 'listAdminP50', name: 'ListTasks first page p50, admin', unit: 'ms', better: 'lower' },
  { key: 'listAdminP99', name: 'ListTasks first page p99, admin', unit: 'ms', better: 'lower' },
  { key: 'listMemberP50', name: 'ListTasks first page p50, member (sees 1/3)', unit: 'ms', better: 'lower' },
  { key: 'listMemberP99', name: 'ListTasks first page p99, member (sees 1/3)', unit: 'ms', better: 'lower' },
  { key: 'getP50', name: 'GetTask p50', unit: 'ms', better: 'lower' },
  { key: 'scrapeMs', name: 'metrics scrape (counts tasks by status)', unit: 'ms', better: 'lower' },
];

/** The target the timed tasks run on, and the one CreateTask fills (no agent: its tasks wait, ready). */
const RUN_TARGET = 'growth-run';
const QUEUE_TARGET = 'growth-queue';

/** "1M", "100k", "0". */
export function countLabel(n: number): string {
  if (n >= 1e6 && n % 1e6 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 1e3 === 0) return `${n / 1e3}k`;
  return String(n);
}

function unary<Req>(call: (req: Req, md: Metadata, cb: (err: Error | null) => void) => unknown, req: Req, md: Metadata): Promise<void> {
  return new Promise((resolve, reject) => call(req, md, (err) => (err ? reject(err) : resolve())));
}

/** Resolves with the task once it is terminal. */
function untilDone(server: ServerProcess, id: string): Promise<Task> {
  const call = server.api.tasks.watchTask({ id }, server.api.metadata) as ClientReadableStream<WatchTaskResponse>;
  return new Promise((resolve, reject) => {
    call.on('data', ({ task }: WatchTaskResponse) => {
      if (!task || ![TaskStatus.TASK_STATUS_SUCCESS, TaskStatus.TASK_STATUS_FAILURE, TaskStatus.TASK_STATUS_KILLED].includes(task.status)) return;
      resolve(task);
      call.cancel();
    });
    call.on('error', (err: Error & { code?: number }) => {
      if (err.code !== 1) reject(err);
    });
  });
}

/** The caller's bearer token as call metadata. */
function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Sequential tasks of `echo x` through one agent: ready (the store's timestamp) → spawned on the agent, in ms. */
async function spawnLatencies(server: ServerProcess, n: number, budgetMs: number): Promise<{ samples: number[]; ids: string[] }> {
  const agent = await server.agent('growth-agent', { isolate: false });
  const spawnedAt = new Map<string, number>();
  agent.on('task-start', (id: string) => spawnedAt.set(id, epochMs()));
  const samples: number[] = [];
  const ids: string[] = [];
  const end = nowMs() + budgetMs;
  try {
    // 5 untimed first: connections, statements and JIT warmed up.
    for (let i = 0; i < n + 5 && (i < 6 || nowMs() < end); i++) {
      const { task } = await server.api.call(server.api.tasks, server.api.tasks.createTask, { target: RUN_TARGET, script: 'echo x', message: '', type: '', timeoutSeconds: 0 });
      const done = await untilDone(server, task!.id);
      if (done.status !== TaskStatus.TASK_STATUS_SUCCESS) throw new Error(`task ${done.id} ended ${TaskStatus[done.status]}`);
      ids.push(done.id);
      const ready = done.events.find((e) => e.to === TaskStatus.TASK_STATUS_READY)?.time;
      if (i >= 5 && ready) samples.push(spawnedAt.get(done.id)! - ready.getTime());
    }
  } finally {
    await agent.stop();
  }
  return { samples, ids };
}

/** Calls `op` from one client, one after another, for `ms` (after one untimed); its latencies. */
async function sequential(ms: number, op: () => Promise<void>): Promise<number[]> {
  await op();
  return (await closedLoop([null], ms, op)).latencies;
}

/** Everything measured at one size, on a server already on the grown store. */
async function measure(server: ServerProcess, sizes: GrowthSizes, memberToken: string, historyIds: readonly string[]): Promise<{ point: Point; created: string[] }> {
  const spawn = await spawnLatencies(server, sizes.spawnTasks, sizes.spawnSeconds * 1000);
  const { client } = server.taskClient();
  const asAdmin = server.api.metadata;
  const asMember = bearer(memberToken);
  const list = { statuses: [], target: '', pageSize: 50, pageToken: '', awaitingMyReview: false, createdByMe: false };
  const listTasks = client.listTasks.bind(client) as TaskServiceClient['listTasks'];
  const admin = percentiles(await sequential(sizes.readSeconds * 1000, () => unary(listTasks, list, asAdmin)));
  const member = percentiles(await sequential(sizes.readSeconds * 1000, () => unary(listTasks, list, asMember)));
  // Stored tasks at random (history, else the ones just run): reads of cold rows as a busy console makes.
  const known = historyIds.length > 0 ? historyIds : spawn.ids;
  const getTask = client.getTask.bind(client) as TaskServiceClient['getTask'];
  const gets = percentiles(await sequential(sizes.readSeconds * 1000, () => unary(getTask, { id: known[Math.floor(Math.random() * known.length)]! }, asAdmin)));
  client.close();
  const scrapes: number[] = [];
  for (let i = 0; i < 2; i++) {
    const t0 = nowMs();
    await (await fetch(server.metricsUrl, { signal: AbortSignal.timeout(120_000) })).text();
    scrapes.push(nowMs() - t0);
  }
  const conns = Array.from({ length: sizes.createClients }, () => server.taskClient());
  const created: string[] = [];
  const create = (c: (typeof conns)[number]): Promise<void> =>
    new Promise((resolve, reject) =>
      c.client.createTask({ target: QUEUE_TARGET, script: 'echo hello', message: 'growth', type: '', timeoutSeconds: 0, requestId: randomUUID() }, c.metadata, (err, res) => {
        if (err) return reject(err);
        created.push(res.task!.id);
        resolve();
      }),
    );
  await Promise.all(conns.map(create)); // warm-up
  const creates = await closedLoop(conns, sizes.createSeconds * 1000, create);
  for (const c of conns) c.client.close();
  const spawns = percentiles(spawn.samples);
  const point: Point = {
    createPerSecond: creates.perSecond,
    createP99: percentiles(creates.latencies).p99,
    spawnP50: spawns.p50,
    spawnP99: spawns.p99,
    listAdminP50: admin.p50,
    listAdminP99: admin.p99,
    listMemberP50: member.p50,
    listMemberP99: member.p99,
    getP50: gets.p50,
    scrapeMs: percentiles(scrapes).p50,
  };
  return { point, created };
}

/**
 * Finishes (as killed) the tasks CreateTask queued at the last size: they
 * would stay ready for good, and the next size would measure a server
 * sweeping them. The server must be stopped.
 */
async function settle(store: Store, ids: readonly string[]): Promise<number> {
  let settled = 0;
  const time = new Date();
  for (const id of ids) {
    const moved = await store.transition({ id, from: ['created', 'ready'], to: 'killed', patch: { finished: time }, actor: 'system', reason: 'growth benchmark: measured, then finished before the store grows', time });
    if (moved) settled++;
  }
  return settled;
}

/** {@link ServerProcess.startAgain}, trying again when a port it picked was taken before it could listen. */
async function startAgain(old: ServerProcess): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ServerProcess.startAgain(old);
    } catch (err) {
      if (attempt === 3 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}

/** One store through its sizes: seeds, starts a server, measures. Returns what each size measured, and the seed times as figures. */
async function growOne(store: StoreChoice, counts: number[], sizes: GrowthSizes, log: (line: string) => void): Promise<{ points: Map<number, Point>; seeds: Figure[] }> {
  const uri = await store.uri();
  const dir = mkdtempSync(join(tmpdir(), 'taskgate-bench-growth-'));
  const points = new Map<number, Point>();
  const seeds: Figure[] = [];
  // The history ends a little before now, so the tasks measured are the newest.
  const t0 = Date.now() - (Math.max(...counts) + 10) * 1000;
  const options = uri ? { mongodbUri: uri } : { dataDir: dir };
  let server: ServerProcess | null = null;
  try {
    let s = await openStore(options);
    const targets = historyTargets(new Date());
    for (const t of targets) await s.insertTarget(t);
    await s.close();
    const uids = new Map(targets.map((t) => [t.name, t.uid!]));
    let memberToken = '';
    let seeded = 0;
    let queued: string[] = [];
    const historyIds: string[] = [];
    for (const n of counts) {
      s = await openStore(options);
      const settled = await settle(s, queued);
      await s.close();
      const seed = await seedHistory(uri ? { mongodbUri: uri } : { dataDir: dir }, seeded, n - seeded, t0, uids, () => openStore(options));
      historyIds.push(...seed.ids);
      if (n > seeded) {
        const rate = Math.round((n - seeded) / seed.seconds);
        log(`growth: seeded ${n - seeded} tasks (${countLabel(seeded)} → ${countLabel(n)}) on ${store.name} in ${seed.seconds.toFixed(1)} s, ${rate} tasks/s (with output and audit events); ${settled} measured tasks finished first`);
        seeds.push(figure('growth', `seed time, ${countLabel(seeded)} → ${countLabel(n)} stored tasks (${store.name})`, seed.seconds, 's', 'lower', null, { stored: n, store: store.name, tasksPerSecond: rate }));
      }
      seeded = n;
      // The first start writes the admin token; later ones find it (and the users) in the store.
      server = server ? await startAgain(server) : await ServerProcess.start(uri, [], undefined, dir);
      if (!memberToken) {
        await server.target(RUN_TARGET, 'growth-agent');
        await server.target(QUEUE_TARGET, 'nobody');
        await server.api.call(server.api.users, server.api.users.createUser, { user: User.fromPartial({ email: MEMBER.email, name: 'Member', groups: MEMBER.groups }) });
        memberToken = (await server.api.call(server.api.users, server.api.users.createToken, { user: MEMBER.email, name: 'growth', ttl: undefined })).secret;
      }
      log(`growth: measuring with ${countLabel(n)} stored tasks on ${store.name}`);
      const { point, created } = await measure(server, sizes, memberToken, historyIds);
      queued = created;
      await server.stop();
      log(`growth: ${countLabel(n)} on ${store.name}: ${METRICS.map((m) => `${m.name} ${point[m.key].toFixed(1)}`).join(', ')}`);
      points.set(n, point);
    }
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { points, seeds };
}

/** 6. Growth: each store through its sizes (see the file comment). */
export async function growth(stores: StoreChoice[], sizes: GrowthSizes, log: (line: string) => void): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const store of stores) {
    const counts = store.name === 'sqlite' ? sizes.embedded : sizes.mongodb;
    if (counts.length < 2) continue;
    if (counts[0] !== 0) throw new Error('growth sizes must start at 0 (the baseline)');
    const { points, seeds } = await growOne(store, counts, sizes, log);
    const empty = points.get(0)!;
    const vsEmpty = (point: Point, label: string, stored: number | string): Figure[] =>
      METRICS.map((m) => figure('growth', `${m.name}, ${label} (${store.name})`, point[m.key], m.unit, m.better, { name: `${m.name}, empty store`, value: empty[m.key] }, { stored, store: store.name, metric: m.name }));
    for (const [n, point] of points) if (n > 0) figures.push(...vsEmpty(point, `${countLabel(n)} stored tasks`, n));
    if (sizes.recheckEmpty && store.name === 'sqlite') {
      log('growth: the empty embedded store once more (how far noise alone moves a figure)');
      const again = (await growOne(store, [0], sizes, log)).points.get(0)!;
      figures.push(...vsEmpty(again, 'empty store again, at the end', 'recheck'));
    }
    figures.push(...seeds);
  }
  return figures;
}
