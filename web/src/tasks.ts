import { Schema, callApi } from './api.js';

/** A background task, as GET /tasks/{id} returns it. */
export type Task = Schema<'Task'>;

export type TaskStatus = Task['status'];

// Often enough for a progress bar to move smoothly, and at most 4 requests a second per open page.
const POLL_INTERVAL_MS = 250;

/** True once a task can no longer change. */
export function isFinished(task: Task): boolean {
  return task.status === 'succeeded' || task.status === 'failed' || task.status === 'cancelled';
}

/**
 * Reads the task at `url` (the `Location` of a 202 response) until it finishes, and hands every
 * reading to `onProgress`. Resolves with the finished task. Rejects with the AbortError when
 * `signal` fires, and with the ApiError of a failed read.
 */
export async function followTask(url: string, token: string, onProgress: (task: Task) => void, signal: AbortSignal): Promise<Task> {
  for (;;) {
    const { body: task } = await callApi<Task>('GET', url, { token, signal });
    onProgress(task);
    if (isFinished(task)) return task;
    await wait(POLL_INTERVAL_MS, signal);
  }
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
