import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { PredictionBatcher } from './batcher';
import type { Db } from './database';
import type { LoadedModel } from './model';
import { TASK_STATUSES, countTasksByStatus } from './task-store';

/** Route label of requests whose path matches no route: unknown paths and the web page's static files. */
export const UNMATCHED_ROUTE = 'unmatched';

// From 1 ms, because POST /predict of one digit takes about 0.5 ms at one connection
// (docs/benchmarks.md), up to 10 s for large synchronous orders on a busy server.
const REQUEST_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// A model call of the digit classifier takes about 0.6 ms for one input and 1.4 ms for 32 on the
// wasm backend (docs/benchmarks.md). Larger models need the upper buckets.
const INFERENCE_SECONDS_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A process's metrics as `Registry.getMetricsAsJSON` returns them, the form that cluster workers send. */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

/** Powers of two up to `maxBatchSize`, and `maxBatchSize` itself, so that full batches have their own bucket. */
export function batchSizeBuckets(maxBatchSize: number): number[] {
  const buckets: number[] = [];
  for (let size = 1; size < maxBatchSize; size *= 2) buckets.push(size);
  buckets.push(maxBatchSize);
  return buckets;
}

/**
 * The Prometheus metrics of one app, in a registry of its own rather than prom-client's global one,
 * so that tests can build many apps in one process. Histograms are observed as requests and model
 * calls end; gauges are read from the batcher, the database and the model when a scrape collects them.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  /**
   * Set in a cluster worker: collects and adds up the metrics of every worker, so that one scrape at
   * any worker covers the whole service.
   */
  collectFromCluster: (() => Promise<string>) | null = null;
  private readonly requestDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly clientErrors: Counter<'status'>;
  private readonly batchSize: Histogram;
  private readonly inferenceDuration: Histogram;

  constructor(options: { db: Db; model: LoadedModel; maxBatchSize: number }) {
    const { db, model, maxBatchSize } = options;
    const registers = [this.registry];

    this.requestDuration = new Histogram({
      name: 'inferline_http_request_duration_seconds',
      help: 'Time from the arrival of a request to the end of its response, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: REQUEST_SECONDS_BUCKETS,
      registers,
    });
    this.clientErrors = new Counter({
      name: 'inferline_http_client_errors_total',
      help: 'Requests that the HTTP server rejected with an error response before they reached the app, by status: 400 unparseable, 408 headers or body not received in time, 431 headers too large.',
      labelNames: ['status'],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'inferline_inference_batch_size',
      help: 'Inputs per model call.',
      buckets: batchSizeBuckets(maxBatchSize),
      registers,
    });
    this.inferenceDuration = new Histogram({
      name: 'inferline_inference_duration_seconds',
      help: 'Duration of model calls, including reading their output.',
      buckets: INFERENCE_SECONDS_BUCKETS,
      registers,
    });

    // Every worker reads the same database, so adding up the workers' values would multiply them.
    new Gauge({
      name: 'inferline_tasks',
      help: 'Background tasks that have not expired, by status.',
      labelNames: ['status'],
      aggregator: 'first',
      registers,
      collect() {
        const counts = countTasksByStatus(db);
        for (const status of TASK_STATUSES) this.set({ status }, counts[status]);
      },
    });

    const { metadata, backend, inferencePath } = model;
    const modelInfo = new Gauge({
      name: 'inferline_model_info',
      help: 'The model being served; the value is always 1.',
      labelNames: ['name', 'version', 'backend', 'inference'],
      aggregator: 'max',
      registers,
    });
    modelInfo.set({ name: metadata.name, version: metadata.version, backend, inference: inferencePath.kind }, 1);

    // NOTE: prom-client 15 cannot stop the GC observer and event-loop monitor that this starts, so
    // they, and this registry, live as long as the process. Only tests build more than one app.
    collectDefaultMetrics({ register: this.registry });
  }

  /** Adds the gauge of inputs waiting for the model; it is summed over cluster workers. */
  watchQueue(batcher: PredictionBatcher): void {
    new Gauge({
      name: 'inferline_queued_inputs',
      help: 'Inputs waiting for a model call, including those of admitted requests still being decoded.',
      registers: [this.registry],
      collect() {
        this.set(batcher.waitingInputs);
      },
    });
  }

  /** Records a finished request. `route` is a template such as `/orders/:id`, never the raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requestDuration.observe({ method, route, status }, seconds);
  }

  /**
   * Records an error response of the HTTP server to a request that never reached the app, so that
   * no access line and no observeRequest covers it.
   */
  observeClientError(status: number): void {
    this.clientErrors.inc({ status });
  }

  /** Records a model call; the batcher calls it for every call, failed ones included. */
  readonly observeModelCall = (batchSize: number, seconds: number): void => {
    this.batchSize.observe(batchSize);
    this.inferenceDuration.observe(seconds);
  };

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Renders the metrics in the Prometheus text format: this process's, or the whole cluster's. */
  render(): Promise<string> {
    return this.collectFromCluster ? this.collectFromCluster() : this.registry.metrics();
  }

  /** Collects this process's metrics for the cluster primary to add up. */
  snapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON();
  }
}
