import express, { type RequestHandler } from 'express';
import { logAccess } from './middleware/access-log';
import { allowOrigins } from './middleware/cors';
import { handleErrors, handleNotFound } from './middleware/error-handler';
import { jsonLimitsOf, limitJsonShape } from './middleware/json-limits';
import { parsePixelBody } from './middleware/pixel-body';
import { limitRates } from './middleware/rate-limit';
import { assignRequestId } from './middleware/request-id';
import { setSecurityHeaders } from './middleware/security-headers';
import { documentationRouter } from './routers/documentation';
import { healthRouter } from './routers/health';
import { INFERENCE_PATHS, INFERENCE_PROTOCOL_PATH, inferenceProtocolRouter } from './routers/inference-protocol';
import { metricsRouter } from './routers/metrics';
import { modelRouter } from './routers/model';
import { orderRouter } from './routers/order';
import { predictRouter } from './routers/predict';
import { taskRouter } from './routers/task';
import { userRouter } from './routers/user';
import { webPageRouter } from './routers/web-page';
import type { AppServices } from './services/app-services';

export interface AppOptions {
  /** Runs before every other middleware; the tests check each response against the OpenAPI document with it. */
  inspectResponses?: RequestHandler;
}

/**
 * Builds the Express app from its services. It never listens: server.ts does, and tests hand the
 * app to supertest.
 */
export function createApp(services: AppServices, options: AppOptions = {}): express.Express {
  const { config, logger, lifecycle, metrics } = services;
  const app = express();
  app.locals.services = services;
  app.set('x-powered-by', false);
  // Express would hash every response body into an ETag, and respond to a matching If-None-Match on a
  // GET with 304. API responses change from one request to the next (task progress, orders), so
  // they carry no ETag. The static files and /docs set their own.
  app.set('etag', false);
  app.set('trust proxy', config.TRUST_PROXY);

  if (options.inspectResponses) app.use(options.inspectResponses);
  app.use(assignRequestId());
  app.use(logAccess(logger, lifecycle, metrics));
  app.use(setSecurityHeaders());
  if (config.CORS_ORIGINS.length > 0) app.use(allowOrigins(config.CORS_ORIGINS));
  app.use(function closeConnectionsWhileStopping(_req, res, next) {
    // During shutdown, `Connection: close` makes keep-alive clients reconnect elsewhere after this response.
    if (lifecycle.shuttingDown) res.setHeader('Connection', 'close');
    next();
  });
  // Limited before their bodies are read, so that a client over its limit costs no parsing.
  app.use(limitRates(config, logger, INFERENCE_PATHS));
  app.use('/predict', parsePixelBody(config.MAX_BODY_BYTES));
  app.use(express.json({ limit: config.MAX_BODY_BYTES, type: ['application/json', 'application/*+json'] }));
  app.use(limitJsonShape(jsonLimitsOf(config)));
  // The routes that read the caller's identity check the Authorization header themselves
  // (middleware/auth.ts). The others, such as the probes and /metrics, ignore it.

  app.use('/users', userRouter);
  app.use('/orders', orderRouter);
  app.use('/predict', predictRouter);
  app.use('/tasks', taskRouter);
  app.use('/model', modelRouter);
  app.use('/metrics', metricsRouter);
  app.use(healthRouter);
  app.use(INFERENCE_PROTOCOL_PATH, inferenceProtocolRouter);
  app.use(documentationRouter);
  app.use(webPageRouter(config.WEB_DIR));

  app.use(handleNotFound);
  app.use(handleErrors(logger, { inferenceProtocolPath: INFERENCE_PROTOCOL_PATH }));
  return app;
}
