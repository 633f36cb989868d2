/**
 * Mocha root hooks: an unhandled rejection fails the run, and the MongoDB-wire
 * test server is started once for all suites and stopped at the end.
 */
import { stopMongo } from './helpers/mongo.js';

process.on('unhandledRejection', (reason) => {
  // Thrown from a fresh stack so mocha reports it against the running test.
  setImmediate(() => {
    throw reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`);
  });
});

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopMongo();
  },
};
