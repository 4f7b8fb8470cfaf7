/**
 * Load generation with autocannon, in this process. Latency percentiles are computed here from
 * every response time that autocannon reports, because its own histogram keeps whole milliseconds
 * only, which is too coarse at one connection.
 */
import autocannon from 'autocannon';

export interface LoadFigures {
  connections: number;
  instancesPerRequest: number;
  seconds: number;
  /** 2xx responses a second. */
  requestsPerSecond: number;
  /** Classified instances a second: requestsPerSecond × instancesPerRequest. */
  samplesPerSecond: number;
  /** Latency percentiles of the 2xx responses, in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  responses: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  timeouts: number;
  /** Responses by HTTP status code. */
  statusCounts: Record<string, number>;
  /** CPU time of the load generator (this process) over the run, as a percentage of one core. */
  loadGeneratorCpuPercent: number;
}

export interface LoadRequest {
  /** A JSON body, sent with Content-Type application/json. */
  body: string;
}

export interface LoadOptions {
  url: string;
  /** Requests sent in turn by each connection. */
  requests: LoadRequest[];
  connections: number;
  instancesPerRequest: number;
  /** Run for this many seconds, unless `amount` is set. */
  seconds?: number;
  /** Send exactly this many requests. */
  amount?: number;
}

// Autocannon's default is 10 s; a response slower than this counts as a timeout error.
const TIMEOUT_SECONDS = 30;

/** Returns the value below which `share` (0..1) of the sorted values lie, by the nearest-rank method. */
export function percentile(sorted: number[], share: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(share * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(rank, 1)) - 1];
}

/** Runs one load and returns its figures. */
export function runLoad(options: LoadOptions): Promise<LoadFigures> {
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const startedAt = process.hrtime.bigint();

  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: options.requests.map((request) => ({ method: 'POST', body: request.body })),
        connections: options.connections,
        pipelining: 1,
        timeout: TIMEOUT_SECONDS,
        ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 1 }),
      },
      (error: unknown, result: autocannon.Result) => {
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        const wallSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
        const cpu = process.cpuUsage(cpuBefore);
        latencies.sort((a, b) => a - b);
        const ok = result['2xx'];
        resolve({
          connections: options.connections,
          instancesPerRequest: options.instancesPerRequest,
          seconds: result.duration,
          requestsPerSecond: ok / result.duration,
          samplesPerSecond: (ok * options.instancesPerRequest) / result.duration,
          p50Ms: percentile(latencies, 0.5),
          p99Ms: percentile(latencies, 0.99),
          responses: ok + result.non2xx,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCounts: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, stats.count ?? 0])),
          loadGeneratorCpuPercent: ((cpu.user + cpu.system) / 1e6 / wallSeconds) * 100,
        });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}
