/**
 * Was the machine quiet? The key baselines (a bidi round trip, the CPU a
 * fixed hash takes, a bare pty's first byte, each in a fresh process:
 * bench/probe-child.ts) are measured at the start of a run and again at its
 * end. On a shared machine a neighbour's load moves
 * them (3-5× between days here); when start and end differ by more than
 * {@link MAX_DRIFT} the run's figures are not comparable with each other or
 * with another run's, and the run says so in its table and JSON and does not
 * rewrite docs/benchmarks.md.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** Largest relative difference between start and end allowed for a quiet run. */
export const MAX_DRIFT = 0.25;

/** The baselines of one moment. */
export interface BaselineProbe {
  /** Bidi round trip p50 on an echo server of the probe's own, after a warm-up. */
  bidiRoundTripP50Ms: number;
  /** Hashing 32 MiB in a fresh process: the CPU the machine gives us now. */
  cpuMs: number;
  /** A bare pty's first byte, p50, spawned from a fresh process. */
  ptyFirstByteP50Ms: number;
}

/** What the check found. */
export interface QuietCheck {
  start: BaselineProbe;
  end: BaselineProbe;
  /** Per baseline, |end - start| / start. */
  drift: Record<keyof BaselineProbe, number>;
  quiet: boolean;
}

/** Measures the key baselines now, in a fresh process (a few seconds). */
export async function probeBaselines(): Promise<BaselineProbe> {
  const child = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [join(import.meta.dirname, 'probe-child.js')], (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  const { bidiMs, cpuMs, ptyFirstByteMs } = JSON.parse(child) as { bidiMs: number; cpuMs: number; ptyFirstByteMs: number };
  return { bidiRoundTripP50Ms: bidiMs, cpuMs, ptyFirstByteP50Ms: ptyFirstByteMs };
}

/** Compares the probes from the start and the end of a run. */
export function compareProbes(start: BaselineProbe, end: BaselineProbe): QuietCheck {
  const keys = Object.keys(start) as Array<keyof BaselineProbe>;
  const drift = Object.fromEntries(keys.map((k) => [k, Math.abs(end[k] - start[k]) / start[k]])) as Record<keyof BaselineProbe, number>;
  return { start, end, drift, quiet: keys.every((k) => Number.isFinite(drift[k]) && drift[k] <= MAX_DRIFT) };
}

/** One line for the table: the verdict and each baseline's start → end. */
export function describeCheck(check: QuietCheck): string {
  const parts = (Object.keys(check.start) as Array<keyof BaselineProbe>).map(
    (k) => `${k} ${check.start[k].toPrecision(3)} → ${check.end[k].toPrecision(3)} (${(check.drift[k] * 100).toFixed(0)} %)`,
  );
  const verdict = check.quiet
    ? `Quiet-machine check: passed (start and end baselines within ${MAX_DRIFT * 100} %)`
    : `Quiet-machine check: FAILED, the machine's load changed during the run (a baseline moved more than ${MAX_DRIFT * 100} %), so compare these figures with care`;
  return `${verdict}: ${parts.join('; ')}.`;
}
