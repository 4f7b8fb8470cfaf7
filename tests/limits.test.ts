import Database from 'better-sqlite3';
import express from 'express';
import helmet from 'helmet';
import request from 'supertest';
import { CONTENT_SECURITY_POLICY_DIRECTIVES, DOCS_DIRECTIVES, helmetOptionsFor } from '../middleware/security-headers';
import { TestApp, expectProblem, readLogLines, signUp, startTestApp, waitForAccessLine } from './helpers/app';
import { digitToRows, fixture, heldOutDigits } from './helpers/images';

// Every test app counts requests in its own memory store, so each describe block starts an app
// with low limits of its own and spends them.

const PIXELS = digitToRows(heldOutDigits()[0]);
const PREDICT_BODY = { instances: [{ pixels: PIXELS }] };
const ORDER_BODY = { items: [{ image: fixture('digit-3-canvas-transparent.png').toString('base64') }] };
const INFER_BODY = { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: PIXELS.flat() }] };

/** Reads the parts of a draft-8 `RateLimit` or `RateLimit-Policy` header: `"name"; r=1; t=60`. */
function parseRateLimitHeader(value: string | undefined): Record<string, string> {
  const [name, ...parameters] = (value ?? '').split(';').map((part) => part.trim());
  return { name, ...Object.fromEntries(parameters.map((parameter) => parameter.split('=') as [string, string])) };
}

