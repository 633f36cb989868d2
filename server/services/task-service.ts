/** TaskService: create tasks, read them, read and follow their output. */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type {
  CreateTaskRequest,
  CreateTaskResponse,
  GetTaskLogsRequest,
  GetTaskLogsResponse,
  GetTaskRequest,
  GetTaskResponse,
  ListTasksRequest,
  ListTasksResponse,
  TaskServiceServer,
} from '../../gen/taskgate/v1/task.js';
import { InvalidArgumentError, NotFoundError } from '../../shared/errors.js';
import { newTaskId } from '../../shared/ids.js';
import { MAX_MESSAGE_BYTES, MAX_SCRIPT_BYTES } from '../../shared/limits.js';
import { isTerminal, type TaskStatus } from '../../shared/task-status.js';
import { actorOf } from '../auth.js';
import { statusFromWire, taskToWire } from '../convert.js';
import type { Store, TaskRecord } from '../store/store.js';
import type { TaskHub } from '../task-hub.js';
import type { TaskMachine } from '../task-machine.js';
import { checkSize, checkType, pageSize, pageToken } from '../validate.js';
import { drained, type HandlerContext, type HandlerFactory } from './handler.js';

/** Chunks read from the store per round trip when sending logs. */
const LOG_BATCH = 256;
/** How often a follower re-reads the store without a local notification, in ms. */
const FOLLOW_POLL_MS = 1000;

/** Routes a new task: to review, or straight to ready (no review yet exists). */
export async function routeCreatedTask(machine: TaskMachine, store: Store, task: TaskRecord): Promise<TaskRecord | null> {
  const target = await store.getTarget(task.target);
  if (!target) {
    return machine.tryMove(task.id, 'failure', {
      actor: 'system',
      reason: 'target was deleted before the task was routed',
      from: ['created'],
      patch: { failureReason: `target "${task.target}" no longer exists`, finished: new Date() },
    });
  }
  return machine.tryMove(task.id, 'ready', {
    actor: 'system',
    reason: 'no review required',
    from: ['created'],
    patch: { agent: target.agent },
  });
}

/** The TaskService implementation. */
export function taskService(store: Store, machine: TaskMachine, hub: TaskHub, h: HandlerFactory): TaskServiceServer {
  async function createTask(req: CreateTaskRequest, ctx: HandlerContext): Promise<CreateTaskResponse> {
    if (req.target === '') throw new InvalidArgumentError('target is required');
    if (req.script.trim() === '') throw new InvalidArgumentError('script must not be empty');
    checkSize('script', req.script, MAX_SCRIPT_BYTES);
    checkSize('message', req.message, MAX_MESSAGE_BYTES);
    const target = await store.getTarget(req.target);
    if (!target) throw new NotFoundError(`target "${req.target}" not found`);
    const type = checkType('type', req.type === '' ? target.type : req.type);
    const now = new Date();
    const actor = actorOf(ctx.principal);
    const task: TaskRecord = {
      id: newTaskId(),
      created: now,
      message: req.message,
      script: req.script,
      type,
      target: target.name,
      status: 'created',
      createdBy: actor,
      agent: '',
      bootId: '',
      started: null,
      finished: null,
      exitCode: null,
      signal: '',
      failureReason: '',
      outputBytes: 0,
      events: [{ time: now, actor, from: null, to: 'created', reason: 'created' }],
    };
    await store.insertTask(task);
    const routed = await routeCreatedTask(machine, store, task);
    return { task: taskToWire(routed ?? (await store.getTask(task.id)) ?? task) };
  }

  async function getTask(req: GetTaskRequest): Promise<GetTaskResponse> {
    return { task: taskToWire(await mustGet(req.id)) };
  }

  async function mustGet(id: string): Promise<TaskRecord> {
    if (id === '') throw new InvalidArgumentError('id is required');
    const task = await store.getTask(id);
    if (!task) throw new NotFoundError(`task ${id} not found`);
    return task;
  }

  async function listTasks(req: ListTasksRequest): Promise<ListTasksResponse> {
    const statuses: TaskStatus[] = req.statuses.map((s) => {
      const status = statusFromWire(s);
      if (!status) throw new InvalidArgumentError(`unknown status value ${s}`);
      return status;
    });
    const limit = pageSize(req.pageSize, 50);
    const beforeId = pageToken.decode(req.pageToken) || undefined;
    const tasks = await store.listTasks({ statuses, target: req.target || undefined, beforeId, limit: limit + 1 });
    const page = tasks.slice(0, limit);
    const last = page[page.length - 1];
    return {
      tasks: page.map(taskToWire),
      nextPageToken: tasks.length > limit && last ? pageToken.encode(last.id) : '',
    };
  }

  async function getTaskLogs(
    req: GetTaskLogsRequest,
    call: ServerWritableStream<GetTaskLogsRequest, GetTaskLogsResponse>,
    ctx: HandlerContext,
  ): Promise<void> {
    if (req.offset < 0) throw new InvalidArgumentError('offset must not be negative');
    await mustGet(req.id);
    const { signal } = ctx;
    let changed = true;
    let wake: (() => void) | undefined;
    // Subscribe before the first read so no change between a read and the
    // wait is missed.
    const unsubscribe = hub.subscribe(req.id, () => {
      changed = true;
      wake?.();
    });
    try {
      let lastSeq = -1;
      let first = true;
      while (!signal.aborted) {
        changed = false;
        // Status first: a task is finished only once every chunk is stored,
        // so after seeing a terminal status, one more read gets them all.
        const task = await mustGet(req.id);
        const chunks = await store.readChunks(
          req.id,
          first ? { fromOffset: req.offset } : { afterSeq: lastSeq },
          LOG_BATCH,
        );
        first = false;
        for (const chunk of chunks) {
          const skip = Math.max(0, req.offset - chunk.offset);
          lastSeq = chunk.seq;
          if (skip >= chunk.data.length) continue;
          const ok = call.write({
            event: { $case: 'chunk', value: { offset: chunk.offset + skip, data: chunk.data.subarray(skip) } },
          });
          if (!ok) await drained(call, signal);
        }
        if (chunks.length === LOG_BATCH) continue;
        if (isTerminal(task.status)) {
          if (chunks.length > 0) continue;
          call.write({ event: { $case: 'finished', value: taskToWire(task) } });
          return;
        }
        if (!req.follow) return;
        if (chunks.length > 0 || changed) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, FOLLOW_POLL_MS);
          signal.addEventListener('abort', done, { once: true });
          wake = done;
          function done(): void {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            wake = undefined;
            resolve();
          }
          if (changed) done();
        });
      }
    } finally {
      unsubscribe();
    }
  }

  return {
    createTask: h.unary('TaskService/CreateTask', 'admin', createTask),
    getTask: h.unary('TaskService/GetTask', 'admin', getTask),
    listTasks: h.unary('TaskService/ListTasks', 'admin', listTasks),
    getTaskLogs: h.stream('TaskService/GetTaskLogs', 'admin', getTaskLogs),
  };
}
