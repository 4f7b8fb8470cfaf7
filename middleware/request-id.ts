import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import { requestContext } from '../services/request-context';

// A client-sent id is reused only when it is short and plain, so it cannot forge log content.
const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      id: string;
    }
  }
}

/**
 * Gives every request an id (the client's `X-Request-Id` when valid, else a new UUID), echoes it in
 * the response and runs the rest of the request inside its log context.
 */
export function assignRequestId(): RequestHandler {
  return function assignRequestIdHandler(req, res, next) {
    const sent = req.get('x-request-id');
    req.id = sent !== undefined && CLIENT_REQUEST_ID.test(sent) ? sent : crypto.randomUUID();
    res.setHeader('X-Request-Id', req.id);
    requestContext.run({ requestId: req.id }, next);
  };
}
