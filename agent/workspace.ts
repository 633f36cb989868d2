/**
 * Task workspaces on the agent host. Each agent process keeps its tasks'
 * directories under `WORK_DIR/runs-INSTANCE/TASK_ID`; the work dir and the
 * runs dir are searchable but not listable by others (0711), and each task's
 * directory — its HOME, cwd, script, secret files and TMPDIR — is mode 0700
 * and belongs to the task's uid (or, for a run-as user, to root with the
 * task's own gid, 0770), so no other task can enter it. Nothing of the
 * agent's own lives in the work dir (its token file and TLS key are
 * elsewhere). Runs dirs left by agent processes that died are removed when
 * the next agent starts on the same work dir.
 *
 * Whatever root removes as a whole tree (a dead agent's runs dir, this
 * agent's own at close) may hold directories a task opened to other uids,
 * where a surviving process can swap a subdirectory for a symbolic link in
 * mid-walk. Node's recursive `rm` walks by path and follows such a swap
 * (measured: half of 2,000 root-owned files deleted elsewhere), so when
 * isolating these trees go to GNU `rm -rf --one-file-system`, whose fts walk
 * opens each directory with O_NOFOLLOW relative to its parent's descriptor
 * and checks it is the one it listed; a swapped entry fails, nothing outside
 * is touched (test/integration/isolation-attacks.test.ts).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm as nodeRm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../shared/logger.js';
import { RootShell } from './root-shell.js';
import type { IdRange, TaskIdentity, Tools } from './task-users.js';

/** A work dir the agent cannot use safely; the message says what to do. */
export class WorkDirError extends Error {}

/** Paths of one task's workspace. */
export interface TaskPaths {
  /** The task's directory: HOME and cwd. */
  dir: string;
  /** Its private TMPDIR. */
  tmp: string;
  script: string;
}

const run = promisify(execFile);

/**
 * Removes the tree at `path`: with `rm` (GNU coreutils, when isolating)
 * through its race-safe walk (see the file comment), else with Node's.
 */
async function removeTree(path: string, gnuRm: string | null): Promise<void> {
  if (gnuRm === null) {
    await nodeRm(path, { recursive: true, force: true });
    return;
  }
  await run(gnuRm, ['-rf', '--one-file-system', '--', path], { timeout: 120_000 });
}

/**
 * The removal shell's loop (agent/root-shell.ts): $1 setpriv, $2 chmod, $3
 * find, $4 the runs dir, $5-$6 the id range. Each line is "UID GID GROUPS
 * TASK_ID" (GROUPS "-" for none, else comma-separated); it empties
 * RUNS/TASK_ID as that identity, never as root: uid 0, a gid outside the
 * range or a task id with anything but [A-Za-z0-9_-] is refused. Answers
 * "ok", "refused" or "failed RC".
 */
export const REMOVE_LOOP = `
setpriv=$1 chmod=$2 find=$3 runs=$4 first=$5 last=$6
as_task() {
  if [ "$groups" = - ]; then
    "$setpriv" --reuid "$uid" --regid "$gid" --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
  else
    "$setpriv" --reuid "$uid" --regid "$gid" --groups "$groups" --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
  fi
}
while IFS=' ' read -r uid gid groups id; do
  case $uid in ''|*[!0-9]*) echo refused; continue;; esac
  case $gid in ''|*[!0-9]*) echo refused; continue;; esac
  case $groups in -) ;; ''|*[!0-9,]*) echo refused; continue;; esac
  case $id in ''|*[!A-Za-z0-9_-]*) echo refused; continue;; esac
  if [ "\${#uid}" -gt 10 ] || [ "\${#gid}" -gt 10 ] || [ "$uid" -eq 0 ] || [ "$gid" -lt "$first" ] || [ "$gid" -gt "$last" ]; then echo refused; continue; fi
  if as_task "$find" "$runs/$id" -mindepth 1 -delete </dev/null >/dev/null 2>&1; then echo ok; continue; fi
  # The task made some of its own files unwritable; it owns them, so it may undo that, and try again.
  as_task "$chmod" -R u+rwX -- "$runs/$id" </dev/null >/dev/null 2>&1
  if as_task "$find" "$runs/$id" -mindepth 1 -delete </dev/null >/dev/null 2>&1; then echo ok; else echo "failed $?"; fi
done
`;

