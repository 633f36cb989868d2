/**
 * What storing output compressed saves and costs (issue 18: "output is
 * stored compressed where it pays (measure the ratio and the CPU cost on
 * ordinary logs)"). Output is stored in chunks of up to 64 KiB, so each codec
 * compresses 64 KiB slices on their own, as a store would, and decompresses
 * them again. Figures: the stored size per raw MB, and the CPU rate of
 * compressing and of decompressing, beside a bare node-pty read of the same
 * bytes in the same run (can the codec keep up with a task's output?).
 *
 * The texts are generated from a seeded generator, so every run measures
 * the same bytes: access logs (timestamps, paths, statuses, random trace
 * ids), JSON logs, a psql table, and random base64 as the control (it
 * carries 6 bits a byte: nothing compresses it below 0.75). The codecs are
 * the two fast enough to keep up with a task's output on one core: deflate
 * at level 1 and brotli at quality 1 (deflate 6 and brotli 4 compress a few
 * percent smaller at a third of the speed; docs/benchmarks.md). The brotli
 * one is the stores' own packing, called as they call it.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { packChunk, unpackChunk } from '../server/store/chunk-packing.js';
import { figure, type Figure } from './lib.js';

const CHUNK = 65536;

/** xorshift32: the same texts every run. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** `bytes` of one kind of ordinary output. */
export function sampleText(kind: 'access log' | 'JSON log' | 'psql table' | 'random base64 (control, 6 bits a byte)', bytes: number): Buffer {
  const rand = generator(0x5eed + kind.length);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
  const paths = ['/api/v1/orders', '/api/v1/orders/{id}', '/api/v1/users/{id}', '/healthz', '/api/v1/invoices', '/static/app.js', '/api/v2/search'];
  const statuses = [200, 200, 200, 200, 201, 204, 304, 400, 404, 500];
  let t = Date.UTC(2026, 11, 3, 6, 0, 0);
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    t += Math.floor(rand() * 40);
    const ts = new Date(t).toISOString();
    const path = pick(paths).replace('{id}', String(Math.floor(rand() * 1e6)));
    let line: string;
    switch (kind) {
      case 'access log':
        line = `${ts} level=info msg="request served" method=${pick(['GET', 'GET', 'POST', 'PUT'])} path=${path} status=${pick(statuses)} took_ms=${Math.floor(rand() * 300)} trace=${hex(32)}\r\n`;
        break;
      case 'JSON log':
        line = `{"time":"${ts}","level":"${pick(['info', 'info', 'warn', 'debug'])}","msg":"${pick(['request served', 'cache miss', 'retrying upstream', 'job done'])}","path":"${path}","status":${pick(statuses)},"duration_ms":${(rand() * 300).toFixed(2)},"request_id":"${hex(8)}-${hex(4)}-${hex(4)}-${hex(12)}"}\r\n`;
        break;
      case 'psql table':
        line = ` ${String(Math.floor(rand() * 1e7)).padStart(8)} | ${pick(['alice', 'bob', 'carol', 'dave', 'erin']).padEnd(10)} | ${pick(['active', 'suspended', 'pending']).padEnd(9)} | ${ts.slice(0, 19).replace('T', ' ')} | ${(rand() * 1e4).toFixed(2).padStart(9)}\r\n`;
        break;
      default:
        line = `${Buffer.from(Array.from({ length: 57 }, () => Math.floor(rand() * 256))).toString('base64')}\r\n`;
    }
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

interface Codec {
  name: string;
  compress: (b: Buffer) => Promise<Buffer>;
  decompress: (b: Buffer, rawLength: number) => Promise<Buffer>;
}

const CODECS: Codec[] = [
  { name: 'deflate level 1', compress: async (b) => deflateRawSync(b, { level: 1 }), decompress: async (b) => inflateRawSync(b) },
  {
    // What the stores write and read (server/store/chunk-packing.ts): brotli
    // quality 1, raw where that saves less than a tenth.
    name: 'brotli quality 1 (as stored)',
    compress: async (b) => {
      const packed = packChunk(b);
      return Buffer.concat([Buffer.of(packed.encoding), packed.data]);
    },
    decompress: async (b, rawLength) => unpackChunk(b.subarray(1), b[0]!, rawLength, { taskId: 'bench', seq: 0, offset: 0 }),
  },
];

/** Each codec on each text, in 64 KiB chunks; `ptyMBps` is the bare node-pty read rate measured in this run. */
export async function compression(bytes: number, ptyMBps: number): Promise<Figure[]> {
  const baseline = { name: 'bare node-pty read', value: ptyMBps };
  const figures: Figure[] = [];
  for (const kind of ['access log', 'JSON log', 'psql table', 'random base64 (control, 6 bits a byte)'] as const) {
    const text = sampleText(kind, bytes);
    for (const codec of CODECS) {
      // process.cpuUsage counts every thread: the thread pool's work too.
      const cpu0 = process.cpuUsage();
      const packed: Buffer[] = [];
      for (let at = 0; at < text.length; at += CHUNK) packed.push(await codec.compress(text.subarray(at, at + CHUNK)));
      const c = process.cpuUsage(cpu0);
      const stored = packed.reduce((sum, b) => sum + b.length, 0);
      const cpu1 = process.cpuUsage();
      let back = 0;
      for (const [i, b] of packed.entries()) back += (await codec.decompress(b, Math.min(CHUNK, text.length - i * CHUNK))).length;
      const d = process.cpuUsage(cpu1);
      if (back !== text.length) throw new Error(`${codec.name} gave back ${back} of ${text.length} bytes`);
      const mb = text.length / 1e6;
      const params = { bytes, chunk: CHUNK };
      figures.push(
        figure('output', `stored size per raw MB, ${codec.name}, ${kind}`, stored / 1e6 / mb, 'MB', 'lower', { name: 'raw', value: 1 }, params),
        figure('output', `compress, ${codec.name}, ${kind}`, mb / ((c.user + c.system) / 1e6), 'MB/s of CPU', 'higher', baseline, params),
        figure('output', `decompress, ${codec.name}, ${kind}`, mb / ((d.user + d.system) / 1e6), 'MB/s of CPU', 'higher', baseline, params),
      );
    }
  }
  return figures;
}
