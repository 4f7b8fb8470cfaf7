import type { components } from './api-types.js';

/**
 * A schema of the API's OpenAPI document by name, such as `Schema<'Order'>`. `npm run openapi`
 * generates api-types.ts from the document, so a schema change that breaks the page fails its build.
 */
export type Schema<Name extends keyof components['schemas']> = components['schemas'][Name];

/** The RFC 9457 problem details body that the service sends with every error response. */
export type Problem = Schema<'Problem'>;

/** One invalid field of a request, as the service names it: `username`, `items`, `files[2]`. */
export type FieldError = NonNullable<Problem['errors']>[number];

/**
 * A failed API call: an error response (with its problem when the body is one), a network failure
 * (status null), or a response body that is not JSON.
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly problem: Problem | null,
    readonly requestId: string | null,
    readonly retryAfterSeconds: number | null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  /** The `Location` header: where a created resource or a background task can be read. */
  location: string | null;
}

export interface CallOptions {
  /** A body to send as JSON. */
  json?: unknown;
  /** A body to send as multipart/form-data. The browser sets the boundary and the length. */
  form?: FormData;
  /** Bearer token of the signed-in user. */
  token?: string | null;
  /** More request headers, such as `Idempotency-Key`. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * Calls the service that served this page and returns the parsed JSON body. Throws ApiError for an
 * error response, a network failure or a body that is not JSON, and rethrows the AbortError of an
 * aborted call unchanged.
 */
export async function callApi<T>(method: string, path: string, options: CallOptions = {}): Promise<ApiResponse<T>> {
  const headers = new Headers({ Accept: 'application/json', ...options.headers });
  if (options.token) headers.set('Authorization', `Bearer ${options.token}`);
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }

  let response: Response;
  let text: string;
  try {
    response = await fetch(path, { method, headers, body, signal: options.signal });
    text = await response.text();
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(`the service could not be reached (${describe(error)}). Check the connection and try again`, null, null, null, null);
  }

  const requestId = response.headers.get('X-Request-Id');
  const parsed = parseJson(text);
  if (!response.ok) {
    const problem = isProblem(parsed) ? parsed : null;
    const message = problem?.detail ?? `${method} ${path} failed with ${response.status} ${response.statusText}`;
    const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
    throw new ApiError(message, response.status, problem, problem?.requestId ?? requestId, retryAfter);
  }
  if (parsed === undefined) {
    throw new ApiError(`${method} ${path} returned a response that is not JSON`, response.status, null, requestId, null);
  }
  return { status: response.status, body: parsed as T, location: response.headers.get('Location') };
}

/** True for the error that fetch raises when its AbortSignal fires. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isProblem(value: unknown): value is Problem {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Problem>;
  return typeof candidate.status === 'number' && typeof candidate.title === 'string' && typeof candidate.detail === 'string';
}

// The service sends Retry-After in seconds and never in the HTTP-date form.
function parseRetryAfter(header: string | null): number | null {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Number(header.trim());
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
