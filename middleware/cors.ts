import cors from 'cors';
import type { RequestHandler } from 'express';

// Request headers that a page on another origin may send: the API's own (Prefer, Idempotency-Key,
// X-Request-Id) as well as the two that every call with a token or a JSON body needs.
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'Prefer', 'X-Request-Id'];

// Response headers that scripts on another origin may read. Browsers hide all but the
// CORS-safelisted ones (Content-Type and a few more) unless they are listed here.
const EXPOSED_HEADERS = ['Location', 'X-Request-Id', 'Retry-After', 'Idempotent-Replayed', 'Preference-Applied', 'RateLimit', 'RateLimit-Policy'];

// Time in seconds for which a browser may reuse a preflight result before it sends another.
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * Handles CORS preflight requests and adds CORS headers for the listed origins, with the `cors`
 * package. A request from any other origin, or without an `Origin` header, passes through without
 * CORS headers, so its browser withholds the response from the calling script.
 */
export function allowOrigins(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  const handleCors = cors({
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
  });

  return function allowOriginsHandler(req, res, next) {
    // Responses differ by Origin, so shared caches must not hand one origin's response to another.
    res.vary('Origin');
    handleCors(req, res, next);
  };
}
