import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import createError from 'http-errors';
import multer from 'multer';
import type winston from 'winston';
import { ZodError } from 'zod';
import { isBackpressureError } from '../services/backpressure';
import { errorFields } from '../services/logger';

export interface FieldError {
  path: string;
  message: string;
}

/** An RFC 9457 problem details body, as every error response of this service carries. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  requestId: string;
  errors?: FieldError[];
}

interface Classified {
  status: number;
  detail: string;
  expose: boolean;
  errors?: FieldError[];
  headers?: Record<string, string>;
  /** A 503 that turns a request away under load (a full queue, a busy database), not a failure. */
  backpressure?: boolean;
}

/** Formats a zod issue path the way JavaScript reads it: `items[0].image`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else text += text === '' ? String(key) : `.${String(key)}`;
  }
  return text;
}

// Maximum number of field errors listed in one response.
const MAX_FIELD_ERRORS = 20;

function classify(error: unknown): Classified {
  if (error instanceof ZodError) {
    // An unknown property is reported under its own path, so that a client can tell which one to remove.
    const errors = error.issues.flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: 'unknown property; remove it' }))
        : [{ path: formatPath(issue.path), message: issue.message }],
    );
    // A hostile body can hold thousands of invalid fields: report the first few, and count the rest.
    const listed = errors.slice(0, MAX_FIELD_ERRORS);
    let detail = listed.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
    if (errors.length > listed.length) detail += `; and ${errors.length - listed.length} more`;
    return { status: 400, detail: `invalid request: ${detail}`, expose: true, errors: listed };
  }

  // parseMultipart turns multer's limit errors into 413s that name the setting, so the rest are 400.
  if (error instanceof multer.MulterError) {
    const field = error.field ? ` (field "${error.field}")` : '';
    return { status: 400, detail: `invalid multipart body: ${error.message.toLowerCase()}${field}`, expose: true };
  }

  if (createError.isHttpError(error) || hasHttpStatus(error)) {
    const httpError = error as createError.HttpError & { type?: string; limit?: number; errors?: FieldError[] };
    const status = httpError.status ?? httpError.statusCode;
    let detail = httpError.message;
    if (httpError.type === 'entity.too.large') detail = `the request body is larger than MAX_BODY_BYTES (${httpError.limit} bytes)`;
    if (httpError.type === 'entity.parse.failed') detail = describeJsonParseError(httpError as createError.HttpError & { body?: string });
    return {
      status,
      detail,
      expose: httpError.expose ?? status < 500,
      errors: httpError.errors,
      headers: httpError.headers as Record<string, string> | undefined,
      backpressure: isBackpressureError(error),
    };
  }

  if (isDatabaseBusy(error)) {
    return {
      status: 503,
      detail: 'the database stayed locked by another writer for longer than DATABASE_BUSY_TIMEOUT_MS; retry shortly',
      expose: true,
      headers: { 'Retry-After': String(DATABASE_BUSY_RETRY_AFTER_SECONDS) },
      backpressure: true,
    };
  }
  return { status: 500, detail: 'internal error', expose: false };
}

// Seconds in the `Retry-After` of a 503 for a busy database.
const DATABASE_BUSY_RETRY_AFTER_SECONDS = 1;

// better-sqlite3 raises SQLITE_BUSY, or an extended code such as SQLITE_BUSY_SNAPSHOT, when it
// cannot get the write lock within the busy timeout. That is a temporary overload, not a bug.
function isDatabaseBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

// express.json accepts only objects and arrays at the top level, and reports anything else with
// JSON.parse's message about a first character that is in fact valid JSON.
function describeJsonParseError(error: { message: string; body?: string }): string {
  const start = (error.body ?? '').trimStart()[0];
  if (start !== undefined && start !== '{' && start !== '[') return 'the request body must be a JSON object';
  return `the request body is not valid JSON: ${error.message}`;
}

function hasHttpStatus(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const status = (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status <= 599;
}

/** Turns a request that no route matched into a 404 problem. */
export const handleNotFound: RequestHandler = function handleNotFoundHandler(req, _res, next) {
  next(createError(404, `no route matches ${req.method} ${req.path}`));
};

/** The body of an error on the Open Inference Protocol paths, as that protocol requires. */
export interface InferenceProtocolError {
  error: string;
}

export interface ErrorFormatOptions {
  /**
   * Mount path of the Open Inference Protocol routes. Errors of requests under it are sent as
   * `{"error": "..."}` in application/json, with the same status and headers.
   */
  inferenceProtocolPath?: string;
}

/**
 * Sends every error as `application/problem+json`, or as the Open Inference Protocol's error body
 * under `inferenceProtocolPath`; this is the one place where errors become responses. Details of
 * 5xx errors stay in the log, and the client gets the generic title and the request id.
 */
export function handleErrors(logger: winston.Logger, options: ErrorFormatOptions = {}): ErrorRequestHandler {
  return function handleErrorsHandler(error, req, res, next) {
    if (res.headersSent) {
      // sendError has sent the response to this request from outside the chain, and its caller closed
      // the connection, so the error of the aborted body reader that follows has no one to go to.
      if (sentOutsideChain.has(res)) return;
      // Once headers are out, only Express's default handler can end the response (it closes the socket).
      return next(error);
    }

    const problem = classify(error);
    // An exposed 5xx, such as the 503 of a full prediction queue, is an expected response under load:
    // its access line records it, so only unexpected errors get a line with the stack.
    if (problem.status >= 500 && !problem.expose) {
      logger.error('request failed', { status: problem.status, method: req.method, path: req.originalUrl.split('?')[0], ...errorFields(error) });
    }
    sendProblem(problem, req, res, options);
  };
}

// Responses that sendError sent while the request was still in the middleware chain.
const sentOutsideChain = new WeakSet<Response>();

/**
 * Sends `error` as the response to `req` in the format of handleErrors, for errors that arise
 * outside the middleware chain, such as a request that times out while its body arrives. Later
 * errors of the same request are dropped. The caller logs the error.
 */
export function sendError(error: unknown, req: Request, res: Response, options: ErrorFormatOptions = {}): void {
  sentOutsideChain.add(res);
  sendProblem(classify(error), req, res, options);
}

function sendProblem(problem: Classified, req: Request, res: Response, options: ErrorFormatOptions): void {
  const title = STATUS_CODES[problem.status] ?? 'Error';
  res.locals.errorDetail = problem.expose ? problem.detail : title;
  // The access line of a backpressure 503 is a warning (middleware/access-log.ts).
  if (problem.backpressure) res.locals.backpressure = true;
  const detail = problem.expose ? problem.detail : `${title}; quote request id ${req.id} when reporting it`;
  for (const [name, value] of Object.entries(problem.headers ?? {})) res.setHeader(name, value);

  const { inferenceProtocolPath } = options;
  if (inferenceProtocolPath !== undefined && isUnderPath(req.originalUrl, inferenceProtocolPath)) {
    const body: InferenceProtocolError = { error: detail };
    res.status(problem.status).type('application/json').send(JSON.stringify(body));
    return;
  }

  const body: Problem = {
    type: 'about:blank',
    title,
    status: problem.status,
    detail,
    instance: req.originalUrl,
    requestId: req.id,
  };
  if (problem.errors && problem.expose) body.errors = problem.errors;
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(body));
}

/** True when the path of `url` is `mountPath` or lies below it, ignoring case as Express's routing does. */
function isUnderPath(url: string, mountPath: string): boolean {
  const path = url.split('?')[0].toLowerCase();
  const mount = mountPath.toLowerCase();
  return path === mount || path.startsWith(`${mount}/`);
}
