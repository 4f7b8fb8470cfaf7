import type { Application, Request, Response } from 'express';
import { match } from 'path-to-regexp';
import { UNMATCHED_ROUTE } from '../services/metrics';

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
 * Returns the template of the route of a finished request, such as `/orders/:id`, or
 * UNMATCHED_ROUTE when its path matches no route.
 *
 * When a route's handler sent a response below 400, `req.route` and `req.baseUrl` (the path its
 * router is mounted at) still describe that route, and the template costs one concatenation. When
 * an error leaves the router through next(err), the router restores `req.baseUrl` to the parent's.
 * A request rejected before its route ran, such as a 400 for a body that is not JSON, has no
 * `req.route`. Error responses therefore get the first route template that their path matches, in
 * the order Express tries the routes.
 */
export function routeTemplateOf(req: Request, res: Response): string {
  const route = req.route as { path?: unknown } | undefined;
  if (route !== undefined && typeof route.path === 'string' && res.statusCode < 400) return joinRoutePath(req.baseUrl, route.path);

  const path = req.originalUrl.split('?')[0];
  return matchersOf(req.app).find((matcher) => matcher.matches(path))?.template ?? UNMATCHED_ROUTE;
}
