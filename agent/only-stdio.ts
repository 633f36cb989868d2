/**
 * Runs a program with no file descriptor open but 0, 1 and 2.
 *
 * Whatever the agent process holds without close-on-exec reaches every
 * program it starts: node-pty 1.1.0 leaves each pty master without
 * FD_CLOEXEC and closes nothing between fork and exec (node-pty #657), and
 * Node keeps descriptors the agent's parent left open. Measured on 1.1.0: a
 * task held the pty master of every task running beside it, so it could
 * read their raw, unredacted output and type into their terminals, whatever
 * uid each ran as. So with isolation every program that runs as a task, or
 * that a task could reach (the kill shell and its children, the removals),
 * starts through bash, which closes every descriptor above 2 and then execs
 * it; the loop is builtins only, so nothing else runs in between
 * (test/integration/isolation-attacks.test.ts). bash runs as root with the
 * task's environment, so it runs privileged (-p): no functions, BASH_ENV,
 * SHELLOPTS or BASHOPTS are taken from the environment (the server refuses
 * those names anyway, shared/env-names.ts). What it adds to the environment
 * the program gets is PWD (its directory) and SHLVL=0.
 */

/** The bash program: close every descriptor above 2, then exec "$@". */
export const CLOSE_FDS = 'for f in /proc/self/fd/*; do n=${f##*/}; [[ $n =~ ^[0-9]+$ ]] && (( n > 2 )) && eval "exec $n>&-"; done; exec "$@"';

/** The command that runs `file args` through bash with only descriptors 0–2 open. */
export function onlyStdio(bash: string, command: { file: string; args: string[] }): { file: string; args: string[] } {
  return { file: bash, args: ['-p', '-c', CLOSE_FDS, 'taskgate-exec', command.file, ...command.args] };
}
