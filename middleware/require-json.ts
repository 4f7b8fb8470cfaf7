import type { RequestHandler } from 'express';
import createError from 'http-errors';

/**
 * Rejects a request without a body with 400, and a body that is not `application/json` with 415,
 * before validation misreads either as an empty object.
 */
export const requireJson: RequestHandler = function requireJsonHandler(req, _res, next) {
  // Without Content-Length or Transfer-Encoding a request has no body, and req.is() cannot tell its type.
  if (req.get('content-length') === undefined && req.get('transfer-encoding') === undefined) {
    return next(createError(400, 'the request body is missing; send a JSON object with Content-Type: application/json'));
  }
  if (req.is('application/json') || req.is('application/*+json')) return next();
  next(createError(415, `send the body as application/json, not ${req.get('content-type') ?? 'without a Content-Type'}`));
};
