import cluster from 'node:cluster';
import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { match } from 'path-to-regexp';
import createError from 'http-errors';
import type winston from 'winston';
import { ClusterRateStoreWorker } from '../services/cluster-rate-store';
import type { Config } from '../services/config';

/** The route groups that are limited, each with its own count per client. */
export type RateLimitGroup = 'sign-up' | 'predict' | 'order' | 'infer';

const SETTINGS: Record<RateLimitGroup, { limit: keyof Config; window: keyof Config }> = {
  'sign-up': { limit: 'SIGN_UP_RATE_LIMIT', window: 'SIGN_UP_RATE_WINDOW_SECONDS' },
  predict: { limit: 'PREDICT_RATE_LIMIT', window: 'PREDICT_RATE_WINDOW_SECONDS' },
  order: { limit: 'ORDER_RATE_LIMIT', window: 'ORDER_RATE_WINDOW_SECONDS' },
  infer: { limit: 'INFER_RATE_LIMIT', window: 'INFER_RATE_WINDOW_SECONDS' },
};

/**
 * Sends each limited request to the limiter of its route group, in one middleware for all groups:
 * POST /users, /predict, /orders and the inference protocol's infer paths. It matches paths as
 * Express does by default: case-insensitive, with or without one trailing slash. An `app.post` per
 * path made every request, limited or not, pass through six route layers.
 */
export function limitRates(config: Config, logger: winston.Logger, inferencePaths: string[]): RequestHandler {
  const byPath = new Map<string, RequestHandler>([
    ['/users', limitRate('sign-up', config, logger)],
    ['/predict', limitRate('predict', config, logger)],
    ['/orders', limitRate('order', config, logger)],
  ]);
  const limitInference = limitRate('infer', config, logger);
  const isInferencePath = inferencePaths.map((pattern) => match(pattern, { sensitive: false, trailing: true }));

  return function limitRatesHandler(req, res, next) {
    if (req.method !== 'POST') return next();
    const path = req.path;
    const key = (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path).toLowerCase();
    const limiter = byPath.get(key) ?? (isInferencePath.some((matches) => matches(path)) ? limitInference : undefined);
    if (limiter === undefined) return next();
    return limiter(req, res, next);
  };
}

/**
 * Builds the rate limiter of one route group with express-rate-limit. It counts the requests of
 * each client address (`req.ip`, which TRUST_PROXY decides) in a fixed window. Every counted
 * response carries the `RateLimit` and `RateLimit-Policy` headers of the IETF draft-8. Over the
 * limit it raises 429 with `Retry-After`, and the error middleware sends it.
 *
 * In a cluster worker the counts live in the primary, which hands each worker leases of requests
 * that it may admit on its own (services/cluster-rate-store.ts), so the workers share one limit.
 * When the primary does not reply in time the request gets 503. Otherwise each app counts in
 * express-rate-limit's memory store.
 */
function limitRate(group: RateLimitGroup, config: Config, logger: winston.Logger): RequestHandler {
  const limit = config[SETTINGS[group].limit] as number;
  const windowSeconds = config[SETTINGS[group].window] as number;

  return rateLimit({
    windowMs: windowSeconds * 1000,
    limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    identifier: group,
    store: cluster.isWorker ? new ClusterRateStoreWorker({ group, logger }) : undefined,
    // express-rate-limit reports failed configuration checks and store failures through this logger
    // instead of the console. Each check runs once per limiter. A failed check, such as a request
    // with X-Forwarded-For while TRUST_PROXY is off, is a hint for the operator, so it is a warning.
    logger: {
      warn: (error, message) => logger.warn(message ?? 'rate limiter configuration check failed', { group, ...describeLimiterError(error) }),
      error: (error, message) => {
        if (isValidationError(error)) logger.warn(message ?? 'rate limiter configuration check failed', { group, ...describeLimiterError(error) });
        else logger.error(message ?? 'rate limiter failed', { group, ...describeLimiterError(error) });
      },
    },
    handler(req, res, next) {
      const retryAfter = res.getHeader('Retry-After');
      next(
        createError(429, `too many requests: the limit is ${limit} requests per ${windowSeconds} s per client for this endpoint; retry after ${retryAfter} s`, {
          expose: true,
        }),
      );
    },
  });
}

// express-rate-limit 8 raises ValidationError, with an ERR_ERL_* code, when a configuration check fails.
function isValidationError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ValidationError';
}

function describeLimiterError(error: unknown): { error: string; code?: string } {
  if (!(error instanceof Error)) return { error: String(error) };
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? { error: error.message, code } : { error: error.message };
}
