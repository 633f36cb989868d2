/** Input checks shared by the services; each failure names the field and the rule. */
import { InvalidArgumentError } from '../shared/errors.js';
import { MAX_PAGE_SIZE, SCRIPT_TYPES, isScriptType, type ScriptType } from '../shared/limits.js';

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Checks a target or agent name. */
export function checkName(field: string, value: string): string {
  if (!NAME.test(value)) {
    throw new InvalidArgumentError(
      `${field} "${value}" is invalid: use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit`,
    );
  }
  return value;
}

/** Checks an interpreter type. */
export function checkType(field: string, value: string): ScriptType {
  if (!isScriptType(value)) {
    throw new InvalidArgumentError(`${field} "${value}" is not supported; use one of ${SCRIPT_TYPES.join(', ')}`);
  }
  return value;
}

/** Checks a text field's size in UTF-8 bytes. */
export function checkSize(field: string, value: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) {
    throw new InvalidArgumentError(`${field} is ${bytes} bytes; the limit is ${maxBytes} bytes`);
  }
  return value;
}

/**
 * Control characters (C0, DEL, C1) and the Unicode format characters that
 * reorder or hide text (bidirectional overrides and isolates, zero-width
 * joiners, the BOM): in a name or an email they make one identity look like
 * another ("x@y\u202e" shown as a different address).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const DECEPTIVE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;

/** Refuses names and labels with control or text-reordering characters. */
export function checkPlainText(field: string, value: string): string {
  const found = DECEPTIVE.exec(value);
  if (found) {
    const code = `U+${found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new InvalidArgumentError(`${field} contains the control or text-direction character ${code}; use plain text`);
  }
  return value;
}

/** A page size within bounds. */
export function pageSize(requested: number, fallback: number): number {
  if (requested < 0) throw new InvalidArgumentError('page_size must not be negative');
  return Math.min(requested || fallback, MAX_PAGE_SIZE);
}

/** Opaque page tokens: the last key of the previous page, base64url-encoded. */
export const pageToken = {
  encode(key: string): string {
    return Buffer.from(key, 'utf8').toString('base64url');
  },
  decode(token: string): string {
    if (token === '') return '';
    const key = Buffer.from(token, 'base64url').toString('utf8');
    if (key === '' || Buffer.from(key, 'utf8').toString('base64url') !== token) {
      throw new InvalidArgumentError('page_token is not one this server issued');
    }
    return key;
  },
};

const GROUP = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Checks a list of group names (letters, digits, '-', '_', '.'; case matters) and drops repeats. */
export function checkGroups(field: string, values: readonly string[]): string[] {
  for (const value of values) {
    if (!GROUP.test(value)) {
      throw new InvalidArgumentError(
        `${field} has "${value}", which is not a group name: use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit`,
      );
    }
  }
  return [...new Set(values)];
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;

/** Checks an email address (loosely: something@something, at most 254 characters). */
export function checkEmail(field: string, value: string): string {
  checkPlainText(field, value);
  if (value.length > 254 || !EMAIL.test(value)) {
    throw new InvalidArgumentError(`${field} "${value}" is not an email address`);
  }
  return value;
}

/** Longest time limit a task or target may set, in seconds (7 days). */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** Checks a time limit in seconds: 0 (none or default) up to {@link MAX_TIMEOUT_SECONDS}. */
export function checkTimeout(field: string, seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(`${field} must be between 0 and ${MAX_TIMEOUT_SECONDS} seconds, not ${seconds}`);
  }
  return seconds;
}

/** Longest token lifetime, in seconds (10 years). */
const MAX_TTL_SECONDS = 10 * 366 * 24 * 3600;

/** When a token given `ttl` from `now` expires; null for none (unset or zero). */
export function checkTtl(field: string, ttl: { seconds: number; nanos: number } | undefined, now: Date): Date | null {
  if (!ttl || (ttl.seconds === 0 && ttl.nanos === 0)) return null;
  const seconds = ttl.seconds + ttl.nanos / 1e9;
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TTL_SECONDS) {
    throw new InvalidArgumentError(`${field} must be between 1 second and 10 years, not ${seconds} seconds`);
  }
  return new Date(now.getTime() + Math.round(seconds * 1000));
}

const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** Checks a user name of the agent host: empty (none), or a POSIX user name. */
export function checkRunAs(field: string, value: string): string {
  if (value !== '' && !POSIX_USER.test(value)) {
    throw new InvalidArgumentError(
      `${field} "${value}" is not a user name: use 1-32 lower-case letters, digits, '_' or '-', starting with a letter or '_' (or empty for a uid of its own)`,
    );
  }
  return value;
}
