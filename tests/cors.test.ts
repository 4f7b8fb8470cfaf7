import request from 'supertest';
import { TestApp, expectProblem, startTestApp } from './helpers/app';

// Origins under the reserved .example domain: the tests only send them as header values.
const ALLOWED = 'https://shop.example';
const SECOND_ALLOWED = 'http://localhost:5173';
const UNLISTED = 'https://elsewhere.example';

const CORS_HEADERS = [
  'access-control-allow-origin',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-expose-headers',
  'access-control-max-age',
  'access-control-allow-credentials',
];

function expectNoCorsHeaders(response: request.Response): void {
  for (const name of CORS_HEADERS) expect(response.headers).not.toHaveProperty(name);
}

describe('CORS', () => {
  describe('with CORS_ORIGINS set', () => {
    let testApp: TestApp;

    beforeAll(async () => {
      testApp = await startTestApp({ CORS_ORIGINS: `${ALLOWED}, ${SECOND_ALLOWED}` });
    });

    afterAll(async () => {
      await testApp.close();
    });

    test.each([ALLOWED, SECOND_ALLOWED])('listed origin %s is allowed', async (origin) => {
      const response = await request(testApp.app).get('/healthz').set('Origin', origin);

      expect(response.status).toBe(200);
      expect(response.headers['access-control-allow-origin']).toBe(origin);
      expect(response.headers.vary).toMatch(/\bOrigin\b/);
    });

    test('listed origin can read the API headers', async () => {
      const response = await request(testApp.app).get('/healthz').set('Origin', ALLOWED);

      const exposed = response.headers['access-control-expose-headers'].split(',');
      expect(exposed).toEqual(expect.arrayContaining(['Location', 'X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy']));
    });

    test('error response carries CORS headers', async () => {
      const response = await request(testApp.app).get('/users/me').set('Origin', ALLOWED);

      expectProblem(response, 401);
      expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
    });

    test('created user exposes Location', async () => {
      const user = await request(testApp.app).post('/users').set('Origin', ALLOWED).send({ username: 'cors-user' });

      expect(user.status).toBe(201);
      expect(user.headers['access-control-allow-origin']).toBe(ALLOWED);
      expect(user.headers.location).toBe(`/users/${user.body.id}`);
      expect(user.headers['access-control-expose-headers']).toContain('Location');
    });

    test('preflight allows Authorization and Content-Type', async () => {
      const response = await request(testApp.app)
        .options('/orders')
        .set('Origin', ALLOWED)
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'authorization, content-type');

      expect(response.status).toBe(204);
      expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
      expect(response.headers['access-control-allow-methods'].split(',')).toEqual(expect.arrayContaining(['GET', 'POST', 'PATCH', 'DELETE']));
      expect(response.headers['access-control-allow-headers'].split(',')).toEqual(expect.arrayContaining(['Authorization', 'Content-Type']));
      expect(response.headers['access-control-max-age']).toBe('600');
      expect(response.headers['x-request-id']).toBeDefined();
    });

    test('preflight needs no token', async () => {
      // A browser sends the preflight without the Authorization header that the real request will carry.
      const response = await request(testApp.app)
        .options('/orders/00000000-0000-4000-8000-000000000000')
        .set('Origin', ALLOWED)
        .set('Access-Control-Request-Method', 'PATCH');

      expect(response.status).toBe(204);
      expect(response.headers['access-control-allow-origin']).toBe(ALLOWED);
    });

    test('unlisted origin gets no CORS headers', async () => {
      const response = await request(testApp.app).get('/healthz').set('Origin', UNLISTED);

      expect(response.status).toBe(200);
      expectNoCorsHeaders(response);
      expect(response.headers.vary).toMatch(/\bOrigin\b/);
    });

    test('unlisted origin preflight gets no CORS headers', async () => {
      const response = await request(testApp.app)
        .options('/predict')
        .set('Origin', UNLISTED)
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'content-type');

      // The route's own OPTIONS response: it lists the methods but allows no other origin.
      expect(response.status).toBe(204);
      expect(response.headers.allow).toBe('POST, OPTIONS');
      expectNoCorsHeaders(response);
    });

    test('origin that differs only by port is unlisted', async () => {
      const response = await request(testApp.app).get('/healthz').set('Origin', 'http://localhost:5174');

      expectNoCorsHeaders(response);
    });

    test('request without Origin gets no CORS headers', async () => {
      const response = await request(testApp.app).get('/healthz');

      expect(response.status).toBe(200);
      expectNoCorsHeaders(response);
    });
  });

  describe('with the default empty CORS_ORIGINS', () => {
    let testApp: TestApp;

    beforeAll(async () => {
      testApp = await startTestApp();
    });

    afterAll(async () => {
      await testApp.close();
    });

    test('any origin gets no CORS headers', async () => {
      const response = await request(testApp.app).get('/healthz').set('Origin', ALLOWED);

      expect(response.status).toBe(200);
      expectNoCorsHeaders(response);
    });

    test('preflight reaches the route', async () => {
      const response = await request(testApp.app).options('/predict').set('Origin', ALLOWED).set('Access-Control-Request-Method', 'POST');

      expect(response.status).toBe(204);
      expect(response.headers.allow).toBe('POST, OPTIONS');
      expectNoCorsHeaders(response);
    });
  });
});
