import crypto from 'node:crypto';
import request from 'supertest';
import { TestApp, expectProblem, signUp, startTestApp } from './helpers/app';
import { digitToRows, fixture, heldOutDigits } from './helpers/images';

const PIXELS = digitToRows(heldOutDigits()[0]);
const PREDICT_BODY = { instances: [{ pixels: PIXELS }] };
const ORDER_BODY = { items: [{ image: fixture('digit-3-canvas-transparent.png').toString('base64') }] };
// An id that no order or task has; the requests fail before it is looked up.
const UNKNOWN_ID = '3f0c9a52-8d1e-4b7a-9c2f-5e6d7a8b9c0d';

// Headers that a reverse proxy or a Prometheus job with basic_auth sends, and a token that no user has.
const FOREIGN_HEADERS: [string, string][] = [
  ['basic credentials', 'Basic dXNlcjpwYXNz'],
  ['unknown bearer token', 'Bearer nope'],
];

describe('Authorization header', () => {
  let testApp: TestApp;
  let modelName: string;

  beforeAll(async () => {
    testApp = await startTestApp();
    modelName = testApp.services.model.metadata.name;
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe.each(FOREIGN_HEADERS)('ignored where no identity is read (%s)', (_case, header) => {
    test.each([
      '/healthz',
      '/readyz',
      '/metrics',
      '/openapi.json',
      '/docs',
      '/docs/swagger-initializer.js',
      '/',
      '/styles.css',
      '/model',
      '/users',
      '/v2',
      '/v2/health/live',
      '/v2/health/ready',
    ])('GET %s is 200', async (path) => {
      const response = await request(testApp.app).get(path).set('Authorization', header);

      expect(response.status).toBe(200);
      expect(response.headers['www-authenticate']).toBeUndefined();
    });

    test('GET /users/:id is 200', async () => {
      const user = await signUp(testApp.app, `lookup_${crypto.randomBytes(4).toString('hex')}`);

      const response = await request(testApp.app).get(`/users/${user.id}`).set('Authorization', header);

      expect(response.status).toBe(200);
      expect(response.body.id).toBe(user.id);
    });

    test('POST /users is 201', async () => {
      const response = await request(testApp.app)
        .post('/users')
        .set('Authorization', header)
        .send({ username: `signup_${crypto.randomBytes(4).toString('hex')}` });

      expect(response.status).toBe(201);
    });

    test('inference is 200', async () => {
      const response = await request(testApp.app)
        .post(`/v2/models/${modelName}/infer`)
        .set('Authorization', header)
        .send({ inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: PIXELS.flat() }] });

      expect(response.status).toBe(200);
    });
  });

  describe.each(FOREIGN_HEADERS)('rejected where identity is read (%s)', (_case, header) => {
    test.each<[string, string, object | undefined]>([
      ['GET', '/users/me', undefined],
      ['DELETE', '/users/me', undefined],
      ['POST', '/users/me/token', undefined],
      ['POST', '/orders', ORDER_BODY],
      ['GET', '/orders', undefined],
      ['GET', `/orders/${UNKNOWN_ID}`, undefined],
      ['PATCH', `/orders/${UNKNOWN_ID}`, { note: 'changed' }],
      ['GET', `/orders/${UNKNOWN_ID}/bill`, undefined],
      ['POST', '/predict', PREDICT_BODY],
      ['GET', `/tasks/${UNKNOWN_ID}`, undefined],
      ['DELETE', `/tasks/${UNKNOWN_ID}`, undefined],
    ])('%s %s is 401', async (method, path, body) => {
      const call = request(testApp.app)[method.toLowerCase() as 'get' | 'post' | 'patch' | 'delete'](path).set('Authorization', header);
      const response = body === undefined ? await call : await call.send(body);

      expectProblem(response, 401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });
  });

  describe('wrong method', () => {
    test.each([
      ['PUT', '/orders', 'POST, GET, HEAD, OPTIONS'],
      ['DELETE', '/orders', 'POST, GET, HEAD, OPTIONS'],
      ['POST', `/orders/${UNKNOWN_ID}`, 'GET, PATCH, HEAD, OPTIONS'],
      ['DELETE', `/orders/${UNKNOWN_ID}/bill`, 'GET, HEAD, OPTIONS'],
      ['PUT', '/users/me', 'GET, DELETE, HEAD, OPTIONS'],
      ['GET', '/users/me/token', 'POST, OPTIONS'],
      ['PUT', `/tasks/${UNKNOWN_ID}`, 'GET, DELETE, HEAD, OPTIONS'],
    ])('%s %s without a token is 405', async (method, path, allow) => {
      const response = await request(testApp.app)[method.toLowerCase() as 'get' | 'put' | 'post' | 'delete'](path);

      expectProblem(response, 405);
      expect(response.headers.allow).toBe(allow);
    });

    test('PUT /orders with an unknown token is 405', async () => {
      const response = await request(testApp.app).put('/orders').set('Authorization', 'Bearer nope');

      expectProblem(response, 405);
      expect(response.headers.allow).toBe('POST, GET, HEAD, OPTIONS');
    });
  });
});
