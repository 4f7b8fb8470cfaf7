import type { RequestHandler } from 'express';
import createError from 'http-errors';

/** Rejects a request body that is not `application/json` with 415, before validation misreads it as empty. */
export const requireJson: RequestHandler = function requireJsonHandler(req, _res, next) {
  if (req.is('application/json') || req.is('application/*+json')) return next();
  next(createError(415, `send the body as application/json, not ${req.get('content-type') ?? 'without a Content-Type'}`));
};
