import express from 'express';
import { logAccess } from './middleware/access-log';
import { identifyUser } from './middleware/auth';
import { allowOrigins } from './middleware/cors';
import { handleErrors, handleNotFound } from './middleware/error-handler';
import { parsePixelBody } from './middleware/pixel-body';
import { assignRequestId } from './middleware/request-id';
import { healthRouter } from './routers/health';
import { metricsRouter } from './routers/metrics';
import { modelRouter } from './routers/model';
import { orderRouter } from './routers/order';
import { predictRouter } from './routers/predict';
import { taskRouter } from './routers/task';
import { userRouter } from './routers/user';
import { webPageRouter } from './routers/web-page';
import type { AppServices } from './services/app-services';

/**
 * Builds the Express app from its services. It never listens: server.ts does, and tests hand the
 * app to supertest.
 */
export function createApp(services: AppServices): express.Express {
  const { config, logger, lifecycle, metrics } = services;
  const app = express();
  app.locals.services = services;
  app.set('x-powered-by', false);

  app.use(assignRequestId());
  app.use(logAccess(logger, lifecycle, metrics));
  if (config.CORS_ORIGINS.length > 0) app.use(allowOrigins(config.CORS_ORIGINS));
  app.use(function closeConnectionsWhileStopping(_req, res, next) {
    // During shutdown, `Connection: close` makes keep-alive clients reconnect elsewhere after this response.
    if (lifecycle.shuttingDown) res.setHeader('Connection', 'close');
    next();
  });
  app.use('/predict', parsePixelBody(config.MAX_BODY_BYTES));
  app.use(express.json({ limit: config.MAX_BODY_BYTES, type: ['application/json', 'application/*+json'] }));
  app.use(identifyUser);

  app.use('/users', userRouter);
  app.use('/orders', orderRouter);
  app.use('/predict', predictRouter);
  app.use('/tasks', taskRouter);
  app.use('/model', modelRouter);
  app.use('/metrics', metricsRouter);
  app.use(healthRouter);
  app.use(webPageRouter(config.WEB_DIR));

  app.use(handleNotFound);
  app.use(handleErrors(logger));
  return app;
}
