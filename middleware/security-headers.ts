import type { RequestHandler } from 'express';
import helmet from 'helmet';

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
const DOCS_DIRECTIVES = { ...CONTENT_SECURITY_POLICY_DIRECTIVES, 'style-src': ["'self'", "'unsafe-inline'"] };

/**
 * Sets helmet's security headers on every response (Content-Security-Policy, X-Content-Type-Options,
 * Strict-Transport-Security, Cross-Origin-Opener-Policy, Cross-Origin-Resource-Policy,
 * Referrer-Policy, X-Frame-Options and the rest of helmet 8's defaults). The policy does not
 * use helmet's default directives, because their `upgrade-insecure-requests` would make browsers
 * fetch the page's scripts over HTTPS from a server that serves plain HTTP.
 */
export function setSecurityHeaders(): RequestHandler {
  const setForApi = helmet({ contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY_DIRECTIVES } });
  const setForDocs = helmet({ contentSecurityPolicy: { useDefaults: false, directives: DOCS_DIRECTIVES } });
  return function setSecurityHeadersHandler(req, res, next) {
    const underDocs = req.path === '/docs' || req.path.startsWith('/docs/');
    (underDocs ? setForDocs : setForApi)(req, res, next);
  };
}
