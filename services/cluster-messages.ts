import type { MetricsSnapshot } from './metrics';

/** Details that a worker reports once it listens; the primary logs them in its 'server started' line. */
export interface WorkerReadyDetails {
  backend: string;
  model: string;
  modelVersion: string;
  inputShape: (number | null)[];
  address: string;
}

/** A worker's counts at the end of its shutdown; the primary adds them up for its summary. */
export interface WorkerSummary {
  /** True when the worker's shutdown timed out. */
  forced: boolean;
  requestsServed: number;
  tasksSucceeded: number;
  tasksFailed: number;
  tasksCancelled: number;
}

/**
 * Messages a cluster worker sends to the primary over the IPC channel. A worker that gets a scrape
 * of /metrics sends 'metrics-request'. Every worker replies to the primary's 'metrics-collect' with
 * 'metrics-snapshot', or with 'metrics-snapshot-failed' when its metrics cannot be collected.
 */
export type WorkerMessage =
  | { type: 'log'; level: string; line: string }
  | { type: 'ready'; details: WorkerReadyDetails }
  | { type: 'startup-failed'; message: string; error: string; stack?: string }
  | { type: 'task-queued' }
  | { type: 'stopped'; summary: WorkerSummary }
  | { type: 'metrics-request'; scrapeId: number }
  | { type: 'metrics-snapshot'; collectId: number; snapshot: MetricsSnapshot }
  | { type: 'metrics-snapshot-failed'; collectId: number; error: string };

/**
 * Messages the primary sends to a worker. 'wake-runner' means: look for queued tasks now.
 * 'metrics-collect' requests the worker's metrics, and 'metrics-result' carries the whole cluster's
 * metrics, or why they could not be collected, for the scrape that the worker passed on.
 */
export type PrimaryMessage =
  | { type: 'wake-runner' }
  | { type: 'metrics-collect'; collectId: number }
  | { type: 'metrics-result'; scrapeId: number; text: string }
  | { type: 'metrics-result'; scrapeId: number; error: string };

const WORKER_MESSAGE_TYPES = new Set<string>([
  'log',
  'ready',
  'startup-failed',
  'task-queued',
  'stopped',
  'metrics-request',
  'metrics-snapshot',
  'metrics-snapshot-failed',
]);
const PRIMARY_MESSAGE_TYPES = new Set<string>(['wake-runner', 'metrics-collect', 'metrics-result']);

/** True when `value` is a WorkerMessage; the IPC channel carries whatever a process sends. */
export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && WORKER_MESSAGE_TYPES.has((value as { type?: unknown }).type as string);
}

/** True when `value` is a PrimaryMessage. */
export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return typeof value === 'object' && value !== null && PRIMARY_MESSAGE_TYPES.has((value as { type?: unknown }).type as string);
}
