/**
 * Terminal escape sequences in task output (ECMA-48 / ISO 6429, as xterm
 * reads them), so the redactor can match on the text a user sees: `grep
 * --color` puts `ESC[01;31m ESC[K` inside the very value it highlights
 * (issue 13). Works on output decoded as latin1, one char per byte.
 *
 * Recognised, each at most MAX_ESCAPE_BYTES long:
 * - CSI: ESC [, parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, a
 *   final byte 0x40-0x7E (colours, cursor moves, erase);
 * - strings: ESC ] (OSC: titles, hyperlinks, clipboard), ESC P (DCS), ESC X
 *   (SOS), ESC ^ (PM), ESC _ (APC), up to BEL or ST (ESC \), or up to an ESC
 *   that starts something else;
 * - ESC, intermediate bytes 0x20-0x2F, a final byte 0x30-0x7E (`ESC ( B`);
 * - two-byte ESC x, x in 0x30-0x7E (`ESC 7`, `ESC =`, `ESC M`).
 * Anything else, or a sequence not finished within MAX_ESCAPE_BYTES, is
 * not an escape: its ESC is ordinary text, so what follows is still read
 * (and redacted) as text. 8-bit C1 controls are not recognised: in UTF-8
 * output those bytes are parts of characters.
 */

/** The escape character, ESC (0x1B). */
export const ESC = '\x1b';
/** Longest escape sequence recognised, in bytes (OSC 8 hyperlinks with long URLs fit). */
export const MAX_ESCAPE_BYTES = 512;

const BEL = 0x07;
const ESC_CODE = 0x1b;
const BACKSLASH = 0x5c;

/** Whether the byte after ESC introduces a string sequence (OSC, DCS, SOS, PM, APC). */
function startsString(c: number): boolean {
  return c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f;
}

/**
 * The length of the escape sequence starting at `at` (where `text` has an
 * ESC): its length in bytes; 0 when it is not one (the ESC is text); -1 when
 * `text` ends before it can tell (more output may finish it).
 */
export function escapeLength(text: string, at: number): number {
  const limit = at + MAX_ESCAPE_BYTES;
  const end = Math.min(text.length, limit);
  const more = text.length < limit ? -1 : 0;
  if (at + 1 >= end) return more;
  const kind = text.charCodeAt(at + 1);
  if (kind === 0x5b) {
    let i = at + 2;
    while (i < end && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x3f) i++;
    while (i < end && text.charCodeAt(i) >= 0x20 && text.charCodeAt(i) <= 0x2f) i++;
    if (i >= end) return more;
    const final = text.charCodeAt(i);
    return final >= 0x40 && final <= 0x7e ? i + 1 - at : 0;
  }
  if (startsString(kind)) {
    for (let i = at + 2; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === BEL) return i + 1 - at;
      if (c !== ESC_CODE) continue;
      if (i + 1 >= end) return more;
      // ST ends the string; any other ESC ends it too, and starts a sequence of its own.
      return text.charCodeAt(i + 1) === BACKSLASH ? i + 2 - at : i - at;
    }
    return more;
  }
  if (kind >= 0x20 && kind <= 0x2f) {
    let i = at + 2;
    while (i < end && text.charCodeAt(i) >= 0x20 && text.charCodeAt(i) <= 0x2f) i++;
    if (i >= end) return more;
    const final = text.charCodeAt(i);
    return final >= 0x30 && final <= 0x7e ? i + 1 - at : 0;
  }
  return kind >= 0x30 && kind <= 0x7e ? 2 : 0;
}

/**
 * Where the payload of a complete string sequence lies (between its
 * two-byte introducer and its BEL or ST, if any), as [start, end) offsets
 * into `sequence`; null for the other kinds, which carry no text.
 */
export function payloadOf(sequence: string): [number, number] | null {
  if (sequence.length < 2 || !startsString(sequence.charCodeAt(1))) return null;
  const last = sequence.charCodeAt(sequence.length - 1);
  const end =
    last === BEL ? sequence.length - 1 : last === BACKSLASH && sequence.charCodeAt(sequence.length - 2) === ESC_CODE && sequence.length >= 4 ? sequence.length - 2 : sequence.length;
  return [2, end];
}
