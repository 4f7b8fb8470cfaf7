/**
 * The process entry point. With WORKERS=1 this process is the server: configuration, logger,
 * backend, database, model, then listen. On SIGTERM or SIGINT it drains requests and the task
 * runner, closes the database, logs a summary and flushes the log file before exiting.
 *
 * With WORKERS > 1 it becomes the cluster primary (services/cluster-primary.ts), which forks the
 * workers. Each worker runs this file too, as a server that sends its log lines to the primary and
 * reports its start and its stop to it.
 */
import cluster from 'node:cluster';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app';
import { INFERENCE_PROTOCOL_PATH } from './routers/inference-protocol';
import { buildServices } from './services/app-services';
import { ClientErrorOptions, answerClientErrors } from './services/client-errors';
import { selectBackend } from './services/backend';
import { runPrimary } from './services/cluster-primary';
import { WorkerSummary, isPrimaryMessage } from './services/cluster-messages';
import { WorkerMetricsChannel } from './services/cluster-metrics';
import { Config, loadConfig } from './services/config';
import { Db, openDatabase } from './services/database';
import { Lifecycle } from './services/lifecycle';
import { AppLogger, createFileLogger, createLogger, errorFields, logLifecycleEvent } from './services/logger';
import { loadModel } from './services/model';
import { exitWithError } from './services/process-exit';
import type { TaskRunner } from './services/task-runner';
import { countUnfinishedTasks, requeueRunningTasks, requeueTasksClaimedBy } from './services/task-store';

interface Running {
  config: Config;
  log: AppLogger;
  lifecycle: Lifecycle;
  db: Db | null;
  runner: TaskRunner | null;
  server: Server | null;
}

/**
 * Ends a start that failed. A cluster worker sends the cause to the primary, which logs it and
 * stops; a single process logs it itself.
 */
async function failStartup(log: AppLogger, message: string, error: unknown): Promise<never> {
  if (!log.ipc) return exitWithError(log, message, error);

  log.ipc.send({ type: 'startup-failed', message, ...errorFields(error) });
  await log.close();
  process.exit(1);
}

// How often Node checks open connections against HEADERS_TIMEOUT_MS and REQUEST_TIMEOUT_MS. Its
// default of 30 s would let a slow client stay up to 30 s past either timeout.
const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

