/** Calls the proof server in binary and JSON with connect-node's client. `node dist/src/proof-client.js PORT` */
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { toJsonString } from '@bufbuild/protobuf';
import { GetTaskResponseSchema, TaskService } from '../gen/es/taskgate/v1/task_pb.js';
const port = process.argv[2];
for (const useBinaryFormat of [true, false]) {
  const c = createClient(TaskService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1', useBinaryFormat }));
  const r = await c.getTask({ id: 'x' });
  console.log(useBinaryFormat ? 'binary' : 'json', 'GetTask outputBytes', r.task?.outputBytes, typeof r.task?.outputBytes, 'created', r.task?.created, toJsonString(GetTaskResponseSchema, r).length, 'json chars');
  for await (const e of c.getTaskLogs({ id: 'x', offset: 100n })) console.log('  stream', e.event.case, e.event.case === 'chunk' ? [e.event.value.offset, Buffer.from(e.event.value.data).toString()] : e.event.value?.status);
  try { await c.getTask({ id: 'nope' }); } catch (e) { console.log('  error', String(e)); }
}
