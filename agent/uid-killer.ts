/**
 * kill(-1, SIGKILL) sent as a task's uid (agent/processes.ts says why that
 * is what proves a task gone), by one long-lived root perl process per agent
 * (agent/root-shell.ts) that no task can signal or trace.
 *
 * The sender must have the task's uid as its effective uid (kill(-1) then
 * reaches every process of that uid at once, and nothing else), but a
 * sender whose real or saved uid is the task's may itself be signalled by
 * the task: a hostile review's task killed the earlier sender (setpriv,
 * then `sh -c 'kill -9 -1'`, all of its ids the task's after the exec)
 * with a kill(-1, SIGUSR1) loop its own processes ignored, and outlived its
 * end. The kernel lets a process signal another only when its real or
 * effective uid is the other's real or saved uid. So the perl process,
 * root throughout, sets its real uid to an id no process has (KILLER_UIDS),
 * its effective uid to the task's and keeps its saved uid 0, sends the
 * kill from inside itself (no exec, which would copy the effective uid to
 * the saved one), and returns to root. A task's processes (every id theirs)
 * match neither its real nor its saved uid; changing ids also makes it
 * undumpable, so they cannot trace it or read its /proc files. No fork per
 * kill either. It checks each id against the task id range itself, so no
 * line it is given can make it kill as root or as a uid outside the range.
 */
import { RootShell } from './root-shell.js';
import type { IdRange, Tools } from './task-users.js';

/**
 * The real uids senders hold while they kill: a band just under (uid_t)-2
 * (nfsnobody on old hosts), which no process of a normal host has. Each
 * sender takes its own (from its agent's pid and a count in the process):
 * senders sharing one could signal each other (a hostile review saw 4 of
 * 6,000 kills fail that way with two agents), since a kill is let through
 * when the sender's real uid is the target's.
 */
export const KILLER_UIDS = { first: 4294967293 - 2 ** 26, last: 4294967293 };

let senders = 0;

/** The real uid the next sender of this process takes while it kills. */
export function killerUid(): number {
  const slot = (process.pid * 16 + (senders++ % 16)) % (KILLER_UIDS.last - KILLER_UIDS.first + 1);
  return KILLER_UIDS.last - slot;
}

/**
 * The perl program: ARGV "taskgate-kill" FIRST LAST REAL_UID (one of KILLER_UIDS). Answers
 * "ok", "refused" (not an id of the range) or "failed WHY" for each line;
 * exits if it ever cannot get back to root.
 */
export const KILL_PERL = `
use strict; use warnings; use Errno ();
$| = 1;
my (undef, $first, $last, $killer) = @ARGV;
while (defined(my $line = <STDIN>)) {
  chomp $line;
  if ($line !~ /\\A[0-9]{1,10}\\z/ || $line < $first || $line > $last) { print "refused\\n"; next; }
  my $id = 0 + $line;
  $< = $killer;
  $> = $id;
  my ($sent, $why) = (0, 'could not take the ids');
  if ($< == $killer && $> == $id) {
    $sent = kill('KILL', -1) || $!{ESRCH};
    $why = "$!";
  }
  $> = 0;
  $< = 0;
  if ($< != 0 || $> != 0) { print "failed could not return to root\\n"; exit 1; }
  print $sent ? "ok\\n" : "failed $why\\n";
}
`;

/**
 * How long one answer may take, in ms. No task can stop the sender, but a
 * host under heavy load might; past the deadline the process is killed,
 * every waiting caller is told the kill was not sent, and the next call
 * starts a new one.
 */
export const KILL_ANSWER_MS = 2000;

/** Sends kill(-1, SIGKILL) as uids of a range, one at a time, through one perl process. */
export class UidKiller {
  readonly #range: IdRange;
  readonly #shell: RootShell;

  constructor(tools: Pick<Tools, 'perl' | 'bash'>, range: IdRange) {
    this.#range = range;
    this.#shell = new RootShell({
      bash: tools.bash,
      file: tools.perl,
      args: ['-e', KILL_PERL, 'taskgate-kill', String(range.first), String(range.last), String(killerUid())],
      answerMs: KILL_ANSWER_MS,
    });
  }

  /**
   * Resolves once kill(-1, SIGKILL) was sent as `uid`; rejects when it could
   * not be (the process died or refused), so the caller never takes a task
   * as gone on that.
   */
  async kill(uid: number): Promise<void> {
    if (!Number.isSafeInteger(uid) || uid < this.#range.first || uid > this.#range.last) throw new Error(`uid ${uid} is outside the task id range`);
    const answer = await this.#shell.ask(String(uid));
    if (answer !== 'ok') throw new Error(`kill as uid ${uid}: ${answer ?? 'the kill sender ended'}`);
  }

  /** Ends the process; later calls reject. */
  close(): void {
    this.#shell.close();
  }
}
