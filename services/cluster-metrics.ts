import createError from 'http-errors';
import { AggregatorRegistry } from 'prom-client';
import type { PrimaryMessage, WorkerMessage } from './cluster-messages';
import type { IpcLogTransport } from './ipc-log-transport';
import type { MetricsSnapshot, ServiceMetrics } from './metrics';

// How long the primary waits for every worker's metrics. A worker sends them between two event-loop
// turns, so only a worker that is blocked (a long model call) or stuck comes near this limit.
// NOTE: an estimate. A scrape that reaches it fails with 503 rather than leave a worker's counts out.
const COLLECT_TIMEOUT_MS = 3000;
// The worker waits longer than the primary, so that the primary's error names the worker that did
// not reply. The worker's own timeout only covers a primary that never replies.
const SCRAPE_TIMEOUT_MS = COLLECT_TIMEOUT_MS + 2000;

type MetricsCollect = Extract<PrimaryMessage, { type: 'metrics-collect' }>;
type MetricsResult = Extract<PrimaryMessage, { type: 'metrics-result' }>;
type MetricsSnapshotMessage = Extract<WorkerMessage, { type: 'metrics-snapshot' | 'metrics-snapshot-failed' }>;

interface WaitingScrape {
  resolve(text: string): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

function scrapeFailed(detail: string): Error {
  return createError(503, `the metrics of the cluster could not be collected: ${detail}`, { expose: true, headers: { 'Retry-After': '1' } });
}

/**
 * A cluster worker's side of /metrics. A scrape that reaches this worker goes to the primary, which
 * collects every worker's metrics and adds them up. When the primary collects, this worker sends
 * its own.
 */
export class WorkerMetricsChannel {
  private readonly metrics: ServiceMetrics;
  private readonly ipc: IpcLogTransport;
  private readonly waiting = new Map<number, WaitingScrape>();
  private nextScrapeId = 1;

  constructor(metrics: ServiceMetrics, ipc: IpcLogTransport) {
    this.metrics = metrics;
    this.ipc = ipc;
    metrics.collectFromCluster = () => this.requestClusterMetrics();
  }

  /** Handles the primary's metrics messages. */
  handle(message: MetricsCollect | MetricsResult): void {
    if (message.type === 'metrics-collect') {
      void this.sendSnapshot(message.collectId);
      return;
    }

    const scrape = this.waiting.get(message.scrapeId);
    if (!scrape) return;
    this.waiting.delete(message.scrapeId);
    clearTimeout(scrape.timer);
    if ('text' in message) scrape.resolve(message.text);
    else scrape.reject(scrapeFailed(message.error));
  }

  private requestClusterMetrics(): Promise<string> {
    const scrapeId = this.nextScrapeId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(scrapeId);
        reject(scrapeFailed(`the cluster primary did not answer within ${SCRAPE_TIMEOUT_MS} ms`));
      }, SCRAPE_TIMEOUT_MS);
      this.waiting.set(scrapeId, { resolve, reject, timer });
      this.ipc.send({ type: 'metrics-request', scrapeId });
    });
  }

  private async sendSnapshot(collectId: number): Promise<void> {
    try {
      const snapshot = await this.metrics.snapshot();
      this.ipc.send({ type: 'metrics-snapshot', collectId, snapshot });
    } catch (error) {
      this.ipc.send({ type: 'metrics-snapshot-failed', collectId, error: error instanceof Error ? error.message : String(error) });
    }
  }
}

/** A collection of the workers' metrics for one scrape. */
interface Collection {
  requesterId: number;
  scrapeId: number;
  awaiting: Set<number>;
  snapshots: MetricsSnapshot[];
  timer: NodeJS.Timeout;
}

/**
 * The cluster primary's side of /metrics. For each scrape that a worker passes on, it requests the
 * metrics of every ready worker and adds them up with prom-client's AggregatorRegistry, which sums
 * counters and histograms and lets each metric's `aggregator` decide the rest. Then it sends the
 * text to the worker that got the scrape.
 */
export class MetricsCollector {
  private readonly sendTo: (workerId: number, message: PrimaryMessage) => void;
  private readonly timeoutMs: number;
  private readonly collections = new Map<number, Collection>();
  private nextCollectId = 1;

  constructor(sendTo: (workerId: number, message: PrimaryMessage) => void, timeoutMs = COLLECT_TIMEOUT_MS) {
    this.sendTo = sendTo;
    this.timeoutMs = timeoutMs;
  }

  /** Starts collecting for the scrape `scrapeId` of worker `requesterId` from the workers `workerIds`. */
  collect(requesterId: number, scrapeId: number, workerIds: number[]): void {
    const collectId = this.nextCollectId++;
    const timer = setTimeout(() => this.expire(collectId), this.timeoutMs);
    timer.unref();
    this.collections.set(collectId, { requesterId, scrapeId, awaiting: new Set(workerIds), snapshots: [], timer });
    for (const workerId of workerIds) this.sendTo(workerId, { type: 'metrics-collect', collectId });
    void this.finishIfComplete(collectId);
  }

  /** Takes a worker's reply to a collection. */
  receive(workerId: number, message: MetricsSnapshotMessage): void {
    const collection = this.collections.get(message.collectId);
    if (!collection || !collection.awaiting.delete(workerId)) return;

    if (message.type === 'metrics-snapshot-failed') {
      this.end(message.collectId, { error: `worker ${workerId} could not collect its metrics: ${message.error}` });
      return;
    }
    collection.snapshots.push(restoreNonFiniteValues(message.snapshot));
    void this.finishIfComplete(message.collectId);
  }

  /**
   * Stops waiting for a worker that has exited. Its counts are gone with it, so the scrape adds up
   * the workers that are left, as the next scrape would.
   */
  forgetWorker(workerId: number): void {
    for (const collectId of [...this.collections.keys()]) {
      const collection = this.collections.get(collectId);
      if (collection?.awaiting.delete(workerId)) void this.finishIfComplete(collectId);
    }
  }

  private async finishIfComplete(collectId: number): Promise<void> {
    const collection = this.collections.get(collectId);
    if (!collection || collection.awaiting.size > 0) return;

    let text: string;
    try {
      text = await AggregatorRegistry.aggregate(collection.snapshots).metrics();
    } catch (error) {
      this.end(collectId, { error: `the workers' metrics could not be added up: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
    this.end(collectId, { text });
  }

  private expire(collectId: number): void {
    const collection = this.collections.get(collectId);
    if (!collection) return;
    const missing = [...collection.awaiting];
    const workers = missing.length === 1 ? `worker ${missing[0]} did not send its metrics` : `workers ${missing.join(', ')} did not send their metrics`;
    this.end(collectId, { error: `${workers} within ${this.timeoutMs} ms` });
  }

  private end(collectId: number, outcome: { text: string } | { error: string }): void {
    const collection = this.collections.get(collectId);
    if (!collection) return;
    this.collections.delete(collectId);
    clearTimeout(collection.timer);
    this.sendTo(collection.requesterId, { type: 'metrics-result', scrapeId: collection.scrapeId, ...outcome });
  }
}

/**
 * JSON, the encoding of the IPC channel, turns NaN (a gauge such as the event-loop lag's standard
 * deviation before it has samples) into null. prom-client's values are never null, so every null
 * was NaN.
 */
function restoreNonFiniteValues(snapshot: MetricsSnapshot): MetricsSnapshot {
  for (const metric of snapshot) {
    for (const value of metric.values) {
      if (value.value === null) value.value = NaN;
    }
  }
  return snapshot;
}
