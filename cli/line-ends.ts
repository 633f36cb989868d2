/**
 * Line ends of task output for a reader that is not a terminal. A task runs
 * in a pty whose `onlcr` turns each "\n" it writes into "\r\n", and the
 * server stores those bytes as they came. A terminal shows them right; a
 * script reading `V=$(taskgate tasks create ... --wait)` or a file from
 * `tasks logs ID > f` would get a "\r" at every line end. So when stdout is
 * not a TTY the CLI turns each "\r\n" into "\n" (a lone "\r", a progress
 * bar's, is kept); `--raw` writes the stored bytes exactly.
 */

/** Turns "\r\n" into "\n" across chunks: a chunk's trailing "\r" waits for the next chunk. */
export class CrlfToLf {
  #heldCr = false;

  /** The bytes to write for the next chunk of output. */
  push(chunk: Uint8Array): Buffer {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (data.length === 0) return data;
    const parts: Buffer[] = [];
    let from = 0;
    if (this.#heldCr) {
      this.#heldCr = false;
      if (data[0] !== 0x0a) parts.push(Buffer.from('\r'));
    }
    let end = data.length;
    if (end > 0 && data[end - 1] === 0x0d) {
      this.#heldCr = true;
      end--;
    }
    for (let cr = data.indexOf(0x0d); cr !== -1 && cr < end; cr = data.indexOf(0x0d, from)) {
      // Up to the "\r" of a "\r\n" (dropping it), through a lone one (keeping it).
      parts.push(data.subarray(from, data[cr + 1] === 0x0a ? cr : cr + 1));
      from = cr + 1;
    }
    parts.push(data.subarray(from, end));
    return Buffer.concat(parts);
  }

  /** What is still held once the output has ended: a last lone "\r". */
  end(): Buffer {
    const rest = this.#heldCr ? Buffer.from('\r') : Buffer.alloc(0);
    this.#heldCr = false;
    return rest;
  }
}

/**
 * How task output goes to stdout: `raw` (the stored bytes, for a terminal
 * or `--raw`) or with "\r\n" turned into "\n".
 */
export function outputTranslator(raw: boolean | undefined, stdoutIsTty: boolean): CrlfToLf | null {
  return raw || stdoutIsTty ? null : new CrlfToLf();
}
