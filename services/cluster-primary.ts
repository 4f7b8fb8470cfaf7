import cluster, { Worker } from 'node:cluster';
import type winston from 'winston';
import { PrimaryMessage, WorkerMessage, WorkerReadyDetails, WorkerSummary, isWorkerMessage } from './cluster-messages';
import { MetricsCollector } from './cluster-metrics';
import { ClusterRateStorePrimary } from './cluster-rate-store';
import type { Config } from './config';
import { Db, openDatabase } from './database';
import { AppLogger, createFileLogger, errorFields, logLifecycleEvent, writeForwardedLine } from './logger';
import { exitWithError } from './process-exit';
import { RateLimitPrimaryMessage, RateLimitWorkerMessage, isRateLimitWorkerMessage } from './rate-limit-messages';
import { settleOrder } from './orders';
import { TaskRecord, countUnfinishedTasks, finishTask, listTasksClaimedBy, requeueRunningTasks, requeueTask } from './task-store';

// How long the primary waits for the workers after their own SHUTDOWN_TIMEOUT_MS has passed, for
// the database to close and the last lines to arrive, before it kills them.
// NOTE: an estimate; a worker whose event loop is blocked past it is killed and counted as forced.
const SHUTDOWN_GRACE_MS = 5000;

// How long the primary waits for 'disconnect' after a worker's 'exit'. The messages that a dead
// worker wrote before it exited are read within milliseconds.
// NOTE: an estimate, with a wide margin; a line that comes later is still logged, after the exit line.
const DISCONNECT_AFTER_EXIT_MS = 1000;

// A task whose worker died this many times fails instead of going back in the queue, so that an
// input that crashes the process cannot take down one worker after another.
const MAX_WORKER_DEATHS_PER_TASK = 3;

interface WorkerState {
  worker: Worker;
  id: number;
  pid: number;
  ready: boolean;
  startupFailure: { message: string; error: string; stack?: string } | null;
  summary: WorkerSummary | null;
}

interface ExitStatus {
  code: number | null;
  signal: string | null;
}

type Phase = 'starting' | 'running' | 'stopping';

/**
 * The cluster primary. It forks WORKERS workers, which each load the model and serve the shared
 * port, and writes the log lines they send. It replaces a worker that dies and puts that worker's
 * tasks back in the queue. On SIGTERM or SIGINT it stops every worker and logs the summary last.
 */
class ClusterPrimary {
  private readonly config: Config;
  private readonly log: AppLogger;
  private readonly logger: winston.Logger;
  private readonly db: Db;
  private readonly startedAt: number;
  private readonly tasksPending: number;
  private readonly workers = new Map<number, WorkerState>();
  private phase: Phase = 'starting';
  private signal: string | null = null;
  /** Set once every worker of the first start is ready and 'server started' is logged. */
  private serverStarted = false;
  /** Set when a worker failed to start: the primary then stops the others and exits 1. */
  private startupFailed = false;
  /** Workers that were running when the shutdown began, with how they exited. */
  private readonly stopped: { state: WorkerState; exit: ExitStatus }[] = [];
  private killedAtShutdown = 0;
  private workersLost = 0;
  /** Tasks that the primary failed because their workers kept dying. */
  private tasksFailed = 0;
  /** How many workers died while running each task, by task id. */
  private readonly workerDeathsByTask = new Map<string, number>();
  private readonly metricsCollector = new MetricsCollector((workerId, message) => this.sendTo(workerId, message));
  /** Keeps the rate limit counts of every worker (middleware/rate-limit.ts), so that they share one limit. */
  private readonly rateLimits: ClusterRateStorePrimary;

  constructor(options: { config: Config; log: AppLogger; db: Db; startedAt: number; tasksPending: number }) {
    this.config = options.config;
    this.log = options.log;
    this.logger = options.log.logger;
    this.db = options.db;
    this.startedAt = options.startedAt;
    this.tasksPending = options.tasksPending;
    this.rateLimits = new ClusterRateStorePrimary(options.config.WORKERS);
    this.rateLimits.startSweeping();
  }

  start(): void {
    for (let i = 0; i < this.config.WORKERS; i++) this.fork();
  }

