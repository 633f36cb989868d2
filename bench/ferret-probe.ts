/**
 * How FerretDB's backend scales with data, straight through the driver:
 * `node dist/bench/ferret-probe.js [docs]` (default 5,000) measures a small
 * write then a read by key (p50 of 200) on an empty collection and again
 * after `docs` task-like documents, and a count by status (p50 of 20) with an
 * index on status, as Taskgate's queries have (countDocuments, which the
 * store uses and the driver sends as an aggregate, and the count command). The backend is the test
 * harness's (test/helpers/mongo.ts): PostgreSQL unless
 * TASKGATE_TEST_FERRETDB_BACKEND=sqlite; TASKGATE_TEST_MONGODB_URI measures
 * another server.
 */
import { MongoClient } from 'mongodb';
import { mongoBackend, mongoUri, stopMongo } from '../test/helpers/mongo.js';
import { nowMs, percentiles } from './lib.js';

const docs = Number(process.argv[2] ?? 5000);
const STATUSES = ['created', 'ready', 'running', 'success', 'failure'];

const uri = await mongoUri();
if (!uri) throw new Error('no MongoDB-wire server (.cache/ferretdb-test or TASKGATE_TEST_MONGODB_URI)');
const client = await MongoClient.connect(uri);
try {
  const tasks = client.db().collection<{ _id: string; status: string; script: string; events: unknown[] }>('tasks');
  await tasks.createIndex({ status: 1, _id: -1 });
  let next = 0;
  const writeRead = async (n: number): Promise<number> => {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = `probe-${next++}`;
      const t0 = nowMs();
      await tasks.insertOne({ _id: id, status: 'ready', script: 'echo x', events: [] });
      await tasks.findOne({ _id: id });
      samples.push(nowMs() - t0);
    }
    return percentiles(samples).p50;
  };
  await writeRead(20); // connections and statements warmed up
  const empty = await writeRead(200);
  for (let at = 0; at < docs; at += 500) {
    const batch = Array.from({ length: Math.min(500, docs - at) }, (_, i) => ({
      _id: `bulk-${at + i}`,
      status: STATUSES[(at + i) % STATUSES.length]!,
      script: 'echo x',
      events: [{ time: new Date(), actor: 'probe', from: '', to: 'created', reason: 'probe' }],
    }));
    await tasks.insertMany(batch);
  }
  const full = await writeRead(200);
  const counts: number[] = [];
  const countCommands: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = nowMs();
    await tasks.countDocuments({ status: 'running' });
    counts.push(nowMs() - t0);
    const t1 = nowMs();
    await client.db().command({ count: 'tasks', query: { status: 'running' } });
    countCommands.push(nowMs() - t1);
  }
  const backend = await mongoBackend();
  console.log(
    `${backend === 'external' ? 'TASKGATE_TEST_MONGODB_URI' : `FerretDB, ${backend} backend`}: write + read by key p50 ${empty.toFixed(2)} ms empty, ` +
      `${full.toFixed(2)} ms after ${docs} documents; count by status p50 ${percentiles(counts).p50.toFixed(2)} ms ` +
      `(countDocuments, an aggregate), ${percentiles(countCommands).p50.toFixed(2)} ms (the count command)`,
  );
} finally {
  await client.close();
  await stopMongo();
}
