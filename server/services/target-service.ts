/** TargetService: every user reads targets; the admin group changes them. */
import {
  type CreateTargetRequest,
  type CreateTargetResponse,
  type DeleteTargetRequest,
  type DeleteTargetResponse,
  type DeleteSecretRequest,
  type DeleteSecretResponse,
  type ListSecretsRequest,
  type ListSecretsResponse,
  type SetSecretRequest,
  type SetSecretResponse,
  type GetTargetRequest,
  type GetTargetResponse,
  type ListTargetsRequest,
  type ListTargetsResponse,
  type Target,
  TargetServiceService,
  type UpdateTargetRequest,
  type UpdateTargetResponse,
} from '../../gen/taskgate/v1/target.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../shared/errors.js';
import { INFO_TYPES } from '../../shared/detectors.js';
import { secretNameProblem } from '../../shared/env-names.js';
import { MAX_MESSAGE_BYTES } from '../../shared/limits.js';
import type { EventPublisher } from '../audit.js';
import type { SecretBox } from '../secret-box.js';
import { actorOf } from '../auth.js';
import { randomId } from '../../shared/ids.js';
import { reviewModeFromWire, targetToWire } from '../convert.js';
import type { ReviewMode, TargetStore, TaskStore, TargetPatch, TargetRecord } from '../store/store.js';
import { checkGroups, checkName, checkRunAs, checkSize, checkTimeout, checkType, pageSize, pageToken } from '../validate.js';
import type { ServiceSpec, UserContext } from '../rpc/core.js';

/** Fields UpdateTarget may change, by their proto names. */
const UPDATABLE = ['type', 'agent', 'message', 'review', 'reviewers', 'groups', 'allow_type_override', 'active', 'timeout_seconds', 'redact', 'custom_detectors', 'secret_provider', 'secret_path', 'secret_mapping', 'run_as', 'distinct_reviewers'] as const;

function checkReviewMode(t: Target): ReviewMode {
  const mode = reviewModeFromWire(t.review);
  if (!mode) throw new InvalidArgumentError(`target.review value ${t.review} is unknown; use NONE, ANYONE or TEAM`);
  return mode;
}

/** Redaction info types: built-in names, or "ALL" alone. */
function checkRedact(types: readonly string[]): string[] {
  const list = [...new Set(types.map((t) => t.toUpperCase()))];
  for (const t of list) {
    if (t !== 'ALL' && !INFO_TYPES.includes(t)) {
      throw new InvalidArgumentError(`target.redact has unknown info type "${t}"; use ALL or ${INFO_TYPES.join(', ')}`);
    }
  }
  return list.includes('ALL') ? ['ALL'] : list;
}

