import type { Request } from 'express';
import type winston from 'winston';
import { PredictionBatcher } from './batcher';
import type { Config } from './config';
import type { Db } from './database';
import type { Lifecycle } from './lifecycle';
import { ServiceMetrics } from './metrics';
import type { LoadedModel } from './model';
import { imageLimits } from './model-input';
import { TaskRunner } from './task-runner';

/** Dependencies of the routers, built once by the process entry point (or a test) and handed to the app. */
export interface AppServices {
  config: Config;
  logger: winston.Logger;
  db: Db;
  model: LoadedModel;
  batcher: PredictionBatcher;
  runner: TaskRunner;
  lifecycle: Lifecycle;
  metrics: ServiceMetrics;
}

/** Returns the services of the app that is handling the request. */
export function servicesOf(req: Request): AppServices {
  return req.app.locals.services as AppServices;
}

/**
 * Builds the metrics, the batcher and the task runner around an open database and a loaded model,
 * with the limits of `config`. The process entry point, the tests and the benchmark all build
 * services here.
 */
export function buildServices(parts: {
  config: Config;
  logger: winston.Logger;
  db: Db;
  model: LoadedModel;
  lifecycle: Lifecycle;
  announceTaskQueued?: () => void;
}): AppServices {
  const { config, logger, db, model, lifecycle, announceTaskQueued } = parts;
  const metrics = new ServiceMetrics({ db, model, maxBatchSize: config.MAX_BATCH_SIZE });
  const batcher = new PredictionBatcher(model, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    maxDelayMs: config.MAX_BATCH_DELAY_MS,
    maxQueuedInputs: config.MAX_QUEUED_INPUTS,
    observeModelCall: metrics.observeModelCall,
  });
  metrics.watchQueue(batcher);
  const runner = new TaskRunner({
    db,
    model,
    batcher,
    logger,
    limits: imageLimits(config),
    chunkSize: config.TASK_CHUNK_SIZE,
    ttlSeconds: config.TASK_TTL_SECONDS,
    announceTaskQueued,
  });
  return { config, logger, db, model, batcher, runner, lifecycle, metrics };
}
