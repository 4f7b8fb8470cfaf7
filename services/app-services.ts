import type { Request } from 'express';
import type winston from 'winston';
import type { PredictionBatcher } from './batcher';
import type { Config } from './config';
import type { Db } from './database';
import type { Lifecycle } from './lifecycle';
import type { LoadedModel } from './model';
import type { TaskRunner } from './task-runner';

/** Dependencies of the routers, built once by the process entry point (or a test) and handed to the app. */
export interface AppServices {
  config: Config;
  logger: winston.Logger;
  db: Db;
  model: LoadedModel;
  batcher: PredictionBatcher;
  runner: TaskRunner;
  lifecycle: Lifecycle;
}

/** Returns the services of the app that is handling the request. */
export function servicesOf(req: Request): AppServices {
  return req.app.locals.services as AppServices;
}
