import { OpenAPIRegistry, OpenApiGeneratorV31, extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import type { ResponseConfig, RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { idParams, pageQuery } from '../routers/common';
import {
  inferenceErrorSchema,
  inferenceRequest,
  inferenceResponseSchema,
  modelMetadataSchema,
  modelReadySchema,
  serverLiveSchema,
  serverMetadataSchema,
  serverReadySchema,
} from '../routers/inference-protocol-schemas';
import { INFERENCE_PROTOCOL_PATH } from '../routers/inference-protocol';
import { idempotencyHeader, multipartFields, newOrderBody, orderChanges } from '../routers/order';
import { predictBody } from '../routers/predict';
import {
  billSchema,
  healthSchema,
  modelInfoSchema,
  newUserSchema,
  orderPageSchema,
  orderSchema,
  orderTaskAcceptedSchema,
  predictResponseSchema,
  predictionTaskAcceptedSchema,
  problemSchema,
  readinessSchema,
  taskSchema,
  userPageSchema,
  userSchema,
} from '../routers/schemas';
import { newUserBody } from '../routers/user';
import { version } from '../package.json';
import { PRIMARY_REPLY_TIMEOUT_MS } from './cluster-rate-store';

extendZodWithOpenApi(z);

type OpenApiDocument = ReturnType<OpenApiGeneratorV31['generateDocument']>;
type Responses = RouteConfig['responses'];

const BEARER = 'bearerAuth';

const DESCRIPTION = `Serves a TensorFlow.js model: classify images or pixel arrays, buy predictions as orders, and follow background tasks.

Errors are RFC 9457 problem details (\`application/problem+json\`), except under ${INFERENCE_PROTOCOL_PATH}, where the Open Inference Protocol (KServe v2) requires \`{"error": "..."}\` in \`application/json\`.

Every response carries \`X-Request-Id\`. Any path responds to \`OPTIONS\` with 204 and \`Allow\` (or, for a CORS preflight from an origin in CORS_ORIGINS, with the \`Access-Control-*\` headers), and to a method it does not list with 405 and \`Allow\`. A path not listed here is 404. A \`GET\` operation also serves \`HEAD\`.

The operations that read the caller's identity (those with a 401 response) reject an \`Authorization\` header that is not \`Bearer <token>\`, or an unknown token, with 401, so that a bad token is never taken for anonymous access. The other operations ignore the header, which a reverse proxy or a metrics scraper may fill with its own credentials.

\`POST /users\`, \`POST /predict\`, \`POST /orders\` and the inference paths are rate-limited per client address, each group with its own limit (SIGN_UP_RATE_LIMIT, PREDICT_RATE_LIMIT, ORDER_RATE_LIMIT, INFER_RATE_LIMIT). Their responses carry the \`RateLimit\` and \`RateLimit-Policy\` headers of the IETF draft-8 on rate limit headers, and a request over the limit is 429 with \`Retry-After\`. With WORKERS above 1 the cluster primary keeps the counts, and a request that its worker cannot check with the primary within ${PRIMARY_REPLY_TIMEOUT_MS / 1000} s is 503 with \`Retry-After\`.

Every response carries helmet's security headers, among them a \`Content-Security-Policy\` that allows scripts, styles and connections to this origin only.`;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request; `errors` names the fields or items at fault',
  401: 'Missing, malformed or unknown bearer token',
  404: 'Not found',
  409: 'Conflict',
  411: 'Multipart body without `Content-Length`',
  413: 'Over a size limit: MAX_BODY_BYTES, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_ITEMS, JSON_MAX_DEPTH or JSON_MAX_KEYS',
  415: 'Unsupported media type, charset, content encoding or image format',
  429: 'Too many requests from this client address in the current window; `Retry-After` gives the seconds until it resets',
  500: 'Unexpected error; the body carries only the request id, and the server log has the cause',
  503: 'Service unavailable',
};

/** Builds the OpenAPI 3.1 document of every route of the app. */
export function buildOpenApiDocument(): OpenApiDocument {
  const registry = new OpenAPIRegistry();
  registerComponents(registry);
  registerUserRoutes(registry);
  registerOrderRoutes(registry);
  registerPredictionRoutes(registry);
  registerServiceRoutes(registry);
  registerInferenceProtocolRoutes(registry);

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: { title: 'inferline', version, description: DESCRIPTION, license: { name: 'MIT', identifier: 'MIT' } },
    // A token is optional where an operation does not require one.
    security: [{}, { [BEARER]: [] }],
    tags: [
      { name: 'users', description: 'Sign-up and bearer tokens' },
      { name: 'predictions', description: 'Classify images or pixel arrays' },
      { name: 'orders', description: "Buy predictions; every route needs the owner's token" },
      { name: 'tasks', description: 'Background work that a 202 response starts' },
      { name: 'service', description: 'Model information, health and this documentation' },
      { name: 'web page', description: 'The page at / and its files' },
      { name: 'inference protocol', description: 'Open Inference Protocol (KServe v2) REST API, JSON tensors only' },
    ],
  });
}

