import { Gauge } from 'prom-client';
import request from 'supertest';
import { createApp } from '../app';
import type { PrimaryMessage, WorkerMessage } from '../services/cluster-messages';
import { MetricsCollector, WorkerMetricsChannel } from '../services/cluster-metrics';
import type { IpcLogTransport } from '../services/ipc-log-transport';
import type { ServiceMetrics } from '../services/metrics';
import { buildServices } from '../services/app-services';
import { Lifecycle } from '../services/lifecycle';
import { TestApp, expectProblem, startTestApp, waitForTask } from './helpers/app';
import { digitToRows, heldOutDigits } from './helpers/images';
import { findSamples, parseMetrics, sampleValue } from './helpers/metrics';

type MetricsResult = Extract<PrimaryMessage, { type: 'metrics-result' }>;

/**
 * Stands in for the IPC channel between the primary and the workers, in one process: a collect
 * message makes the worker's metrics send a snapshot, through JSON as the channel encodes it, and
 * the result for the scrape is kept. Workers listed in `silent` never reply.
 */
function connectCollector(workers: Map<number, ServiceMetrics>, silent: Set<number> = new Set(), timeoutMs?: number) {
  const results: MetricsResult[] = [];
  const collector: MetricsCollector = new MetricsCollector((workerId, message) => {
    if (message.type === 'metrics-result') {
      results.push(message);
      return;
    }
    if (message.type !== 'metrics-collect' || silent.has(workerId)) return;
    void workers
      .get(workerId)
      ?.snapshot()
      .then((snapshot) => collector.receive(workerId, JSON.parse(JSON.stringify({ type: 'metrics-snapshot', collectId: message.collectId, snapshot }))));
  }, timeoutMs);
  return { collector, results };
}

async function waitForResult(results: MetricsResult[]): Promise<MetricsResult> {
  for (let attempt = 0; attempt < 200 && results.length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (results.length === 0) throw new Error('the collector sent no result within 2 s');
  return results[0];
}

describe('MetricsCollector', () => {
  let first: TestApp;
  // A second app on the first one's database, as cluster workers share one.
  let second: ReturnType<typeof createApp>;
  let workers: Map<number, ServiceMetrics>;

  beforeEach(async () => {
    first = await startTestApp();
    const { config, logger, db, model } = first.services;
    const lifecycle = new Lifecycle();
    lifecycle.modelLoaded = true;
    lifecycle.databaseOpen = true;
    const secondServices = buildServices({ config, logger, db, model, lifecycle });
    second = createApp(secondServices);
    workers = new Map([
      [1, first.services.metrics],
      [2, secondServices.metrics],
    ]);
  });

  afterEach(async () => {
    await first.close();
  });

  test('sums requests and keeps shared gauges single', async () => {
    for (let i = 0; i < 2; i++) await request(first.app).get('/healthz').expect(200);
    for (let i = 0; i < 3; i++) await request(second).get('/healthz').expect(200);
    const task = await request(first.app)
      .post('/predict')
      .set('Prefer', 'respond-async')
      .send({ instances: [{ pixels: digitToRows(heldOutDigits()[0]) }] })
      .expect(202);
    await waitForTask(first.app, task.body.id);
    const { collector, results } = connectCollector(workers);

    collector.collect(2, 7, [1, 2]);
    const result = await waitForResult(results);

    expect(result.scrapeId).toBe(7);
    expect('text' in result).toBe(true);
    const samples = parseMetrics('text' in result ? result.text : '');
    expect(sampleValue(samples, 'inferline_http_request_duration_seconds_count', { method: 'GET', route: '/healthz', status: '200' })).toBe(5);
    expect(sampleValue(samples, 'inferline_tasks', { status: 'succeeded' })).toBe(1);
    expect(findSamples(samples, 'inferline_model_info').map((sample) => sample.value)).toEqual([1]);
    expect(sampleValue(samples, 'inferline_inference_batch_size_sum')).toBe(1);
    expect(findSamples(samples, 'nodejs_version_info')).toHaveLength(1);
  });

  test('NaN survives the JSON round trip', async () => {
    // The event-loop lag's mean is NaN until it has samples; a gauge of its own makes the case certain.
    for (const [workerId, metrics] of workers) {
      const gauge = new Gauge({ name: 'test_not_a_number', help: 'NaN in every worker', labelNames: ['worker'], registers: [metrics.registry] });
      gauge.set({ worker: workerId }, NaN);
    }
    const { collector, results } = connectCollector(workers);

    collector.collect(1, 1, [1, 2]);
    const result = await waitForResult(results);

    const text = 'text' in result ? result.text : '';
    expect(text).not.toMatch(/ null$/m);
    expect(findSamples(parseMetrics(text), 'test_not_a_number').map((sample) => sample.value)).toEqual([NaN, NaN]);
  });

  test('silent worker fails the scrape', async () => {
    const { collector, results } = connectCollector(workers, new Set([2]), 50);

    collector.collect(1, 3, [1, 2]);
    const result = await waitForResult(results);

    expect(result).toEqual({ type: 'metrics-result', scrapeId: 3, error: 'worker 2 did not send its metrics within 50 ms' });
  });

  test('worker that exits is left out', async () => {
    await request(first.app).get('/healthz').expect(200);
    const { collector, results } = connectCollector(workers, new Set([2]));

    collector.collect(1, 4, [1, 2]);
    collector.forgetWorker(2);
    const result = await waitForResult(results);

    const samples = parseMetrics('text' in result ? result.text : '');
    expect(sampleValue(samples, 'inferline_http_request_duration_seconds_count', { route: '/healthz' })).toBe(1);
  });

  test('no workers gives an empty text', async () => {
    const { collector, results } = connectCollector(workers);

    collector.collect(1, 5, []);
    const result = await waitForResult(results);

    expect(result.scrapeId).toBe(5);
    expect('text' in result ? parseMetrics(result.text) : null).toEqual([]);
  });
});

describe('GET /metrics of a cluster worker', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('silent worker is 503', async () => {
    // The test app is worker 1 of a cluster whose worker 2 never replies, as a stopped worker does.
    // The channel and the collector are the real ones; only the IPC channel between them is replaced.
    const collector = new MetricsCollector((workerId, message) => {
      if (workerId === 1) channel.handle(message as Parameters<WorkerMetricsChannel['handle']>[0]);
    }, 50);
    const ipc = {
      send(message: WorkerMessage) {
        if (message.type === 'metrics-request') collector.collect(1, message.scrapeId, [1, 2]);
        if (message.type === 'metrics-snapshot') collector.receive(1, message);
      },
    };
    const channel = new WorkerMetricsChannel(testApp.services.metrics, ipc as unknown as IpcLogTransport);

    const response = await request(testApp.app).get('/metrics');

    expectProblem(response, 503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.body.detail).toBe('the metrics of the cluster could not be collected: worker 2 did not send its metrics within 50 ms');
  });
});
