/**
 * Redaction: what each detector masks, and (fast-check) that redacting a
 * stream gives exactly the result of redacting the whole text at once,
 * however the text is split into chunks.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { BUILT_IN, ibanValid, luhn, type Detector } from '../../shared/detectors.js';
import { firstValid, Redactor, type RedactionRules } from '../../agent/redactor.js';

const ALL: RedactionRules = { infoTypes: ['ALL'], custom: [], secrets: ['hunter2-s3cret'] };

function whole(rules: RedactionRules, text: string): { out: string; findings: Record<string, number> } {
  const r = new Redactor(rules);
  const out = Buffer.concat([r.push(Buffer.from(text)), r.flush()]).toString();
  return { out, findings: Object.fromEntries(r.findings) };
}

describe('redaction', () => {
  it('masks each built-in info type and leaves look-alikes alone', () => {
    const cases: Array<[string, string]> = [
      ['mail alice.smith+ops@example.co.uk now', 'mail [EMAIL_ADDRESS] now'],
      ['card 4111 1111 1111 1111.', 'card [CREDIT_CARD_NUMBER].'],
      ['card 4111-1111-1111-1112 fails Luhn', 'card 4111-1111-1111-1112 fails Luhn'],
      ['ssn 123-45-6789', 'ssn [US_SOCIAL_SECURITY_NUMBER]'],
      ['ssn 000-45-6789 is not one', 'ssn 000-45-6789 is not one'],
      ['call +1 415-555-0123', 'call [PHONE_NUMBER]'],
      ['ip 10.0.12.255 and 2001:db8::8a2e:370:7334', 'ip [IP_ADDRESS] and [IP_ADDRESS]'],
      ['version 1.2.3.4.5 and 300.1.1.1', 'version 1.2.3.4.5 and 300.1.1.1'],
      ['iban DE89 3704 0044 0532 0130 00', 'iban [IBAN_CODE]'],
      ['iban GB82 WEST 1234 5698 7654 33 is wrong', 'iban GB82 WEST 1234 5698 7654 33 is wrong'],
      ['key AKIAIOSFODNN7EXAMPLE', 'key [AWS_ACCESS_KEY]'],
      ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', 'jwt [JWT]'],
      ['password is hunter2-s3cret!', 'password is ***!'],
    ];
    for (const [input, expected] of cases) expect(whole(ALL, input).out, input).to.equal(expected);
  });

  it('redacts only the info types asked for, plus custom patterns', () => {
    const rules: RedactionRules = { infoTypes: ['EMAIL_ADDRESS'], custom: [{ infoType: 'TICKET', pattern: 'TCK-\\d{4}' }], secrets: [] };
    expect(whole(rules, 'a@b.io 4111111111111111 TCK-1234')).to.deep.equal({
      out: '[EMAIL_ADDRESS] 4111111111111111 [TICKET]',
      findings: { EMAIL_ADDRESS: 1, TICKET: 1 },
    });
  });

  it('checks Luhn and IBAN checksums', () => {
    expect([luhn('4111111111111111'), luhn('4111111111111112'), luhn('79927398713')]).to.deep.equal([true, false, false]);
    expect([ibanValid('GB82 WEST 1234 5698 7654 32'), ibanValid('GB82 WEST 1234 5698 7654 33')]).to.deep.equal([true, false]);
  });

  it('gives the same output and findings for any split of the text into chunks (fast-check)', () => {
    const fragment = fc.oneof(
      fc.constantFrom(
        'alice@example.com',
        'bob.o+x@mail.example.org',
        '4111 1111 1111 1111',
        '4111111111111112',
        '5500-0000-0000-0004',
        'DE89 3704 0044 0532 0130 00',
        'GB82WEST12345698765432',
        '192.168.1.20',
        'fe80::1ff:fe23:4567:890a',
        '+44 20 7946 0958',
        '078-05-1120',
        'AKIAIOSFODNN7EXAMPLE',
        'hunter2-s3cret',
        'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
        ' ', '\r\n', '@', '.', '-', '1', 'é', '✓',
      ),
      fc.string({ maxLength: 20 }),
      fc.stringOf(fc.constantFrom('a', '1', '.', '@', '-', ' ', ':', 'f'), { maxLength: 30 }),
    );
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 12 }), (parts, cuts) => {
        const bytes = Buffer.from(parts.join(''));
        const expected = whole(ALL, parts.join(''));
        const points = [...new Set(cuts.map((c) => (bytes.length ? c % (bytes.length + 1) : 0)))].sort((a, b) => a - b);
        const r = new Redactor(ALL);
        const out: Buffer[] = [];
        let at = 0;
        for (const p of [...points, bytes.length]) {
          out.push(r.push(bytes.subarray(at, p)));
          at = p;
        }
        out.push(r.flush());
        expect(Buffer.concat(out).toString()).to.equal(expected.out);
        expect(Object.fromEntries(r.findings)).to.deep.equal(expected.findings);
      }),
      { numRuns: 1500 },
    );
  });

  it('finds the same matches with a detector\'s trigger as by trying every position (fast-check)', () => {
    const triggered = BUILT_IN.filter((d) => d.trigger);
    expect(triggered.map((d) => d.infoType)).to.deep.equal(['EMAIL_ADDRESS', 'IP_ADDRESS']);
    const text = fc
      .array(
        fc.oneof(
          fc.constantFrom('alice@example.com', 'a.b@c.d', '@@x@y.io', '10.0.0.1', '256.1.1.1', '1.2.3.4.5', 'fe80::1', '::1:2:3', 'a:b:c:d:e:f:1:2', 'std::cout', ':::', '.', ':', '@'),
          fc.stringOf(fc.constantFrom('a', 'F', '0', '9', '.', ':', '@', '-', '_', ' '), { maxLength: 40 }),
          fc.string({ maxLength: 10 }),
        ),
        { maxLength: 30 },
      )
      .map((parts) => parts.join(''));
    const all = (d: Detector, t: string): Array<[number, string]> => {
      const found: Array<[number, string]> = [];
      for (let at = 0; ; ) {
        const m = firstValid(d, t, at);
        if (!m) return found;
        found.push([m.index, m.text]);
        at = m.index + 1;
      }
    };
    fc.assert(
      fc.property(text, (t) => {
        for (const d of triggered) expect(all(d, t), d.infoType).to.deep.equal(all({ ...d, trigger: undefined }, t));
      }),
      { numRuns: 1000 },
    );
  });

  it('holds back at most a bounded number of bytes while streaming', () => {
    const r = new Redactor(ALL);
    for (let i = 0; i < 1000; i++) r.push(Buffer.from(`line ${i} with nothing secret in it\n`));
    expect(r.heldBytes).to.be.at.most(256 + 16);
  });
});
