/**
 * The process entry point: configuration, logger, backend, database, model, then listen. On
 * SIGTERM or SIGINT it drains requests and the task runner, closes the database, logs a summary
 * and flushes the log file before exiting.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app';
import type { AppServices } from './services/app-services';
import { selectBackend } from './services/backend';
import { PredictionBatcher } from './services/batcher';
import { Config, loadConfig } from './services/config';
import { Db, openDatabase } from './services/database';
import { Lifecycle } from './services/lifecycle';
import { AppLogger, createLogger, errorFields } from './services/logger';
import { loadModel } from './services/model';
import { TaskRunner } from './services/task-runner';
import { countUnfinishedTasks, requeueRunningTasks } from './services/task-store';

interface Running {
  config: Config;
  log: AppLogger;
  lifecycle: Lifecycle;
  db: Db | null;
  runner: TaskRunner | null;
  server: Server | null;
}

/** Logs a fatal error, flushes the log file and exits with code 1. */
async function exitWithError(log: AppLogger | null, message: string, error: unknown): Promise<never> {
  if (log) {
    log.logger.error(message, errorFields(error));
    await log.close().catch(() => undefined);
  } else {
    // The logger itself could not start, so write the one JSON line by hand.
    process.stderr.write(`${JSON.stringify({ level: 'error', message, ...errorFields(error), timestamp: new Date().toISOString() })}\n`);
  }
  process.exit(1);
}

function listen(app: ReturnType<typeof createApp>, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
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
 */
async function shutDown(running: Running, signal: string): Promise<never> {
  const { config, log, lifecycle, server, runner, db } = running;
  const { logger } = log;
  lifecycle.shuttingDown = true;
  logger.info('shutdown started', { signal, timeoutMs: config.SHUTDOWN_TIMEOUT_MS });

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
      requeueRunningTasks(db);
      tasksLeftQueued = countUnfinishedTasks(db);
      db.close();
    } catch (error) {
      logger.error('database could not be closed cleanly', errorFields(error));
    }
    lifecycle.databaseOpen = false;
  }

  logger.info('shutdown complete', {
    signal,
    forced: !drained,
    uptimeMs: Date.now() - lifecycle.startedAt,
    requestsServed: lifecycle.requestsServed,
    tasksSucceeded: runner?.counts.succeeded ?? 0,
    tasksFailed: runner?.counts.failed ?? 0,
    tasksCancelled: runner?.counts.cancelled ?? 0,
    tasksLeftQueued,
  });
  await log.close();
  process.exit(drained ? 0 : 1);
}

async function main(): Promise<void> {
  const startedAt = Date.now();

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    return exitWithError(null, 'invalid configuration', error);
  }

  let log: AppLogger;
  try {
    log = createLogger({ level: config.LOG_LEVEL, logDir: config.LOG_DIR, console: config.LOG_CONSOLE });
  } catch (error) {
    return exitWithError(null, `log file in LOG_DIR=${config.LOG_DIR} cannot be written`, error);
  }
  const { logger } = log;
  process.on('uncaughtException', (error) => void exitWithError(log, 'uncaught exception', error));
  process.on('unhandledRejection', (reason) => void exitWithError(log, 'unhandled promise rejection', reason));

  const lifecycle = new Lifecycle();
  const running: Running = { config, log, lifecycle, db: null, runner: null, server: null };
  let shutdown: Promise<never> | null = null;
  const onSignal = (signal: string) => {
    if (shutdown) {
      logger.warn('shutdown already in progress; signal ignored', { signal });
      return;
    }
    if (!running.server) {
      // Still starting: there are no requests or tasks to drain yet.
      logger.info('shutdown during startup; exiting', { signal });
      shutdown = log.close().then(() => process.exit(0));
      return;
    }
    shutdown = shutDown(running, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let backend: string;
  try {
    backend = await selectBackend(config.TF_BACKEND);
  } catch (error) {
    return exitWithError(log, 'TF.js backend could not be started', error);
  }

  try {
    running.db = openDatabase(config.DATABASE_PATH, config.DATABASE_BUSY_TIMEOUT_MS);
    lifecycle.databaseOpen = true;
  } catch (error) {
    return exitWithError(log, `database at DATABASE_PATH=${config.DATABASE_PATH} could not be opened`, error);
  }

  let model: Awaited<ReturnType<typeof loadModel>>;
  try {
    model = await loadModel(config.MODEL_DIR, config.MAX_BATCH_SIZE);
    lifecycle.modelLoaded = true;
  } catch (error) {
    return exitWithError(log, 'model could not be loaded', error);
  }

  const batcher = new PredictionBatcher(model, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    maxDelayMs: config.MAX_BATCH_DELAY_MS,
    maxQueuedInputs: config.MAX_QUEUED_INPUTS,
  });
  const runner = new TaskRunner({
    db: running.db,
    model,
    batcher,
    logger,
    limits: { maxImageBytes: config.MAX_IMAGE_BYTES, maxImagePixels: config.MAX_IMAGE_PIXELS },
    chunkSize: config.TASK_CHUNK_SIZE,
    ttlSeconds: config.TASK_TTL_SECONDS,
  });
  running.runner = runner;
  const services: AppServices = { config, logger, db: running.db, model, batcher, runner, lifecycle };

  try {
    running.server = await listen(createApp(services), config.HOST, config.PORT);
  } catch (error) {
    return exitWithError(log, `server could not listen on ${config.HOST}:${config.PORT}`, error);
  }
  // Tasks left running by a crash, or queued at the last shutdown, continue now.
  requeueRunningTasks(running.db);
  runner.wake();

  const address = running.server.address() as AddressInfo;
  logger.info('server started', {
    backend,
    model: model.metadata.name,
    modelVersion: model.metadata.version,
    inputShape: model.metadata.inputShape,
    address: `http://${address.address}:${address.port}`,
    startupMs: Date.now() - startedAt,
    tasksPending: countUnfinishedTasks(running.db),
  });
}

void main();
