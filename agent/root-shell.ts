/**
 * A long-lived root process (a shell, or perl for the kill) that answers
 * one line per line it reads, in order: what the agent would otherwise fork itself for, once per task
 * (agent/uid-killer.ts, the workspace removals in agent/workspace.ts).
 *
 * A child_process spawn forks the agent, and a fork costs in proportion to
 * the forking process's memory: several milliseconds of the agent's main
 * thread each time, most of its overhead per task. A small shell forks in
 * a fraction of that, off the agent's thread. The shell checks every field
 * of every line itself, so no line it is given can make it act as root or
 * outside what it is for.
 *
 * Each answer has a deadline: once the shell's child has switched to a
 * task's ids, that task's processes may signal it (stop it, kill it). Past
 * the deadline the shell and what it runs (its process group) are killed,
 * that caller gets null, and the callers behind it are asked again of a new
 * shell. A shell that ends by itself fails every caller it had not answered. It starts through bash with only
 * descriptors 0–2 (agent/only-stdio.ts): a shell started while tasks run
 * would otherwise hold their ptys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { onlyStdio } from './only-stdio.js';

/** How the shell starts: `FILE ARGS...`, through `bash` (agent/only-stdio.ts), with {@link SHELL_ENV}. */
export interface RootShellSpec {
  bash: string;
  file: string;
  /** Its arguments; one of them names it in ps ("taskgate-kill"). */
  args: string[];
  /** How long one answer may take, in ms. */
  answerMs: number;
}

/**
 * The whole environment of the root shells and of everything they run:
 * never the agent's own, which holds the env secret provider's variables
 * of every target (a hostile review read them from a kill sender that ran
 * as the task's uid). The programs they run are absolute paths.
 */
export const SHELL_ENV: Readonly<Record<string, string>> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** A line sent and the caller waiting for its answer. */
interface Asked {
  line: string;
  resolve: (answer: string | null) => void;
}

/** The running shell and the callers waiting for its answers, oldest first. */
interface Running {
  child: ChildProcess;
  waiting: Asked[];
  /** The deadline of the oldest waiting caller's answer. */
  deadline?: NodeJS.Timeout;
}

/** Holds the agent's event loop open only while an answer is awaited. */
function hold(shell: Running, on: boolean): void {
  for (const handle of [shell.child, shell.child.stdin, shell.child.stdout] as Array<{ ref?: () => void; unref?: () => void } | null>) {
    if (on) handle?.ref?.();
    else handle?.unref?.();
  }
}

/** One shell of a {@link RootShellSpec}, started on first use and again after it ended. */
export class RootShell {
  readonly #spec: RootShellSpec;
  #shell: Running | null = null;
  #closed = false;

  constructor(spec: RootShellSpec) {
    this.#spec = spec;
  }

  /** Sends one line (no newline in it); resolves its answer, or null when the shell ended or missed the deadline. */
  ask(line: string): Promise<string | null> {
    if (this.#closed || line.includes('\n')) return Promise.resolve(null);
    return new Promise((resolve) => this.#send({ line, resolve }));
  }

  #send(asked: Asked): void {
    const shell = this.#shell ?? this.#start();
    hold(shell, true);
    // Answers come in order: a caller's deadline counts from when the one before it was answered.
    shell.waiting.push(asked);
    if (shell.waiting.length === 1) this.#arm(shell);
    shell.child.stdin!.write(`${asked.line}\n`);
  }

  /** Ends the shell (once it has answered the line it is on); calls still waiting and later calls get null. */
  close(): void {
    this.#closed = true;
    const shell = this.#shell;
    if (!shell) return;
    for (const asked of this.#ended(shell)) asked.resolve(null);
    hold(shell, false);
    shell.child.stdin?.end();
  }

  /** Starts the deadline of the oldest unanswered line. */
  #arm(shell: Running): void {
    clearTimeout(shell.deadline);
    shell.deadline = setTimeout(() => {
      // Stuck (its child stopped, say): end it and what it runs (its own
      // process group); the stuck call fails, the ones behind it go to a new shell.
      try {
        process.kill(-shell.child.pid!, 'SIGKILL');
      } catch {
        shell.child.kill('SIGKILL');
      }
      const [stuck, ...behind] = this.#ended(shell);
      stuck?.resolve(null);
      if (this.#closed) for (const asked of behind) asked.resolve(null);
      else for (const asked of behind) this.#send(asked);
    }, this.#spec.answerMs);
  }

  /** Forgets the shell; returns the calls it had not answered. */
  #ended(shell: Running): Asked[] {
    clearTimeout(shell.deadline);
    if (this.#shell === shell) this.#shell = null;
    return shell.waiting.splice(0);
  }

  #start(): Running {
    const { bash, file, args } = this.#spec;
    const command = onlyStdio(bash, { file, args });
    // A process group of its own, so a deadline ends what it runs too.
    const child = spawn(command.file, command.args, { stdio: ['pipe', 'pipe', 'ignore'], env: { ...SHELL_ENV }, detached: true });
    const shell: Running = { child, waiting: [] };
    this.#shell = shell;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      shell.waiting.shift()?.resolve(line);
      if (shell.waiting.length > 0) this.#arm(shell);
      else {
        clearTimeout(shell.deadline);
        hold(shell, false);
      }
    });
    // Ended by itself: whatever it had not answered is refused (it may be
    // what made it end); the next call starts a new shell.
    const ended = (): void => {
      for (const asked of this.#ended(shell)) asked.resolve(null);
    };
    child.on('exit', ended);
    child.on('error', ended);
    child.stdin!.on('error', ended);
    return shell;
  }
}
