/**
 * kill(-1, SIGKILL) sent as a task's uid (agent/processes.ts says why that
 * is what proves a task gone), through one long-lived root shell
 * (agent/root-shell.ts) instead of a new setpriv child of the agent per
 * task. The shell checks each id against the task id range itself, so no
 * line it is given can make it kill as root or as a uid outside the range.
 */
import { RootShell } from './root-shell.js';
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

/** Sends kill(-1, SIGKILL) as uids of a range, one at a time, through one shell. */
export class UidKiller {
  readonly #range: IdRange;
  readonly #shell: RootShell;

  constructor(tools: Pick<Tools, 'setpriv' | 'sh' | 'bash'>, range: IdRange) {
    this.#range = range;
    const { setpriv, sh, bash } = tools;
    this.#shell = new RootShell({ bash, sh, loop: KILL_LOOP, name: 'taskgate-kill', args: [setpriv, sh, String(range.first), String(range.last)], answerMs: KILL_ANSWER_MS });
  }

  /**
   * Resolves once kill(-1, SIGKILL) was sent as `uid`; rejects when it could
   * not be (the shell died or refused), so the caller never takes a task as
   * gone on that.
   */
  async kill(uid: number): Promise<void> {
    if (!Number.isSafeInteger(uid) || uid < this.#range.first || uid > this.#range.last) throw new Error(`uid ${uid} is outside the task id range`);
    const answer = await this.#shell.ask(String(uid));
    if (answer !== 'ok') throw new Error(`kill as uid ${uid}: ${answer ?? 'the kill shell ended'}`);
  }

  /** Ends the shell; later calls reject. */
  close(): void {
    this.#shell.close();
  }
}