/** What a task id may be: it names a directory inside the runs dir. */
const TASK_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Whether `id` can name a task's directory (the removal shell holds ids to the same rule). */
export function isTaskId(id: string): boolean {
  return TASK_ID.test(id);
}

/** How long emptying one workspace may take, in ms, before the removal shell is restarted. */
export const REMOVE_ANSWER_MS = 60_000;

/** What isolating takes: the host programs and the task id range. */
export interface WorkspaceIsolation {
  tools: Tools;
  range: IdRange;
}

/** Live agents of this process, by instance id (several may share a process). */
const LIVE_INSTANCES = new Set<string>();

/** Whether the agent that wrote `owner` ("PID INSTANCE") still runs. */
function ownerAlive(owner: string): boolean {
  const [pidText, instance] = owner.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return LIVE_INSTANCES.has(instance ?? '');
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The task directories of one agent process. */
export class Workspaces {
  readonly #root: string;
  readonly #instance: string;
  readonly #isolate: boolean;
  /** GNU rm for root's tree removals when isolating; null: Node's (see the file comment). */
  readonly #rm: string | null;
  /** Empties task workspaces as their tasks, when isolating. */
  readonly #remover: RootShell | null;

  private constructor(root: string, instance: string, isolation: WorkspaceIsolation | null) {
    this.#root = root;
    this.#instance = instance;
    this.#isolate = isolation !== null;
    this.#rm = isolation?.tools.rm ?? null;
    if (isolation) {
      const { tools, range } = isolation;
      this.#remover = new RootShell({
        bash: tools.bash,
        file: tools.sh,
        args: ['-c', REMOVE_LOOP, 'taskgate-remove', tools.setpriv, tools.chmod, tools.find, root, String(range.first), String(range.last)],
        answerMs: REMOVE_ANSWER_MS,
      });
    } else {
      this.#remover = null;
    }
  }

  /**
   * Checks and prepares `workDir`: it must be a directory of the agent's own
   * user that nobody else can write; with isolation every directory above it
   * must be searchable by others (tasks reach their directory through it).
   * Isolating takes `isolation`: the host programs and the id range.
   */
  static async open(workDir: string, logger: Logger, isolation: WorkspaceIsolation | null): Promise<Workspaces> {
    const isolate = isolation !== null;
    const dir = resolve(workDir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const info = await lstat(dir);
    const uid = process.getuid?.() ?? 0;
    if (!info.isDirectory()) throw new WorkDirError(`work dir ${dir} is not a directory (a symbolic link is refused too)`);
    if (info.uid !== uid) throw new WorkDirError(`work dir ${dir} belongs to uid ${info.uid}, not to the agent's user (uid ${uid}); use a directory of its own such as /var/lib/taskgate-agent`);
    if ((info.mode & 0o022) !== 0) throw new WorkDirError(`work dir ${dir} is writable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 0700 it or use another`);
    if (isolate) {
      for (let up = dirname(dir); ; up = dirname(up)) {
        const mode = (await stat(up)).mode;
        if ((mode & 0o001) === 0) {
          throw new WorkDirError(`work dir ${dir}: ${up} is not searchable by task users (mode ${(mode & 0o777).toString(8)}); use a work dir such as /var/lib/taskgate-agent`);
        }
        if (up === dirname(up)) break;
      }
      await chmod(dir, 0o711);
    }
    await Workspaces.#removeDead(dir, logger, isolation?.tools.rm ?? null);
    const instance = randomBytes(6).toString('hex');
    const root = join(dir, `runs-${instance}`);
    // Made under another name and renamed with its owner file in it, so an
    // agent of another process sharing the work dir never sees a runs dir
    // without an owner (and removes it as left over).
    const making = join(dir, `.making-${instance}`);
    await mkdir(making, { mode: isolate ? 0o711 : 0o700 });
    await chmod(making, isolate ? 0o711 : 0o700);
    await writeFile(join(making, '.owner'), `${process.pid} ${instance}\n`, { mode: 0o600 });
    LIVE_INSTANCES.add(instance);
    await rename(making, root);
    return new Workspaces(root, instance, isolation);
  }

  /** Removes the runs dirs of agent processes that no longer run. */
  static async #removeDead(dir: string, logger: Logger, rm: string | null): Promise<void> {
    for (const name of await readdir(dir)) {
      if (!name.startsWith('runs-')) continue;
      const runs = join(dir, name);
      const owner = await readFile(join(runs, '.owner'), 'utf8').catch(() => '');
      if (ownerAlive(owner)) continue;
      await removeTree(runs, rm).catch((err: unknown) => logger.warn({ err: (err as Error).message, dir: runs }, 'could not remove an old runs dir'));
    }
  }

  /** Creates a task's directory with its script, owned by its identity (or the agent when not isolating). */
  async create(taskId: string, script: string, identity: TaskIdentity | null): Promise<TaskPaths> {
    // The same rule as the removal shell's: nothing but a name inside the runs dir.
    if (!TASK_ID.test(taskId)) throw new WorkDirError(`task id ${JSON.stringify(taskId.slice(0, 64))} is not a task id`);
    const dir = join(this.#root, taskId);
    const paths: TaskPaths = { dir, tmp: join(dir, 'tmp'), script: join(dir, '.taskgate-script') };
    await mkdir(dir, { mode: 0o700 });
    await Promise.all([mkdir(paths.tmp, { mode: 0o700 }), writeFile(paths.script, script, { mode: 0o600 })]);
    if (identity) await Promise.all([this.#own(dir, identity, true), this.#own(paths.tmp, identity, true), this.#own(paths.script, identity, false)]);
    return paths;
  }

  /** Writes a private file (a secret option file) into the task's directory. */
  async writePrivate(paths: TaskPaths, name: string, content: string, identity: TaskIdentity | null): Promise<string> {
    const file = join(paths.dir, name);
    // O_EXCL: never through a link the task put there; owned through the open file.
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      if (identity) {
        await handle.chown(identity.user === '' ? identity.uid : 0, identity.gid);
        if (identity.user !== '') await handle.chmod(0o660);
      }
    } finally {
      await handle.close();
    }
    return file;
  }

  /** Gives a path to the task: its uid for a uid of its own; root with the task's gid for a run-as user. */
  async #own(path: string, identity: TaskIdentity, isDir: boolean): Promise<void> {
    if (identity.user === '') {
      await chown(path, identity.uid, identity.gid);
      return;
    }
    await chown(path, 0, identity.gid);
    await chmod(path, isDir ? 0o770 : 0o660);
  }

  /**
   * Removes a task's directory after its processes are gone. With an
   * identity (when isolating) its contents are removed as that identity
   * first, through the removal shell (so no symbolic-link race can turn a
   * root removal elsewhere), then the emptied directory by the agent;
   * without (tasks that run as the agent's user), the agent removes it all.
   * Resolves whether it is gone.
   */
  async remove(taskId: string, identity: TaskIdentity | null = null): Promise<boolean> {
    const dir = join(this.#root, taskId);
    if (!identity || !this.#remover) {
      try {
        await nodeRm(dir, { recursive: true, force: true });
        return true;
      } catch {
        return false;
      }
    }
    const groups = identity.groups.length > 0 ? identity.groups.join(',') : '-';
    if ((await this.#remover.ask(`${identity.uid} ${identity.gid} ${groups} ${taskId}`)) !== 'ok') return false;
    await rmdir(dir).catch(() => undefined);
    return true;
  }

  /** Whether tasks get directories of their own identity. */
  get isolated(): boolean {
    return this.#isolate;
  }

  /** Removes this agent's runs dir (every task was removed or is abandoned). */
  async close(): Promise<void> {
    LIVE_INSTANCES.delete(this.#instance);
    this.#remover?.close();
    await removeTree(this.#root, this.#rm);
  }
}
