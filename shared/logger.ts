/** The logger every component takes: pino, structured JSON on stderr, or a human-readable form (pino-pretty). */
import { pino, destination, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Levels a user may ask for, quietest first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** Output forms: one JSON object per line, or readable lines for a terminal. */
export const LOG_FORMATS = ['json', 'pretty'] as const;

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name. Default "info". */
  level?: string;
  /** Component name added to every line. */
  name?: string;
  /** Default "json". */
  format?: (typeof LOG_FORMATS)[number];
}

/** A logger writing to stderr. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = { level: options.level ?? 'info', name: options.name };
  if (options.format === 'pretty') {
    // In the same thread (no transport worker), so nothing is lost at exit.
    return pino(settings, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(settings, destination(2));
}

/** A logger that drops everything (tests, embedding). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
