/**
 * Who a task runs as. When the agent runs as root, every task gets an id of
 * its own from a range (`--task-uids`, default 61000-61999; no passwd
 * entries needed): it runs with uid = gid = that id, or, when its target
 * names a `run_as` user, with that user's uid and supplementary groups but
 * still the id as its gid. The gid is what makes a task's processes
 * recognisable and killable when it ends (agent/processes.ts), and what
 * keeps two tasks of one run-as user out of each other's directories and
 * /proc entries (the kernel's ptrace check compares gids too).
 *
 * An id is handed out only under a lock file in `lockDir` (shared by every
 * agent on the host), and only once no process carries it; it goes back to
 * this agent's pool of free ids after its processes are all killed. Locks
 * left by a dead agent process are taken over, killing what still runs
 * under them, at start and on demand. docs/isolation.md has the whole design.
 */
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../shared/logger.js';
import { Coalesced } from './coalesced.js';
import { onlyStdio } from './only-stdio.js';
import { SHELL_ENV } from './root-shell.js';
import { killAll, processesWithIds } from './processes.js';
import { UidKiller } from './uid-killer.js';

const run = promisify(execFile);

/** An inclusive range of ids, e.g. 61000-61999. */
export interface IdRange {
  first: number;
  last: number;
}

/** The default range of task ids (uid and gid). */
export const DEFAULT_TASK_IDS: IdRange = { first: 61000, last: 61999 };

/** Parses "FIRST-LAST" (both 1000..2^31-2, FIRST <= LAST); throws a message naming the rule. */
export function parseIdRange(text: string): IdRange {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1000 || last > 2 ** 31 - 2 || first > last) {
    throw new Error(`task id range "${text}" must be FIRST-LAST with 1000 <= FIRST <= LAST, e.g. 61000-61999`);
  }
  return { first, last };
}

/** The credentials one task runs with. */
export interface TaskIdentity {
  /** The id taken from the range: the task's gid (and uid unless run-as). */
  id: number;
  uid: number;
  gid: number;
  /** Supplementary groups (a run-as user's own; none otherwise). */
  groups: number[];
  /** The run-as user's name, or "" for a uid of its own. */
  user: string;
}

/** Why a task cannot get the identity it needs; the message is safe to show. */
export class IdentityError extends Error {}

/** A run-as user as the host knows it (NSS: passwd files, LDAP, ...). */
interface HostUser {
  uid: number;
  groups: number[];
}

/** How long a looked-up run-as user is trusted, in ms. */
const USER_CACHE_MS = 30_000;

/** Boot ids of the TaskUsers live in this process (several agents may share one process in tests and embeddings). */
const LIVE_OWNERS = new Set<string>();

/** Options of {@link TaskUsers}. */
export interface TaskUsersOptions {
  range: IdRange;
  /** Host-wide directory of id locks. */
  lockDir: string;
  /** Tells this agent's locks apart from other agents in the same process. */
  owner: string;
  /** util-linux setpriv and procps kill (see {@link findTools}). */
  tools: Tools;
  logger: Logger;
}

/** The host programs isolation uses. */
export interface Tools {
  setpriv: string;
  /** Starts what runs as a task with descriptors 0–2 only (agent/only-stdio.ts). */
  bash: string;
  /** Sends the kill as a task's uid from a process the task cannot signal (agent/uid-killer.ts). */
  perl: string;
  sh: string;
  rm: string;
  find: string;
  chmod: string;
}

/** Finds the programs isolation needs on `path`; throws a message naming the missing one. */
export function findTools(path: string, resolve: (program: string, path: string) => string | null): Tools {
  const tools = {} as Record<keyof Tools, string>;
  const where: Record<keyof Tools, string> = { setpriv: 'util-linux', bash: 'GNU bash', perl: 'perl', sh: 'a POSIX shell', rm: 'coreutils', find: 'findutils', chmod: 'coreutils' };
  for (const name of Object.keys(where) as Array<keyof Tools>) {
    const found = resolve(name, path);
    if (!found) throw new IdentityError(`running tasks as users of their own needs ${name} (${where[name]}) on the agent's PATH`);
    tools[name] = found;
  }
  return tools;
}

