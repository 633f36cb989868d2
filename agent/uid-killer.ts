/**
 * kill(-1, SIGKILL) sent as a task's uid (agent/processes.ts says why that
 * is what proves a task gone), through one long-lived root shell instead of
 * a new setpriv child of the agent per task.
 *
 * A child_process spawn forks the agent, and a fork costs in proportion to
 * the forking process's memory: several milliseconds of the agent's main
 * thread for each finished task, most of its overhead per task. A small
 * shell forks in a fraction of that, off the agent's thread. The shell reads
 * one id per line and answers one line per id, in order; it checks each id
 * against the task id range itself, so no line it is given can make it kill
 * as root or as a uid outside the range.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { onlyStdio } from './only-stdio.js';
import type { IdRange, Tools } from './task-users.js';

/**
 * The shell's loop: $1 setpriv, $2 sh, $3-$4 the id range. Answers "ok",
 * "refused" (not an id of the range) or "failed RC" for each line.
 */
export const KILL_LOOP = `
while IFS= read -r id; do
  case $id in ''|*[!0-9]*) echo refused; continue;; esac
  if [ "\${#id}" -gt 10 ] || [ "$id" -lt "$3" ] || [ "$id" -gt "$4" ]; then echo refused; continue; fi
  if "$1" --reuid "$id" --regid "$id" --clear-groups --no-new-privs -- "$2" -c 'kill -9 -1' </dev/null >/dev/null 2>&1; then echo ok; else echo "failed $?"; fi
done
`;

/**
 * How long one answer may take, in ms. Once setpriv has switched to the
 * task's uid, the task's own processes may signal that child (stop it, kill
 * it); past the deadline the shell is killed, every waiting caller is told
 * the kill was not sent, and the next call starts a new shell.
 */
export const KILL_ANSWER_MS = 2000;

/** The running shell and the callers waiting for its answers, oldest first. */
interface KillShell {
  child: ChildProcess;
  waiting: Array<(answer: string | null) => void>;
  /** The deadline of the oldest waiting caller's answer. */
  deadline?: NodeJS.Timeout;
}

/** Holds the agent's event loop open only while an answer is awaited. */
function hold(shell: KillShell, on: boolean): void {
  for (const handle of [shell.child, shell.child.stdin, shell.child.stdout] as Array<{ ref?: () => void; unref?: () => void } | null>) {
    if (on) handle?.ref?.();
    else handle?.unref?.();
  }
}

/** Sends kill(-1, SIGKILL) as uids of a range, one at a time, through one shell. */
export class UidKiller {
  readonly #tools: Pick<Tools, 'setpriv' | 'sh' | 'bash'>;
  readonly #range: IdRange;
  #shell: KillShell | null = null;
  #closed = false;

  constructor(tools: Pick<Tools, 'setpriv' | 'sh' | 'bash'>, range: IdRange) {
    this.#tools = tools;
    this.#range = range;
  }

  /**
   * Resolves once kill(-1, SIGKILL) was sent as `uid`; rejects when it could
   * not be (the shell died or refused), so the caller never takes a task as
   * gone on that.
   */
  async kill(uid: number): Promise<void> {
    if (!Number.isSafeInteger(uid) || uid < this.#range.first || uid > this.#range.last) throw new Error(`uid ${uid} is outside the task id range`);
    const answer = await this.#ask(uid);
    if (answer !== 'ok') throw new Error(`kill as uid ${uid}: ${answer ?? 'the kill shell ended'}`);
  }

  /** Ends the shell; later calls reject. */
  close(): void {
    this.#closed = true;
    this.#shell?.child.stdin?.end();
    this.#shell = null;
  }

  #ask(uid: number): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    const shell = this.#shell ?? this.#start();
    hold(shell, true);
    return new Promise((resolve) => {
      // Answers come in order: a caller's deadline counts from when the one before it was answered.
      shell.waiting.push(resolve);
      if (shell.waiting.length === 1) this.#arm(shell);
      shell.child.stdin!.write(`${uid}\n`);
    });
  }

  /** Starts the deadline of the oldest unanswered line. */
  #arm(shell: KillShell): void {
    clearTimeout(shell.deadline);
    shell.deadline = setTimeout(() => {
      // Stuck (its child stopped by the task, say): end it; the waiting calls fail.
      shell.child.kill('SIGKILL');
      this.#ended(shell);
    }, KILL_ANSWER_MS);
  }

  #ended(shell: KillShell): void {
    clearTimeout(shell.deadline);
    if (this.#shell === shell) this.#shell = null;
    for (const resolve of shell.waiting.splice(0)) resolve(null);
  }

  #start(): KillShell {
    // A shell started while tasks run would hold their ptys, and its children run as task uids.
    const { setpriv, sh, bash } = this.#tools;
    const command = onlyStdio(bash, { file: sh, args: ['-c', KILL_LOOP, 'taskgate-kill', setpriv, sh, String(this.#range.first), String(this.#range.last)] });
    const child = spawn(command.file, command.args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const shell: KillShell = { child, waiting: [] };
    this.#shell = shell;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      shell.waiting.shift()?.(line);
      if (shell.waiting.length > 0) this.#arm(shell);
      else {
        clearTimeout(shell.deadline);
        hold(shell, false);
      }
    });
    // Whatever it had not answered is refused; the next call starts a new shell.
    const ended = (): void => this.#ended(shell);
    child.on('exit', ended);
    child.on('error', ended);
    child.stdin!.on('error', ended);
    return shell;
  }
}
