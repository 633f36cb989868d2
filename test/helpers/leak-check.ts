/**
 * Mocha root hook plugin (.mocharc.json "require"): every top-level suite —
 * one per test file and store kind — must leave the process as it found it.
 * After the suite's own `after` hooks, it compares with what was there
 * before the suite began:
 *
 * - handles that keep the event loop alive (process._getActiveHandles():
 *   sockets, servers, child processes, workers, pipes), by identity;
 * - ref'd timers (process.getActiveResourcesInfo() "Timeout"), by count;
 * - descendant processes of this process (read from /proc), by pid and
 *   start time — which catches a pty or child that an unref() hid from the
 *   handle list, and a zombie nobody reaped.
 *
 * Anything new fails the suite's "after all" hook, naming what was left.
 * Closing is often asynchronous (a socket's 'close' comes a tick later, a
 * killed child exits a moment later), so the check waits until the
 * leftovers are gone, for up to {@link GRACE_MS}; a leak is what is still
 * there then. It never fails because the machine is slow, only because
 * something stays open for seconds after its suite ended.
 *
 * The shared MongoDB-wire server (test/helpers/mongo.ts: FerretDB and the
 * PostgreSQL under it) is started by the first suite that needs it and kept
 * for the whole run on purpose; its processes, their pipes and their
 * children (PostgreSQL's backends come and go with FerretDB's connections)
 * are not leaks. This is the MongoDB driver's leak_checker idea,
 * at file granularity, for everything a suite can open.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Server, Socket } from 'node:net';
import { sharedFixtures } from './mongo.js';

/** How long leftovers may take to go away after a suite's `after` hooks, in ms. */
export const GRACE_MS = 5000;
/** How often the check looks again while waiting, in ms. */
const POLL_MS = 20;
/** How long nothing new must be seen before a suite counts as clean, in ms. */
const QUIET_MS = 300;

/** A process below this one. */
interface Descendant {
  pid: number;
  /** Start time in clock ticks since boot: tells a reused pid apart. */
  start: string;
  state: string;
  command: string;
}

/** What a suite could leave behind. */
interface Snapshot {
  handles: Set<object>;
  timers: number;
  processes: Map<string, Descendant>;
}

/** Node's list of handles that keep the loop alive; undocumented but stable since 0.x. */
function activeHandles(): object[] {
  return (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles();
}

/** Every process whose chain of parents leads to this one, but for the shared fixtures' subtrees. */
function descendants(): Map<string, Descendant> {
  const spared = new Set(sharedFixtures().map((c) => c.pid));
  const parent = new Map<number, number>();
  const info = new Map<number, Omit<Descendant, 'command'>>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    parent.set(pid, Number(fields[1]));
    info.set(pid, { pid, state: fields[0] ?? '?', start: fields[19] ?? '' });
  }
  const out = new Map<string, Descendant>();
  for (const [pid, base] of info) {
    if (spared.has(pid)) continue;
    let p = parent.get(pid);
    for (let hops = 0; p !== undefined && p > 1 && p !== process.pid && !spared.has(p) && hops < 64; hops++) p = parent.get(p);
    if (p !== process.pid) continue;
    let command = '';
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      // exited meanwhile
    }
    out.set(`${pid}@${base.start}`, { ...base, command });
  }
  return out;
}

function snapshot(): Snapshot {
  return {
    handles: new Set(activeHandles()),
    timers: process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length,
    processes: descendants(),
  };
}

/** The run-long MongoDB-wire test server (and its PostgreSQL) and their stdio: kept on purpose. */
function isSharedFixture(child: ChildProcess): boolean {
  return sharedFixtures().includes(child);
}

/** Handles that belong to a shared fixture (the child and its pipes). */
function fixtureHandles(handles: Iterable<object>): Set<object> {
  const out = new Set<object>();
  for (const h of handles) {
    if (h.constructor?.name !== 'ChildProcess' || !isSharedFixture(h as ChildProcess)) continue;
    const child = h as ChildProcess;
    out.add(child);
    for (const stream of child.stdio) if (stream) out.add(stream);
  }
  return out;
}

function describeHandle(h: object): string {
  if (h instanceof Socket) {
    if (h.remotePort !== undefined) return `socket ${h.localAddress}:${h.localPort} -> ${h.remoteAddress}:${h.remotePort}`;
    const fd = (h as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return `pipe or socket (fd ${fd ?? '?'})`;
  }
  if (h instanceof Server) return `server listening on ${JSON.stringify(h.address())}`;
  if (h.constructor?.name === 'ChildProcess') {
    const child = h as ChildProcess;
    return `child process ${child.pid}: ${child.spawnargs.join(' ')}`;
  }
  return h.constructor?.name ?? typeof h;
}

/** What is in `now` and not in `before`, described; empty when nothing leaked. */
function leftovers(before: Snapshot, now: Snapshot): string[] {
  const out: string[] = [];
  const fixtures = fixtureHandles(now.handles);
  for (const h of now.handles) if (!before.handles.has(h) && !fixtures.has(h)) out.push(describeHandle(h));
  if (now.timers > before.timers) out.push(`${now.timers - before.timers} more ref'd timer(s) (setTimeout/setInterval) than before`);
  for (const [key, p] of now.processes) {
    if (before.processes.has(key)) continue;
    out.push(`process ${p.pid} (state ${p.state}${p.state === 'Z' ? ', a zombie nobody reaped' : ''}): ${p.command || '?'}`);
  }
  return out;
}

let baseline: Snapshot | null = null;

/**
 * Waits until nothing new since `before` is seen for QUIET_MS in a row, for
 * up to GRACE_MS; returns what is still there (empty when it settled). One
 * clean look is not enough: a leaked client that keeps reconnecting is
 * between a ref'd backoff timer and a socket most of the time, not always.
 */
async function settle(before: Snapshot): Promise<string[]> {
  const until = Date.now() + GRACE_MS;
  let cleanSince: number | null = null;
  for (;;) {
    const left = leftovers(before, snapshot());
    const now = Date.now();
    if (left.length > 0) {
      // Past the grace, and not clean now: that is the leak.
      if (now >= until) return left;
      cleanSince = null;
    } else {
      cleanSince ??= now;
      if (now - cleanSince >= QUIET_MS) return [];
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Mocha arms a hook's timeout timer once the hook has returned its promise;
 * every snapshot is taken after that, so each counts that one timer alike.
 */
function hookTimerSet(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The check appended to a top-level suite's `after` hooks. */
function checkAfter(suite: Mocha.Suite): (this: Mocha.Context) => Promise<void> {
  return async function (this: Mocha.Context) {
    this.timeout(GRACE_MS + 30_000);
    await hookTimerSet();
    const before = baseline ?? snapshot();
    const left = await settle(before);
    // The next suite is judged from here, so one leak fails one suite.
    baseline = snapshot();
    if (left.length > 0) {
      throw new Error(`"${suite.title}" left ${left.length} thing(s) open ${GRACE_MS} ms after its last hook:\n  - ${left.join('\n  - ')}`);
    }
  };
}

/** Root hooks: the baseline before the first suite, and a check after each top-level suite. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(GRACE_MS + 30_000);
    const root = this.test?.parent;
    if (!root) return;
    for (const suite of root.suites) suite.afterAll(`leak check: "${suite.title}" closed what it opened`, checkAfter(suite));
    await hookTimerSet();
    baseline = snapshot();
  },
};
