/**
 * A TCP proxy in front of a MongoDB-wire server that counts the commands
 * passing through it, by command and collection ("insert locks", "find
 * tasks"): how many store round trips a Taskgate server makes, seen from
 * outside its process, whatever the driver or the store code does.
 */
import { BSON } from 'mongodb';
import { createServer, connect, type Server, type Socket } from 'node:net';

/** OP_MSG (MongoDB wire protocol, 3.6+): flags, then sections. */
const OP_MSG = 2013;
/** The legacy OP_QUERY: only drivers' first handshake uses it now. */
const OP_QUERY = 2004;
/** Commands that the driver's monitors send on their own schedule, not the store. */
const MONITORING = new Set(['hello', 'ismaster', 'isMaster', 'ping', 'endSessions']);

/** The command name, its collection and, for reads, the filter's fields, of one OP_MSG body: "find tasks {_id}". */
function describeMessage(frame: Buffer): string | null {
  const opCode = frame.readInt32LE(12);
  if (opCode === OP_QUERY) return 'legacy-query';
  if (opCode !== OP_MSG) return `opcode-${opCode}`;
  // header (16) + flagBits (4); the body is the section of kind 0.
  let at = 20;
  while (at < frame.length) {
    const kind = frame[at]!;
    at += 1;
    const size = frame.readInt32LE(at);
    if (kind === 1) {
      at += size;
      continue;
    }
    const body = BSON.deserialize(frame.subarray(at, at + size));
    const [name, collection] = Object.entries(body)[0] ?? ['?', ''];
    if (typeof collection !== 'string') return name;
    const filter = (body.filter ?? body.query ?? (Array.isArray(body.pipeline) ? body.pipeline[0]?.$match : undefined)) as Record<string, unknown> | undefined;
    return filter && (name === 'find' || name === 'aggregate' || name === 'count') ? `${name} ${collection} {${Object.keys(filter).join(',')}}` : `${name} ${collection}`;
  }
  return null;
}

/** A counting proxy; `uri` replaces the server's host:port with the proxy's. */
export class MongoWireCounter {
  readonly #counts = new Map<string, number>();
  /** Every command with the epoch ms it passed, while {@link record} is on. */
  readonly #log: Array<{ at: number; name: string }> = [];
  #recording = false;
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    readonly uri: string,
  ) {}

  /** Listens on 127.0.0.1:0 and forwards to the server of `uri` (mongodb://host:port/db). */
  static async start(uri: string): Promise<MongoWireCounter> {
    const target = new URL(uri);
    let counter: MongoWireCounter | null = null;
    const server = createServer((client) => counter!.#accept(client, target.hostname, Number(target.port)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('counter proxy has no TCP address');
    counter = new MongoWireCounter(server, uri.replace(target.host, `127.0.0.1:${address.port}`));
    return counter;
  }

  #accept(client: Socket, host: string, port: number): void {
    const upstream = connect(port, host);
    this.#sockets.add(client).add(upstream);
    let pending: Buffer = Buffer.alloc(0);
    client.on('data', (data: Buffer) => {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
      while (pending.length >= 16) {
        const length = pending.readInt32LE(0);
        if (pending.length < length) break;
        const name = describeMessage(pending.subarray(0, length));
        if (name) {
          this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1);
          if (this.#recording) this.#log.push({ at: performance.timeOrigin + performance.now(), name });
        }
        pending = pending.subarray(length);
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  }

  /** The store's commands so far (monitoring left out), by "command collection". */
  snapshot(): Map<string, number> {
    return new Map([...this.#counts].filter(([name]) => !MONITORING.has(name.split(' ')[0]!)));
  }

  /** Starts or stops keeping a timed log of commands (for {@link between}). */
  record(on: boolean): void {
    this.#recording = on;
  }

  /** The store's commands recorded from epoch ms `from` to `to`, in order. */
  between(from: number, to: number): string[] {
    return this.#log.filter((e) => e.at >= from && e.at <= to && !MONITORING.has(e.name.split(' ')[0]!)).map((e) => e.name);
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What `after` counted beyond `before`, per key, sorted by count (highest first). */
export function countsSince(before: Map<string, number>, after: Map<string, number>): Array<[string, number]> {
  return [...after]
    .map(([k, v]): [string, number] => [k, v - (before.get(k) ?? 0)])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
}
