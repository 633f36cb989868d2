/**
 * The processes of a task identity, found through /proc and killed.
 *
 * A task's processes are recognised by its group id: every task runs with a
 * gid of its own (docs/isolation.md), and with no capabilities and
 * no_new_privs a process can neither drop nor change it — `setsid`, double
 * forks, `nohup` and `trap '' TERM` keep it. Linux only.
 *
 * A scan alone cannot prove a task is gone: a chain of processes that fork
 * and exit in turn can stay ahead of it. So a task with a uid of its own is
 * killed with kill(-1, SIGKILL) sent *as that uid*, which the kernel applies
 * to every process of the uid at once (a fork cannot slip past it), and the
 * scan only confirms. A run-as task shares its uid with the user's other
 * processes, so it is stopped (SIGSTOP: a stopped process cannot fork) and
 * killed by scan, over several rounds that must all come up empty.
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { Coalesced } from './coalesced.js';

/** A live process carrying an id. */
export interface ProcessEntry {
  pid: number;
  /** Real, effective, saved and filesystem uids. */
  uids: number[];
  /** Real, effective, saved and filesystem gids. */
  gids: number[];
}

/** The ids in a /proc status line such as "Gid:\t61000\t61000\t61000\t61000". */
function ids(status: string, field: 'Uid' | 'Gid'): number[] {
  const at = status.indexOf(`\n${field}:`);
  if (at < 0) return [];
  const end = status.indexOf('\n', at + 1);
  return status
    .slice(at + field.length + 2, end < 0 ? undefined : end)
    .trim()
    .split(/\s+/)
    .map(Number);
}

/**
 * Whether a process is dead. A zombie is, unless it has threads left: a
 * main thread that called pthread_exit leaves the process "Z" while its other
 * threads run on.
 */
function dead(status: string): boolean {
  if (!/\nState:\s+[ZX]/.test(status)) return false;
  const threads = /\nThreads:\s+(\d+)/.exec(status);
  return !threads || Number(threads[1]) <= 1;
}

/** Entries read between two yields to the event loop (see {@link scanProcesses}). */
const SCAN_SLICE = 256;

/** The whole of a small file, read synchronously into `buffer` (grown as needed). */
function readSmall(path: string, buffer: { bytes: Buffer }): string {
  const fd = openSync(path, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === buffer.bytes.length) buffer.bytes = Buffer.concat([buffer.bytes, Buffer.alloc(buffer.bytes.length)]);
      const n = readSync(fd, buffer.bytes, length, buffer.bytes.length - length, null);
      if (n === 0) return buffer.bytes.toString('latin1', 0, length);
      length += n;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Every live process on the host, read from /proc. Synchronous reads in
 * slices: a /proc status file is in memory, and reading one through the
 * promise API costs ten times the CPU of the read itself (measured: 117
 * processes, 9-13 ms of CPU async, 1-1.3 ms sync); the loop yields between
 * slices, so a host with thousands of processes does not stall the agent.
 */
async function scanProcesses(): Promise<ProcessEntry[]> {
  const names = readdirSync('/proc');
  const out: ProcessEntry[] = [];
  const buffer = { bytes: Buffer.allocUnsafe(8192) };
  for (let i = 0; i < names.length; i++) {
    if (i > 0 && i % SCAN_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    const name = names[i]!;
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    let status: string;
    try {
      status = readSmall(`/proc/${name}/status`, buffer);
    } catch {
      continue; // exited meanwhile
    }
    if (!dead(status)) out.push({ pid: Number(name), uids: ids(status, 'Uid'), gids: ids(status, 'Gid') });
  }
  return out;
}

/**
 * One scan shared by every caller that asks while it has not started: tasks
 * ending together (thirty at once on a busy agent) read /proc once, not
 * thirty times. Each caller still gets a scan that began after it asked.
 */
const scans = new Coalesced(scanProcesses);

/** Every live process on the host whose uids or gids include one of `wanted`. */
export async function processesWithIds(wanted: ReadonlySet<number>): Promise<ProcessEntry[]> {
  const all = await scans.next();
  return all.filter(({ uids, gids }) => uids.some((id) => wanted.has(id)) || gids.some((id) => wanted.has(id)));
}

/** How long {@link killAll} keeps trying, in ms. */
const KILL_DEADLINE_MS = 5000;
/** Scans in a row that must find nothing before a run-as task counts as gone. */
const EMPTY_SCANS = 3;

/** What {@link killAll} needs to know about the identity. */
export interface KillTarget {
  /** The task's own id: its gid, and its uid unless it runs as a run-as user. */
  id: number;
  /** Whether the uid is the task's own (then kill(-1) as that uid reaches all of it). */
  ownUid: boolean;
  /** Sends kill(-1, SIGKILL) as the uid (agent/uid-killer.ts); rejects when it could not. */
  killAsUid: (uid: number) => Promise<void>;
  /**
   * Whether the id is still this caller's to kill under. Once it is not (the
   * agent closed, so another agent on the host may take the id over and
   * hand it to a new task), killAll stops at once and answers false.
   */
  held?: () => boolean;
}

/**
 * Kills every process whose uids or gids include the task's id until none
 * is left. Returns false when some still lived after {@link KILL_DEADLINE_MS}
 * (e.g. stuck in uninterruptible sleep): the id must not be reused then.
 */
export async function killAll(target: KillTarget): Promise<boolean> {
  const wanted = new Set([target.id]);
  const deadline = Date.now() + KILL_DEADLINE_MS;
  let empty = 0;
  for (let round = 0; ; round++) {
    if (target.held && !target.held()) return false;
    // kill(-1) as the uid reaches every process of it at once; one empty
    // scan after it is proof. When it could not be sent (the sender missed
    // its deadline on a loaded host), this round proves nothing: what the
    // scan finds is stopped and killed as root, and for a uid of its own
    // empty scans are no proof at all (a chain that forks a new pid every
    // few hundred microseconds stays out of every scan): it tries again
    // until the deadline, then the id stays locked. For a run-as task
    // (whose uid is shared) the scans are all there is.
    let sentAsUid = false;
    if (target.ownUid) {
      try {
        await target.killAsUid(target.id);
        sentAsUid = true;
      } catch {
        // not sent: by scan alone, as for a run-as task
      }
    }
    const found = await processesWithIds(wanted);
    if (found.length === 0) {
      empty += 1;
      if (sentAsUid || (!target.ownUid && empty >= EMPTY_SCANS)) return true;
      if (Date.now() > deadline) return false;
      if (target.ownUid) await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    empty = 0;
    if (Date.now() > deadline || (target.held && !target.held())) return false;
    // Stop them all first (a stopped process cannot fork), then kill them.
    for (const signal of ['SIGSTOP', 'SIGKILL'] as const) {
      for (const { pid } of found) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone already
        }
      }
    }
    // Give the kernel a moment to tear them down before looking again.
    await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** round, 50)));
  }
}
