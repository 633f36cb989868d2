/**
 * Streaming redaction of a task's output, on the agent, before it leaves
 * (docs/redaction.md "Streaming and its holdback"). Output is redacted as if the whole of it had been
 * redacted at once, however it is split into chunks: text is only emitted
 * once no match could still start in it, which needs at most `holdBytes` of
 * look-ahead (the longest possible match plus a small margin). Matches are
 * taken left to right, earliest start first, built-in detectors before
 * custom ones and secrets first of all; a match is replaced by its mask
 * ("[EMAIL_ADDRESS]", "***" for secrets). Secrets are also masked in the
 * encodings a program may print them in (secretForms).
 *
 * Detectors see the text with terminal escape sequences removed (escapes.ts;
 * issue 13: `grep --color` puts them inside the values it shows), and the
 * escapes are put back around it: those inside a match go with the mask,
 * every other one is passed on unchanged. The payload of an OSC (a title, a
 * hyperlink's URL) is redacted on its own.
 *
 * The agent also flushes what it holds after a short silence (see
 * agent.ts), so live output is never delayed by more than that; a secret
 * split by such a pause could then be missed, which docs/redaction.md says.
 */
import { BUILT_IN, MAX_MATCH_BYTES, type Detector } from '../shared/detectors.js';
import { ESC, escapeLength, payloadOf } from './escapes.js';

/** What to redact. */
export interface RedactionRules {
  /** Built-in info types to detect; "ALL" for every one. */
  infoTypes: readonly string[];
  /** Extra detectors: an info type name and a regular expression. */
  custom: readonly { infoType: string; pattern: string }[];
  /** Literal values (resolved secrets) to mask wherever they appear. */
  secrets: readonly string[];
}

/** Secrets shorter than this are not masked (they would mask ordinary text), nor are their encodings. */
export const MIN_SECRET_LENGTH = 4;
/** Already emitted text kept for look-behind, in bytes. */
const CONTEXT_BYTES = 64;
/** Look-ahead a pattern may use past its match (e.g. a word boundary), in bytes. */
const LOOKAHEAD_BYTES = 16;
/**
 * Escape bytes in a row (no text between them) that a match may still span,
 * in bytes. A longer run ends the text matches can lie in, as the end of the
 * output does, so holdback stays bounded however many escapes a program
 * prints; colour changes are far shorter.
 */
