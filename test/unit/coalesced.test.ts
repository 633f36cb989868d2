/**
 * Coalesced reads (agent/coalesced.ts), on real promises: callers that ask
 * together share one run, and nobody gets a run that began before it asked.
 */
import { expect } from 'chai';
import { Coalesced } from '../../agent/coalesced.js';

/** A read whose runs are counted and finished by hand. */
function manualRead(): { read: Coalesced<number>; started: () => number; finish: (fail?: boolean) => void } {
  let runs = 0;
  const pending: Array<{ resolve: (n: number) => void; reject: (err: Error) => void; run: number }> = [];
  const read = new Coalesced(
    () =>
      new Promise<number>((resolve, reject) => {
        runs += 1;
        pending.push({ resolve, reject, run: runs });
      }),
  );
  return {
    read,
    started: () => runs,
    finish: (fail = false) => {
      const p = pending.shift()!;
      if (fail) p.reject(new Error(`run ${p.run} failed`));
      else p.resolve(p.run);
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Coalesced', () => {
  it('starts a run for the first caller and one more, shared, for everyone who asks while it runs', async () => {
    const { read, started, finish } = manualRead();
    const first = read.next();
    const during = [read.next(), read.next(), read.next()];
    expect(started()).to.equal(1);
    finish();
    expect(await first).to.equal(1);
    await tick();
    expect(started(), 'the callers that came during run 1 get run 2').to.equal(2);
    const late = read.next(); // run 2 is under way: this one needs run 3
    finish();
    expect(await Promise.all(during)).to.deep.equal([2, 2, 2]);
    await tick();
    expect(started()).to.equal(3);
    finish();
    expect(await late).to.equal(3);
  });

  it('hands a failed run to its callers only, and runs again for the next', async () => {
    const { read, started, finish } = manualRead();
    const first = read.next();
    const second = read.next();
    finish(true);
    let failure: unknown;
    await first.catch((err: unknown) => (failure = err));
    expect(failure).to.be.an('error');
    await tick();
    finish();
    expect(await second).to.equal(2);
    expect(started()).to.equal(2);
    const third = read.next();
    finish();
    expect(await third).to.equal(3);
  });
});
