import type { RequestHandler } from 'express';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { INFERENCE_PROTOCOL_PATH } from '../../routers/inference-protocol';
import { openApiDocument } from '../../services/openapi';

// Checks responses against the OpenAPI document: the status must be documented for the operation
// (method and path template), the Content-Type must be one the document lists, the JSON body must
// match the schema, and required headers must be present. startTestApp installs inspectResponses
// in every test app, and tests/helpers/fail-on-bad-responses.ts fails the test that received a
// response that breaks the document.

/** The part of an OpenAPI document that the check reads. */
interface Document {
  paths: Record<string, Record<string, Operation | unknown>>;
  components: { schemas: Record<string, unknown>; headers: Record<string, { required?: boolean }> };
}

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: unknown }>; headers?: Record<string, { $ref?: string; required?: boolean }> }>;
}

/** A response as the app sent it. */
export interface SentResponse {
  method: string;
  /** Path and query of the request. */
  url: string;
  status: number;
  headers: Record<string, number | string | string[] | undefined>;
  body: Buffer;
}

/** A response that breaks the document, with every reason. */
export interface Violation {
  request: string;
  status: number;
  problems: string[];
}

const DEFS_ID = 'https://inferline.invalid/openapi-components.json';

export class ResponseChecker {
  private readonly document: Document;
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<unknown, ValidateFunction>();
  private readonly templates: Template[];

  constructor(document: Document) {
    this.document = document;
    // strictTuples would require maxItems beside prefixItems, which zod-to-openapi does not write for tuples.
    this.ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictTuples: false });
    addFormats(this.ajv);
    // Component schemas refer to each other as #/components/schemas/Name, so they are added as
    // one schema whose $defs hold them, and every reference is pointed there.
    this.ajv.addSchema({ $id: DEFS_ID, $defs: pointRefsAtDefs(document.components.schemas) });
    this.templates = Object.keys(document.paths).map(parseTemplate).sort(compareTemplates);
  }

  /** Returns why a response breaks the document, or an empty list. */
  check(response: SentResponse): string[] {
    const path = response.url.split('?')[0];
    const method = response.method.toLowerCase() === 'head' ? 'get' : response.method.toLowerCase();
    // Static files are served to GET and HEAD only, and other methods fall through to the 404.
    const template = this.templates.find((candidate) => (method === 'get' || !candidate.files) && candidate.pattern.test(path))?.template;

    if (template === undefined) return this.checkUnlistedPath(response, path);
    const operation = this.document.paths[template][method] as Operation | undefined;
    if (operation === undefined) return this.checkUnlistedMethod(response, path, template);

    const documented = operation.responses[String(response.status)];
    if (documented === undefined) {
      return [`status ${response.status} is not documented for ${method.toUpperCase()} ${template} (documented: ${Object.keys(operation.responses).join(', ')})`];
    }
    return [...this.checkHeaders(response, documented.headers ?? {}), ...this.checkBody(response, documented.content)];
  }

  // A path the document does not list is 404, in the error format of its prefix.
  private checkUnlistedPath(response: SentResponse, path: string): string[] {
    const problems = response.headers['x-request-id'] === undefined ? ['X-Request-Id header missing'] : [];
    if (response.status !== 404) return [...problems, `path ${path} is not documented, so only 404 is expected, got ${response.status}`];
    return [...problems, ...this.checkBody(response, this.errorContent(path))];
  }

  // A listed path responds to OPTIONS with 204 and to another method with 405, both with Allow,
  // except that a CORS preflight gets 204 with Access-Control-Allow-Methods instead of Allow.
  private checkUnlistedMethod(response: SentResponse, path: string, template: string): string[] {
    const problems: string[] = [];
    const preflight = response.method === 'OPTIONS' && response.headers['access-control-allow-methods'] !== undefined;
    if (response.headers.allow === undefined && !preflight) problems.push('Allow header missing');
    if (response.headers['x-request-id'] === undefined) problems.push('X-Request-Id header missing');
    if (response.method === 'OPTIONS') {
      if (response.status !== 204) problems.push(`OPTIONS ${template} should be 204, got ${response.status}`);
      if (response.body.length > 0) problems.push('OPTIONS response has a body');
      return problems;
    }
    if (response.status !== 405) problems.push(`${response.method} is not documented for ${template}, so only 405 is expected, got ${response.status}`);
    return [...problems, ...this.checkBody(response, this.errorContent(path))];
  }

  private errorContent(path: string): Record<string, { schema: unknown }> {
    const underProtocol = path.toLowerCase() === INFERENCE_PROTOCOL_PATH || path.toLowerCase().startsWith(`${INFERENCE_PROTOCOL_PATH}/`);
    return underProtocol
      ? { 'application/json': { schema: { $ref: '#/components/schemas/InferenceError' } } }
      : { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };
  }

  private checkHeaders(response: SentResponse, headers: Record<string, { $ref?: string; required?: boolean }>): string[] {
    const problems: string[] = [];
    for (const [name, header] of Object.entries(headers)) {
      const definition = header.$ref ? this.document.components.headers[header.$ref.split('/').pop() ?? ''] : header;
      if (definition?.required && response.headers[name.toLowerCase()] === undefined) problems.push(`required header ${name} missing`);
    }
    return problems;
  }

  private checkBody(response: SentResponse, content: Record<string, { schema: unknown }> | undefined): string[] {
    const contentType = String(response.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (content === undefined) {
      return response.body.length > 0 ? [`a body of ${response.body.length} bytes where the document lists none`] : [];
    }
    if (response.method === 'HEAD') return [];

    const mediaType = content[contentType] ?? content['*/*'];
    if (mediaType === undefined) return [`Content-Type ${contentType || '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`];
    if (!contentType.endsWith('json')) return [];

    let body: unknown;
    try {
      body = JSON.parse(response.body.toString('utf8'));
    } catch {
      return [`the body is not JSON: ${response.body.toString('utf8').slice(0, 200)}`];
    }
    const validate = this.validatorFor(mediaType.schema);
    if (validate(body)) return [];
    return (validate.errors ?? []).map((error) => `body${error.instancePath} ${error.message}${error.params ? ` ${JSON.stringify(error.params)}` : ''}`);
  }

  /** Returns the validator of a body schema, compiled on first use; throws for an invalid schema. */
  validatorFor(schema: unknown): ValidateFunction {
    let validate = this.validators.get(schema);
    if (!validate) {
      validate = this.ajv.compile(pointRefsAtDefs(schema) as object);
      this.validators.set(schema, validate);
    }
    return validate;
  }
}

