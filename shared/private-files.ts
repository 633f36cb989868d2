/**
 * Files only their owner may read: the data directory (0700 when Taskgate
 * creates it), tokens, keys and the embedded store (0600), whatever umask
 * the process runs with (a service manager's umask is often 022). Modes
 * given to mkdir/open are masked by the umask, so each is set again with
 * chmod.
 */
import { chmodSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Creates `dir` (and its parents) if missing, 0700. A directory that
 * already exists keeps its mode: someone chose it.
 */
export function privateDir(dir: string): void {
  const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (created !== undefined) chmodSync(dir, 0o700);
}

/** Writes `content` to `file` with mode 0600, atomically (a reader sees the old file or the new one). */
export function writePrivateFile(file: string, content: string): void {
  privateDir(dirname(file));
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** Makes `file` 0600, creating it empty when missing (before a library opens it with its own mode). */
export function privateFile(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  chmodSync(file, 0o600);
}