/** Custom detectors: an upper-case name and a pattern that compiles and cannot match the empty string. */
function checkDetectors(detectors: readonly { infoType: string; pattern: string }[]): { infoType: string; pattern: string }[] {
  if (detectors.length > 32) throw new InvalidArgumentError('target.custom_detectors: at most 32');
  return detectors.map(({ infoType, pattern }) => {
    if (!/^[A-Z][A-Z0-9_]{0,62}$/.test(infoType)) {
      throw new InvalidArgumentError(`custom detector name "${infoType}" is invalid: use upper-case letters, digits and '_'`);
    }
    checkSize(`custom detector ${infoType} pattern`, pattern, 1024);
    let re: RegExp;
    try {
      re = new RegExp(pattern, 'g');
    } catch (err) {
      throw new InvalidArgumentError(`custom detector ${infoType}: ${(err as Error).message}`);
    }
    if (re.test('')) throw new InvalidArgumentError(`custom detector ${infoType} matches the empty string`);
    return { infoType, pattern };
  });
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** A secret source: a known provider with a path, and variable names that can be environment variables. */
function checkSecrets(t: { secretProvider: string; secretPath: string; secretMapping: Record<string, string> }): Pick<
  TargetRecord,
  'secretProvider' | 'secretPath' | 'secretMapping'
> {
  if (!['', 'env', 'file', 'stored'].includes(t.secretProvider)) {
    throw new InvalidArgumentError(`target.secret_provider "${t.secretProvider}" is not supported; use env, file or stored (or none)`);
  }
  if ((t.secretProvider === 'env' || t.secretProvider === 'file') && t.secretPath === '') {
    throw new InvalidArgumentError('target.secret_path is required with the env and file providers');
  }
  if (t.secretProvider === 'env' && !ENV_NAME.test(t.secretPath)) {
    throw new InvalidArgumentError(`target.secret_path "${t.secretPath}" is not an environment variable name`);
  }
  for (const name of Object.keys(t.secretMapping)) {
    const problem = secretNameProblem(name);
    if (problem) throw new InvalidArgumentError(`target.secret_mapping key ${problem}`);
  }
  checkSize('target.secret_path', t.secretPath, 1024);
  return { secretProvider: t.secretProvider, secretPath: t.secretProvider === 'env' || t.secretProvider === 'file' ? t.secretPath : '', secretMapping: t.secretMapping };
}

/** Review settings that make sense together: team review names its groups, the others name none. */
function checkReviewRules(target: Pick<TargetRecord, 'review' | 'reviewers'>): void {
  if (target.review === 'team' && target.reviewers.length === 0) {
    throw new InvalidArgumentError('target.review TEAM needs at least one group in target.reviewers');
  }
  if (target.review !== 'team' && target.reviewers.length > 0) {
    throw new InvalidArgumentError(`target.reviewers only applies to review TEAM; this target's review is ${target.review.toUpperCase()}`);
  }
}

/** A short description of what an update changed, for the audit trail. */
function describeChange(before: TargetRecord, after: TargetRecord, keys: readonly (keyof TargetPatch)[]): string {
  return keys
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k}: ${JSON.stringify(before[k])} -> ${JSON.stringify(after[k])}`)
    .join('; ');
}

/** The TargetService implementation. */
/**
 * The TargetService implementation. `onChange` is told after a target is
 * updated or deleted: who may see its tasks may have changed, and open
 * streams are checked again.
 */
export function targetService(store: TargetStore & Pick<TaskStore, 'hasUnfinishedTasks'>, audit: EventPublisher, secretBox: SecretBox | null, onChange: () => void = () => undefined): ServiceSpec<typeof TargetServiceService> {
  async function mustGet(name: string): Promise<TargetRecord> {
    if (name === '') throw new InvalidArgumentError('name is required');
    const target = await store.getTarget(name);
    if (!target) throw new NotFoundError(`target "${name}" not found`);
    return target;
  }

  async function createTarget(req: CreateTargetRequest, { user }: UserContext): Promise<CreateTargetResponse> {
    const t = req.target;
    if (!t) throw new InvalidArgumentError('target is required');
    const now = new Date();
    const target: TargetRecord = {
      name: checkName('target.name', t.name),
      uid: randomId().slice(0, 16),
      type: checkType('target.type', t.type || 'bash'),
      agent: checkName('target.agent', t.agent),
      message: checkSize('target.message', t.message, MAX_MESSAGE_BYTES),
      review: checkReviewMode(t),
      reviewers: checkGroups('target.reviewers', t.reviewers),
      groups: checkGroups('target.groups', t.groups),
      allowTypeOverride: t.allowTypeOverride,
      active: t.active ?? true,
      timeoutSeconds: checkTimeout('target.timeout_seconds', t.timeoutSeconds),
      redact: checkRedact(t.redact),
      customDetectors: checkDetectors(t.customDetectors),
      ...checkSecrets(t),
      runAs: checkRunAs('target.run_as', t.runAs),
      distinctReviewers: t.distinctReviewers ?? true,
      created: now,
      updated: now,
    };
    checkReviewRules(target);
    await store.insertTarget(target);
    await audit.record({
      actor: actorOf(user),
      action: 'target.created',
      resource: `targets/${target.name}`,
      detail: `agent ${target.agent}, type ${target.type}, review ${target.review}${target.reviewers.length ? ` by ${target.reviewers.join(', ')}` : ''}, groups ${target.groups.join(', ') || 'everyone'}${target.runAs ? `, run as ${target.runAs}` : ''}`,
    });
    return { target: targetToWire(target) };
  }

  async function updateTarget(req: UpdateTargetRequest, { user }: UserContext): Promise<UpdateTargetResponse> {
    const t = req.target;
    if (!t) throw new InvalidArgumentError('target is required');
    const before = await mustGet(t.name);
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
        case 'review':
          patch.review = checkReviewMode(t);
          break;
        case 'reviewers':
          patch.reviewers = checkGroups('target.reviewers', t.reviewers);
          break;
        case 'groups':
          patch.groups = checkGroups('target.groups', t.groups);
          break;
        case 'allow_type_override':
          patch.allowTypeOverride = t.allowTypeOverride;
          break;
        case 'active':
          patch.active = t.active ?? true;
          break;
        case 'redact':
          patch.redact = checkRedact(t.redact);
          break;
        case 'custom_detectors':
          patch.customDetectors = checkDetectors(t.customDetectors);
          break;
        case 'secret_provider':
        case 'secret_path':
        case 'secret_mapping':
          // Only the secret fields in the mask change; the others keep their stored values.
          Object.assign(
            patch,
            checkSecrets({
              secretProvider: paths.includes('secret_provider') ? t.secretProvider : before.secretProvider,
              secretPath: paths.includes('secret_path') ? t.secretPath : before.secretPath,
              secretMapping: paths.includes('secret_mapping') ? t.secretMapping : before.secretMapping,
            }),
          );
          break;
        case 'timeout_seconds':
          patch.timeoutSeconds = checkTimeout('target.timeout_seconds', t.timeoutSeconds);
          break;
        case 'run_as':
          patch.runAs = checkRunAs('target.run_as', t.runAs);
          break;
        case 'distinct_reviewers':
          patch.distinctReviewers = t.distinctReviewers ?? true;
          break;
        default:
          throw new InvalidArgumentError(`update_mask path "${path}" cannot be updated; use ${UPDATABLE.join(', ')}`);
      }
    }
    checkReviewRules({ ...before, ...patch });
    const updated = await store.updateTarget(t.name, patch, new Date());
    if (!updated) throw new NotFoundError(`target "${t.name}" not found`);
    onChange();
    await audit.record({
      actor: actorOf(user),
      action: 'target.updated',
      resource: `targets/${updated.name}`,
      detail: describeChange(before, updated, Object.keys(patch) as (keyof TargetPatch)[]) || 'no change',
    });
    return { target: targetToWire(updated) };
  }

  async function deleteTarget(req: DeleteTargetRequest, { user }: UserContext): Promise<DeleteTargetResponse> {
    await mustGet(req.name);
    if (await store.hasUnfinishedTasks(req.name)) {
      throw new FailedPreconditionError(`target "${req.name}" has unfinished tasks; wait for them or kill them first`);
    }
    if (!(await store.deleteTarget(req.name))) throw new NotFoundError(`target "${req.name}" not found`);
    onChange();
    await audit.record({ actor: actorOf(user), action: 'target.deleted', resource: `targets/${req.name}`, detail: '' });
    return {};
  }

  async function setSecret(req: SetSecretRequest, { user }: UserContext): Promise<SetSecretResponse> {
    const target = await mustGet(req.target);
    const problem = secretNameProblem(req.key);
    if (problem) throw new InvalidArgumentError(`secret key ${problem}`);
    checkSize('value', req.value, 64 * 1024);
    if (!secretBox) throw new FailedPreconditionError('this server has no secrets key; start it with --secrets-key-file to store secrets');
    await store.putSecret(target.name, req.key, secretBox.seal(target.name, req.key, req.value), new Date());
    await audit.record({ actor: actorOf(user), action: 'secret.set', resource: `targets/${target.name}`, detail: `key ${req.key}` });
    return {};
  }

  async function listSecrets(req: ListSecretsRequest): Promise<ListSecretsResponse> {
    const target = await mustGet(req.target);
    return { keys: (await store.listSecrets(target.name)).map((s) => s.key) };
  }

  async function deleteSecret(req: DeleteSecretRequest, { user }: UserContext): Promise<DeleteSecretResponse> {
    const target = await mustGet(req.target);
    if (!(await store.deleteSecret(target.name, req.key))) throw new NotFoundError(`target "${target.name}" has no secret ${req.key}`);
    await audit.record({ actor: actorOf(user), action: 'secret.deleted', resource: `targets/${target.name}`, detail: `key ${req.key}` });
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
    definition: TargetServiceService,
    access: {
      createTarget: 'admin',
      getTarget: 'user',
      listTargets: 'user',
      updateTarget: 'admin',
      deleteTarget: 'admin',
      setSecret: 'admin',
      listSecrets: 'admin',
      deleteSecret: 'admin',
    },
    methods: {
      createTarget,
      getTarget: async (req: GetTargetRequest): Promise<GetTargetResponse> => ({ target: targetToWire(await mustGet(req.name)) }),
      listTargets,
      updateTarget,
      deleteTarget,
      setSecret,
      listSecrets,
      deleteSecret,
    },
  };
}
