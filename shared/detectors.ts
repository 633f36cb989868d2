/**
 * Built-in PII detectors for redaction (docs/redaction.md says what each
 * matches and what it does not). Every pattern is bounded in length, so a
 * streaming redactor knows how much output it must hold back (MAX_MATCH_BYTES).
 * Patterns run over output decoded as latin1 (one char per byte), so byte
 * offsets are char offsets.
 */

/** One kind of sensitive text. */
export interface Detector {
  /** Info type, e.g. "EMAIL_ADDRESS"; it also names the mask. */
  infoType: string;
  /** Global regex; it must not match more than MAX_MATCH_BYTES characters. */
  pattern: RegExp;
  /** Extra check of a match (checksums); default: every match counts. */
  valid?: (match: string) => boolean;
  /**
   * A speed-up for patterns that are slow to try at every position: every
   * match has a character of `chars` at most `reach` characters after its
   * start (and the first such character at or after the start is that
   * close), and no match starts right after a character of `notAfter` (the
   * pattern's own look-behind says so). The redactor then finds those
   * characters first and tries the pattern only at the positions up to
   * `reach` before each that follow no `notAfter` character. Leaves the
   * matches unchanged (test/unit/redactor.test.ts compares both ways).
   */
  trigger?: { chars: RegExp; reach: number; notAfter: RegExp };
}

/** No match of any detector is longer than this, in bytes. */
export const MAX_MATCH_BYTES = 256;

/** Luhn checksum of the digits in `text`. */
export function luhn(text: string): boolean {
  let sum = 0;
  let count = 0;
  for (let i = text.length - 1; i >= 0; i--) {
    let d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) continue;
    if (count++ % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return count >= 13 && sum % 10 === 0;
}

/** ISO 13616 mod-97 check of an IBAN (spaces allowed). */
export function ibanValid(text: string): boolean {
  const iban = text.replace(/ /g, '').toUpperCase();
  if (iban.length < 15 || iban.length > 34) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const value = ch >= 'A' && ch <= 'Z' ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + Number(digit)) % 97;
  }
  return remainder === 1;
}

/** Each dotted part is 0-255 without a leading zero. */
function ipv4Valid(text: string): boolean {
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a final "."
    if (c === 46) {
      if (value > 255 || digits === 0) return false;
      value = 0;
      digits = 0;
    } else {
      if (digits === 1 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      digits++;
    }
  }
  return true;
}

/** The built-in detectors, in priority order (earlier wins when two start at the same byte). */
export const BUILT_IN: readonly Detector[] = [
  { infoType: 'JWT', pattern: /\beyJ[A-Za-z0-9_-]{5,80}\.eyJ[A-Za-z0-9_-]{5,100}\.[A-Za-z0-9_-]{10,60}/g },
  { infoType: 'AWS_ACCESS_KEY', pattern: /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g },
  {
    infoType: 'EMAIL_ADDRESS',
    pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g,
    // The local part holds no "@": the first "@" after the start is the match's own.
    trigger: { chars: /@/g, reach: 64, notAfter: /[A-Za-z0-9._%+-]/ },
  },
  {
    infoType: 'IBAN_CODE',
    pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g,
    valid: ibanValid,
  },
  { infoType: 'CREDIT_CARD_NUMBER', pattern: /(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])/g, valid: luhn },
  { infoType: 'US_SOCIAL_SECURITY_NUMBER', pattern: /(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)/g },
  {
    infoType: 'IP_ADDRESS',
    pattern: new RegExp(
      String.raw`(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])` + '|' + String.raw`(?<![0-9A-Fa-f:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?::[0-9A-Fa-f]{1,4}){1,7})(?![0-9A-Fa-f:])`,
      'g',
    ),
    // IPv4: each part 0-255; IPv6: at least three groups' worth (not "d::c" in "std::cout").
    valid: (m) => (m.includes('.') ? ipv4Valid(m) : m.length >= 6 && m.split(':').length >= 3),
    // IPv4 has a "." within its first 4 characters, IPv6 a ":" within its
    // first 5; neither starts after a digit.
    trigger: { chars: /[.:]/g, reach: 4, notAfter: /\d/ },
  },
  {
    infoType: 'PHONE_NUMBER',
    // Not part of a longer run of digit groups (card numbers, versions, dates).
    pattern: /(?<![\w+-]|\d[ .])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w-]|[ .]\d)/g,
  },
];

/** Every built-in info type. */
export const INFO_TYPES: readonly string[] = BUILT_IN.map((d) => d.infoType);
