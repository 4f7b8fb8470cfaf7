import type winston from 'winston';
import type { PredictionBatcher } from './batcher';
import type { Db } from './database';
import { errorFields } from './logger';
import { classifyPendingItems, countItems, listItems } from './items';
import type { LoadedModel } from './model';
import type { ImageLimits } from './model-input';
import { billOfOrder, settleOrder } from './orders';
import { TaskRecord, claimNextTask, deleteExpiredTasks, finishTask, readTaskStatus, requeueTask, updateProgress } from './task-store';

export interface TaskRunnerOptions {
  db: Db;
  model: LoadedModel;
  batcher: PredictionBatcher;
  logger: winston.Logger;
  limits: ImageLimits;
  chunkSize: number;
  ttlSeconds: number;
  /** Tells the runners of other processes that share the database that a task was queued. */
  announceTaskQueued?: () => void;
}

export interface TaskCounts {
  succeeded: number;
  failed: number;
  cancelled: number;
}

/**
 * Runs queued tasks one at a time, a chunk of items per step, and yields to the event loop with
 * `setImmediate` between chunks so that requests keep being served. Every step catches its own
 * errors: a failing task ends `failed` and the runner goes on with the next one.
 */
export class TaskRunner {
  readonly counts: TaskCounts = { succeeded: 0, failed: 0, cancelled: 0 };
  private readonly options: TaskRunnerOptions;
  private busy = false;
  private stopping = false;
  private idleWaiters: (() => void)[] = [];

  constructor(options: TaskRunnerOptions) {
    this.options = options;
  }

  /** Wakes this runner for a task queued by this process, and the runners of other processes. */
  notifyTaskQueued(): void {
    this.wake();
    this.options.announceTaskQueued?.();
  }

  /** Schedules a look for queued tasks on the next turn of the event loop. */
  wake(): void {
    if (this.busy || this.stopping) return;
    this.busy = true;
    setImmediate(() => this.runNextTask());
  }

  /**
   * Stops taking tasks. Resolves once the chunk in progress, if any, has been stored; the running
   * task then goes back to `queued`, to continue after the next start.
   */
  stop(): Promise<void> {
    this.stopping = true;
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private runNextTask(): void {
    const { db, logger } = this.options;
    let task: TaskRecord | null = null;
    try {
      if (!this.stopping) {
        deleteExpiredTasks(db);
        task = claimNextTask(db, process.pid);
      }
    } catch (error) {
      logger.error('task queue could not be read', errorFields(error));
    }
    if (!task) {
      this.becomeIdle();
      return;
    }

    logger.info('task started', { taskId: task.id, kind: task.kind, done: task.progress.done, total: task.progress.total });
    setImmediate(() => this.runChunk(task));
  }

  private runChunk(task: TaskRecord): void {
    this.processChunk(task)
      .then((finished) => {
        if (!finished) {
          setImmediate(() => this.runChunk(task));
          return;
        }
        setImmediate(() => this.runNextTask());
      })
      .catch((error: unknown) => {
        this.failTask(task, error);
        setImmediate(() => this.runNextTask());
      });
  }

  /** Processes one chunk. Returns true when the task has ended or was handed back to the queue. */
  private async processChunk(task: TaskRecord): Promise<boolean> {
    const { db, model, batcher, limits, chunkSize, logger } = this.options;

    const status = readTaskStatus(db, task.id);
    if (status !== 'running') {
      // Cancelled, or deleted with its user's account, between two chunks.
      if (status === 'cancelled') {
        this.counts.cancelled++;
        if (task.orderId !== null) settleOrder(db, task.orderId, 'cancelled');
        logger.info('task cancelled', { taskId: task.id });
      }
      if (status === null) this.stopDeletedTask(task);
      return true;
    }
    if (this.stopping) {
      requeueTask(db, task.id);
      logger.info('task interrupted by the shutdown; requeued', { taskId: task.id });
      return true;
    }

    // A cancel that arrives while the chunk is being classified wins: its results are dropped, and
    // the progress stays as the cancel response reported it.
    await classifyPendingItems(db, task.itemOwnerId, chunkSize, model, batcher, limits, {
      isWanted: () => readTaskStatus(db, task.id) === 'running',
      afterStore: () => {
        const stored = countItems(db, task.itemOwnerId);
        updateProgress(db, task.id, stored.classified + stored.failed);
      },
    });
    const statusAfter = readTaskStatus(db, task.id);
    if (statusAfter === null) {
      // The account was deleted while the chunk ran, and its items with it.
      this.stopDeletedTask(task);
      return true;
    }
    // Cancelled while the chunk ran, which also cancelled the pending items: the check at the top
    // of the next call settles it.
    if (statusAfter !== 'running') return false;
    const counts = countItems(db, task.itemOwnerId);
    if (counts.pending > 0) return false;

    this.completeTask(task, counts);
    return true;
  }

  private stopDeletedTask(task: TaskRecord): void {
    this.counts.cancelled++;
    this.options.logger.info('task cancelled', { taskId: task.id, reason: 'deleted with its user' });
  }

  private completeTask(task: TaskRecord, counts: { classified: number; failed: number }): void {
    const { db, ttlSeconds, logger, model } = this.options;

    if (counts.classified === 0 && counts.failed > 0) {
      const firstError = listItems(db, task.itemOwnerId).find((item) => item.error !== null)?.error?.message;
      throw new Error(`all ${counts.failed} items failed; the first: ${firstError}`);
    }

    let result: unknown;
    if (task.orderId !== null) {
      settleOrder(db, task.orderId, 'completed');
      result = { orderId: task.orderId, classified: counts.classified, failed: counts.failed, bill: billOfOrder(db, task.orderId) };
    } else {
      const predictions = listItems(db, task.itemOwnerId).map((item) =>
        item.status === 'classified'
          ? { label: item.label, confidence: item.confidence, probabilities: item.probabilities }
          : { error: item.error },
      );
      result = { predictions, model: { name: model.metadata.name, version: model.metadata.version } };
    }

    if (finishTask(db, task.id, ttlSeconds, { status: 'succeeded', result })) {
      this.counts.succeeded++;
      logger.info('task succeeded', { taskId: task.id, classified: counts.classified, failed: counts.failed });
    }
  }

  private failTask(task: TaskRecord, error: unknown): void {
    const { db, ttlSeconds, logger } = this.options;
    const message = error instanceof Error ? error.message : String(error);
    logger.error('task failed', { taskId: task.id, ...errorFields(error) });
    try {
      if (task.orderId !== null) settleOrder(db, task.orderId, 'failed');
      if (finishTask(db, task.id, ttlSeconds, { status: 'failed', error: message })) this.counts.failed++;
    } catch (storeError) {
      logger.error('task failure could not be stored', { taskId: task.id, ...errorFields(storeError) });
    }
  }

  private becomeIdle(): void {
    this.busy = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