let cachedDocument: OpenApiDocument | null = null;

/** Returns the document, built on the first call. */
export function openApiDocument(): OpenApiDocument {
  cachedDocument ??= buildOpenApiDocument();
  return cachedDocument;
}

function registerComponents(registry: OpenAPIRegistry): void {
  registry.registerComponent('securitySchemes', BEARER, {
    type: 'http',
    scheme: 'bearer',
    description: 'The token that POST /users returns once; the server stores only its SHA-256 hash',
  });
  registry.registerComponent('headers', 'RequestId', {
    description: "The request's id: the client's own `X-Request-Id` when it is 1 to 128 characters of letters, digits and `_.:-`, else a new UUID",
    schema: { type: 'string' },
    required: true,
  });
  registry.registerComponent('headers', 'Location', {
    description: 'Path of the created resource or of the task to poll',
    schema: { type: 'string' },
    required: true,
  });
  registry.registerComponent('headers', 'RetryAfter', {
    description: 'Seconds to wait before retrying',
    schema: { type: 'integer', minimum: 1 },
    required: true,
  });
  registry.registerComponent('headers', 'RateLimit', {
    description: 'The client\'s remaining quota, as the IETF draft-8 on rate limit headers writes it: `"predict"; r=0; t=42`, with `r` the requests left and `t` the seconds until the window resets',
    schema: { type: 'string' },
    required: true,
  });
  registry.registerComponent('headers', 'RateLimitPolicy', {
    description: 'The limit of this route group: `"predict"; q=600; w=60; pk=:...:`, with `q` the requests allowed in a window of `w` seconds',
    schema: { type: 'string' },
    required: true,
  });
  registry.registerComponent('headers', 'WWWAuthenticate', {
    description: 'Always `Bearer`',
    schema: { type: 'string', const: 'Bearer' },
    required: true,
  });
  registry.registerComponent('headers', 'PreferenceApplied', {
    description: '`respond-async` when the 202 response follows `Prefer: respond-async`',
    schema: { type: 'string', const: 'respond-async' },
  });
}

const headerRef = (name: string) => ({ $ref: `#/components/headers/${name}` });

/** Builds a response with a body of `schema`, or none, that carries X-Request-Id and `headers`. */
// Static files are served with ETag and Last-Modified, so a browser that revalidates its cache gets 304.
const NOT_MODIFIED: ResponseConfig = { description: 'Not modified: the file matches the If-None-Match or If-Modified-Since of the request' };

function jsonResponse(description: string, schema?: z.ZodType, headers: Record<string, { $ref: string }> = {}, mediaType = 'application/json'): ResponseConfig {
  const response: ResponseConfig = { description, headers: { 'X-Request-Id': headerRef('RequestId'), ...headers } };
  if (schema) response.content = { [mediaType]: { schema } };
  return response;
}

/**
 * Builds problem responses for the given statuses. 401 carries WWW-Authenticate, 429 the rate limit
 * headers, and 503 Retry-After, which every 503 of these routes sends: a full queue, a busy
 * database, a rate limit check without a reply or a failed cluster scrape. `descriptions`
 * overrides the generic text of a status.
 */
function problems(statuses: number[], descriptions: Record<number, string> = {}): Responses {
  return errorResponses(statuses, descriptions, { schema: problemSchema, mediaType: 'application/problem+json', retryAfter: true });
}

/**
 * Builds error responses of the Open Inference Protocol paths: `{"error": "..."}`. `retryAfter` is
 * true where a 503 means a full prediction queue, which carries Retry-After, and false where it means
 * a server that is not ready.
 */