function listen(app: ReturnType<typeof createApp>, config: Config, clientErrors: ClientErrorOptions): Promise<Server> {
  return new Promise((resolve, reject) => {
    // A client that sends its headers or its body too slowly gets 408 and its connection closed,
    // so slow clients cannot hold connections open.
    const server = http.createServer(
      {
        headersTimeout: config.HEADERS_TIMEOUT_MS,
        requestTimeout: config.REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
      },
      app,
    );
    server.listen(config.PORT, config.HOST);
    answerClientErrors(server, clientErrors);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

function waitWithTimeout(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    work.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/**
 * Stops the service once: no new connections, in-flight requests and the current task chunk
 * finish (up to SHUTDOWN_TIMEOUT_MS), unfinished tasks stay queued for the next start, the database
 * closes, a summary is logged and the log is flushed. Exits 0, or 1 when the timeout forced it.
 * A cluster worker logs and reports its own counts instead, and the primary logs the summary.
 */
async function shutDown(running: Running, signal: string): Promise<never> {
  const { config, log, lifecycle, server, runner, db } = running;
  const { logger } = log;
  lifecycle.shuttingDown = true;
  logLifecycleEvent(logger, 'shutdown started', { signal, timeoutMs: config.SHUTDOWN_TIMEOUT_MS });

  const serverClosed = server
    ? new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      })
    : Promise.resolve();
  const drained = await waitWithTimeout(Promise.all([serverClosed, runner?.stop()]), config.SHUTDOWN_TIMEOUT_MS);
  if (!drained) {
    logger.error('shutdown timed out; closing the remaining connections', { timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
    server?.closeAllConnections();
  }

  let tasksLeftQueued: number | null = null;
  if (db) {
    try {
      if (log.ipc) {
        // Other workers still run their own tasks, so a worker hands back only the ones it claimed.
        requeueTasksClaimedBy(db, process.pid);
      } else {
        requeueRunningTasks(db);
        tasksLeftQueued = countUnfinishedTasks(db);
      }
      db.close();
    } catch (error) {
      logger.error('database could not be closed cleanly', errorFields(error));
    }
    lifecycle.databaseOpen = false;
  }

  const summary: WorkerSummary = {
    forced: !drained,
    requestsServed: lifecycle.requestsServed,
    tasksSucceeded: runner?.counts.succeeded ?? 0,
    tasksFailed: runner?.counts.failed ?? 0,
    tasksCancelled: runner?.counts.cancelled ?? 0,
  };
  const uptimeMs = Date.now() - lifecycle.startedAt;
  if (log.ipc) {
    logLifecycleEvent(logger, 'worker stopped', { signal, uptimeMs, ...summary });
    log.ipc.send({ type: 'stopped', summary });
  } else {
    logLifecycleEvent(logger, 'shutdown complete', { signal, uptimeMs, ...summary, tasksLeftQueued });
  }
  await log.close();
  process.exit(drained ? 0 : 1);
}

/** Creates the logger: to the file and the console, or to the primary in a cluster worker. */
function createProcessLogger(config: Config): AppLogger {
  if (cluster.isWorker) {
    return createLogger({
      level: config.LOG_LEVEL,
      logDir: null,
      console: false,
      sendToPrimary: true,
      defaultMeta: { workerId: cluster.worker?.id, pid: process.pid },
    });
  }
  return createFileLogger(config, { workers: 1 });
}

/** Runs the server in this process: the whole service, or one worker of a cluster. */
async function runServer(config: Config, startedAt: number): Promise<void> {
  let log: AppLogger;
  try {
    log = createProcessLogger(config);
  } catch (error) {
    return exitWithError(null, `log file in LOG_DIR=${config.LOG_DIR} cannot be written`, error);
  }
  const { logger } = log;
  const lifecycle = new Lifecycle();
  const running: Running = { config, log, lifecycle, db: null, runner: null, server: null };

  const fail = (message: string, error: unknown) => (running.server ? exitWithError(log, message, error) : failStartup(log, message, error));
  process.on('uncaughtException', (error) => void fail('uncaught exception', error));
  process.on('unhandledRejection', (reason) => void fail('unhandled promise rejection', reason));

  let shutdown: Promise<never> | null = null;
  const onSignal = (signal: string) => {
    if (shutdown) {
      logger.warn('shutdown already in progress; signal ignored', { signal });
      return;
    }
    if (!running.server) {
      // Still starting: there are no requests or tasks to drain yet.
      logLifecycleEvent(logger, 'shutdown during startup; exiting', { signal });
      shutdown = log.close().then(() => process.exit(0));
      return;
    }
    shutdown = shutDown(running, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // logrotate's postrotate scripts send SIGHUP once they have moved the log file. In a cluster
  // worker, which has no file, this does nothing but keep a SIGHUP to the process group from
  // ending the worker, as Node's default action would.
  process.on('SIGHUP', () => log.reopenFile());

  let backend: string;
  try {
    backend = await selectBackend(config.TF_BACKEND);
  } catch (error) {
    return failStartup(log, 'TF.js backend could not be started', error);
  }

  try {
    running.db = openDatabase(config.DATABASE_PATH, config.DATABASE_BUSY_TIMEOUT_MS);
    lifecycle.databaseOpen = true;
  } catch (error) {
    return failStartup(log, `database at DATABASE_PATH=${config.DATABASE_PATH} could not be opened`, error);
  }

  let model: Awaited<ReturnType<typeof loadModel>>;
  try {
    model = await loadModel(config.MODEL_DIR, config.MAX_BATCH_SIZE);
    lifecycle.modelLoaded = true;
  } catch (error) {
    return failStartup(log, 'model could not be loaded', error);
  }

  const ipc = log.ipc;
  const services = buildServices({
    config,
    logger,
    db: running.db,
    model,
    lifecycle,
    // The primary passes it on, so that idle workers take the task while this one is busy.
    announceTaskQueued: ipc ? () => ipc.send({ type: 'task-queued' }) : undefined,
  });
  const { runner } = services;
  running.runner = runner;

  try {
    running.server = await listen(createApp(services), config, { logger, metrics: services.metrics, inferenceProtocolPath: INFERENCE_PROTOCOL_PATH });
  } catch (error) {
    return failStartup(log, `server could not listen on ${config.HOST}:${config.PORT}`, error);
  }
  const address = running.server.address() as AddressInfo;
  const details = {
    backend,
    model: model.metadata.name,
    modelVersion: model.metadata.version,
    inputShape: model.metadata.inputShape,
    inference: model.inferencePath,
    address: `http://${address.address}:${address.port}`,
  };

  if (ipc) {
    const clusterMetrics = new WorkerMetricsChannel(services.metrics, ipc);
    // The primary put the tasks of the previous run back in the queue before it forked the
    // workers; running tasks now belong to live workers.
    process.on('message', (message) => {
      if (!isPrimaryMessage(message)) return;
      if (message.type === 'wake-runner') runner.wake();
      else clusterMetrics.handle(message);
    });
    runner.wake();
    logLifecycleEvent(logger, 'worker started', { ...details, startupMs: Date.now() - startedAt });
    ipc.send({ type: 'ready', details });
    return;
  }

  // Tasks left running by a crash, or queued at the last shutdown, continue now.
  requeueRunningTasks(running.db);
  runner.wake();
  logLifecycleEvent(logger, 'server started', {
    ...details,
    startupMs: Date.now() - startedAt,
    tasksPending: countUnfinishedTasks(running.db),
  });
}

async function main(): Promise<void> {
  const startedAt = Date.now();

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    return exitWithError(null, 'invalid configuration', error);
  }

  if (cluster.isPrimary && config.WORKERS > 1) return runPrimary(config, startedAt);
  return runServer(config, startedAt);
}

void main();
