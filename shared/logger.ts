/** The logger every component takes: pino, structured JSON on stderr. */
import { pino, destination, type Logger } from 'pino';

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name. Default "info". */
  level?: string;
  /** Component name added to every line. */
  name?: string;
}

/** A JSON logger writing to stderr. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({ level: options.level ?? 'info', name: options.name }, destination(2));
}

/** A logger that drops everything (tests, embedding). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