/**
 * A path template of the document. A `{file}` parameter is the path of a static file below the
 * template's prefix, which may contain `/` (OpenAPI has no parameter for that).
 */
interface Template {
  template: string;
  pattern: RegExp;
  parameterCount: number;
  files: boolean;
}

function parseTemplate(template: string): Template {
  const literals = template.split(/\{[^}]+\}/).map((literal) => literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const parameters = [...template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
  let source = literals[0];
  parameters.forEach((name, index) => {
    source += (name === 'file' ? '.+' : '[^/]+') + literals[index + 1];
  });
  // Express matches paths without regard to case and with an optional trailing slash.
  return { template, pattern: new RegExp(`^${source}/?$`, 'i'), parameterCount: parameters.length, files: parameters.includes('file') };
}

/**
 * Orders templates so that the first match is the route Express would take: a literal segment
 * before a parameter (/users/me before /users/{id}), and static files last, the longest prefix first.
 */
function compareTemplates(a: Template, b: Template): number {
  if (a.files !== b.files) return a.files ? 1 : -1;
  if (a.files) return b.template.length - a.template.length;
  return a.parameterCount - b.parameterCount;
}

/** Returns a copy of a schema whose `#/components/schemas/Name` references point at the shared $defs. */
function pointRefsAtDefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(pointRefsAtDefs);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => {
      if (key === '$ref' && typeof value === 'string') return [key, value.replace('#/components/schemas/', `${DEFS_ID}#/$defs/`)];
      return [key, pointRefsAtDefs(value)];
    }),
  );
}

let sharedChecker: ResponseChecker | null = null;
const violations: Violation[] = [];

/** Returns the violations recorded since the last call, and clears the list. */
export function takeViolations(): Violation[] {
  return violations.splice(0, violations.length);
}

function documentChecker(): ResponseChecker {
  sharedChecker ??= new ResponseChecker(openApiDocument() as unknown as Document);
  return sharedChecker;
}

/**
 * Checks a response that a client received (from a server process or in the browser) and records
 * a violation when it breaks the document, as inspectResponses does inside test apps.
 */
export function recordResponse(sent: SentResponse, checker: ResponseChecker = documentChecker()): void {
  let problems: string[];
  try {
    problems = checker.check(sent);
  } catch (error) {
    problems = [`the check failed: ${(error as Error).message}`];
  }
  if (problems.length > 0) violations.push({ request: `${sent.method} ${sent.url}`, status: sent.status, problems });
}

/** Records a violation for every response that breaks the app's OpenAPI document. */
export function inspectResponses(checker: ResponseChecker = documentChecker()): RequestHandler {
  return function inspectResponsesHandler(req, res, next) {
    const chunks: Buffer[] = [];
    const collect = (chunk: unknown, encoding: unknown): void => {
      if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => typeof res;

    res.write = function recordWrite(...args: unknown[]) {
      collect(args[0], args[1]);
      return write(...args);
    } as typeof res.write;
    res.end = function recordEnd(...args: unknown[]) {
      collect(args[0], args[1]);
      recordResponse({ method: req.method, url: req.originalUrl, status: res.statusCode, headers: res.getHeaders(), body: Buffer.concat(chunks) }, checker);
      return end(...args);
    } as typeof res.end;
    next();
  };
}