const MAX_ESCAPE_RUN_BYTES = 64;

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The forms of `secret` that are masked, as latin1 strings of their UTF-8
 * bytes: the value itself and, where they differ from it, its base64
 * (standard and URL-safe, with and without padding), its
 * encodeURIComponent() form and its escaped form inside a JSON string (as
 * JSON.stringify writes it, and with every non-ASCII character as \uXXXX,
 * as Python's json.dumps does). Base64 is of the value on its own: inside a
 * longer encoded text (base64 of "user:password") it depends on the
 * value's alignment and is not recognised.
 */
export function secretForms(secret: string): string[] {
  const base64 = Buffer.from(secret, 'utf8').toString('base64');
  const base64url = Buffer.from(secret, 'utf8').toString('base64url');
  const padding = base64.slice(base64url.length);
  const json = JSON.stringify(secret).slice(1, -1);
  const jsonAscii = json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const forms = [secret, base64, base64.slice(0, base64url.length), base64url, base64url + padding, json, jsonAscii];
  try {
    forms.push(encodeURIComponent(secret));
  } catch {
    // A lone surrogate has no URI form (URIError); there is nothing to mask.
  }
  return [...new Set(forms.map((f) => Buffer.from(f, 'utf8').toString('latin1')))];
}

/** Whether the rules ask for any redaction at all. */
export function redacts(rules: RedactionRules): boolean {
  return rules.infoTypes.length > 0 || rules.custom.length > 0 || rules.secrets.some((s) => s.length >= MIN_SECRET_LENGTH);
}

/** Escape sequences that sit just before the held text's char `at` (at === length: after all of it). */
interface Escapes {
  at: number;
  text: string;
}

/** Redacts one task's output as it streams. */
export class Redactor {
  /** How many matches of each info type were masked ("SECRET" for secrets). */
  readonly findings = new Map<string, number>();
  readonly #detectors: (Detector & { mask: string })[];
  readonly #holdBytes: number;
  /** Emitted text (escapes removed) kept for look-behind. */
  #context = '';
  /** Held text, escapes removed. */
  #held = '';
  /** The escape sequences among the held text, in order. */
  #escapes: Escapes[] = [];
  /** Bytes of #escapes. */
  #escapeBytes = 0;
  /** Escape bytes since the last byte of text. */
  #run = 0;
  /** The start of an escape sequence the output so far ends in. */
  #partial = '';

  constructor(rules: RedactionRules) {
    const all = rules.infoTypes.includes('ALL');
    const forms = rules.secrets.filter((s) => s.length >= MIN_SECRET_LENGTH).flatMap(secretForms);
    const secrets = [...new Set(forms)].sort((a, b) => b.length - a.length);
    this.#detectors = [
      ...(secrets.length ? [{ infoType: 'SECRET', mask: '***', pattern: new RegExp(secrets.map(escape).join('|'), 'g') }] : []),
      ...BUILT_IN.filter((d) => all || rules.infoTypes.includes(d.infoType)).map((d) => ({ ...d, mask: `[${d.infoType}]` })),
      ...rules.custom.map((c) => ({ infoType: c.infoType, pattern: new RegExp(c.pattern, 'g'), mask: `[${c.infoType}]` })),
    ];
    this.#holdBytes = Math.max(MAX_MATCH_BYTES, secrets[0]?.length ?? 0) + LOOKAHEAD_BYTES;
  }

  /** Adds output; returns the redacted bytes that are final now. */
  push(data: Buffer): Buffer {
    const text = this.#partial + data.toString('latin1');
    this.#partial = '';
    const out = this.#parse(text, false);
    return Buffer.from(out + this.#process(false), 'latin1');
  }

  /** Emits everything held (end of output, or a pause in it), redacted. */
  flush(): Buffer {
    // An escape sequence cut off here is text: what was held of it is emitted now.
    const text = this.#partial;
    this.#partial = '';
    const out = this.#parse(text, true);
    return Buffer.from(out + this.#process(true), 'latin1');
  }

  /** Bytes held back, waiting for more output. */
  get heldBytes(): number {
    return this.#held.length + this.#escapeBytes + this.#partial.length;
  }

  /** Splits output into text and escape sequences; returns what a long run of escapes made final. */
  #parse(text: string, atEnd: boolean): string {
    let out = '';
    for (let i = 0; ; ) {
      const at = text.indexOf(ESC, i);
      this.#addText(at === -1 ? text.slice(i) : text.slice(i, at));
      if (at === -1) return out;
      const length = escapeLength(text, at);
      if (length < 0 && !atEnd) {
        this.#partial = text.slice(at);
        return out;
      }
      if (length <= 0) {
        this.#addText(ESC);
        i = at + 1;
        continue;
      }
      out += this.#addEscape(text.slice(at, at + length));
      i = at + length;
    }
  }

  #addText(text: string): void {
    if (text.length === 0) return;
    this.#held += text;
    this.#run = 0;
  }

  #addEscape(sequence: string): string {
    const payload = payloadOf(sequence);
    const text = payload ? sequence.slice(0, payload[0]) + this.#maskAll(sequence.slice(...payload)) + sequence.slice(payload[1]) : sequence;
    this.#run += text.length;
    const last = this.#escapes[this.#escapes.length - 1];
    if (last && last.at === this.#held.length) last.text += text;
    else this.#escapes.push({ at: this.#held.length, text });
    this.#escapeBytes += text.length;
    if (this.#run <= MAX_ESCAPE_RUN_BYTES) return '';
    // Too many escapes in a row for a match to span: the text before them is final.
    const out = this.#process(true);
    this.#context = '';
    return out;
  }

  #process(final: boolean): string {
    if (this.#held.length === 0 && this.#escapes.length === 0) return '';
    const text = this.#context + this.#held;
    const start = this.#context.length;
    const cut = final ? text.length : text.length - this.#holdBytes;
    const { out, pos, escapes } = this.#redact(text, start, cut, this.#escapes);
    const kept = escapes === 0 ? this.#escapes : this.#escapes.slice(escapes);
    let bytes = 0;
    for (const e of kept) {
      e.at -= pos - start;
      bytes += e.text.length;
    }
    this.#escapes = kept;
    this.#escapeBytes = bytes;
    this.#held = text.slice(pos);
    this.#context = text.slice(Math.max(0, pos - CONTEXT_BYTES), pos);
    return out;
  }

  /** `text` redacted on its own (an OSC payload). */
  #maskAll(text: string): string {
    return this.#redact(text, 0, text.length, []).out;
  }

  /**
   * Masks the matches in text[start..] that start before `cut`, and puts
   * `escapes` (indexed from `start`) back in: the output, where it stopped
   * (at `cut` or the end of the last match), and how many escapes it used.
   * Escapes up to the stop are passed on or, inside a match, dropped: once
   * no match can start before a char, none can span the escapes before it.
   */
  #redact(text: string, start: number, cut: number, escapes: readonly Escapes[]): { out: string; pos: number; escapes: number } {
    // Each detector's first valid match at or after the position it was last
    // searched from; the text does not change within this call, so a match
    // still ahead of `pos` stays the first one, and each detector scans the
    // text once (not once per match of the others).
    const next = new Map<Detector & { mask: string }, Match | null>();
    let pos = start;
    let out = '';
    let e = 0;
    // Text from `pos` to `to` with the escapes among it and just before `to`.
    const emit = (to: number): void => {
      for (; e < escapes.length; e++) {
        const at = escapes[e]!.at + start;
        if (at > to) break;
        out += text.slice(pos, at) + escapes[e]!.text;
        pos = at;
      }
      out += text.slice(pos, to);
      pos = to;
    };
    for (;;) {
      const match = this.#earliest(text, pos, next);
      if (!match || match.index >= cut) {
        emit(Math.max(pos, Math.min(cut, text.length)));
        return { out, pos, escapes: e };
      }
      emit(match.index);
      out += match.detector.mask;
      this.findings.set(match.detector.infoType, (this.findings.get(match.detector.infoType) ?? 0) + 1);
      pos = match.index + Math.max(1, match.text.length);
      while (e < escapes.length && escapes[e]!.at + start < pos) e++;
    }
  }

  /** The valid match starting first at or after `from` (ties: the detector listed first). */
  #earliest(text: string, from: number, next: Map<Detector & { mask: string }, Match | null>): Match | null {
    let best: Match | null = null;
    for (const detector of this.#detectors) {
      let found = next.get(detector);
      if (found === undefined || (found !== null && found.index < from)) {
        found = firstValid(detector, text, from);
        next.set(detector, found);
      }
      if (found && (!best || found.index < best.index)) best = found;
    }
    return best;
  }
}
/** A match of one detector. */
type Match = NonNullable<ReturnType<typeof firstValid<Detector & { mask: string }>>>;

