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
 * Reads `Authorization: Bearer <token>` when present and sets `req.user`. A header that is not
 * "Bearer <token>", or an unknown token, is 401, so that a client never mistakes a bad token for
 * anonymous access. Attach it, or requireUser, only to the routes that read the caller's identity:
 * the others ignore the header, which a reverse proxy or a Prometheus job may fill with its own
 * credentials (`Basic ...`). Pass it to a route's method, as in `route.get(identifyUser, ...)`,
 * not to `router.use`, so that a wrong method gets its 405 whatever the token.
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

/** Like identifyUser, but a request without `Authorization` is 401 too. */
export const requireUser: RequestHandler = function requireUserHandler(req, res, next) {
  if (req.get('authorization') === undefined) {
    return next(unauthorized('this endpoint requires "Authorization: Bearer <token>"; create a user with POST /users to get a token'));
  }
  identifyUser(req, res, next);
};

/** Returns the authenticated user; for handlers behind requireUser. */
export function currentUser(req: Express.Request): User {
  if (!req.user) throw unauthorized('authentication required');
  return req.user;
}
