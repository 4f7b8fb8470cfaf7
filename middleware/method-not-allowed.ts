import type { RequestHandler } from 'express';
import createError from 'http-errors';

/**
 * Rejects a request whose path exists but whose method does not with 405 and an `Allow` header, and
 * responds to OPTIONS with 204 and the same header. Attach it last with `route.all(...)`.
 */
export function rejectOtherMethods(route: object): RequestHandler {
  return function rejectOtherMethodsHandler(req, res, next) {
    const methods = Object.keys((route as { methods: Record<string, boolean> }).methods)
      .filter((method) => method !== '_all')
      .map((method) => method.toUpperCase());
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
    const allow = [...methods, 'OPTIONS'].join(', ');

    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', allow);
      res.status(204).end();
      return;
    }
    next(createError(405, `${req.method} is not allowed on ${req.originalUrl.split('?')[0]}; allowed: ${allow}`, { headers: { Allow: allow } }));
  };
}
