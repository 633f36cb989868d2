/**
 * Was the machine quiet? The key baselines (a bidi round trip, a bare pty's
 * first byte, raw unary echo calls per second) are measured at the start of
 * a run and again at its end. On a shared machine a neighbour's load moves
 * them (3-5× between days here); when start and end differ by more than
 * {@link MAX_DRIFT} the run's figures are not comparable with each other or
 * with another run's, and the run says so in its table and JSON and does not
 * rewrite docs/benchmarks.md.
 */
import { bidiRoundTrips, ptyRun, unaryRate, type EchoServer, type ScriptDir } from './baselines.js';

/** Largest relative difference between start and end allowed for a quiet run. */
export const MAX_DRIFT = 0.25;

/** The baselines of one moment. */
export interface BaselineProbe {
  bidiRoundTripP50Ms: number;
  ptyFirstByteP50Ms: number;
  unaryEchoPerSecond: number;
}

/** What the check found. */
export interface QuietCheck {
  start: BaselineProbe;
  end: BaselineProbe;
  /** Per baseline, |end - start| / start. */
  drift: Record<keyof BaselineProbe, number>;
  quiet: boolean;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Measures the key baselines now (a few seconds). */
export async function probeBaselines(echo: EchoServer, scripts: ScriptDir): Promise<BaselineProbe> {
  const bidi = median(await bidiRoundTrips(echo, 500));
  const file = scripts.write('echo x\n');
  const firstBytes: number[] = [];
  for (let i = 0; i < 30; i++) firstBytes.push((await ptyRun(file, 3)).firstByteMs);
  const { perSecond } = await unaryRate(echo, 16, 1500);
  return { bidiRoundTripP50Ms: bidi, ptyFirstByteP50Ms: median(firstBytes), unaryEchoPerSecond: perSecond };
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
