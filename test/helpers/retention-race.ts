/**
 * Retention passes racing, each in a worker thread of its own with its own
 * store on one location (its own SQLite connection to the same file, or its
 * own MongoDB client): the situation of several server replicas on one
 * database, started together (test/helpers/thread-race.ts).
 *
 * The module is both sides: {@link raceRetention} runs in the test, the
 * bottom half runs as the worker.
 */
import { silentLogger } from '../../shared/logger.js';
import { Metrics } from '../../server/metrics.js';
import { Retention, type RetentionOptions, type RetentionTotals } from '../../server/retention.js';
import { openStore, type StoreOptions } from '../../server/store/open-store.js';
import { raceThreads, serveRace } from './thread-race.js';

interface Job {
  options: StoreOptions;
  retention: RetentionOptions;
}

/**
 * Runs `passes` retention passes at once, one per worker, each with its own
 * store on `options`; resolves to what each pass deleted. Rejects if any
 * pass threw.
 */
export function raceRetention(options: StoreOptions, retention: RetentionOptions, passes: number): Promise<RetentionTotals[]> {
  return raceThreads<Job, RetentionTotals>(new URL(import.meta.url), Array.from({ length: passes }, () => ({ options, retention })));
}

serveRace<Job, RetentionTotals>(async ({ options, retention: settings }) => {
  const store = await openStore(options);
  const retention = new Retention(store, silentLogger(), new Metrics({ store: () => store, connectedAgents: () => 0 }), settings);
  return { run: () => retention.pass(), close: () => store.close() };
});
