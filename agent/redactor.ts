/**
 * Streaming redaction of a task's output, on the agent, before it leaves
 * (DESIGN.md "Security"). Output is redacted as if the whole of it had been
 * redacted at once, however it is split into chunks: text is only emitted
 * once no match could still start in it, which needs at most `holdBytes` of
 * look-ahead (the longest possible match plus a small margin). Matches are
 * taken left to right, earliest start first, built-in detectors before
 * custom ones and secrets first of all; a match is replaced by its mask
 * ("[EMAIL_ADDRESS]", "***" for secrets).
 *
 * The agent also flushes what it holds after a short silence (see
 * agent.ts), so live output is never delayed by more than that; a secret
 * split by such a pause could then be missed, which docs/redaction.md says.
 */
import { BUILT_IN, MAX_MATCH_BYTES, type Detector } from '../shared/detectors.js';

/** What to redact. */
export interface RedactionRules {
  /** Built-in info types to detect; "ALL" for every one. */
  infoTypes: readonly string[];
  /** Extra detectors: an info type name and a regular expression. */
  custom: readonly { infoType: string; pattern: string }[];
  /** Literal values (resolved secrets) to mask wherever they appear. */
  secrets: readonly string[];
}

/** Secrets shorter than this are not masked (they would mask ordinary text). */
export const MIN_SECRET_LENGTH = 4;
/** Already emitted text kept for look-behind, in bytes. */
const CONTEXT_BYTES = 64;
/** Look-ahead a pattern may use past its match (e.g. a word boundary), in bytes. */
const LOOKAHEAD_BYTES = 16;

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether the rules ask for any redaction at all. */
export function redacts(rules: RedactionRules): boolean {
  return rules.infoTypes.length > 0 || rules.custom.length > 0 || rules.secrets.some((s) => s.length >= MIN_SECRET_LENGTH);
}

/** Redacts one task's output as it streams. */
export class Redactor {
  /** How many matches of each info type were masked ("SECRET" for secrets). */
  readonly findings = new Map<string, number>();
  readonly #detectors: (Detector & { mask: string })[];
  readonly #holdBytes: number;
  #context = '';
  #held = '';

  constructor(rules: RedactionRules) {
    const all = rules.infoTypes.includes('ALL');
    const secrets = [...new Set(rules.secrets.filter((s) => s.length >= MIN_SECRET_LENGTH))].sort((a, b) => b.length - a.length);
    this.#detectors = [
      ...(secrets.length
        ? [{ infoType: 'SECRET', mask: '***', pattern: new RegExp(secrets.map((s) => escape(Buffer.from(s, 'utf8').toString('latin1'))).join('|'), 'g') }]
        : []),
      ...BUILT_IN.filter((d) => all || rules.infoTypes.includes(d.infoType)).map((d) => ({ ...d, mask: `[${d.infoType}]` })),
      ...rules.custom.map((c) => ({ infoType: c.infoType, pattern: new RegExp(c.pattern, 'g'), mask: `[${c.infoType}]` })),
    ];
    const longestSecret = secrets.reduce((max, s) => Math.max(max, Buffer.byteLength(s)), 0);
    this.#holdBytes = Math.max(MAX_MATCH_BYTES, longestSecret) + LOOKAHEAD_BYTES;
  }

  /** Adds output; returns the redacted bytes that are final now. */
  push(data: Buffer): Buffer {
    this.#held += data.toString('latin1');
    return this.#process(false);
  }

  /** Emits everything held (end of output, or a pause in it), redacted. */
  flush(): Buffer {
    return this.#process(true);
  }

  /** Bytes held back, waiting for more output. */
  get heldBytes(): number {
    return this.#held.length;
  }

  #process(final: boolean): Buffer {
    if (this.#held.length === 0) return Buffer.alloc(0);
    const text = this.#context + this.#held;
    const start = this.#context.length;
    const cut = final ? text.length : text.length - this.#holdBytes;
    // Each detector's first valid match at or after the position it was last
    // searched from; the text does not change within this call, so a match
    // still ahead of `pos` stays the first one, and each detector scans the
    // text once (not once per match of the others).
    const next = new Map<Detector & { mask: string }, Match | null>();
    let pos = start;
    let out = '';
    for (;;) {
      const match = this.#earliest(text, pos, next);
      if (!match || match.index >= cut) {
        const upTo = Math.max(pos, Math.min(cut, text.length));
        out += text.slice(pos, upTo);
        pos = upTo;
        break;
      }
      out += text.slice(pos, match.index) + match.detector.mask;
      this.findings.set(match.detector.infoType, (this.findings.get(match.detector.infoType) ?? 0) + 1);
      pos = match.index + Math.max(1, match.text.length);
    }
    this.#held = text.slice(pos);
    this.#context = text.slice(Math.max(0, pos - CONTEXT_BYTES), pos);
    return Buffer.from(out, 'latin1');
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
