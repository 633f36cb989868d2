/** cli/line-ends.ts: "\r\n" becomes "\n" however the output is cut into chunks; nothing else changes. */
import { expect } from 'chai';
import fc from 'fast-check';
import { CrlfToLf, outputTranslator } from '../../cli/line-ends.js';

function translate(chunks: string[]): string {
  const t = new CrlfToLf();
  return Buffer.concat([...chunks.map((c) => t.push(Buffer.from(c, 'latin1'))), t.end()]).toString('latin1');
}

describe('CRLF to LF for a stdout that is not a terminal', () => {
  it('turns each "\\r\\n" into "\\n", keeps a lone "\\r", also across chunk boundaries', () => {
    const cases: Array<[string[], string]> = [
      [['42\r\n'], '42\n'],
      [['a\r\nb\r\n'], 'a\nb\n'],
      [['a\r', '\nb'], 'a\nb'],
      [['a\r', 'b'], 'a\rb'],
      [['a\r'], 'a\r'],
      [['\r\r\n'], '\r\n'],
      [['10%\r20%\r\n'], '10%\r20%\n'],
      [['\r', '\r', '\n'], '\r\n'],
      [['', '\r', '', '\n'], '\n'],
    ];
    for (const [chunks, want] of cases) expect(translate(chunks), JSON.stringify(chunks)).to.equal(want);
  });

  it('gives the same bytes however the output is split', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\r', '\n', 'a', 'é') }), fc.array(fc.nat(), { maxLength: 8 }), (text, cuts) => {
        const points = cuts.map((c) => c % (text.length + 1)).sort((a, b) => a - b); // repeats make empty chunks
        const chunks = [0, ...points, text.length].slice(1).map((end, i, ends) => text.slice(i === 0 ? 0 : ends[i - 1], end));
        expect(translate(chunks)).to.equal(text.replace(/\r\n/g, '\n'));
      }),
    );
  });

  it('leaves a terminal and --raw the exact bytes', () => {
    expect(outputTranslator(false, true)).to.equal(null);
    expect(outputTranslator(true, false)).to.equal(null);
    expect(outputTranslator(undefined, false)).to.be.instanceOf(CrlfToLf);
  });
});