  /** Starts the shutdown once; a second signal is logged and ignored. */
  shutDown(signal: string): void {
    if (this.phase === 'stopping') {
      this.logger.warn('shutdown already in progress; signal ignored', { signal });
      return;
    }
    this.signal = signal;
    logLifecycleEvent(this.logger, 'shutdown started', { signal, timeoutMs: this.config.SHUTDOWN_TIMEOUT_MS, workers: this.workers.size });
    this.stopWorkers(signal);
  }

  private fork(): void {
    const worker = cluster.fork();
    const state: WorkerState = {
      worker,
      id: worker.id,
      pid: worker.process.pid ?? -1,
      ready: false,
      startupFailure: null,
      summary: null,
    };
    this.workers.set(state.id, state);

    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.handleMessage(state, message);
      else if (isRateLimitWorkerMessage(message)) this.handleRateLimitMessage(state, message);
    });
    // Node's cluster module re-emits errors of the worker's IPC channel on the worker, and an
    // 'error' event without a listener is an uncaught exception. A write to a worker that is
    // exiting fails with EPIPE this way; its exit is handled below, so the error is only logged.
    worker.on('error', (error: Error) => {
      this.logger.warn('channel to worker failed', { workerId: state.id, pid: state.pid, error: error.message });
    });
    // Messages can still arrive between 'exit' and 'disconnect'; 'disconnect' comes after the last.
    // But Node postpones 'disconnect' until the worker acknowledges every connection handed to it,
    // which a worker killed during a hand-off never does. So after 'exit' the wait is bounded.
    const exited = new Promise<ExitStatus>((resolve) => worker.once('exit', (code, signal) => resolve({ code, signal })));
    const disconnected = new Promise<void>((resolve) => worker.once('disconnect', resolve));
    const lastMessagesIn = exited.then(() => Promise.race([disconnected, delay(DISCONNECT_AFTER_EXIT_MS)]));
    void Promise.all([exited, lastMessagesIn]).then(([exit]) => this.handleWorkerGone(state, exit));
  }

  private handleMessage(state: WorkerState, message: WorkerMessage): void {
    switch (message.type) {
      case 'log':
        writeForwardedLine(this.logger, message.level, message.line);
        return;
      case 'ready':
        state.ready = true;
        if (this.phase === 'starting' && [...this.workers.values()].every((other) => other.ready)) this.logStarted(message.details);
        return;
      case 'startup-failed':
        state.startupFailure = { message: message.message, error: message.error, stack: message.stack };
        return;
      case 'task-queued':
        this.wakeRunners(state.id);
        return;
      case 'stopped':
        state.summary = message.summary;
        return;
      case 'metrics-request':
        this.metricsCollector.collect(state.id, message.scrapeId, this.readyWorkerIds());
        return;
      case 'metrics-snapshot':
      case 'metrics-snapshot-failed':
        this.metricsCollector.receive(state.id, message);
        return;
    }
  }

  private handleRateLimitMessage(state: WorkerState, message: RateLimitWorkerMessage): void {
    for (const outgoing of this.rateLimits.handleMessage(state.id, message)) this.sendTo(outgoing.workerId, outgoing.message);
  }

  private readyWorkerIds(): number[] {
    return [...this.workers.values()].filter((state) => state.ready && state.worker.isConnected()).map((state) => state.id);
  }

  private sendTo(workerId: number, message: PrimaryMessage | RateLimitPrimaryMessage): void {
    const state = this.workers.get(workerId);
    if (!state || !state.worker.isConnected()) return;
    // As in wakeRunners: a channel that has just closed reports its error to the callback.
    state.worker.send(message, undefined, () => undefined);
  }

  private logStarted(details: WorkerReadyDetails): void {
    this.phase = 'running';
    this.serverStarted = true;
    logLifecycleEvent(this.logger, 'server started', {
      workers: this.workers.size,
      ...details,
      startupMs: Date.now() - this.startedAt,
      tasksPending: this.tasksPending,
    });
  }

  /** Tells every ready worker but `exceptId` to look for queued tasks. */
  private wakeRunners(exceptId: number | null): void {
    for (const state of this.workers.values()) {
      if (state.id === exceptId || !state.ready || !state.worker.isConnected()) continue;
      // With a callback, a channel that has just closed reports its error to the callback instead
      // of raising an 'error' event without a listener. The worker's exit is handled on its own.
      state.worker.send({ type: 'wake-runner' }, undefined, () => undefined);
    }
  }

  private handleWorkerGone(state: WorkerState, exit: ExitStatus): void {
    this.workers.delete(state.id);
    this.metricsCollector.forgetWorker(state.id);
    this.rateLimits.forgetWorker(state.id);

    if (this.phase === 'stopping') {
      if (!state.ready && state.startupFailure) {
        this.logger.warn('worker failed to start during shutdown', { workerId: state.id, pid: state.pid, cause: state.startupFailure.message, error: state.startupFailure.error });
      }
      this.stopped.push({ state, exit });
      if (this.workers.size === 0) void this.finish();
      return;
    }

    if (!state.ready) {
      this.failStartup(state, exit);
      return;
    }

    this.workersLost++;
    this.logger.error('worker exited', { workerId: state.id, pid: state.pid, code: exit.code, signal: exit.signal });
    this.releaseTasks(state);
    this.fork();
  }

  /**
   * Puts the tasks that a dead worker had claimed back in the queue and wakes the other runners.
   * A task whose workers died MAX_WORKER_DEATHS_PER_TASK times fails instead, with its order.
   */
  private releaseTasks(state: WorkerState): void {
    const fields = { workerId: state.id, pid: state.pid };
    let claimed: TaskRecord[];
    try {
      claimed = listTasksClaimedBy(this.db, state.pid);
    } catch (error) {
      this.logger.error('tasks of a dead worker could not be read', { ...fields, ...errorFields(error) });
      return;
    }

    const requeued: string[] = [];
    for (const task of claimed) {
      const deaths = (this.workerDeathsByTask.get(task.id) ?? 0) + 1;
      this.workerDeathsByTask.set(task.id, deaths);
      try {
        if (deaths >= MAX_WORKER_DEATHS_PER_TASK) {
          this.failAbandonedTask(task, deaths);
        } else {
          requeueTask(this.db, task.id);
          requeued.push(task.id);
        }
      } catch (error) {
        this.logger.error('task of a dead worker could not be put back in the queue', { ...fields, taskId: task.id, ...errorFields(error) });
      }
    }
    if (requeued.length === 0) return;

    this.logger.info('tasks of a dead worker put back in the queue', { ...fields, taskIds: requeued });
    this.wakeRunners(null);
  }

  private failAbandonedTask(task: TaskRecord, deaths: number): void {
    const message = `the worker running this task exited ${deaths} times; the task is not retried`;
    const failed = this.db.transaction(() => {
      if (!finishTask(this.db, task.id, this.config.TASK_TTL_SECONDS, { status: 'failed', error: message })) return false;
      if (task.orderId !== null) settleOrder(this.db, task.orderId, 'failed');
      return true;
    })();
    if (!failed) return;

    this.tasksFailed++;
    this.logger.error('task failed', { taskId: task.id, error: message });
  }

  /**
   * Logs why a worker did not start, stops the others and exits 1 once they have exited. A
   * replacement that fails to start stops the cluster too, because it would most likely fail again.
   */
  private failStartup(state: WorkerState, exit: ExitStatus): void {
    const fields = { workerId: state.id, pid: state.pid };
    if (state.startupFailure) {
      const { message, error, stack } = state.startupFailure;
      this.logger.error(message, { ...fields, error, stack });
    } else {
      this.logger.error('worker exited before it was ready', { ...fields, code: exit.code, signal: exit.signal });
    }
    this.startupFailed = true;
    this.stopWorkers('SIGTERM');
  }

  private stopWorkers(signal: string): void {
    this.phase = 'stopping';
    if (this.workers.size === 0) {
      void this.finish();
      return;
    }
    for (const state of this.workers.values()) state.worker.process.kill(signal as NodeJS.Signals);

    const timer = setTimeout(() => this.killRemainingWorkers(), this.config.SHUTDOWN_TIMEOUT_MS + SHUTDOWN_GRACE_MS);
    timer.unref();
  }

  private killRemainingWorkers(): void {
    for (const state of this.workers.values()) {
      this.logger.error('worker did not stop in time; killing it', { workerId: state.id, pid: state.pid, timeoutMs: this.config.SHUTDOWN_TIMEOUT_MS + SHUTDOWN_GRACE_MS });
      this.killedAtShutdown++;
      state.worker.process.kill('SIGKILL');
    }
  }

  /**
   * Runs once every worker has exited: puts tasks that are still marked running back in the
   * queue, closes the database, logs the summary as the last line and exits.
   */
  private async finish(): Promise<never> {
    let tasksLeftQueued: number | null = null;
    try {
      requeueRunningTasks(this.db);
      tasksLeftQueued = countUnfinishedTasks(this.db);
      this.db.close();
    } catch (error) {
      this.logger.error('database could not be closed cleanly', errorFields(error));
    }

    // A first start that failed ends with the cause as its last error line, as in a single process.
    if (this.startupFailed && !this.serverStarted) {
      await this.log.close();
      process.exit(1);
    }

    // A worker forked shortly before the signal may still be loading its modules, before it has
    // installed its signal handlers, so the signal ends it: that is a clean stop too.
    const workersClean = this.stopped.every(({ state, exit }) => exit.code === 0 || (!state.ready && exit.signal === this.signal));
    const forced = this.killedAtShutdown > 0 || this.stopped.some(({ state }) => state.summary?.forced ?? false);
    const total = (count: (summary: WorkerSummary) => number) => this.stopped.reduce((sum, { state }) => sum + (state.summary ? count(state.summary) : 0), 0);
    logLifecycleEvent(this.logger, 'shutdown complete', {
      signal: this.signal,
      forced,
      workers: this.stopped.length,
      workersLost: this.workersLost,
      workerExits: this.stopped.map(({ state, exit }) => ({ workerId: state.id, pid: state.pid, code: exit.code, signal: exit.signal })),
      uptimeMs: Date.now() - this.startedAt,
      // NOTE: these counts cover the workers that stopped at this shutdown. A worker that died
      // earlier took its counts with it, but its lines are in the log.
      requestsServed: total((summary) => summary.requestsServed),
      tasksSucceeded: total((summary) => summary.tasksSucceeded),
      tasksFailed: this.tasksFailed + total((summary) => summary.tasksFailed),
      tasksCancelled: total((summary) => summary.tasksCancelled),
      tasksLeftQueued,
    });
    await this.log.close();
    process.exit(workersClean && !forced && !this.startupFailed ? 0 : 1);
  }
}

