import type { RequestHandler } from 'express';
import type winston from 'winston';
import type { Lifecycle } from '../services/lifecycle';
import type { ServiceMetrics } from '../services/metrics';
import { routeTemplateOf } from './route-template';

/**
 * Writes one access line per request when its response ends or its connection closes: method,
 * path, route template, status, duration, request id, user id and client address (`req.ip`, which
 * TRUST_PROXY decides). 5xx at error, except the 503s of backpressure (a full queue, a busy
 * database) at warn like 4xx, and the rest at info. The same route and duration go to the request
 * histogram of `metrics`, so the log and the metrics agree.
 */
export function logAccess(logger: winston.Logger, lifecycle: Lifecycle, metrics: ServiceMetrics): RequestHandler {
  return function logAccessHandler(req, res, next) {
    const started = process.hrtime.bigint();
    let written = false;

    const writeLine = () => {
      if (written) return;
      written = true;
      lifecycle.requestsServed++;
      const status = res.headersSent ? res.statusCode : 499;
      let level = 'info';
      if (status >= 500 && !res.locals.backpressure) level = 'error';
      else if (status >= 400) level = 'warn';
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const route = routeTemplateOf(req, res);
      metrics.observeRequest(req.method, route, status, durationMs / 1000);
      logger.log(level, 'request completed', {
        method: req.method,
        path: req.originalUrl.split('?')[0],
        route,
        status,
        durationMs,
        requestId: req.id,
        userId: req.user?.id ?? null,
        ip: req.ip ?? null,
        aborted: !res.writableFinished,
        ...(res.locals.errorDetail ? { error: res.locals.errorDetail } : {}),
      });
    };
    res.once('finish', writeLine);
    res.once('close', writeLine);
    next();
  };
}