/** Per trigger pattern: its sticky copy (to try one position) and which latin1 characters no match follows. */
const TRIGGERED = new WeakMap<RegExp, { sticky: RegExp; notAfter: Uint8Array }>();

/** The first match of `detector` starting at or after `from` that its validator accepts. */
export function firstValid<D extends Detector>(detector: D, text: string, from: number): { index: number; text: string; detector: D } | null {
  const accept = (m: RegExpExecArray | null): boolean => m !== null && m[0].length > 0 && (!detector.valid || detector.valid(m[0]));
  const trigger = detector.trigger;
  if (!trigger) {
    const re = detector.pattern;
    re.lastIndex = from;
    for (;;) {
      const m = re.exec(text);
      if (!m) return null;
      if (accept(m)) return { index: m.index, text: m[0], detector };
      re.lastIndex = m.index + 1;
    }
  }
  let compiled = TRIGGERED.get(detector.pattern);
  if (!compiled) {
    const notAfter = new Uint8Array(256);
    for (let c = 0; c < 256; c++) notAfter[c] = trigger.notAfter.test(String.fromCharCode(c)) ? 1 : 0;
    compiled = { sticky: new RegExp(detector.pattern.source, detector.pattern.flags.replace('g', '') + 'y'), notAfter };
    TRIGGERED.set(detector.pattern, compiled);
  }
  const { sticky, notAfter } = compiled;
  // No match starts in [from, lo): each start s has its first trigger
  // character within reach, so only the positions just before each trigger
  // character can start one.
  let lo = from;
  trigger.chars.lastIndex = from;
  for (;;) {
    const t = trigger.chars.exec(text);
    if (!t) return null;
    for (let s = Math.max(lo, t.index - trigger.reach); s <= t.index; s++) {
      if (s > 0 && notAfter[text.charCodeAt(s - 1) & 0xff]) continue;
      sticky.lastIndex = s;
      const m = sticky.exec(text);
      if (m && accept(m)) return { index: s, text: m[0], detector };
    }
    lo = t.index + 1;
    trigger.chars.lastIndex = lo;
  }
}
