/**
 * Proof: a Connect router (connect-node, HTTP/1.1) serving ts-proto-shaped
 * handlers for TaskService.GetTask (unary) and GetTaskLogs (server stream).
 * BRIDGE=wire (default: toBinary -> ts-proto decode, ts-proto encode -> fromBinary)
 * or BRIDGE=object (converter compiled from the descriptor). Prints the port.
 */
import { createServer } from 'node:http';
import type { DescMessage, DescService } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { TaskService } from '../gen/es/taskgate/v1/task_pb.js';
import * as tp from '../gen/tsproto/taskgate/v1/task.js';
import { objToEs, objToTs, wireToEs, wireToTs, type TsProtoFns } from './bridge.js';
import { fullTask } from './fixtures.js';

// ts-proto-shaped server code, as server/services/task-service.ts has it.
const tsImpl = {
  getTask(req: tp.GetTaskRequest): tp.GetTaskResponse {
    if (req.id !== 'x') throw new ConnectError(`task ${req.id} not found`, Code.NotFound);
    return { task: { ...fullTask(), script: 'echo hi\n', outputBytes: 2 ** 40 } };
  },
  async *getTaskLogs(req: tp.GetTaskLogsRequest): AsyncIterable<tp.GetTaskLogsResponse> {
    for (let i = 0; i < 2; i++) yield { event: { $case: 'chunk', value: { offset: req.offset + i * 6, data: Buffer.from(`line${i}\n`) } } };
    yield { event: { $case: 'finished', value: fullTask() } };
  },
};

type Fns = TsProtoFns<unknown>;
const mode = process.env.BRIDGE ?? 'wire';
const toTs = (d: DescMessage, m: any) => (mode === 'object' ? objToTs(d, m) : wireToTs(d, (tp as any)[d.name] as Fns, m)); // eslint-disable-line
const toEs = (d: DescMessage, o: unknown) => (mode === 'object' ? objToEs(d, o) : wireToEs(d, (tp as any)[d.name] as Fns, o)); // eslint-disable-line

/** Wraps ts-proto-shaped unary and server-streaming methods of `impl` as a Connect service implementation. */
function bridge(service: DescService, impl: Record<string, (req: any) => any>) { // eslint-disable-line
  const out: Record<string, unknown> = {};
  for (const m of service.methods) {
    const fn = impl[m.localName];
    if (!fn) continue;
    if (m.methodKind === 'unary') out[m.localName] = async (req: unknown) => toEs(m.output, await fn(toTs(m.input, req)));
    else if (m.methodKind === 'server_streaming')
      out[m.localName] = async function* (req: unknown) { for await (const r of fn(toTs(m.input, req))) yield toEs(m.output, r); };
  }
  return out;
}

const routes = (router: ConnectRouter) => router.service(TaskService, bridge(TaskService, tsImpl));
const server = createServer(connectNodeAdapter({ routes }));
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(typeof a === 'object' && a ? a.port : a);
});
