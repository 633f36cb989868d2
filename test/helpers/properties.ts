/**
 * fast-check parameters shared by the property-based tests, so that every
 * failure prints how to replay it and a replay is one environment variable
 * away: `FC_SEED=<seed> FC_PATH=<path> npx mocha <file> --grep '<test>'`
 * runs that test's property from the failing case, shrunk (docs/testing.md).
 */
import type fc from 'fast-check';

/** Parameters for fc.assert: `numRuns` cases, or the replay given by FC_SEED / FC_PATH. */
export function replayable<T>(numRuns: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const seed = process.env.FC_SEED;
  const path = process.env.FC_PATH;
  const report = (details: fc.RunDetails<T>): void => {
    if (!details.failed) return;
    const replay = `FC_SEED=${details.seed}${details.counterexamplePath ? ` FC_PATH=${details.counterexamplePath}` : ''}`;
    const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(
      [
        `Property failed after ${details.numRuns} test(s) (seed ${details.seed}, path "${details.counterexamplePath ?? ''}"), shrunk ${details.numShrinks} time(s)`,
        `Counterexample: ${details.counterexample ? shortly(details.counterexample) : '(none: interrupted)'}`,
        `Got error: ${error}`,
        `Replay with: ${replay}`,
      ].join('\n'),
    );
  };
  return {
    numRuns,
    ...extra,
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
    reporter: report,
  };
}

/** Strings this long are shown by their length in counterexamples, not in full. */
const SHOWN_CHARS = 80;

/** A counterexample's text with megabyte-long strings cut, for failure messages. */
export function shortly(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string' && v.length > SHOWN_CHARS) return `${v.slice(0, 20)}… (${v.length} characters)`;
    if (v instanceof Uint8Array || (v !== null && typeof v === 'object' && (v as { type?: string }).type === 'Buffer')) {
      const bytes = v instanceof Uint8Array ? v : Uint8Array.from((v as { data: number[] }).data);
      return bytes.length > SHOWN_CHARS ? `<${bytes.length} bytes>` : `<bytes ${Buffer.from(bytes).toString('hex')}>`;
    }
    return v;
  });
}