function protocolErrors(statuses: number[], descriptions: Record<number, string> = {}, retryAfter = false): Responses {
  return errorResponses(statuses, descriptions, { schema: inferenceErrorSchema, mediaType: 'application/json', retryAfter });
}

function errorResponses(
  statuses: number[],
  descriptions: Record<number, string>,
  format: { schema: z.ZodType; mediaType: string; retryAfter: boolean },
): Responses {
  const responses: Responses = {};
  for (const status of statuses) {
    const headers: Record<string, { $ref: string }> = {};
    if (status === 401) headers['WWW-Authenticate'] = headerRef('WWWAuthenticate');
    if (status === 503 && format.retryAfter) headers['Retry-After'] = headerRef('RetryAfter');
    if (status === 429) {
      headers['Retry-After'] = headerRef('RetryAfter');
      headers.RateLimit = headerRef('RateLimit');
      headers['RateLimit-Policy'] = headerRef('RateLimitPolicy');
    }
    responses[status] = jsonResponse(descriptions[status] ?? ERROR_DESCRIPTIONS[status], format.schema, headers, format.mediaType);
  }
  return responses;
}

const requireToken = { security: [{ [BEARER]: [] }] };

const DATABASE_BUSY_PHRASE = 'another writer held the database lock for longer than DATABASE_BUSY_TIMEOUT_MS';
const DATABASE_BUSY = `Service unavailable: ${DATABASE_BUSY_PHRASE}`;
// Appended to the 503 description of each rate-limited operation, whose store in a cluster worker
// fails the request when the primary does not reply (services/cluster-rate-store.ts).
const RATE_LIMIT_UNCHECKED = `With WORKERS above 1, also when the cluster primary did not reply to the rate limit check within ${PRIMARY_REPLY_TIMEOUT_MS / 1000} s`;
const UNAUTHORIZED_OR_DELETED = `${ERROR_DESCRIPTIONS[401]}, or an account that another request deleted after this one checked the token`;

// zod-to-openapi 9 marks a schema nullable when it accepts null, and z.coerce.number() turns null
// into 0, which the offset accepts. So the offset's schema is written out here.
const pageParameters = pageQuery.extend({ offset: pageQuery.shape.offset.meta({ type: 'integer', minimum: 0, default: 0 }) });

const preferHeader = z.object({
  prefer: z.string().optional().meta({ description: '`respond-async` to get 202 and a task at once (RFC 7240)' }),
});

const binaryFile = z.string().meta({ format: 'binary' });

const multipartImages = z
  .object({ image: z.array(binaryFile).optional().meta({ description: 'Image files (PNG, JPEG or WebP); any field name is accepted' }) })
  .catchall(binaryFile)
  .meta({ description: 'Every file, under any field name, is one item, in the order sent' });

