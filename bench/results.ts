/** The shape of bench/results.json, and lookups into it. */
import type { LoadFigures } from './load';
import type { MemoryReading } from './memory-server';
import type { ModelOnlyFigure } from './model-only';
import type { Agreement } from './peer';

export type ServerId = 'bare' | 'peer' | 'peer-async' | 'w1-on' | 'w1-off' | 'w2-on' | 'w2-off';

/** A server configuration that the benchmark starts in every round. */
export interface ServerSpec {
  id: ServerId;
  label: string;
  kind: 'bare' | 'peer' | 'inferline';
  /** Value of WORKERS passed to the service; 1 for the bare app and the peer. */
  workers: number;
  /** Variables set for the service on top of the common ones. */
  env: Record<string, string>;
  /** Path that the load is sent to. */
  route: string;
  /** Connection counts of the 1-instance points. */
  connections: number[];
  /** Connection counts of the 32-instance points; empty for none. */
  multiInstanceConnections: number[];
}

/** One start of one server in one round. */
export interface ServerRun {
  round: number;
  server: ServerId;
  cpus: string;
  sharesLoadGeneratorCore: boolean;
  /** Processes below the started one once it served (cluster workers), or null without /proc. */
  childProcesses: number | null;
  /** RSS of the server and its child processes after its last load point. */
  rssAfterBytes: number | null;
  error: string | null;
}

/** One measured load point. */
export interface PointResult {
  round: number;
  server: ServerId;
  instancesPerRequest: number;
  connections: number;
  figures: LoadFigures | null;
  error: string | null;
}

export interface ModelOnlyRun {
  round: number;
  backend: string | null;
  figures: ModelOnlyFigure[];
  error: string | null;
}

/** The memory run: readings of the app process before, during and after its requests. */
export interface MemoryRun {
  server: ServerId;
  connections: number;
  warmupRequests: number;
  requests: number;
  /** Share of the requests that carry an invalid instance and expect 400. */
  invalidShare: number;
  afterWarmup: MemoryReading | null;
  /** After the first quarter of `requests` (5,000 of 20,000). */
  atQuarter: MemoryReading | null;
  atEnd: MemoryReading | null;
  statusCounts: Record<string, number>;
  errors: number;
  error: string | null;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  os: string;
  node: string;
  backend: string | null;
  model: { name: string; version: string } | null;
  autocannon: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
}

export interface PeerInfo {
  dir: string;
  available: boolean;
  reason: string | null;
  versions: Record<string, string> | null;
  agreement: Agreement | null;
}

export interface TargetResult {
  id: string;
  description: string;
  /** Human-readable rule, e.g. ">= 3x". */
  rule: string;
  unit: 'times' | 'percent' | 'tensors';
  /** One value per round, or a single value for the memory targets; null when not measured. */
  values: { round: number | null; value: number | null }[];
  status: 'PASS' | 'FAIL' | 'NOT MEASURED';
  note: string | null;
}

export interface BenchResults {
  date: string;
  command: string;
  options: Record<string, unknown>;
  machine: MachineInfo;
  pinning: { enabled: boolean; reason: string; loadGeneratorCpus: string };
  servers: ServerSpec[];
  peer: PeerInfo;
  modelOnly: ModelOnlyRun[];
  serverRuns: ServerRun[];
  points: PointResult[];
  memory: MemoryRun | null;
  targets: TargetResult[];
  durationSeconds: number;
}

/** Returns the figures of one point, or null when it was not measured. */
export function findFigures(
  results: Pick<BenchResults, 'points'>,
  round: number,
  server: ServerId,
  instancesPerRequest: number,
  connections: number,
): LoadFigures | null {
  const point = results.points.find(
    (candidate) =>
      candidate.round === round &&
      candidate.server === server &&
      candidate.instancesPerRequest === instancesPerRequest &&
      candidate.connections === connections,
  );
  return point?.figures ?? null;
}

/** Returns the best samples/s of the model-only measurement of a round, with its batch size. */
export function bestModelOnly(results: Pick<BenchResults, 'modelOnly'>, round: number): ModelOnlyFigure | null {
  const figures = results.modelOnly.find((run) => run.round === round)?.figures ?? [];
  return figures.reduce<ModelOnlyFigure | null>((best, figure) => (best && best.samplesPerSecond >= figure.samplesPerSecond ? best : figure), null);
}

/**
 * Returns the peer's requests/s at 1 instance per request: the better of its two routes, since
 * /predict (a thread-pool handler) and /predict_async (an event-loop handler) lead on different machines.
 */
export function peerRequestsPerSecond(results: Pick<BenchResults, 'points'>, round: number, connections: number): number | null {
  const values = (['peer', 'peer-async'] as const)
    .map((server) => findFigures(results, round, server, 1, connections)?.requestsPerSecond)
    .filter((value): value is number => value !== undefined);
  return values.length > 0 ? Math.max(...values) : null;
}
