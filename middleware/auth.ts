import type { RequestHandler } from 'express';
import createError from 'http-errors';
import { servicesOf } from '../services/app-services';
import { requestContext } from '../services/request-context';
import { User, findUserByToken } from '../services/users';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      user?: User;
    }
  }
}

function unauthorized(message: string): createError.HttpError {
  return createError(401, message, { headers: { 'WWW-Authenticate': 'Bearer' } });
}

/**
 * Reads `Authorization: Bearer <token>` when present and sets `req.user`. A malformed header or an
 * unknown token is 401 even on routes that do not require a user, so a client never mistakes a
 * bad token for anonymous access.
 */
export const identifyUser: RequestHandler = function identifyUserHandler(req, _res, next) {
  const header = req.get('authorization');
  if (header === undefined) return next();

  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header.trim());
  if (!match) return next(unauthorized('the Authorization header must be "Bearer <token>"'));

  const user = findUserByToken(servicesOf(req).db, match[1]);
  if (!user) return next(unauthorized('the bearer token is invalid; create a user with POST /users to get one'));

  req.user = user;
  const context = requestContext.getStore();
  if (context) context.userId = user.id;
  next();
};

/**
 * Rejects requests without a valid bearer token with 401. Runs after identifyUser. OPTIONS passes,
 * because its response (the Allow header) reveals nothing that needs a token.
 */
export const requireUser: RequestHandler = function requireUserHandler(req, _res, next) {
  if (!req.user && req.method !== 'OPTIONS') return next(unauthorized('this endpoint requires "Authorization: Bearer <token>"; create a user with POST /users to get a token'));
  next();
};

/** Returns the authenticated user; for handlers behind requireUser. */
export function currentUser(req: Express.Request): User {
  if (!req.user) throw unauthorized('authentication required');
  return req.user;
}
