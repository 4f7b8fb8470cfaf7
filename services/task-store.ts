import crypto from 'node:crypto';
import createError from 'http-errors';
import { backpressureError } from './backpressure';
import type { Db } from './database';

export type TaskStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TASK_STATUSES: readonly TaskStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export type TaskKind = 'order' | 'predict';

export interface Task {
  id: string;
  kind: TaskKind;
  status: TaskStatus;
  progress: { done: number; total: number };
  result: unknown;
  error: { message: string } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A task as the runner needs it: with its owner and the id its items are stored under. */
export interface TaskRecord extends Task {
  userId: string | null;
  orderId: string | null;
  itemOwnerId: string;
}

interface TaskRow {
  id: string;
  kind: TaskKind;
  user_id: string | null;
  order_id: string | null;
  status: TaskStatus;
  done: number;
  total: number;
  result: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  expires_at: string | null;
  claimed_by_pid: number | null;
}

function toRecord(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    kind: row.kind,
    status: row.status,
    progress: { done: row.done, total: row.total },
    result: row.result === null ? null : JSON.parse(row.result),
    error: row.error === null ? null : { message: row.error },
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    userId: row.user_id,
    orderId: row.order_id,
    itemOwnerId: row.order_id ?? row.id,
  };
}

/** Returns the public view of a task. */
export function toTaskView(record: TaskRecord): Task {
  const { userId: _userId, orderId: _orderId, itemOwnerId: _itemOwnerId, ...task } = record;
  return task;
}

// Seconds in the `Retry-After` of a 503 for a full task queue.
// NOTE: an estimate, because how fast the queue drains depends on the size of the queued tasks.
const FULL_QUEUE_RETRY_AFTER_SECONDS = 10;

/**
 * Inserts a queued task; call inside the transaction that stores its items. Throws 503 with
 * `Retry-After` when `maxQueued` tasks (TASK_QUEUE_MAX) are already waiting, so the transaction
 * stores nothing. Running tasks do not count.
 */
export function insertTask(db: Db, fields: { kind: TaskKind; userId: string | null; orderId: string | null; total: number }, maxQueued: number): TaskRecord {
  const { queued } = db.prepare("SELECT COUNT(*) AS queued FROM tasks WHERE status = 'queued'").get() as { queued: number };
  if (queued >= maxQueued) {
    throw backpressureError(
      `the task queue is full: ${queued} tasks are waiting, the maximum TASK_QUEUE_MAX is ${maxQueued}; retry later`,
      FULL_QUEUE_RETRY_AFTER_SECONDS,
    );
  }

  const id = crypto.randomUUID();
  db.prepare(
    "INSERT INTO tasks (id, kind, user_id, order_id, status, total, created_at) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
  ).run(id, fields.kind, fields.userId, fields.orderId, fields.total, new Date().toISOString());
  return getTaskRecord(db, id) as TaskRecord;
}