/** Hands out task identities from a range; see the file comment. */
export class TaskUsers {
  readonly #options: TaskUsersOptions;
  /** Ids this agent holds locked with no process alive under them. */
  readonly #free: number[] = [];
  readonly #inUse = new Set<number>();
  readonly #users = new Map<string, { at: number; user: HostUser | null }>();
  readonly #killer: UidKiller;
  #cursor: number;
  /** Closed: its ids may be taken over by another agent; nothing more is killed under them. */
  #closed = false;

  private constructor(options: TaskUsersOptions) {
    this.#options = options;
    this.#killer = new UidKiller(options.tools, options.range);
    this.#cursor = randomInt(options.range.first, options.range.last + 1);
  }

  /** Prepares the lock directory and takes over the ids of agent processes that died. */
  static async open(options: TaskUsersOptions): Promise<TaskUsers> {
    await mkdir(options.lockDir, { recursive: true, mode: 0o700 });
    LIVE_OWNERS.add(options.owner);
    const users = new TaskUsers(options);
    await users.#sweep();
    return users;
  }

  /** Ids held by running tasks. */
  get inUse(): number {
    return this.#inUse.size;
  }

  #lockPath(id: number): string {
    return join(this.#options.lockDir, String(id));
  }

  /** Kills what runs under ids locked by agents that no longer run, and frees their locks. */
  async #sweep(): Promise<void> {
    const { first, last } = this.#options.range;
    for (const name of await readdir(this.#options.lockDir)) {
      const id = Number(name);
      if (!Number.isInteger(id) || id < first || id > last) continue;
      if ((await this.#stale(id)) && (await this.#takeOver(id).catch(() => false))) this.#free.push(id);
    }
  }

  /** Whether the lock of `id` belongs to an agent that is gone. */
  async #stale(id: number): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.#lockPath(id), 'utf8');
    } catch {
      return false; // released meanwhile
    }
    const [pidText, owner] = text.trim().split(' ');
    const pid = Number(pidText);
    if (pid === process.pid) return owner !== this.#options.owner && !LIVE_OWNERS.has(owner ?? '');
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  /** Kills the processes of a stale id and moves its lock to this agent; false if they would not die. */
  async #takeOver(id: number): Promise<boolean> {
    const { tools, logger } = this.#options;
    // Its holder may have had the id as its uid (kill(-1) as the id reaches
    // what hops out of every scan) or been a run-as task (the gid is the id,
    // the uid unknown: scans). Both, in that order; the id is the range's,
    // and #lockNew never hands out one a process outside Taskgate uses.
    const killAsUid = (uid: number): Promise<void> => this.#killer.kill(uid);
    if (!(await killAll({ id, ownUid: true, killAsUid })) || !(await killAll({ id, ownUid: false, killAsUid }))) {
      logger.error({ id }, 'processes of a task id left by a dead agent do not die; the id stays locked');
      return false;
    }
    if (!(await cleanSharedTemp({ id, uid: id, gid: id, groups: [], user: '' }, tools, logger))) return false;
    await writeFile(this.#lockPath(id), `${process.pid} ${this.#options.owner}\n`, { mode: 0o600 });
    this.#options.logger.warn({ id }, 'took over a task id left by an agent that died; killed its processes');
    return true;
  }

  /** Locks a new id of the range for this agent (one no process carries), or null when none is left. */
  async #lockNew(): Promise<number | null> {
    const { first, last } = this.#options.range;
    const size = last - first + 1;
    for (let i = 0; i < size; i++) {
      const id = first + ((this.#cursor - first + i) % size);
      try {
        const handle = await open(this.#lockPath(id), 'wx', 0o600);
        await handle.writeFile(`${process.pid} ${this.#options.owner}\n`);
        await handle.close();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if ((await this.#stale(id)) && (await this.#takeOver(id))) {
          this.#cursor = id + 1;
          return id;
        }
        continue;
      }
      // Something outside Taskgate uses this id: leave it alone.
      if ((await processesWithIds(new Set([id]))).length > 0) {
        this.#options.logger.warn({ id }, 'a process outside Taskgate runs with this task id; skipping it');
        continue; // the lock stays, so no agent hands it out
      }
      this.#cursor = id + 1;
      return id;
    }
    return null;
  }

  /** The identity for a task; `runAs` is the target's run-as user or "". */
  async acquire(runAs: string): Promise<TaskIdentity> {
    let host: HostUser | null = null;
    if (runAs !== '') {
      host = await this.#lookUp(runAs);
      if (!host) throw new IdentityError(`run-as user "${runAs}" does not exist on this agent's host`);
      if (host.uid === 0) throw new IdentityError(`run-as user "${runAs}" is root; tasks never run as root`);
      const { first, last } = this.#options.range;
      if (host.uid >= first && host.uid <= last) throw new IdentityError(`run-as user "${runAs}" has uid ${host.uid}, inside the task id range`);
    }
    const id = this.#free.shift() ?? (await this.#lockNew());
    if (id === null) throw new IdentityError('every task id of the range is in use; widen --task-uids');
    this.#inUse.add(id);
    return host ? { id, uid: host.uid, gid: id, groups: host.groups.filter((g) => g !== 0), user: runAs } : { id, uid: id, gid: id, groups: [], user: '' };
  }

  /**
   * Kills every process still running under the task's id. Resolves false
   * when some would not die: then nothing of the task may be removed or its
   * id reused.
   */
  async killProcesses(identity: TaskIdentity): Promise<boolean> {
    // Only while this agent holds the id: once it closed, another may take the id over and hand it out.
    const dead = await killAll({ id: identity.id, ownUid: identity.user === '', killAsUid: (uid) => this.#killer.kill(uid), held: () => !this.#closed });
    if (!dead) this.#options.logger.error({ id: identity.id }, 'processes of a finished task do not die; its id stays locked');
    return dead;
  }

  /**
   * After {@link killProcesses}: removes what the task left in the shared
   * temp dirs and frees its id, unless `clean` is false or that removal
   * fails — then the id stays locked and is never handed out again.
   */
  async release(identity: TaskIdentity, clean: boolean): Promise<boolean> {
    const { tools, logger } = this.#options;
    this.#inUse.delete(identity.id);
    if (!clean) return false;
    if (!(await cleanSharedTemp(identity, tools, logger))) {
      logger.error({ id: identity.id }, 'what a finished task left in a shared temp dir could not be removed; its id stays locked');
      return false;
    }
    this.#free.push(identity.id);
    return true;
  }

  /** Frees every lock of this agent (after its tasks were released). */
  async close(): Promise<void> {
    this.#closed = true;
    LIVE_OWNERS.delete(this.#options.owner);
    this.#killer.close();
    const ids = this.#free.splice(0);
    await Promise.all(ids.map((id) => unlink(this.#lockPath(id)).catch(() => undefined)));
  }

  async #lookUp(name: string): Promise<HostUser | null> {
    const cached = this.#users.get(name);
    if (cached && Date.now() - cached.at < USER_CACHE_MS) return cached.user;
    let user: HostUser | null = null;
    try {
      const [uid, groups] = await Promise.all([run('id', ['-u', '--', name]), run('id', ['-G', '--', name])]);
      user = { uid: Number(uid.stdout.trim()), groups: groups.stdout.trim().split(/\s+/).map(Number) };
    } catch {
      user = null; // "id: 'x': no such user"
    }
    this.#users.set(name, { at: Date.now(), user });
    return user;
  }
}

/** Shared, world-writable places where a task could leave files for a later holder of its id. */
const SHARED_TEMP = ['/tmp', '/var/tmp', '/dev/shm'];

/**
 * Removes, as the task's own identity, the entries at the top of the shared
 * temporary directories that the task created (group = its id). Doing it as
 * the task and not as root means no race (a directory swapped for a symbolic
 * link) can make it remove anything the task could not remove itself.
 * Resolves false when something could not be removed.
 */
export async function cleanSharedTemp(identity: TaskIdentity, tools: Tools, logger: Logger): Promise<boolean> {
  const found = (await sharedTempListings.next()).filter(({ uid, gid }) => gid === identity.id || uid === identity.id).map(({ path }) => path);
  if (found.length === 0) return true;
  return removeAs(identity, tools, ['rm', '-rf', '--one-file-system', '--', ...found], logger);
}

/**
 * Every entry at the top of the shared temp dirs, with its owner and group:
 * synchronous lstat calls in slices, as agent/processes.ts reads /proc (the
 * promise API costs several times the CPU of the calls).
 */
async function listSharedTemp(): Promise<Array<{ path: string; uid: number; gid: number }>> {
  const out: Array<{ path: string; uid: number; gid: number }> = [];
  let since = 0;
  for (const dir of SHARED_TEMP) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (++since % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
      const path = join(dir, name);
      try {
        const stat = lstatSync(path);
        out.push({ path, uid: stat.uid, gid: stat.gid });
      } catch {
        // removed meanwhile
      }
    }
  }
  return out;
}

/** One listing shared by the tasks that end together; each gets one begun after it asked (agent/coalesced.ts). */
const sharedTempListings = new Coalesced(listSharedTemp);

/** Runs a removal (`rm` or `find -delete`) as the task's identity; resolves whether it succeeded. */
export async function removeAs(identity: TaskIdentity, tools: Tools, argv: string[], logger: Logger): Promise<boolean> {
  const [program, ...args] = argv;
  const file = tools[program as keyof Tools] ?? program!;
  const command = onlyStdio(tools.bash, runAsCommand(tools.setpriv, identity, file, args));
  try {
    await run(command.file, command.args, { timeout: 60_000, env: { ...SHELL_ENV } });
    return true;
  } catch (err) {
    logger.warn({ err: (err as Error).message, id: identity.id }, 'could not remove what a task left');
    return false;
  }
}

/**
 * The program and arguments that run `file args` under `identity`:
 * util-linux's setpriv sets the ids and groups and no_new_privs (so no
 * setuid program can raise the task's privileges again) and then execs.
 */
export function runAsCommand(setpriv: string, identity: TaskIdentity, file: string, args: string[]): { file: string; args: string[] } {
  const groups = identity.groups.length > 0 ? ['--groups', identity.groups.join(',')] : ['--clear-groups'];
  return {
    file: setpriv,
    args: ['--reuid', String(identity.uid), '--regid', String(identity.gid), ...groups, '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', file, ...args],
  };
}

/** Whether `identity` has `bit` (4 read, 2 write, 1 execute/search) on a file with these stats. */
function permits(identity: TaskIdentity, st: { uid: number; gid: number; mode: number }, bit: number): boolean {
  if (st.uid === identity.uid) return (st.mode & (bit << 6)) !== 0;
  if (st.gid === identity.gid || identity.groups.includes(st.gid)) return (st.mode & (bit << 3)) !== 0;
  return (st.mode & bit) !== 0;
}

/**
 * Whether a task running as `identity` may execute `path`: every directory
 * above it (and above what it links to) searchable, the file executable.
 * The agent resolves interpreters as root, and root may run what a task
 * cannot (/root/.pyenv/shims/python3, say).
 */
export function mayExecute(identity: TaskIdentity, path: string): boolean {
  try {
    const real = realpathSync(path);
    for (const p of new Set([path, real])) {
      for (let up = dirname(p); ; up = dirname(up)) {
        if (!permits(identity, statSync(up), 1)) return false;
        if (up === dirname(up)) break;
      }
    }
    return permits(identity, statSync(real), 1);
  } catch {
    return false;
  }
}
