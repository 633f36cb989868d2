/** Checks the object converter against the wire form for messages beyond the benchmark's (FieldMask, agent oneofs, maps). */
import { equals, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import * as esA from '../gen/es/taskgate/v1/agent_pb.js';
import * as esT from '../gen/es/taskgate/v1/target_pb.js';
import * as tpA from '../gen/tsproto/taskgate/v1/agent.js';
import * as tpT from '../gen/tsproto/taskgate/v1/target.js';
import { objToEs, objToTs, type TsProtoFns } from './bridge.js';

function check<T>(name: string, schema: DescMessage, fns: TsProtoFns<T> & { fromPartial(o: unknown): T }, partial: unknown) {
  const obj = fns.fromPartial(partial);
  const bytes = fns.encode(obj).finish();
  const es = fromBinary(schema, bytes);
  const viaEs = objToEs(schema, obj);
  const ok1 = equals(schema, viaEs, es) && Buffer.compare(toBinary(schema, viaEs), bytes) === 0;
  const ok2 = Buffer.compare(fns.encode(objToTs(schema, es) as T).finish(), bytes) === 0;
  console.log(`${ok1 && ok2 ? 'ok  ' : 'FAIL'} ${name} (${bytes.length} B)`);
  if (!(ok1 && ok2)) process.exitCode = 1;
}
const t = tpT.Target.fromPartial({ name: 'prod', agent: 'a1', created: new Date(1e12), updated: new Date(1e12 + 5) });
check('UpdateTargetRequest + FieldMask', esT.UpdateTargetRequestSchema, tpT.UpdateTargetRequest, { target: t, updateMask: ['agent', 'review'] });
check('UpdateTargetRequest, no mask', esT.UpdateTargetRequestSchema, tpT.UpdateTargetRequest, { target: t });
check('ConnectRequest hello', esA.ConnectRequestSchema, tpA.ConnectRequest, { message: { $case: 'hello', value: { name: 'a1' } } });
check('ConnectRequest output', esA.ConnectRequestSchema, tpA.ConnectRequest, { message: { $case: 'output', value: { taskId: 't', seq: 7, offset: 2 ** 40, data: Buffer.from('hi') } } });
check('ConnectRequest exit', esA.ConnectRequestSchema, tpA.ConnectRequest, { message: { $case: 'exit', value: { taskId: 't', chunks: 3, totalBytes: 9, findings: { email: 2 } } } });
check('ConnectRequest empty', esA.ConnectRequestSchema, tpA.ConnectRequest, {});
check('ConnectResponse run', esA.ConnectResponseSchema, tpA.ConnectResponse, { message: { $case: 'run', value: { taskId: 't', script: 'echo', timeoutMs: 5000 } } });
