/**
 * Redaction: what each detector masks, that matching sees through terminal
 * escape sequences and encoded secrets, and (fast-check) that redacting a
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

/** `text` redacted in two chunks, cut at byte `at`. */
function splitAt(rules: RedactionRules, text: string, at: number): string {
  const bytes = Buffer.from(text);
  const r = new Redactor(rules);
  return Buffer.concat([r.push(bytes.subarray(0, at)), r.push(bytes.subarray(at)), r.flush()]).toString();
}

/** What `grep --color` puts around the text it highlights. */
const GREP_ON = '\x1b[01;31m\x1b[K';
const GREP_OFF = '\x1b[m\x1b[K';
/** An email address near the longest match (251 bytes). */
const LONG_EMAIL = `${'a'.repeat(64)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.com`;
/** A secret whose base64, URL and JSON forms all differ from it and from each other. */
const ODD_SECRET = 'p@ss wörd/"x"?>';
const ODD_SECRET_FORMS = {
  base64: 'cEBzcyB3w7ZyZC8ieCI/Pg==',
  'base64 unpadded': 'cEBzcyB3w7ZyZC8ieCI/Pg',
  base64url: 'cEBzcyB3w7ZyZC8ieCI_Pg',
  'base64url padded': 'cEBzcyB3w7ZyZC8ieCI_Pg==',
  encodeURIComponent: 'p%40ss%20w%C3%B6rd%2F%22x%22%3F%3E',
  'JSON string': 'p@ss wörd/\\"x\\"?>',
  'JSON string, ASCII only': 'p@ss w\\u00f6rd/\\"x\\"?>',
};
/** A CSI sequence (ESC [ parameters, intermediates, final byte). */
const CSI = new RegExp(String.fromCharCode(0x1b) + String.raw`\[[0-?]*[ -/]*[@-~]`, 'g');
/** The text a terminal shows (CSI sequences removed: the only ones shown() is used on). */
function shown(text: string): string {
  return text.replace(CSI, '');
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

  it('matches values that terminal escapes split, and passes on every escape outside a match byte for byte', () => {
    const rules: RedactionRules = { infoTypes: ['ALL'], custom: [], secrets: ['hunter2secret'] };
    const cases: Array<[string, string]> = [
      [`alice${GREP_ON}@${GREP_OFF}example.com`, '[EMAIL_ADDRESS]'],
      ['alice\x1b[01;31m@\x1b[mexample.com', '[EMAIL_ADDRESS]'],
      [`mail: ${GREP_ON}alice@example.com${GREP_OFF}!`, `mail: ${GREP_ON}[EMAIL_ADDRESS]${GREP_OFF}!`],
      ['\x1b[31malice@example.com\x1b[0m', '\x1b[31m[EMAIL_ADDRESS]\x1b[0m'],
      [`card 4111 ${GREP_ON}1111${GREP_OFF} 1111 1111.`, 'card [CREDIT_CARD_NUMBER].'],
      ['pw hunter2\x1b[1msecret\x1b[0m.', 'pw ***\x1b[0m.'],
      ['ssn \x1b[1m078\x1b[22m-05-1120', 'ssn \x1b[1m[US_SOCIAL_SECURITY_NUMBER]'],
      // OSC ended by BEL and by ST, a two-byte escape and ESC ( B inside values.
      ['a@\x1b]0;title\x07b.io', '[EMAIL_ADDRESS]'],
      ['alice\x1b]8;;https://example.org/\x1b\\@example.com', '[EMAIL_ADDRESS]'],
      ['10.0\x1b7.12\x1b8.255 up', '[IP_ADDRESS] up'],
      ['hunter2\x1b(Bsecret', '***'],
      // Holdback is counted in text, not bytes: escapes held beside a long match do not cut it short.
      [`${'x\x1b[1m'.repeat(30)} ${LONG_EMAIL}.`, `${'x\x1b[1m'.repeat(30)} [EMAIL_ADDRESS].`],
      // A hyperlink's URL is redacted too; its text is an ordinary match.
      ['\x1b]8;;mailto:bob@example.org\x1b\\bob@example.org\x1b]8;;\x1b\\', '\x1b]8;;mailto:[EMAIL_ADDRESS]\x1b\\[EMAIL_ADDRESS]\x1b]8;;\x1b\\'],
      // Nothing to mask: every byte passes unchanged, whatever the escape.
      [
        '\x1b[32mOK\x1b[0m \x1b]0;build\x07done \x1b(B\x1b[m\x1b7x\x1b8 \x1b[38;2;255;100;0mtrue\x1b[0m\x1b]8;;https://x.io\x1b\\l\x1b]8;;\x1b\\ \x1b\x1b\n\x1b[\x01',
        '\x1b[32mOK\x1b[0m \x1b]0;build\x07done \x1b(B\x1b[m\x1b7x\x1b8 \x1b[38;2;255;100;0mtrue\x1b[0m\x1b]8;;https://x.io\x1b\\l\x1b]8;;\x1b\\ \x1b\x1b\n\x1b[\x01',
      ],
    ];
    for (const [input, expected] of cases) {
      expect(whole(rules, input).out, JSON.stringify(input)).to.equal(expected);
      for (let at = 1; at < Buffer.byteLength(input); at++) expect(splitAt(rules, input, at), `${JSON.stringify(input)} cut at ${at}`).to.equal(expected);
    }
  });

  it('masks a secret in its base64, URL and JSON forms, but not the forms of a secret too short to mask', () => {
    const rules: RedactionRules = { infoTypes: [], custom: [], secrets: [ODD_SECRET, 'abc'] };
    for (const [name, form] of Object.entries(ODD_SECRET_FORMS)) {
      expect(form, name).to.not.equal(ODD_SECRET);
      expect(whole(rules, `token=${form}&x=1`), name).to.deep.equal({ out: 'token=***&x=1', findings: { SECRET: 1 } });
    }
    expect(new Set(Object.values(ODD_SECRET_FORMS)).size).to.equal(Object.keys(ODD_SECRET_FORMS).length);
    // "abc" is below MIN_SECRET_LENGTH: neither it nor its base64 "YWJj" is masked.
    expect(whole(rules, 'abc YWJj').out).to.equal('abc YWJj');
    // A four-character secret is, with its encodings.
    expect(whole({ ...rules, secrets: ['abcd'] }, 'abcd YWJjZA== YWJjZA').out).to.equal('*** *** ***');
  });

  it('matches on the text with escapes removed: showing the output equals redacting what is shown (fast-check)', () => {
    const rules: RedactionRules = { infoTypes: ['ALL'], custom: [], secrets: ['hunter2-s3cret', ODD_SECRET] };
    const text = fc.oneof(
      fc.constantFrom('alice@example.com', '4111 1111 1111 1111', '192.168.1.20', '+44 20 7946 0958', '078-05-1120', 'hunter2-s3cret', ODD_SECRET_FORMS.base64, ' ', '@', '.', '-', '1'),
      fc.string({ minLength: 1, maxLength: 8 }),
    );
    const escape = fc.constantFrom('', '', '\x1b[1m', '\x1b[0m', GREP_ON, GREP_OFF, '\x1b[38;5;208m', '\x1b[2K\x1b[1G');
    fc.assert(
      fc.property(fc.array(fc.tuple(text, escape), { maxLength: 40 }), (parts) => {
        const raw = parts.map(([t, e]) => t + e).join('');
        expect(shown(whole(rules, raw).out)).to.equal(whole(rules, shown(raw)).out);
      }),
      { numRuns: 1000 },
    );
  });

  it('gives the same output and findings for any split of the text into chunks (fast-check)', () => {
    const rules: RedactionRules = { ...ALL, secrets: ['hunter2-s3cret', ODD_SECRET] };
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
        // Encoded secrets.
        'aHVudGVyMi1zM2NyZXQ=',
        'aHVudGVyMi1zM2NyZXQ',
        ...Object.values(ODD_SECRET_FORMS),
        // Escape sequences, whole, inside values and cut short (so that
        // fragments join into them); a run too long to match across; an OSC
        // too long to be one.
        GREP_ON, GREP_OFF, '\x1b[0m', '\x1b[38;2;1;2;3m', '\x1b]0;title\x07', '\x1b]8;;mailto:a@b.io\x1b\\', '\x1b7', '\x1b(B',
        'alice\x1b[1m@\x1b[mexample.com',
        `hunter2${GREP_ON}-s3cret`,
        '\x1b', '\x1b[', '\x1b[1', '\x1b]', '\x1b]0;', '\x07', '\\',
        '\x1b[A'.repeat(20),
        // A match near the longest, with escapes to hold beside it.
        LONG_EMAIL,
        'x\x1b[1m', '\x1b[38;5;208my\x1b[0m',
        `\x1b]2;${'x'.repeat(600)}`,
      ),
      fc.string({ maxLength: 20 }),
      fc.stringOf(fc.constantFrom('a', '1', '.', '@', '-', ' ', ':', 'f'), { maxLength: 30 }),
    );
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 12 }), (parts, cuts) => {
        const bytes = Buffer.from(parts.join(''));
        const expected = whole(rules, parts.join(''));
        const points = [...new Set(cuts.map((c) => (bytes.length ? c % (bytes.length + 1) : 0)))].sort((a, b) => a - b);
        const r = new Redactor(rules);
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

  it('holds back a bounded number of bytes on a long line, among colours, and in endless or unfinished escapes', () => {
    const feed = (chunk: string, times: number, first = ''): { held: number; out: number } => {
      const r = new Redactor(ALL);
      let held = 0;
      let out = r.push(Buffer.from(first)).length;
      for (let i = 0; i < times; i++) {
        out += r.push(Buffer.from(chunk)).length;
        held = Math.max(held, r.heldBytes);
      }
      return { held, out };
    };
    // One 1 MB line with no newline still flows.
    expect(feed('x'.repeat(1000), 1000)).to.deep.equal({ held: 256 + 16, out: 1e6 - 256 - 16 });
    // Every character its own colour: the 272 characters held, each with its escape.
    expect(feed('\x1b[31mx', 10000).held).to.be.at.most((256 + 16) * 6);
    // Cursor moves with no text after some text: a run too long to match across is let go.
    expect(feed('\x1b[A', 10000, 'mail alice@').held).to.be.at.most(64 + 'mail alice@'.length);
    // An OSC that never ends is not one past 512 bytes, and its bytes are text.
    expect(feed('y'.repeat(100), 1000, '\x1b]0;').held).to.be.at.most(512 + 256 + 16);
    expect(whole(ALL, `\x1b]0;${'y'.repeat(600)} hunter2-s3cret`).out).to.equal(`\x1b]0;${'y'.repeat(600)} ***`);
  });
});
