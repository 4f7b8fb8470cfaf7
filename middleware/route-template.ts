import type { Application, Express, Request } from 'express';
import { match } from 'path-to-regexp';
import { UNMATCHED_ROUTE } from '../services/metrics';

const ROUTE = Symbol('route');
const ROUTE_TEMPLATE = Symbol('routeTemplate');

interface RequestWithTemplate {
  baseUrl: string;
  [ROUTE]?: unknown;
  [ROUTE_TEMPLATE]?: string;
}

/** One entry of `Router#listRoutes` (router 2.3 and later). */
interface ListedRoute {
  path: string | RegExp;
  router?: ListingRouter;
}

interface ListingRouter {
  listRoutes?(): ListedRoute[];
}

interface TemplateMatcher {
  template: string;
  matches(path: string): boolean;
}

// Built on the first request that needs them, once every route is registered.
const matchersByApp = new WeakMap<Application, TemplateMatcher[]>();

/** Joins a mount path and a route path as Express does: a router's root route ('/') is its mount path. */
function joinRoutePath(mountPath: string, routePath: string): string {
  if (routePath === '/') return mountPath || '/';
  return mountPath + routePath;
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
      this[ROUTE_TEMPLATE] = joinRoutePath(this.baseUrl, String(route?.path ?? ''));
    },
  });
}

/** Lists the full paths of the routes of `router` and of the routers mounted on it, in order. */
function listRouteTemplates(router: ListingRouter, mountPath: string): string[] {
  const templates: string[] = [];
  for (const entry of router.listRoutes?.() ?? []) {
    // This service mounts no route on a regular expression, which would have no template.
    if (typeof entry.path !== 'string') continue;
    const path = joinRoutePath(mountPath, entry.path);
    if (entry.router) templates.push(...listRouteTemplates(entry.router, path === '/' ? '' : path));
    else templates.push(path);
  }
  return templates;
}

function matchersOf(app: Application): TemplateMatcher[] {
  let matchers = matchersByApp.get(app);
  if (!matchers) {
    matchers = listRouteTemplates(app.router as ListingRouter, '').map((template) => {
      const matchPath = match(template, { decode: false });
      return { template, matches: (path: string) => matchPath(path) !== false };
    });
    matchersByApp.set(app, matchers);
  }
  return matchers;
}

/**
 * Returns the template of the route that matched `req`, or UNMATCHED_ROUTE when its path matches
 * none. A request rejected before its route ran, such as a 401 from a router's token check or a
 * 400 for a body that is not JSON, gets the template that its path matches.
 */
export function routeTemplateOf(req: Request): string {
  const recorded = (req as unknown as RequestWithTemplate)[ROUTE_TEMPLATE];
  if (recorded !== undefined) return recorded;

  const path = req.originalUrl.split('?')[0];
  return matchersOf(req.app).find((matcher) => matcher.matches(path))?.template ?? UNMATCHED_ROUTE;
}
