/**
 * How each task type is run. The script always reaches the interpreter as a
 * file path argument, never spliced into a command line.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { ScriptType } from '../shared/limits.js';

/** The program and arguments that run a script file. */
export interface Command {
  file: string;
  args: string[];
}

/** The program for each type; `node` is the agent's own runtime, always present. */
const PROGRAMS: Readonly<Record<ScriptType, () => string>> = {
  bash: () => 'bash',
  sh: () => 'sh',
  python: () => 'python3',
  node: () => process.execPath,
};

/** The command that runs `scriptPath` for `type`. */
export function commandFor(type: ScriptType, scriptPath: string): Command {
  return { file: PROGRAMS[type](), args: [scriptPath] };
}

/** The absolute path of `program` on `path` (a PATH value), or null. */
export function resolveProgram(program: string, path: string): string | null {
  const candidates = isAbsolute(program) ? [program] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next directory
    }
  }
  return null;
}
