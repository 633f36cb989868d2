/**
 * Simulated idle agents for the connection-scale benchmark, run as a child
 * process: each holds its own TCP connection and one bidi stream, speaks the
 * real agent protocol (Hello, wait for Welcome, heartbeats at the interval
 * the server asks for) and reconnects when the stream ends with the real
 * agent's delays (shared/backoff.ts as agent/connection.ts uses it: uniform
 * in [0, 1 s] after a welcomed stream is lost, then 1 s × 1.6 ± 20 %). In
 * "raw" mode it holds streams to the baseline echo server instead (one
 * message, its echo, then idle) and retries after a uniform 100-1000 ms,
 * the pace of a bare grpc-js client.
 *
 * Usage: node sim-agents.js taskgate|raw ADDRESS FIRST COUNT [TOKENS_JSON_FILE]
 * Prints "all-connected N" each time all N streams are (again) up.
 */
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { AgentServiceClient, ConnectRequest, type ConnectResponse } from '../gen/taskgate/v1/agent.js';
import { Backoff } from '../shared/backoff.js';
import { ECHO_SERVICE } from './echo-server.js';

const [mode, address, firstArg, countArg, tokensFile] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const tokens: string[] = tokensFile ? (JSON.parse(readFileSync(tokensFile, 'utf8')) as string[]) : [];
const EchoClient = makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
const options = { 'grpc.use_local_subchannel_pool': 1, 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 };

let up = 0;
let reported = false;
/** Since the last report: stream attempts, and how the failed ones ended (status name). */
let attempts = 0;
const failures = new Map<string, number>();

function changed(delta: number): void {
  up += delta;
  if (up < count) reported = false;
  if (up === count && !reported) {
    reported = true;
    console.log(`all-connected ${count}`);
    // On stderr, for the bench log: what it took (a storm of refused attempts shows here).
    const failed = [...failures].map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
    console.error(`sim-agents ${first}-${first + count - 1}: all up after ${attempts} stream attempts; failed attempts: ${failed}`);
    attempts = 0;
    failures.clear();
  }
}

function failed(code: string): void {
  failures.set(code, (failures.get(code) ?? 0) + 1);
}

class SimAgent {
  readonly #client: Client;
  #up = false;
  /** The last Welcome's session secret (empty before the first). */
  #secret = '';
  /** The real agent's reconnect delays (taskgate mode). */
  readonly #backoff = new Backoff();

  constructor(readonly index: number) {
    this.#client =
      mode === 'raw'
        ? new EchoClient(address!, credentials.createInsecure(), options)
        : new AgentServiceClient(address!, credentials.createInsecure(), options);
  }

  connect(): Promise<void> {
    attempts += 1;
    return new Promise((resolve) => {
      let heartbeat: NodeJS.Timeout | undefined;
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        clearInterval(heartbeat);
        const wasUp = this.#up;
        if (wasUp) changed(-1);
        this.#up = false;
        resolve();
        const delay = mode === 'raw' ? 100 + Math.random() * 900 : wasUp ? this.#backoff.afterLoss() : this.#backoff.next();
        setTimeout(() => void this.connect(), delay);
      };
      const ready = (): void => {
        if (this.#up) return;
        this.#up = true;
        changed(+1);
        resolve();
      };
      if (mode === 'raw') {
        const call = (this.#client as Client & { stream(): ClientDuplexStream<Buffer, Buffer> }).stream();
        call.on('data', ready);
        call.on('error', (err: ServiceError) => {
          if (!this.#up) failed(status[err.code] ?? String(err.code));
          end();
        });
        call.on('end', end);
        call.write(Buffer.from(`hello ${this.index}`));
        return;
      }
      const md = new Metadata();
      md.set('authorization', `Bearer ${tokens[this.index]}`);
      const call = (this.#client as AgentServiceClient).connect(md) as ClientDuplexStream<ConnectRequest, ConnectResponse>;
      call.on('data', (res: ConnectResponse) => {
        if (res.message?.$case !== 'welcome') return;
        // Resuming this boot later needs the session secret, as a real agent keeps it.
        this.#secret = res.message.value.sessionSecret;
        this.#backoff.reset();
        call.write(ConnectRequest.fromPartial({ message: { $case: 'heartbeat', value: { tasks: [] } } }));
        const interval = Math.max(res.message.value.heartbeatIntervalMs, 100);
        heartbeat = setInterval(() => call.write(ConnectRequest.fromPartial({ message: { $case: 'heartbeat', value: { tasks: [] } } })), interval);
        ready();
      });
      call.on('error', (err: ServiceError) => {
        // Refused for who it is: retrying cannot help, and the benchmark would wait forever.
        if (err.code === status.PERMISSION_DENIED || err.code === status.UNAUTHENTICATED) {
          console.error(`sim-${this.index} refused: ${err.message}`);
          process.exit(1);
        }
        if (!this.#up) failed(status[err.code] ?? String(err.code));
        end();
      });
      call.on('end', end);
      call.write(ConnectRequest.fromPartial({ message: { $case: 'hello', value: { name: `sim-${this.index}`, version: 'bench', bootId: `boot-${this.index}`, resumeSecret: this.#secret } } }));
    });
  }
}

const agents = Array.from({ length: count }, (_, i) => new SimAgent(first + i));
// A bounded number of connection attempts at once, like agents starting over a few seconds.
let next = 0;
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (next < agents.length) await agents[next++]!.connect();
  }),
);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
