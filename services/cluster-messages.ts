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

/** Messages a cluster worker sends to the primary over the IPC channel. */
export type WorkerMessage =
  | { type: 'log'; level: string; line: string }
  | { type: 'ready'; details: WorkerReadyDetails }
  | { type: 'startup-failed'; message: string; error: string; stack?: string }
  | { type: 'task-queued' }
  | { type: 'stopped'; summary: WorkerSummary };

/** Messages the primary sends to a worker: look for queued tasks now. */
export type PrimaryMessage = { type: 'wake-runner' };

const WORKER_MESSAGE_TYPES = new Set<string>(['log', 'ready', 'startup-failed', 'task-queued', 'stopped']);

/** True when `value` is a WorkerMessage; the IPC channel carries whatever a process sends. */
export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && WORKER_MESSAGE_TYPES.has((value as { type?: unknown }).type as string);
}

/** True when `value` is a PrimaryMessage. */
export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'wake-runner';
}
