/**
 * Micro-benchmark: ts-proto vs protobuf-es v2 (de)serialization of Taskgate
 * messages, and the cost of bridging a Connect (protobuf-es) handler to
 * ts-proto server code. `node dist/src/bench.js [seconds-per-case]`.
 * Baseline for each message: what today's grpc-js server does with it
 * (ts-proto decode for a request, ts-proto encode for a response).
 */
import { equals, fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage } from '@bufbuild/protobuf';
import * as es from '../gen/es/taskgate/v1/task_pb.js';
import * as tp from '../gen/tsproto/taskgate/v1/task.js';
import { objToEs, objToTs, wireToEs, wireToTs, type TsProtoFns } from './bridge.js';
import * as fx from './fixtures.js';

const SECONDS = Number(process.argv[2] ?? 2);
let sink = 0;
const use = (x: unknown) => { if (x === sink) sink++; };

/** Median ns/op over ~20 ms batches for `ms` milliseconds (after an optional warm-up). */
function measure(fn: () => unknown, ms: number, warm: boolean): number {
  const until = (t: number) => { const end = performance.now() + t; let n = 0; while (performance.now() < end) { use(fn()); n++; } return n; };
  const per100 = until(warm ? 500 : 100) / (warm ? 5 : 1); // warm-up; also sizes batches at ~20 ms
  const batch = Math.max(1, Math.round(per100 / 5));
  const samples: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) use(fn());
    samples.push(Number(process.hrtime.bigint() - t) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}
const ROUNDS = 3; // ops are interleaved over rounds; the minimum round median is kept (robust to other load on a shared box)

interface Case<T> { name: string; role: 'request' | 'response'; schema: DescMessage; fns: TsProtoFns<T>; obj: T }
const cases: Case<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  { name: 'CreateTaskRequest (4 KB script)', role: 'request', schema: es.CreateTaskRequestSchema, fns: tp.CreateTaskRequest, obj: fx.createTaskRequest },
  { name: 'GetTaskRequest (id only)', role: 'request', schema: es.GetTaskRequestSchema, fns: tp.GetTaskRequest, obj: { id: '01KBD000X7Q9ZP3M2V8N4T6R5W' } },
  { name: 'GetTaskResponse (1 full Task)', role: 'response', schema: es.GetTaskResponseSchema, fns: tp.GetTaskResponse, obj: fx.getTaskResponse },
  { name: 'ListTasksResponse (50 Tasks)', role: 'response', schema: es.ListTasksResponseSchema, fns: tp.ListTasksResponse, obj: fx.listTasksResponse },
  { name: 'GetTaskLogsResponse (64 KiB chunk)', role: 'response', schema: es.GetTaskLogsResponseSchema, fns: tp.GetTaskLogsResponse, obj: fx.getTaskLogsChunk },
];

const fmt = (ns: number) => (ns >= 1e5 ? `${(ns / 1000).toFixed(0)} µs` : ns >= 1e4 ? `${(ns / 1000).toFixed(1)} µs` : `${(ns / 1000).toFixed(2)} µs`);
const out: Record<string, Record<string, number>> = {};
console.log(`node ${process.version}, ${SECONDS}s per case (${ROUNDS} interleaved rounds, min of round medians of ~20 ms batches) after 0.5s warm-up; load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const c of cases) {
  const bytes = c.fns.encode(c.obj).finish();
  const esMsg = fromBinary(c.schema, bytes);
  const json = toJsonString(c.schema, esMsg);
  const jsonBytes = new TextEncoder().encode(json);
  // correctness: all paths agree
  const viaObj = objToEs(c.schema, c.obj);
  if (!equals(c.schema, viaObj, esMsg) || Buffer.compare(toBinary(c.schema, viaObj), bytes) !== 0) throw new Error(`objToEs mismatch ${c.name}`);
  if (Buffer.compare(c.fns.encode(objToTs(c.schema, esMsg)).finish(), bytes) !== 0) throw new Error(`objToTs mismatch ${c.name}`);
  if (Buffer.compare(c.fns.encode(wireToTs(c.schema, c.fns, esMsg)).finish(), bytes) !== 0) throw new Error(`wireToTs mismatch ${c.name}`);
  const te = new TextEncoder(), td = new TextDecoder();
  const ops: [string, () => unknown][] = [
    ['ts-proto encode', () => c.fns.encode(c.obj).finish()],
    ['ts-proto decode', () => c.fns.decode(bytes)],
    ['es toBinary', () => toBinary(c.schema, esMsg)],
    ['es fromBinary', () => fromBinary(c.schema, bytes)],
    ['bridge req: es->ts via wire (toBinary+decode)', () => wireToTs(c.schema, c.fns, esMsg)],
    ['bridge res: ts->es via wire (encode+fromBinary)', () => wireToEs(c.schema, c.fns, c.obj)],
    ['bridge req: es->ts object converter', () => objToTs(c.schema, esMsg)],
    ['bridge res: ts->es object converter', () => objToEs(c.schema, c.obj)],
    ['es toJsonString+utf8 (Connect JSON out)', () => te.encode(toJsonString(c.schema, esMsg))],
    ['es utf8+fromJsonString (Connect JSON in)', () => fromJsonString(c.schema, td.decode(jsonBytes), { ignoreUnknownFields: true })],
  ];
  const r: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++)
    for (const [n, fn] of ops) r[n] = Math.min(r[n] ?? Infinity, measure(fn, (SECONDS * 1000) / ROUNDS, round === 0));
  const base = c.role === 'request' ? r['ts-proto decode'] : r['ts-proto encode'];
  console.log(`\n## ${c.name} — ${c.role}; binary ${bytes.length} B, JSON ${jsonBytes.length} B; baseline = ts-proto ${c.role === 'request' ? 'decode' : 'encode'} (today's grpc-js path)`);
  for (const [n] of ops) console.log(`  ${n.padEnd(50)} ${String(Math.round(r[n])).padStart(10)} ns/op  ${fmt(r[n]).padStart(9)}  x${(r[n] / base).toFixed(2)}`);
  out[c.name] = r;
}
(await import('node:fs')).writeFileSync('results.json', JSON.stringify({ node: process.version, seconds: SECONDS, rounds: ROUNDS, results: out }, null, 1));
console.log(`load at end ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (sink === -1) console.log(sink);
