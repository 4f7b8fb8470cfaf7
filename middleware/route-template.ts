import type { Express, Request } from 'express';
import { UNMATCHED_ROUTE } from '../services/metrics';

const ROUTE = Symbol('route');
const ROUTE_TEMPLATE = Symbol('routeTemplate');

interface RequestWithTemplate {
  baseUrl: string;
  [ROUTE]?: unknown;
  [ROUTE_TEMPLATE]?: string;
}

/**
 * Makes every request of `app` remember the template of the route that matched it, such as
 * `/orders/:id`, for routeTemplateOf.
 *
 * The router sets `req.route` when a route matches, while `req.baseUrl` is the path its router is
 * mounted at. When a handler passes an error on, the router restores `req.baseUrl` before the
 * error handler responds, so the template is built at that moment: in a setter of `route` on the
 * app's request prototype. It costs one string concatenation per request and patches nothing
 * outside this app.
 */
export function recordRouteTemplates(app: Express): void {
  Object.defineProperty(app.request, 'route', {
    configurable: true,
    get(this: RequestWithTemplate) {
      return this[ROUTE];
    },
    set(this: RequestWithTemplate, route: { path?: unknown } | undefined) {
      this[ROUTE] = route;
      const path = String(route?.path ?? '');
      // A router's root route ('/') is its mount path, as in `/model`.
      this[ROUTE_TEMPLATE] = path === '/' ? this.baseUrl || '/' : this.baseUrl + path;
    },
  });
}

/** Returns the template of the route that matched `req`, or UNMATCHED_ROUTE when none did. */
export function routeTemplateOf(req: Request): string {
  return (req as unknown as RequestWithTemplate)[ROUTE_TEMPLATE] ?? UNMATCHED_ROUTE;
}
