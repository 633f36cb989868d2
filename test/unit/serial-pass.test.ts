/** SerialPass: background passes that never overlap, and coalesce requests made during one. */
import { expect } from 'chai';
import { SerialPass } from '../../shared/serial-pass.js';

describe('SerialPass', () => {
  it('runs one more pass for any number of requests made during a pass, never two at once', async () => {
    let running = 0;
    let most = 0;
    let passes = 0;
    let release: () => void = () => undefined;
    const pass = new SerialPass(
      async () => {
        running++;
        most = Math.max(most, running);
        passes++;
        await new Promise<void>((resolve) => (release = resolve));
        running--;
      },
      (err) => {
        throw err;
      },
    );
    pass.run();
    for (let i = 0; i < 5; i++) pass.run();
    expect(passes).to.equal(1);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(passes).to.equal(2);
    release();
    await pass.idle();
    expect([passes, most, pass.busy]).to.deep.equal([2, 1, false]);
  });

  it('hands a failed pass to onError and runs again when asked', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const pass = new SerialPass(
      async () => {
        calls++;
        if (calls === 1) throw new Error('first fails');
      },
      (err) => errors.push(err),
    );
    pass.run();
    await pass.idle();
    pass.run();
    await pass.idle();
    expect([calls, errors.map((e) => (e as Error).message)]).to.deep.equal([2, ['first fails']]);
  });
});
