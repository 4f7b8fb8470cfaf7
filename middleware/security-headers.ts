import http from 'node:http';
import net from 'node:net';
import type { RequestHandler } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The Content-Security-Policy of every response. The web page at / and Swagger UI at /docs load
 * only files of this service, so they work offline, and a script or stylesheet injected from
 * elsewhere is blocked. The page shows drawings and chosen files as blob: URLs, and Swagger UI's
 * stylesheet draws its icons from data: URLs. Neither page runs inline scripts.
 */
export const CONTENT_SECURITY_POLICY_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'blob:', 'data:'],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

// Swagger UI's bundle (swagger-ui-dist 5) sets inline styles, which a style-src without
// 'unsafe-inline' blocks. Below /docs the policy allows them, and only them.
export const DOCS_DIRECTIVES = { ...CONTENT_SECURITY_POLICY_DIRECTIVES, 'style-src': ["'self'", "'unsafe-inline'"] };

/** helmet's options for a Content-Security-Policy of `directives` and helmet's other defaults. */
export function helmetOptionsFor(directives: Record<string, string[]>): HelmetOptions {
  return { contentSecurityPolicy: { useDefaults: false, directives } };
}

/**
 * Sets helmet's security headers on every response (Content-Security-Policy, X-Content-Type-Options,
 * Strict-Transport-Security, Cross-Origin-Opener-Policy, Cross-Origin-Resource-Policy,
 * Referrer-Policy, X-Frame-Options and the rest of helmet 8's defaults). The policy does not
 * use helmet's default directives, because their `upgrade-insecure-requests` would make browsers
 * fetch the page's scripts over HTTPS from a server that serves plain HTTP.
 *
 * helmet's headers depend only on its options, never on the request, so helmet runs once per set at
 * startup and each request gets the recorded headers. Running helmet per request cost about 6% of
 * the server's CPU time per one-instance POST /predict (20 of 320 us, WORKERS=1, 32 connections).
 */
export function setSecurityHeaders(): RequestHandler {
  const forApi = recordHelmetHeaders(helmetOptionsFor(CONTENT_SECURITY_POLICY_DIRECTIVES));
  const forDocs = recordHelmetHeaders(helmetOptionsFor(DOCS_DIRECTIVES));
  return function setSecurityHeadersHandler(req, res, next) {
    // req.url, not req.path: parsing the URL here would cost more than the rest of this function.
    const underDocs = req.url === '/docs' || req.url.startsWith('/docs/') || req.url.startsWith('/docs?');
    for (const [name, value] of underDocs ? forDocs : forApi) res.setHeader(name, value);
    next();
  };
}

/** Runs helmet on a response that is never sent and returns the headers it set, in helmet's spelling. */
function recordHelmetHeaders(options: HelmetOptions): [string, string | number | string[]][] {
  const request = new http.IncomingMessage(new net.Socket());
  const response = new http.ServerResponse(request);
  // getHeaderNames gives lower-case names; recording the calls keeps the spelling that helmet uses.
  const names = new Set<string>();
  const setHeader = response.setHeader.bind(response);
  response.setHeader = (name, value) => {
    names.add(name);
    return setHeader(name, value);
  };

  let failure: unknown;
  helmet(options)(request, response, (error?: unknown) => {
    failure = error;
  });
  if (failure) throw failure;

  return [...names].filter((name) => response.hasHeader(name)).map((name) => [name, response.getHeader(name)!]);
}