/**
 * Runs this process as the cluster primary: opens the log file and the database (applying
 * migrations once, before any worker opens it), puts the previous run's tasks back in the queue
 * and forks the workers.
 */
export async function runPrimary(config: Config, startedAt: number): Promise<void> {
  let log: AppLogger;
  try {
    // Only the primary writes the log file, so only it rotates the file.
    log = createFileLogger(config, { workers: config.WORKERS });
  } catch (error) {
    return exitWithError(null, `log file in LOG_DIR=${config.LOG_DIR} cannot be written`, error);
  }
  process.on('uncaughtException', (error) => void exitWithError(log, 'uncaught exception', error));
  process.on('unhandledRejection', (reason) => void exitWithError(log, 'unhandled promise rejection', reason));

  let db: Db;
  let tasksPending: number;
  try {
    db = openDatabase(config.DATABASE_PATH, config.DATABASE_BUSY_TIMEOUT_MS);
    // No worker runs yet, so every task still marked running was left so by the previous run.
    requeueRunningTasks(db);
    tasksPending = countUnfinishedTasks(db);
  } catch (error) {
    return exitWithError(log, `database at DATABASE_PATH=${config.DATABASE_PATH} could not be opened`, error);
  }

  const primary = new ClusterPrimary({ config, log, db, startedAt, tasksPending });
  process.on('SIGTERM', (signal) => primary.shutDown(signal));
  process.on('SIGINT', (signal) => primary.shutDown(signal));
  // logrotate's postrotate scripts send SIGHUP once they have moved the log file.
  process.on('SIGHUP', () => log.reopenFile());
  primary.start();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
