/**
 * The processes of a task identity, found and killed through /proc.
 *
 * A task's processes are recognised by its group id: every task runs with a
 * gid of its own (docs/isolation.md), and with no capabilities and
 * no_new_privs a process can neither drop nor change it — `setsid`, double
 * forks, `nohup` and `trap '' TERM` keep it. Linux only.
 */
import { readdir, readFile } from 'node:fs/promises';

/** A live process carrying a gid. */
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

/** Every live (not zombie) process on the host whose uids or gids include one of `wanted`. */
export async function processesWithIds(wanted: ReadonlySet<number>): Promise<ProcessEntry[]> {
  const names = await readdir('/proc');
  const out: ProcessEntry[] = [];
  await Promise.all(
    names.map(async (name) => {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) return;
      let status: string;
      try {
        status = await readFile(`/proc/${name}/status`, 'latin1');
      } catch {
        return; // exited meanwhile
      }
      // Zombies are dead already; their parent reaps them.
      if (/\nState:\s+[ZX]/.test(status)) return;
      const uids = ids(status, 'Uid');
      const gids = ids(status, 'Gid');
      if (uids.some((id) => wanted.has(id)) || gids.some((id) => wanted.has(id))) out.push({ pid: Number(name), uids, gids });
    }),
  );
  return out;
}

/** How long {@link killAll} keeps trying, in ms. */
const KILL_DEADLINE_MS = 5000;

/**
 * SIGKILLs every process whose uids or gids include `id` until a scan finds
 * none. Returns false when some still lived after {@link KILL_DEADLINE_MS}
 * (e.g. stuck in uninterruptible sleep): the id must not be reused then.
 */
export async function killAll(id: number): Promise<boolean> {
  const wanted = new Set([id]);
  const deadline = Date.now() + KILL_DEADLINE_MS;
  for (let round = 0; ; round++) {
    const found = await processesWithIds(wanted);
    if (found.length === 0) return true;
    if (Date.now() > deadline) return false;
    for (const { pid } of found) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // Give the kernel a moment to tear them down before looking again.
    await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** round, 50)));
  }
}
