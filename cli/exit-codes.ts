/**
 * The `taskgate` command's exit codes, the same for every command (docs/cli.md
 * "Exit codes"). A command that follows a task to its end (`tasks create
 * --wait`, `tasks run --wait`, `tasks logs -f`) exits as the task did
 * instead: its exit code, 128+N for a signal N, {@link EXIT_TASK_FAILED}
 * when it failed without one (killed, timed out, agent lost).
 */

/** The command did what it was asked (and a followed task succeeded). */
export const EXIT_OK = 0;
/** The server refused the request (or could not be reached); stderr has its one-line reason. */
export const EXIT_REFUSED = 1;
/** The command line or its input is wrong (an unknown flag, a bad value, a missing file, a malformed token); nothing was sent. */
export const EXIT_USAGE = 2;
/** `tasks create --wait`: the task waits for review, so it was not run. */
export const EXIT_PENDING_REVIEW = 3;
/** A followed task failed with no exit code of its own (killed, timed out, agent lost or restarted, rejected). */
export const EXIT_TASK_FAILED = 1;
/** Ctrl-C while following: the task goes on. */
export const EXIT_INTERRUPTED = 130;
