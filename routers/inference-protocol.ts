import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import createError from 'http-errors';
import { z } from 'zod';
import { checkJsonShape, jsonLimitsOf } from '../middleware/json-limits';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { servicesOf } from '../services/app-services';
import type { Config } from '../services/config';
import { checkModelName, describeModel, infer } from '../services/inference-protocol';
import { inferenceRequest } from './inference-protocol-schemas';

/** Mount path of these routes. Errors under it are sent as `{"error": "..."}`, as the protocol requires. */
export const INFERENCE_PROTOCOL_PATH = '/v2';

/** The inference paths, by model name and by model name and version. */
export const INFERENCE_PATHS = [`${INFERENCE_PROTOCOL_PATH}/models/:name/infer`, `${INFERENCE_PROTOCOL_PATH}/models/:name/versions/:version/infer`];

/** Name of this server in the protocol's server metadata. */
export const SERVER_NAME = 'inferline';
/** Version in the server metadata: the version of the Open Inference Protocol REST API served. */
export const PROTOCOL_VERSION = '2';

const modelParams = z.object({ name: z.string(), version: z.string().optional() });

/**
 * The Open Inference Protocol (KServe v2) REST API, mounted at /v2: health, server and model
 * metadata, and inference on the served model. The app's error middleware sends its errors as
 * `{"error": "..."}`.
 */
export const inferenceProtocolRouter = express.Router();

const server = inferenceProtocolRouter.route('/');
server.get(function serverMetadataRoute(_req, res) {
  res.json({ name: SERVER_NAME, version: PROTOCOL_VERSION, extensions: [] });
});
server.all(rejectOtherMethods(server));

const live = inferenceProtocolRouter.route('/health/live');
live.get(function serverLiveRoute(_req, res) {
  res.json({ live: true });
});
live.all(rejectOtherMethods(live));

const ready = inferenceProtocolRouter.route('/health/ready');
ready.get(function serverReadyRoute(req, res) {
  checkReady(req);
  res.json({ ready: true });
});
ready.all(rejectOtherMethods(ready));

for (const prefix of ['/models/:name', '/models/:name/versions/:version']) {
  const metadata = inferenceProtocolRouter.route(prefix);
  metadata.get(function modelMetadataRoute(req, res) {
    const { model } = servicesOf(req);
    const { name, version } = modelParams.parse(req.params);
    checkModelName(model, name, version);
    res.json(describeModel(model));
  });
  metadata.all(rejectOtherMethods(metadata));

  const modelReady = inferenceProtocolRouter.route(`${prefix}/ready`);
  modelReady.get(function modelReadyRoute(req, res) {
    const { name, version } = modelParams.parse(req.params);
    checkModelName(servicesOf(req).model, name, version);
    checkReady(req);
    res.json({ name, ready: true });
  });
  modelReady.all(rejectOtherMethods(modelReady));

  const inference = inferenceProtocolRouter.route(`${prefix}/infer`);
  inference.post(readInferenceBody, async function inferRoute(req, res) {
    const { model, batcher, config } = servicesOf(req);
    const { name, version } = modelParams.parse(req.params);
    checkModelName(model, name, version);
    const request = inferenceRequest.parse(req.body ?? {});
    res.json(await infer(model, batcher, request, config.MAX_ITEMS));
  });
  inference.all(rejectOtherMethods(inference));
}

// Readiness as the protocol defines it: 200 when ready, and otherwise an error status. Here that
// is 503 with the reason, as KServe's own Python server responds.
function checkReady(req: Request): void {
  const { lifecycle } = servicesOf(req);
  if (lifecycle.ready) return;

  let reason = 'the database is closed';
  if (!lifecycle.modelLoaded) reason = 'the model is not loaded';
  if (lifecycle.shuttingDown) reason = 'the server is shutting down';
  throw createError(503, `not ready: ${reason}`, { expose: true });
}

/**
 * Reads the body of an inference request. Triton's and KServe's Python clients send JSON without a
 * Content-Type, so a body without one is read as JSON too (express.json in app.ts has already read
 * those with a JSON type). A body of another type, or in the binary tensor extension, is 415.
 */
function readInferenceBody(req: Request, res: Response, next: NextFunction): void {
  if (req.get('inference-header-content-length') !== undefined) {
    return next(createError(415, 'the binary tensor data extension is not supported; send JSON tensors (binary_data=False in the Python clients)'));
  }
  if (req.body !== undefined) return next();
  if (req.get('content-type') !== undefined) {
    return next(createError(415, `send the inference request as application/json, not ${req.get('content-type')}`));
  }
  const { config } = servicesOf(req);
  jsonParserFor(config)(req, res, (error?: unknown) => {
    if (error) return next(error);
    try {
      checkJsonShape(req.body, jsonLimitsOf(config));
    } catch (shapeError) {
      return next(shapeError);
    }
    next();
  });
}

const jsonParsers = new WeakMap<Config, RequestHandler>();

function jsonParserFor(config: Config): RequestHandler {
  let parser = jsonParsers.get(config);
  if (!parser) {
    parser = express.json({ limit: config.MAX_BODY_BYTES, type: () => true });
    jsonParsers.set(config, parser);
  }
  return parser;
}
