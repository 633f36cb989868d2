/**
 * The quiet-machine probe's own process (bench/quiet-check.ts): measured in
 * a fresh process so that what the benchmark process has become by the end
 * of a run (its heap, its JIT, the page tables a fork copies) does not pass
 * for a change of the machine's load. Prints one JSON line:
 * {"bidiMs": …, "cpuMs": …, "ptyFirstByteMs": …}. Each start and end probe is
 * the same cold process, so the two compare.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bidiRoundTrips, EchoServer, ptyRun } from './baselines.js';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Milliseconds to hash 32 MiB, median of 5 (after one warm-up). */
function cpuMs(): number {
  const data = Buffer.alloc(32 * 1024 * 1024, 7);
  const runs: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    createHash('sha256').update(data).digest();
    if (i > 0) runs.push(performance.now() - t0);
  }
  return median(runs);
}

const dir = mkdtempSync(join(tmpdir(), 'taskgate-probe-'));
try {
  const file = join(dir, 's');
  writeFileSync(file, 'echo x\n');
  const firstBytes: number[] = [];
  for (let i = 0; i < 101; i++) {
    const { firstByteMs } = await ptyRun(file, 3);
    if (i > 0) firstBytes.push(firstByteMs);
  }
  const echo = await EchoServer.start();
  await bidiRoundTrips(echo, 300);
  const bidiMs = median(await bidiRoundTrips(echo, 1000));
  console.log(JSON.stringify({ bidiMs, cpuMs: cpuMs(), ptyFirstByteMs: median(firstBytes) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// Its echo server and client go with the process.
process.exit(0);
