/** TargetService: manage targets (admin). */
import type {
  CreateTargetRequest,
  CreateTargetResponse,
  DeleteTargetRequest,
  DeleteTargetResponse,
  GetTargetRequest,
  GetTargetResponse,
  ListTargetsRequest,
  ListTargetsResponse,
  TargetServiceServer,
  UpdateTargetRequest,
  UpdateTargetResponse,
} from '../../gen/taskgate/v1/target.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../shared/errors.js';
import { MAX_MESSAGE_BYTES } from '../../shared/limits.js';
import { targetToWire } from '../convert.js';
import type { Store, TargetPatch, TargetRecord } from '../store/store.js';
import { checkName, checkSize, checkType, pageSize, pageToken } from '../validate.js';
import type { HandlerFactory } from './handler.js';

/** Fields UpdateTarget may change, by their proto names. */
const UPDATABLE = ['type', 'agent', 'message'] as const;

/** The TargetService implementation. */
export function targetService(store: Store, h: HandlerFactory): TargetServiceServer {
  async function mustGet(name: string): Promise<TargetRecord> {
    if (name === '') throw new InvalidArgumentError('name is required');
    const target = await store.getTarget(name);
    if (!target) throw new NotFoundError(`target "${name}" not found`);
    return target;
  }

  async function createTarget(req: CreateTargetRequest): Promise<CreateTargetResponse> {
    const t = req.target;
    if (!t) throw new InvalidArgumentError('target is required');
    const now = new Date();
    const target: TargetRecord = {
      name: checkName('target.name', t.name),
      type: checkType('target.type', t.type || 'bash'),
      agent: checkName('target.agent', t.agent),
      message: checkSize('target.message', t.message, MAX_MESSAGE_BYTES),
      created: now,
      updated: now,
    };
    await store.insertTarget(target);
    return { target: targetToWire(target) };
  }

  async function updateTarget(req: UpdateTargetRequest): Promise<UpdateTargetResponse> {
    const t = req.target;
    if (!t) throw new InvalidArgumentError('target is required');
    await mustGet(t.name);
    const paths = req.updateMask?.length ? req.updateMask : [...UPDATABLE];
    const patch: TargetPatch = {};
    for (const path of paths) {
      switch (path) {
        case 'type':
          patch.type = checkType('target.type', t.type);
          break;
        case 'agent':
          patch.agent = checkName('target.agent', t.agent);
          break;
        case 'message':
          patch.message = checkSize('target.message', t.message, MAX_MESSAGE_BYTES);
          break;
        default:
          throw new InvalidArgumentError(`update_mask path "${path}" cannot be updated; use ${UPDATABLE.join(', ')}`);
      }
    }
    const updated = await store.updateTarget(t.name, patch, new Date());
    if (!updated) throw new NotFoundError(`target "${t.name}" not found`);
    return { target: targetToWire(updated) };
  }

  async function deleteTarget(req: DeleteTargetRequest): Promise<DeleteTargetResponse> {
    await mustGet(req.name);
    if (await store.hasUnfinishedTasks(req.name)) {
      throw new FailedPreconditionError(`target "${req.name}" has unfinished tasks; wait for them or kill them first`);
    }
    if (!(await store.deleteTarget(req.name))) throw new NotFoundError(`target "${req.name}" not found`);
    return {};
  }

  async function listTargets(req: ListTargetsRequest): Promise<ListTargetsResponse> {
    const limit = pageSize(req.pageSize, 100);
    const targets = await store.listTargets(pageToken.decode(req.pageToken), limit + 1);
    const page = targets.slice(0, limit);
    const last = page[page.length - 1];
    return {
      targets: page.map(targetToWire),
      nextPageToken: targets.length > limit && last ? pageToken.encode(last.name) : '',
    };
  }

  return {
    createTarget: h.unary('TargetService/CreateTarget', 'admin', createTarget),
    getTarget: h.unary('TargetService/GetTarget', 'admin', async (req: GetTargetRequest): Promise<GetTargetResponse> => ({
      target: targetToWire(await mustGet(req.name)),
    })),
    listTargets: h.unary('TargetService/ListTargets', 'admin', listTargets),
    updateTarget: h.unary('TargetService/UpdateTarget', 'admin', updateTarget),
    deleteTarget: h.unary('TargetService/DeleteTarget', 'admin', deleteTarget),
  };
}
