/** Human-readable output: aligned tables, times, statuses. */
import { TaskStatus } from '../gen/taskgate/v1/task.js';
import { CliError } from './client.js';
import { EXIT_USAGE } from './exit-codes.js';
import { protoJson, type Encodes } from './proto-json.js';

/** Prints rows as an aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A status as Runops spells it ("pending-review"). */
export function statusName(value: TaskStatus): string {
  const name = TaskStatus[value] ?? 'UNKNOWN';
  return name.replace(/^TASK_STATUS_/, '').toLowerCase().replace(/_/g, '-');
}

/** The wire status named by a Runops spelling, or undefined. */
export function statusFromName(name: string): TaskStatus | undefined {
  const key = `TASK_STATUS_${name.toUpperCase().replace(/-/g, '_')}`;
  const value = (TaskStatus as unknown as Record<string, TaskStatus | undefined>)[key];
  return value === undefined || value === TaskStatus.TASK_STATUS_UNSPECIFIED ? undefined : value;
}

/** A timestamp for tables; "-" when unset. */
export function time(date: Date | undefined): string {
  return date ? date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/**
 * Prints `message`, of the ts-proto type `type` named `typeName`
 * ("taskgate.v1.Task"), as proto3 JSON (cli/proto-json.ts): indented, or
 * on one line with `compact` (one object a line, for a stream).
 */
export function printJson<T>(typeName: string, type: Encodes<T>, message: T, compact = false): void {
  process.stdout.write(`${JSON.stringify(protoJson(typeName, type, message), null, compact ? undefined : 2)}\n`);
}

/** Splits a comma-separated list option ("DBA,SRE"), dropping empty items. */
export function list(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** A duration like "90s", "15m", "2h", "7d" in ms; undefined when it is not one. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** A point in time: an ISO date/time, or a duration ago ("1h"). */
export function parseTime(value: string, now = Date.now()): Date | undefined {
  const ago = parseDuration(value);
  if (ago !== undefined) return new Date(now - ago);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** A `--expires` value ("30d", "12h") as a proto Duration; undefined when not given. */
export function ttlOption(value: string | undefined): { seconds: number; nanos: number } | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw new CliError(`--expires must be a duration such as 90m, 12h or 30d, not "${value}"`, EXIT_USAGE);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** A commander parser for a whole number of seconds (0 or more). */
export function secondsOption(flag: string): (value: string) => number {
  return wholeNumber(flag, ' of seconds');
}

/** A commander parser for a whole number (0 or more); `of` names the unit in the message. */
export function wholeNumber(flag: string, of = ''): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new CliError(`${flag} must be a whole number${of}, not "${value}"`, EXIT_USAGE);
    return n;
  };
}

/** The port `--server HOST` means without one: Taskgate's. */
export const DEFAULT_PORT = 7070;

/**
 * A `--server` value as HOST:PORT: the port defaults to 7070 (gRPC's own
 * default would be 443); a URL is refused with what to write instead.
 */
export function serverOption(value: string): string {
  const url = /^(https?|grpcs?):\/\/(.*?)\/?$/.exec(value.trim());
  if (url) {
    throw new CliError(`--server takes HOST:PORT, not a URL: use --server ${url[2]}${/^(https|grpcs)$/.test(url[1]!) ? ' --tls' : ''}`, EXIT_USAGE);
  }
  const address = value.trim();
  if (address === '') throw new CliError('--server needs HOST:PORT, e.g. 127.0.0.1:7070', EXIT_USAGE);
  if (/^\[[^\]]+\]$/.test(address) || /^[^:/\s]+$/.test(address)) return `${address}:${DEFAULT_PORT}`;
  const port = /^(?:dns:\/\/\/)?(?:\[[^\]\s]+\]|[^:/\s[\]]+):(\d{1,5})$/.exec(address)?.[1];
  if (/^dns:\/\/\/[^:/\s]+$/.test(address)) return `${address}:${DEFAULT_PORT}`;
  if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
    throw new CliError(`--server takes HOST, HOST:PORT or dns:///HOST:PORT (port 1-65535), not "${address}"`, EXIT_USAGE);
  }
  return address;
}
