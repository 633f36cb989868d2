/**
 * How a long-running program (`taskgate server`, `agent`, `dev`, and the
 * standalone `taskgate-agent`) stops: gracefully on the first SIGINT or
 * SIGTERM, at once on the second.
 */
import type { Logger } from './logger.js';

/** Runs `stop` once on SIGINT or SIGTERM, then exits (0 when it stopped cleanly, 1 when stopping failed, 130 on a second signal). */
export function onSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal; exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
