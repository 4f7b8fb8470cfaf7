import createError from 'http-errors';

/**
 * Builds the 503 of a request that the service turns away on purpose, because a queue it bounds is
 * full, with `Retry-After` in seconds. The error middleware marks its response as backpressure, so
 * that its access line is a warning: the service works as designed, and the client knows when to
 * retry.
 */
export function backpressureError(message: string, retryAfterSeconds: number): createError.HttpError {
  return createError(503, message, { expose: true, headers: { 'Retry-After': String(retryAfterSeconds) }, backpressure: true });
}

/** True for an error that backpressureError built. */
export function isBackpressureError(error: unknown): boolean {
  return (error as { backpressure?: unknown } | null)?.backpressure === true;
}