describe('rate limits', () => {
  let testApp: TestApp;
  let auth: string;
  let modelName: string;

  beforeAll(async () => {
    testApp = await startTestApp({
      SIGN_UP_RATE_LIMIT: '3',
      SIGN_UP_RATE_WINDOW_SECONDS: '3600',
      PREDICT_RATE_LIMIT: '2',
      PREDICT_RATE_WINDOW_SECONDS: '60',
      ORDER_RATE_LIMIT: '2',
      ORDER_RATE_WINDOW_SECONDS: '120',
      INFER_RATE_LIMIT: '2',
      INFER_RATE_WINDOW_SECONDS: '30',
    });
    auth = (await signUp(testApp.app, 'rate_limited')).auth;
    modelName = testApp.services.model.metadata.name;
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('predict limit is 429 after two', async () => {
    const first = await request(testApp.app).post('/predict').send(PREDICT_BODY);
    const second = await request(testApp.app).post('/predict').send(PREDICT_BODY);
    const third = await request(testApp.app).post('/predict').send(PREDICT_BODY);

    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expectProblem(third, 429);
    expect(third.body.detail).toContain('2 requests per 60 s');
  });

  test('429 carries Retry-After and RateLimit headers', async () => {
    const response = await request(testApp.app).post('/predict').send(PREDICT_BODY);
    const state = parseRateLimitHeader(response.headers.ratelimit);
    const policy = parseRateLimitHeader(response.headers['ratelimit-policy']);

    expect(response.status).toBe(429);
    expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(response.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(state.name).toBe('"predict"');
    expect(state.r).toBe('0');
    expect(Number(state.t)).toBeLessThanOrEqual(60);
    expect(policy.name).toBe('"predict"');
    expect(policy.q).toBe('2');
    expect(policy.w).toBe('60');
  });

  test('counted response carries RateLimit headers', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', auth).send(ORDER_BODY);
    const state = parseRateLimitHeader(response.headers.ratelimit);
    const policy = parseRateLimitHeader(response.headers['ratelimit-policy']);

    expect(response.status).toBe(201);
    expect(state.name).toBe('"order"');
    expect(state.r).toBe('1');
    expect(policy.q).toBe('2');
    expect(policy.w).toBe('120');
  });

  test('orders count apart from predictions', async () => {
    const second = await request(testApp.app).post('/orders').set('Authorization', auth).send(ORDER_BODY);
    const third = await request(testApp.app).post('/orders').set('Authorization', auth).send(ORDER_BODY);
    const { total } = testApp.services.db.prepare('SELECT COUNT(*) AS total FROM orders').get() as { total: number };

    expect(second.status).toBe(201);
    expectProblem(third, 429);
    expect(total).toBe(2);
  });

  test('unlimited routes stay open', async () => {
    const health = await request(testApp.app).get('/healthz');
    const orders = await request(testApp.app).get('/orders').set('Authorization', auth);

    expect(health.status).toBe(200);
    expect(health.headers.ratelimit).toBeUndefined();
    expect(orders.status).toBe(200);
  });

  test('sign-up limit is 429 after three', async () => {
    // The first of the three was spent in beforeAll.
    const second = await request(testApp.app).post('/users').send({ username: 'rate_second' });
    const third = await request(testApp.app).post('/users').send({ username: 'rate_third' });
    const fourth = await request(testApp.app).post('/users').send({ username: 'rate_fourth' });
    const policy = parseRateLimitHeader(fourth.headers['ratelimit-policy']);

    expect(second.status).toBe(201);
    expect(third.status).toBe(201);
    expectProblem(fourth, 429);
    expect(policy.q).toBe('3');
    expect(policy.w).toBe('3600');
  });

  test('infer limit answers in protocol format', async () => {
    const responses = [];
    for (const path of [`/v2/models/${modelName}/infer`, `/v2/models/${modelName}/infer`, `/v2/models/${modelName}/versions/1/infer`]) {
      responses.push(await request(testApp.app).post(path).send(INFER_BODY));
    }
    const limited = responses[2];

    expect(responses[0].status).toBe(200);
    expect(responses[1].status).toBe(200);
    expect(limited.status).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(limited.body)).toEqual(['error']);
    expect(limited.body.error).toContain('too many requests');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(parseRateLimitHeader(limited.headers['ratelimit-policy']).name).toBe('"infer"');
  });

  test('limited request logged as 429', async () => {
    const response = await request(testApp.app).post('/predict').set('X-Request-Id', 'rate-limited-predict').send(PREDICT_BODY);
    const lines = await readLogLines(testApp);
    const line = lines.find((record) => record.requestId === 'rate-limited-predict');

    expect(response.status).toBe(429);
    expect(line?.status).toBe(429);
    expect(line?.level).toBe('warn');
  });
});

describe('rate limits on other spellings of a path', () => {
  let testApp: TestApp;
  let modelName: string;

  beforeAll(async () => {
    testApp = await startTestApp({ PREDICT_RATE_LIMIT: '2', INFER_RATE_LIMIT: '1' });
    modelName = testApp.services.model.metadata.name;
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('capitals and trailing slash count', async () => {
    const upper = await request(testApp.app).post('/PREDICT').send(PREDICT_BODY);
    const slash = await request(testApp.app).post('/predict/').send(PREDICT_BODY);
    const third = await request(testApp.app).post('/Predict').send(PREDICT_BODY);

    expect(upper.status).toBe(200);
    expect(slash.status).toBe(200);
    expectProblem(third, 429);
  });

  test('infer path spellings count', async () => {
    const first = await request(testApp.app).post(`/V2/Models/${modelName}/Infer/`).send(INFER_BODY);
    const second = await request(testApp.app).post(`/v2/models/${modelName}/infer`).send(INFER_BODY);

    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
  });
});

describe('client address for rate limits', () => {
  const limits = { PREDICT_RATE_LIMIT: '1', PREDICT_RATE_WINDOW_SECONDS: '60' };

  test('X-Forwarded-For ignored without TRUST_PROXY', async () => {
    const testApp = await startTestApp(limits);
    try {
      const first = await request(testApp.app).post('/predict').set('X-Forwarded-For', '203.0.113.1').send(PREDICT_BODY);
      const second = await request(testApp.app).post('/predict').set('X-Forwarded-For', '203.0.113.2').send(PREDICT_BODY);

      const lines = await readLogLines(testApp);
      const hints = lines.filter((line) => line.message === 'rate limiter configuration check failed');

      expect(first.status).toBe(200);
      expect(second.status).toBe(429);
      expect(hints.map((line) => [line.level, line.code, line.group])).toEqual([['warn', 'ERR_ERL_UNEXPECTED_X_FORWARDED_FOR', 'predict']]);
    } finally {
      await testApp.close();
    }
  });

  test('X-Forwarded-For counts with TRUST_PROXY', async () => {
    const testApp = await startTestApp({ ...limits, TRUST_PROXY: 'loopback' });
    try {
      const first = await request(testApp.app).post('/predict').set('X-Forwarded-For', '203.0.113.1').send(PREDICT_BODY);
      const other = await request(testApp.app).post('/predict').set('X-Forwarded-For', '203.0.113.2').send(PREDICT_BODY);
      const repeated = await request(testApp.app).post('/predict').set('X-Forwarded-For', '203.0.113.1').send(PREDICT_BODY);

      expect(first.status).toBe(200);
      expect(other.status).toBe(200);
      expect(repeated.status).toBe(429);
    } finally {
      await testApp.close();
    }
  });
});

describe('task queue limit', () => {
  let testApp: TestApp;
  let auth: string;

  beforeAll(async () => {
    testApp = await startTestApp({ TASK_QUEUE_MAX: '1' });
    // With the runner stopped, queued tasks stay queued, so the queue fills.
    await testApp.services.runner.stop();
    auth = (await signUp(testApp.app, 'queue_filler')).auth;
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('task beyond TASK_QUEUE_MAX is 503', async () => {
    const first = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send(PREDICT_BODY);
    const second = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').set('X-Request-Id', 'task-queue-full').send(PREDICT_BODY);
    const accessLine = await waitForAccessLine(testApp, 'task-queue-full');

    expect(first.status).toBe(202);
    expectProblem(second, 503);
    expect(second.body.detail).toContain('TASK_QUEUE_MAX is 1');
    expect(second.headers['retry-after']).toBe('10');
    expect(accessLine.level).toBe('warn');
  });

  test('order for a full queue stores nothing', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', auth).set('Prefer', 'respond-async').send(ORDER_BODY);
    const { orders } = testApp.services.db.prepare('SELECT COUNT(*) AS orders FROM orders').get() as { orders: number };
    const { tasks } = testApp.services.db.prepare('SELECT COUNT(*) AS tasks FROM tasks').get() as { tasks: number };

    expectProblem(response, 503);
    expect(response.headers['retry-after']).toBe('10');
    expect(orders).toBe(0);
    expect(tasks).toBe(1);
  });

  test('synchronous requests still served', async () => {
    const response = await request(testApp.app).post('/predict').send(PREDICT_BODY);

    expect(response.status).toBe(200);
  });
});

describe('busy database', () => {
  test('write past busy timeout is 503', async () => {
    // A busy timeout of 0 fails at once; the process tests hold the lock for real durations.
    const testApp = await startTestApp({ DATABASE_BUSY_TIMEOUT_MS: '0' });
    const holder = new Database(testApp.services.db.name);
    try {
      holder.exec('BEGIN IMMEDIATE');
      const response = await request(testApp.app).post('/users').set('X-Request-Id', 'database-busy').send({ username: 'locked_out' });
      holder.exec('ROLLBACK');
      const retry = await request(testApp.app).post('/users').send({ username: 'locked_out' });
      const accessLine = await waitForAccessLine(testApp, 'database-busy');

      expectProblem(response, 503);
      expect(response.headers['retry-after']).toBe('1');
      expect(response.body.detail).toContain('DATABASE_BUSY_TIMEOUT_MS');
      expect(retry.status).toBe(201);
      expect(accessLine.level).toBe('warn');
    } finally {
      holder.close();
      await testApp.close();
    }
  });
});

describe('JSON body limits', () => {
  let testApp: TestApp;
  let modelName: string;

  beforeAll(async () => {
    testApp = await startTestApp({ JSON_MAX_DEPTH: '8', JSON_MAX_KEYS: '50' });
    modelName = testApp.services.model.metadata.name;
  });

  afterAll(async () => {
    await testApp.close();
  });

  /** Builds `[[[...]]]` nested `depth` levels deep. */
  function nested(depth: number): unknown {
    let value: unknown = 0;
    for (let level = 0; level < depth; level++) value = [value];
    return value;
  }

  function manyKeys(count: number): Record<string, number> {
    return Object.fromEntries(Array.from({ length: count }, (_, index) => [`key${index}`, index]));
  }

  test.each([
    ['POST /users', '/users'],
    ['POST /predict', '/predict'],
    ['PATCH /orders', '/orders/00000000-0000-4000-8000-000000000000'],
  ])('deep body on %s is 413', async (_name, path) => {
    const body = JSON.stringify({ username: nested(10) });
    const call = path.startsWith('/orders') ? request(testApp.app).patch(path) : request(testApp.app).post(path);

    const response = await call.set('Content-Type', 'application/json').send(body);

    expectProblem(response, 413);
    expect(response.body.detail).toContain('JSON_MAX_DEPTH (8)');
  });

  test('many keys on POST /users is 413', async () => {
    const response = await request(testApp.app).post('/users').send(manyKeys(51));

    expectProblem(response, 413);
    expect(response.body.detail).toContain('JSON_MAX_KEYS (50)');
  });

  test('keys are counted across objects', async () => {
    const body = { instances: Array.from({ length: 30 }, () => ({ pixels: PIXELS })) };

    const response = await request(testApp.app).post('/predict').send(body);

    // 1 key at the top and 30 in the instances: 31, within the limit of 50.
    expect(response.status).toBe(200);
    expect(response.body.predictions).toHaveLength(30);
  });

  test('deep body on infer path is 413', async () => {
    const body = { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: nested(20) }] };

    const response = await request(testApp.app).post(`/v2/models/${modelName}/infer`).send(body);

    expect(response.status).toBe(413);
    expect(response.body.error).toContain('JSON_MAX_DEPTH (8)');
  });

  test('body without Content-Type on infer path is checked', async () => {
    const response = await request(testApp.app)
      .post(`/v2/models/${modelName}/infer`)
      .serialize((body: unknown) => JSON.stringify(body))
      .unset('Content-Type')
      .send({ inputs: [{ name: 'pixels', ...manyKeys(60) }] });

    expect(response.status).toBe(413);
    expect(response.body.error).toContain('JSON_MAX_KEYS (50)');
  });

  test('pixel body over key limit is 413', async () => {
    const body = { instances: Array.from({ length: 50 }, () => ({ pixels: PIXELS })) };

    const response = await request(testApp.app).post('/predict').send(body);

    // 1 key at the top and 50 in the instances: 51, over the limit of 50.
    expectProblem(response, 413);
    expect(response.body.detail).toContain('JSON_MAX_KEYS (50)');
  });

  test('body at the depth limit is accepted', async () => {
    // The body, the instances array, one instance, the pixels and a row: depth 5 of 8.
    const response = await request(testApp.app).post('/predict').send(PREDICT_BODY);

    expect(response.status).toBe(200);
  });
});

describe('JSON depth limit below the depth of a pixel body', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ JSON_MAX_DEPTH: '4' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('pixel body with rows is 413', async () => {
    // The body, the instances array, one instance, the pixels and a row: depth 5 of 4.
    const response = await request(testApp.app).post('/predict').send(PREDICT_BODY);

    expectProblem(response, 413);
    expect(response.body.detail).toContain('JSON_MAX_DEPTH (4)');
  });

  test('pixel body without rows is 400', async () => {
    const response = await request(testApp.app).post('/predict').send({ instances: [{ pixels: [] }] });

    expectProblem(response, 400);
  });
});

describe('multipart limits', () => {
  let testApp: TestApp;
  const png = fixture('digit-3-canvas-transparent.png');

  beforeAll(async () => {
    testApp = await startTestApp({ MAX_ITEMS: '2', MAX_IMAGE_BYTES: String(png.length) });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('files within the limits are classified', async () => {
    const response = await request(testApp.app).post('/predict').attach('image', png, 'one.png').attach('image', png, 'two.png');

    expect(response.status).toBe(200);
    expect(response.body.predictions).toHaveLength(2);
  });

  test('more files than MAX_ITEMS is 413', async () => {
    const call = request(testApp.app).post('/predict');
    for (let index = 0; index < 3; index++) call.attach('image', png, `digit-${index}.png`);

    const response = await call;

    expectProblem(response, 413);
    expect(response.body.detail).toContain('more than MAX_ITEMS');
  });

  test('file over MAX_IMAGE_BYTES is 413', async () => {
    const response = await request(testApp.app).post('/predict').attach('image', Buffer.concat([png, Buffer.alloc(1)]), 'large.png');

    expectProblem(response, 413);
    expect(response.body.detail).toContain('larger than MAX_IMAGE_BYTES');
  });

  test('more than 20 text fields is 413', async () => {
    const call = request(testApp.app).post('/predict').attach('image', png, 'one.png');
    for (let index = 0; index < 21; index++) call.field(`field${index}`, 'x');

    const response = await call;

    expectProblem(response, 413);
    expect(response.body.detail).toContain('more than 20 form fields');
  });

  test('text field over 64 KiB is 413', async () => {
    const response = await request(testApp.app)
      .post('/predict')
      .attach('image', png, 'one.png')
      .field('note', 'x'.repeat(64 * 1024 + 1));

    expectProblem(response, 413);
    expect(response.body.detail).toContain('longer than 65536 bytes');
  });
});

describe('security headers', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test.each(['/healthz', '/docs', '/openapi.json', '/no-such-route', '/v2'])('%s carries helmet headers', async (path) => {
    const response = await request(testApp.app).get(path);
    const policy = response.headers['content-security-policy'] ?? '';

    expect(policy).toContain("default-src 'self'");
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).not.toContain('upgrade-insecure-requests');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(response.headers['strict-transport-security']).toMatch(/^max-age=\d+/);
    expect(response.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(response.headers['referrer-policy']).toBe('no-referrer');
    expect(response.headers['x-powered-by']).toBeUndefined();
  });

  test.each([
    ['/healthz', CONTENT_SECURITY_POLICY_DIRECTIVES],
    ['/docs/', DOCS_DIRECTIVES],
  ])('%s gets every header that helmet itself sets', async (path, directives) => {
    const helmetApp = express();
    helmetApp.use(helmet(helmetOptionsFor(directives)));
    helmetApp.get('/', (_req, res) => {
      res.end();
    });
    const expected = (await request(helmetApp).get('/')).headers;
    const helmetNames = Object.keys(expected).filter((name) => !['date', 'connection', 'content-length', 'keep-alive'].includes(name));

    const response = await request(testApp.app).get(path);

    expect(helmetNames.length).toBeGreaterThan(10);
    for (const name of helmetNames) expect([name, response.headers[name]]).toEqual([name, expected[name]]);
  });

  test.each([
    ['/docs', "style-src 'self' 'unsafe-inline'"],
    ['/docs/swagger-initializer.js', "style-src 'self' 'unsafe-inline'"],
    ['/', "style-src 'self';"],
    ['/healthz', "style-src 'self';"],
  ])('style-src of %s', async (path, directive) => {
    const response = await request(testApp.app).get(path);

    expect(response.headers['content-security-policy']).toContain(directive);
  });

  test('401 carries WWW-Authenticate Bearer', async () => {
    const response = await request(testApp.app).get('/users/me').set('Authorization', 'Bearer not-a-token');

    expectProblem(response, 401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
  });
});