/** Returns a task by id, or null when it is unknown or expired. */
export function getTaskRecord(db: Db, id: string): TaskRecord | null {
  const row = db.prepare('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
  if (!row) return null;
  if (row.expires_at !== null && row.expires_at <= new Date().toISOString()) return null;
  return toRecord(row);
}

/**
 * Returns a task that the caller may see: tasks created with a token belong to that user alone.
 * Another user's task is 404, not 403, so that ids reveal nothing.
 */
export function getVisibleTask(db: Db, id: string, userId: string | null): TaskRecord {
  const task = getTaskRecord(db, id);
  if (!task || (task.userId !== null && task.userId !== userId)) {
    throw createError(404, `task ${id} not found; finished tasks expire after TASK_TTL_SECONDS`);
  }
  return task;
}

/**
 * Claims the oldest queued task for process `pid` by marking it running. One UPDATE statement
 * selects and marks the task, so two processes sharing the database never claim the same one.
 * Returns null when none is queued.
 */
export function claimNextTask(db: Db, pid: number): TaskRecord | null {
  const row = db
    .prepare(
      `UPDATE tasks SET status = 'running', claimed_by_pid = ?, started_at = COALESCE(started_at, ?)
       WHERE id = (SELECT id FROM tasks WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1)
       RETURNING *`,
    )
    .get(pid, new Date().toISOString()) as TaskRow | undefined;
  return row ? toRecord(row) : null;
}

/** Returns the current status of a task, or null when it was deleted. */
export function readTaskStatus(db: Db, id: string): TaskStatus | null {
  const row = db.prepare('SELECT status FROM tasks WHERE id = ?').get(id) as { status: TaskStatus } | undefined;
  return row?.status ?? null;
}

export function updateProgress(db: Db, id: string, done: number): void {
  // A cancelled task keeps the progress it had when it was cancelled.
  db.prepare("UPDATE tasks SET done = ? WHERE id = ? AND status = 'running'").run(done, id);
}

/** Ends a running task. Does nothing when it was cancelled meanwhile, so a cancel always wins. */
export function finishTask(db: Db, id: string, ttlSeconds: number, outcome: { status: 'succeeded'; result: unknown } | { status: 'failed'; error: string }): boolean {
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
  const change = db
    .prepare(
      `UPDATE tasks SET status = ?, result = ?, error = ?, finished_at = ?, expires_at = ?
       WHERE id = ? AND status = 'running'`,
    )
    .run(
      outcome.status,
      outcome.status === 'succeeded' ? JSON.stringify(outcome.result) : null,
      outcome.status === 'failed' ? outcome.error : null,
      now.toISOString(),
      expiresAt,
      id,
    );
  return change.changes === 1;
}

/**
 * Cancels a queued or running task and its items that are still pending; their stored inputs are
 * dropped. Returns false when the task had already finished. Call it inside a transaction, so that
 * the task and its items change together.
 */
export function cancelTask(db: Db, id: string, ttlSeconds: number): boolean {
  const now = new Date();
  const change = db
    .prepare(
      `UPDATE tasks SET status = 'cancelled', finished_at = ?, expires_at = ?
       WHERE id = ? AND status IN ('queued', 'running')`,
    )
    .run(now.toISOString(), new Date(now.getTime() + ttlSeconds * 1000).toISOString(), id);
  if (change.changes !== 1) return false;

  db.prepare(
    `UPDATE items SET status = 'cancelled', input = NULL
     WHERE owner_id = (SELECT COALESCE(order_id, id) FROM tasks WHERE id = ?) AND status = 'pending'`,
  ).run(id);
  return true;
}

/** Puts a running task back in the queue, for the next start or the next runner. */
export function requeueTask(db: Db, id: string): void {
  db.prepare("UPDATE tasks SET status = 'queued', claimed_by_pid = NULL WHERE id = ? AND status = 'running'").run(id);
}

/**
 * Puts every running task back in the queue. Call it only while no other process runs tasks on
 * the database: at startup, after a stop that left some running, and at the end of a shutdown.
 */
export function requeueRunningTasks(db: Db): number {
  return db.prepare("UPDATE tasks SET status = 'queued', claimed_by_pid = NULL WHERE status = 'running'").run().changes;
}

/** Puts the running tasks claimed by process `pid` back in the queue; returns their ids. */
export function requeueTasksClaimedBy(db: Db, pid: number): string[] {
  const rows = db
    .prepare("UPDATE tasks SET status = 'queued', claimed_by_pid = NULL WHERE status = 'running' AND claimed_by_pid = ? RETURNING id")
    .all(pid) as { id: string }[];
  return rows.map((row) => row.id);
}

/** Returns the running tasks claimed by process `pid`. */
export function listTasksClaimedBy(db: Db, pid: number): TaskRecord[] {
  const rows = db.prepare("SELECT * FROM tasks WHERE status = 'running' AND claimed_by_pid = ?").all(pid) as TaskRow[];
  return rows.map(toRecord);
}

/** Counts tasks that still wait to run or are running. */
export function countUnfinishedTasks(db: Db): number {
  const row = db.prepare("SELECT COUNT(*) AS count FROM tasks WHERE status IN ('queued', 'running')").get() as { count: number };
  return row.count;
}

/**
 * Counts the tasks that GET /tasks/:id can still return, by status, with one query. Expired tasks
 * are left out even before deleteExpiredTasks removes them. Statuses without tasks count 0.
 */
export function countTasksByStatus(db: Db): Record<TaskStatus, number> {
  const rows = db
    .prepare('SELECT status, COUNT(*) AS count FROM tasks WHERE expires_at IS NULL OR expires_at > ? GROUP BY status')
    .all(new Date().toISOString()) as { status: TaskStatus; count: number }[];
  const counts = Object.fromEntries(TASK_STATUSES.map((status) => [status, 0])) as Record<TaskStatus, number>;
  for (const row of rows) counts[row.status] = row.count;
  return counts;
}

/** Deletes expired tasks and the items of expired prediction tasks; an order keeps its items. */
export function deleteExpiredTasks(db: Db): number {
  const now = new Date().toISOString();
  return db.transaction(() => {
    db.prepare("DELETE FROM items WHERE owner_id IN (SELECT id FROM tasks WHERE kind = 'predict' AND expires_at <= ?)").run(now);
    db.prepare('UPDATE orders SET task_id = NULL WHERE task_id IN (SELECT id FROM tasks WHERE expires_at <= ?)').run(now);
    return db.prepare('DELETE FROM tasks WHERE expires_at <= ?').run(now).changes;
  })();
}
