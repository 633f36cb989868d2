/**
 * A setting that cannot work, phrased for the person who gave it. The
 * programs' options and composition roots throw it before anything starts;
 * the CLI prints its message as one line and exits 2.
 */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}
