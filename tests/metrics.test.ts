import crypto from 'node:crypto';
import request from 'supertest';
import { batchSizeBuckets } from '../services/metrics';
import { TestApp, expectProblem, readLogLines, signUp, startTestApp, waitForTask } from './helpers/app';
import { digitToRows, heldOutDigits } from './helpers/images';
import { MetricSample, findSamples, parseMetrics, sampleValue } from './helpers/metrics';

const REQUESTS = 'inferline_http_request_duration_seconds';

async function scrape(testApp: TestApp): Promise<MetricSample[]> {
  const response = await request(testApp.app).get('/metrics').expect(200);
  return parseMetrics(response.text);
}

function pixelInstances(count: number): { pixels: number[][] }[] {
  return heldOutDigits()
    .slice(0, count)
    .map((sample) => ({ pixels: digitToRows(sample) }));
}

describe('GET /metrics', () => {
  let testApp: TestApp;

  beforeEach(async () => {
    testApp = await startTestApp();
  });

  afterEach(async () => {
    await testApp.close();
  });

  test('returns the Prometheus text format', async () => {
    const response = await request(testApp.app).get('/metrics');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    for (const name of [REQUESTS, 'inferline_inference_batch_size', 'inferline_inference_duration_seconds']) {
      expect(response.text).toContain(`# TYPE ${name} histogram`);
    }
    for (const name of ['inferline_queued_inputs', 'inferline_tasks', 'inferline_model_info']) {
      expect(response.text).toContain(`# TYPE ${name} gauge`);
    }
    expect(() => parseMetrics(response.text)).not.toThrow();
  });

  test('includes the default process metrics', async () => {
    const samples = await scrape(testApp);

    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(findSamples(samples, name)).toHaveLength(1);
    }
  });

  test('POST is 405', async () => {
    const response = await request(testApp.app).post('/metrics').send({});

    expectProblem(response, 405);
    expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
  });

  test('request histogram labels route templates, not paths', async () => {
    const user = await signUp(testApp.app, 'metrics-routes');
    const unknownOrderId = crypto.randomUUID();
    await request(testApp.app).get('/healthz').expect(200);
    await request(testApp.app).get('/healthz').expect(200);
    await request(testApp.app).get('/model').expect(200);
    await request(testApp.app).get(`/orders/${unknownOrderId}`).set('Authorization', user.auth).expect(404);
    await request(testApp.app).get(`/orders/${unknownOrderId}/bill`).set('Authorization', user.auth).expect(404);
    await request(testApp.app).get('/tasks/not-a-uuid').expect(400);
    await request(testApp.app).delete('/healthz').expect(405);
    await request(testApp.app).get(`/no-such-path/${unknownOrderId}`).expect(404);
    // Rejected before their routes run: by the orders router's token check, and by the JSON parser.
    await request(testApp.app).get(`/orders/${unknownOrderId}`).expect(401);
    await request(testApp.app).post('/users').set('Content-Type', 'application/json').send('{"username":').expect(400);

    const samples = await scrape(testApp);

    const expected: [string, string, string, number][] = [
      ['POST', '/users', '201', 1],
      ['GET', '/healthz', '200', 2],
      ['GET', '/model', '200', 1],
      ['GET', '/orders/:id', '404', 1],
      ['GET', '/orders/:id/bill', '404', 1],
      ['GET', '/tasks/:id', '400', 1],
      ['DELETE', '/healthz', '405', 1],
      ['GET', 'unmatched', '404', 1],
      ['GET', '/orders/:id', '401', 1],
      ['POST', '/users', '400', 1],
    ];
    for (const [method, route, status, count] of expected) {
      expect({ method, route, status, count: sampleValue(samples, `${REQUESTS}_count`, { method, route, status }) }).toEqual({ method, route, status, count });
    }
    const routes = new Set(findSamples(samples, `${REQUESTS}_count`).map((sample) => sample.labels.route));
    expect([...routes].filter((route) => route.includes(unknownOrderId))).toEqual([]);
    expect(findSamples(samples, `${REQUESTS}_count`)).toHaveLength(expected.length);
  });

  test('access line carries the same route', async () => {
    const user = await signUp(testApp.app, 'metrics-access-line');
    const orderId = crypto.randomUUID();
    await request(testApp.app).get(`/orders/${orderId}`).set('Authorization', user.auth).set('X-Request-Id', 'access-line-route').expect(404);
    await request(testApp.app).get('/no-such-path').set('X-Request-Id', 'access-line-unmatched').expect(404);
    await request(testApp.app).get(`/orders/${orderId}/bill`).set('X-Request-Id', 'access-line-no-token').expect(401);

    const lines = await readLogLines(testApp);

    const routeOf = (requestId: string) => lines.find((line) => line.message === 'request completed' && line.requestId === requestId)?.route;
    expect(routeOf('access-line-route')).toBe('/orders/:id');
    expect(routeOf('access-line-unmatched')).toBe('unmatched');
    expect(routeOf('access-line-no-token')).toBe('/orders/:id/bill');
  });

  test('request histogram buckets add up to the count', async () => {
    for (let i = 0; i < 3; i++) await request(testApp.app).get('/healthz').expect(200);

    const samples = await scrape(testApp);

    const labels = { method: 'GET', route: '/healthz', status: '200' };
    const buckets = findSamples(samples, `${REQUESTS}_bucket`, labels);
    const counts = buckets.map((sample) => sample.value);
    expect(buckets[buckets.length - 1].labels.le).toBe('+Inf');
    expect(counts[counts.length - 1]).toBe(3);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(sampleValue(samples, `${REQUESTS}_sum`, labels)).toBeGreaterThan(0);
  });

  test('inference histograms match the batcher', async () => {
    await request(testApp.app).post('/predict').send({ instances: pixelInstances(5) }).expect(200);
    await request(testApp.app).post('/predict').send({ instances: pixelInstances(1) }).expect(200);

    const samples = await scrape(testApp);

    const { stats } = testApp.services.batcher;
    expect(stats.modelCalls).toBeGreaterThanOrEqual(2);
    expect(sampleValue(samples, 'inferline_inference_batch_size_count')).toBe(stats.modelCalls);
    expect(sampleValue(samples, 'inferline_inference_batch_size_sum')).toBe(6);
    expect(sampleValue(samples, 'inferline_inference_duration_seconds_count')).toBe(stats.modelCalls);
    expect(sampleValue(samples, 'inferline_inference_duration_seconds_sum')).toBeCloseTo(stats.modelMs / 1000, 6);
    expect(findSamples(samples, 'inferline_inference_batch_size_bucket').map((sample) => sample.labels.le)).toEqual([
      ...batchSizeBuckets(32).map(String),
      '+Inf',
    ]);
  });

  test('tasks gauge counts tasks by status', async () => {
    const response = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances: pixelInstances(2) }).expect(202);
    await waitForTask(testApp.app, response.body.id);

    const samples = await scrape(testApp);

    const byStatus = Object.fromEntries(findSamples(samples, 'inferline_tasks').map((sample) => [sample.labels.status, sample.value]));
    expect(byStatus).toEqual({ queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 0 });
  });

  test('queued inputs gauge is 0 when idle', async () => {
    await request(testApp.app).post('/predict').send({ instances: pixelInstances(3) }).expect(200);

    const samples = await scrape(testApp);

    expect(sampleValue(samples, 'inferline_queued_inputs')).toBe(0);
  });

  test('model info gauge names the model', async () => {
    const samples = await scrape(testApp);

    const { model } = testApp.services;
    expect(findSamples(samples, 'inferline_model_info')).toEqual([
      {
        name: 'inferline_model_info',
        labels: { name: model.metadata.name, version: model.metadata.version, backend: 'wasm', inference: model.inferencePath.kind },
        value: 1,
      },
    ]);
  });

  test('each app has its own registry', async () => {
    const other = await startTestApp();
    try {
      await request(other.app).get('/healthz').expect(200);

      const samples = await scrape(testApp);

      expect(sampleValue(samples, `${REQUESTS}_count`, { route: '/healthz' })).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});

describe('batchSizeBuckets', () => {
  test.each<[number, number[]]>([
    [1, [1]],
    [2, [1, 2]],
    [32, [1, 2, 4, 8, 16, 32]],
    [48, [1, 2, 4, 8, 16, 32, 48]],
  ])('MAX_BATCH_SIZE %p gives %p', (maxBatchSize, expected) => {
    expect(batchSizeBuckets(maxBatchSize)).toEqual(expected);
  });
});
