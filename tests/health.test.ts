import request from 'supertest';
import { TestApp, expectProblem, startTestApp } from './helpers/app';

describe('health and model info', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('healthz returns 200 while the process runs', async () => {
    const response = await request(testApp.app).get('/healthz');

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok' });
  });

  test('readyz returns 200 when model and database are ready', async () => {
    const response = await request(testApp.app).get('/readyz');

    expect(response.status).toBe(200);
    expect(response.body.status).toBe('ready');
  });

  test('readyz returns 503 once shutdown begins', async () => {
    testApp.services.lifecycle.shuttingDown = true;
    try {
      const response = await request(testApp.app).get('/readyz');

      expect(response.status).toBe(503);
      expect(response.body.checks.shutdown).toBe('in progress');
      expect(response.headers.connection).toBe('close');
    } finally {
      testApp.services.lifecycle.shuttingDown = false;
    }
  });

  test('readyz returns 503 when the database is closed', async () => {
    testApp.services.lifecycle.databaseOpen = false;
    try {
      const response = await request(testApp.app).get('/readyz');

      expect(response.status).toBe(503);
      expect(response.body.checks.database).toBe('closed');
    } finally {
      testApp.services.lifecycle.databaseOpen = true;
    }
  });

  test('model info names the served model', async () => {
    const response = await request(testApp.app).get('/model');

    expect(response.status).toBe(200);
    expect(response.body.name).toBe('digits');
    expect(response.body.backend).toBe('wasm');
    expect(response.body.inference).toEqual({ kind: 'fused', detail: 'conv2d 5x5/2 relu -> conv2d 3x3/2 relu -> flatten -> dense 128 relu -> dense 10 -> softmax' });
    expect(response.body.inputShape).toEqual([null, 28, 28, 1]);
    expect(response.body.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  test('POST on healthz is 405 with Allow', async () => {
    const response = await request(testApp.app).post('/healthz');

    expectProblem(response, 405);
    expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
  });
});