function registerUserRoutes(registry: OpenAPIRegistry): void {
  registry.registerPath({
    method: 'post',
    path: '/users',
    tags: ['users'],
    summary: 'Create a user and its bearer token',
    request: { body: { required: true, content: { 'application/json': { schema: newUserBody } } } },
    responses: {
      201: jsonResponse('The user, with its token; the token is shown only here', newUserSchema, { Location: headerRef('Location') }),
      ...problems([400, 409, 413, 415, 429, 500, 503], { 409: 'The username is taken', 503: `${DATABASE_BUSY}. ${RATE_LIMIT_UNCHECKED}` }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/users',
    tags: ['users'],
    summary: 'List users, oldest first',
    request: { query: pageParameters },
    responses: { 200: jsonResponse('A page of users', userPageSchema), ...problems([400, 500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/users/me',
    tags: ['users'],
    summary: 'The caller',
    ...requireToken,
    responses: { 200: jsonResponse('The user that owns the token', userSchema), ...problems([401, 500]) },
  });
  registry.registerPath({
    method: 'delete',
    path: '/users/me',
    tags: ['users'],
    summary: 'Delete the caller with its orders and tasks',
    description: 'Running tasks of the caller stop after their current chunk. The token is rejected from the next request on, by every worker.',
    ...requireToken,
    responses: {
      204: { description: 'Deleted', headers: { 'X-Request-Id': headerRef('RequestId') } },
      ...problems([401, 500, 503], { 401: UNAUTHORIZED_OR_DELETED, 503: DATABASE_BUSY }),
    },
  });
  registry.registerPath({
    method: 'post',
    path: '/users/me/token',
    tags: ['users'],
    summary: 'Issue a new bearer token and revoke the one sent',
    description: 'The old token is rejected from the next request on, by every worker.',
    ...requireToken,
    responses: {
      200: jsonResponse('The caller, with its new token; the token is shown only here', newUserSchema),
      ...problems([401, 500, 503], { 401: UNAUTHORIZED_OR_DELETED, 503: DATABASE_BUSY }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/users/{id}',
    tags: ['users'],
    summary: 'One user',
    request: { params: idParams },
    responses: { 200: jsonResponse('The user', userSchema), ...problems([400, 404, 500], { 404: 'No user has this id' }) },
  });
}

function registerOrderRoutes(registry: OpenAPIRegistry): void {
  const notFound = { 404: "No order of the caller's has this id" };

  registry.registerPath({
    method: 'post',
    path: '/orders',
    tags: ['orders'],
    summary: 'Place an order: classify and bill its items',
    description:
      'Orders of up to SYNC_MAX_ITEMS items are classified during the request (201). Larger orders, and any order sent with `Prefer: respond-async`, get 202 and a task. A retry with the same `Idempotency-Key` and body returns the first response with `Idempotent-Replayed: true`.',
    ...requireToken,
    request: {
      headers: idempotencyHeader.partial().extend(preferHeader.shape),
      body: {
        required: true,
        content: {
          'application/json': { schema: newOrderBody },
          'multipart/form-data': { schema: multipartImages.extend(multipartFields.shape) },
        },
      },
    },
    responses: {
      201: jsonResponse('The completed order', orderSchema, {
        Location: headerRef('Location'),
        'Idempotent-Replayed': { $ref: '#/components/headers/IdempotentReplayed' },
      }),
      202: jsonResponse('The order is pending and its task queued', orderTaskAcceptedSchema, {
        Location: headerRef('Location'),
        'Preference-Applied': headerRef('PreferenceApplied'),
        'Idempotent-Replayed': { $ref: '#/components/headers/IdempotentReplayed' },
      }),
      ...problems([400, 401, 409, 411, 413, 415, 429, 500, 503], {
        401: UNAUTHORIZED_OR_DELETED,
        409: 'The Idempotency-Key was used with another body, or its first request is still running (then with `Retry-After`)',
        503: `The prediction queue is full, the task queue holds TASK_QUEUE_MAX tasks, or ${DATABASE_BUSY_PHRASE}; nothing was stored. ${RATE_LIMIT_UNCHECKED}`,
      }),
    },
  });
  registry.registerComponent('headers', 'IdempotentReplayed', {
    description: '`true` when this is the stored response of an earlier request with the same Idempotency-Key',
    schema: { type: 'string', const: 'true' },
  });
  registry.registerPath({
    method: 'get',
    path: '/orders',
    tags: ['orders'],
    summary: "List the caller's orders, newest first",
    ...requireToken,
    request: { query: pageParameters },
    responses: { 200: jsonResponse('A page of orders, without their items', orderPageSchema), ...problems([400, 401, 500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/orders/{id}',
    tags: ['orders'],
    summary: 'One order with its items',
    ...requireToken,
    request: { params: idParams },
    responses: { 200: jsonResponse('The order', orderSchema), ...problems([400, 401, 404, 500], notFound) },
  });
  registry.registerPath({
    method: 'patch',
    path: '/orders/{id}',
    tags: ['orders'],
    summary: 'Change the note, or cancel a pending order and its task',
    ...requireToken,
    request: { params: idParams, body: { required: true, content: { 'application/json': { schema: orderChanges } } } },
    responses: {
      200: jsonResponse('The changed order', orderSchema),
      ...problems([400, 401, 404, 409, 413, 415, 500, 503], { ...notFound, 409: 'Only a pending order can be cancelled', 503: DATABASE_BUSY }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/orders/{id}/bill',
    tags: ['orders'],
    summary: 'The bill of an order, in minor units',
    ...requireToken,
    request: { params: idParams },
    responses: { 200: jsonResponse('The bill', billSchema), ...problems([400, 401, 404, 500], notFound) },
  });
}

function registerPredictionRoutes(registry: OpenAPIRegistry): void {
  const notFound = { 404: 'No task visible to the caller has this id; finished tasks expire after TASK_TTL_SECONDS' };

  registry.registerPath({
    method: 'post',
    path: '/predict',
    tags: ['predictions'],
    summary: 'Classify images or pixel arrays',
    description: 'Any bad item rejects the whole request. With `Prefer: respond-async` the items become a task (202).',
    request: {
      headers: preferHeader,
      body: {
        required: true,
        content: { 'application/json': { schema: predictBody }, 'multipart/form-data': { schema: multipartImages } },
      },
    },
    responses: {
      200: jsonResponse('One prediction an item, in order', predictResponseSchema),
      202: jsonResponse('The items are queued as a task', predictionTaskAcceptedSchema, {
        Location: headerRef('Location'),
        'Preference-Applied': headerRef('PreferenceApplied'),
      }),
      ...problems([400, 401, 411, 413, 415, 429, 500, 503], {
        401: 'Malformed or unknown bearer token (a token is optional), or with `Prefer: respond-async` an account that another request deleted after this one checked the token',
        503: `The prediction queue is full, or with \`Prefer: respond-async\` the task queue holds TASK_QUEUE_MAX tasks or ${DATABASE_BUSY_PHRASE}. ${RATE_LIMIT_UNCHECKED}`,
      }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/tasks/{id}',
    tags: ['tasks'],
    summary: 'Follow a background task',
    description: 'A task created with a token is visible only with that token; an anonymous prediction task is visible to anyone with its id.',
    request: { params: idParams },
    responses: { 200: jsonResponse('The task', taskSchema), ...problems([400, 401, 404, 500], notFound) },
  });
  registry.registerPath({
    method: 'delete',
    path: '/tasks/{id}',
    tags: ['tasks'],
    summary: 'Cancel a queued or running task, and its order',
    request: { params: idParams },
    responses: {
      200: jsonResponse('The cancelled task', taskSchema),
      ...problems([400, 401, 404, 409, 500, 503], { ...notFound, 409: 'The task has already ended', 503: DATABASE_BUSY }),
    },
  });
}

function registerServiceRoutes(registry: OpenAPIRegistry): void {
  registry.registerPath({
    method: 'get',
    path: '/model',
    tags: ['service'],
    summary: 'The served model',
    responses: { 200: jsonResponse('Name, version, backend, input shape, labels and accuracy', modelInfoSchema), ...problems([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/metrics',
    tags: ['service'],
    summary: 'Prometheus metrics of the service, summed over every worker in cluster mode',
    responses: {
      200: jsonResponse('Metrics in the Prometheus text format', z.string(), {}, 'text/plain'),
      ...problems([500, 503], {
        503: 'With WORKERS above 1: a worker did not send its metrics within 3 s (a stopped or blocked worker), failed to collect them, or the primary did not reply',
      }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/healthz',
    tags: ['service'],
    summary: 'Liveness',
    responses: { 200: jsonResponse('The process serves requests', healthSchema), ...problems([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/readyz',
    tags: ['service'],
    summary: 'Readiness',
    responses: {
      200: jsonResponse('The model is loaded, the database open and no shutdown has begun', readinessSchema),
      503: jsonResponse('Not ready: `checks` lists the reason', readinessSchema),
      ...problems([500]),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/openapi.json',
    tags: ['service'],
    summary: 'This OpenAPI document',
    responses: { 200: jsonResponse('OpenAPI 3.1 document', z.object({}).meta({ description: 'An OpenAPI 3.1 document' })), ...problems([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/docs',
    tags: ['service'],
    summary: 'This documentation in Swagger UI',
    responses: { 200: jsonResponse('HTML page', z.string(), {}, 'text/html'), 304: NOT_MODIFIED, ...problems([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/docs/swagger-initializer.js',
    tags: ['service'],
    summary: 'The script that starts Swagger UI on this document',
    responses: { 200: jsonResponse('JavaScript', z.string(), {}, 'text/javascript'), 304: NOT_MODIFIED, ...problems([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: '/docs/{file}',
    tags: ['service'],
    summary: "Swagger UI's scripts, styles and icons, from the swagger-ui-dist package",
    request: { params: z.object({ file: z.string().meta({ description: 'File name, such as swagger-ui-bundle.js' }) }) },
    responses: {
      200: jsonResponse('The file', binaryFile, {}, '*/*'),
      304: NOT_MODIFIED,
      ...problems([404, 500], { 404: 'swagger-ui-dist has no such file' }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/',
    tags: ['web page'],
    summary: 'The web page, which uses this API',
    responses: {
      200: jsonResponse('HTML page', z.string(), {}, 'text/html'),
      304: NOT_MODIFIED,
      ...problems([404, 500], { 404: 'The page is not built; `npm run build` builds it into WEB_DIR' }),
    },
  });
  registry.registerPath({
    method: 'get',
    path: '/{file}',
    tags: ['web page'],
    summary: "The page's scripts, styles and icon, from WEB_DIR",
    request: { params: z.object({ file: z.string().meta({ description: 'Path of the file below WEB_DIR, such as js/main.js' }) }) },
    responses: {
      200: jsonResponse('The file', binaryFile, {}, '*/*'),
      304: NOT_MODIFIED,
      ...problems([500]),
      // Every path that no route serves reaches the page's files last, so their 404 is the 404 of
      // any unknown path, in the error format of its prefix.
      404: {
        ...jsonResponse('No such file or route', problemSchema, {}, 'application/problem+json'),
        content: {
          'application/problem+json': { schema: problemSchema },
          'application/json': { schema: inferenceErrorSchema },
        },
      },
    },
  });
}

function registerInferenceProtocolRoutes(registry: OpenAPIRegistry): void {
  const base = INFERENCE_PROTOCOL_PATH;
  const tags = ['inference protocol'];
  const modelNotFound = { 404: 'The server serves no model of this name or version' };
  const notReady = { 503: 'Not ready: the model is not loaded, the database is closed or shutdown has begun' };

  registry.registerPath({
    method: 'get',
    path: base,
    tags,
    summary: 'Server metadata',
    responses: { 200: jsonResponse('Server name, protocol version and extensions', serverMetadataSchema), ...protocolErrors([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: `${base}/health/live`,
    tags,
    summary: 'Server liveness',
    responses: { 200: jsonResponse('The server is live', serverLiveSchema), ...protocolErrors([500]) },
  });
  registry.registerPath({
    method: 'get',
    path: `${base}/health/ready`,
    tags,
    summary: 'Server readiness',
    responses: { 200: jsonResponse('The server is ready for inference', serverReadySchema), ...protocolErrors([500, 503], notReady) },
  });

  const nameParams = z.object({ name: z.string().meta({ description: 'Model name; see GET /model' }) });
  const versionParams = nameParams.extend({ version: z.string().meta({ description: 'Model version' }) });
  for (const [prefix, params] of [
    [`${base}/models/{name}`, nameParams],
    [`${base}/models/{name}/versions/{version}`, versionParams],
  ] as const) {
    registry.registerPath({
      method: 'get',
      path: prefix,
      tags,
      summary: 'Model metadata: input and output tensors',
      request: { params },
      responses: { 200: jsonResponse('The model metadata', modelMetadataSchema), ...protocolErrors([404, 500], modelNotFound) },
    });
    registry.registerPath({
      method: 'get',
      path: `${prefix}/ready`,
      tags,
      summary: 'Model readiness',
      request: { params },
      responses: { 200: jsonResponse('The model is ready', modelReadySchema), ...protocolErrors([404, 500, 503], { ...modelNotFound, ...notReady }) },
    });
    registry.registerPath({
      method: 'post',
      path: `${prefix}/infer`,
      tags,
      summary: 'Inference',
      description:
        'One FP32 input tensor of images with values in 0..1, of shape [N, height, width, channels] or [N, height × width × channels], flat or nested. The body may come without a Content-Type, as the Python clients send it. Inputs share the model calls and the limits of POST /predict.',
      request: { params, body: { required: true, content: { 'application/json': { schema: inferenceRequest } } } },
      responses: {
        200: jsonResponse('The requested outputs: `probabilities` [N, labels] FP32 and `label` [N] BYTES', inferenceResponseSchema),
        ...protocolErrors([400, 404, 413, 415, 429, 500, 503], {
          ...modelNotFound,
          415: 'A body that is neither JSON nor without a Content-Type, or binary tensor data',
          503: `The prediction queue is full. ${RATE_LIMIT_UNCHECKED}`,
        }, true),
      },
    });
  }
}

/** Returns the document as `npm run openapi` writes it to openapi.json. */
export function serializeOpenApiDocument(document: OpenApiDocument = buildOpenApiDocument()): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
