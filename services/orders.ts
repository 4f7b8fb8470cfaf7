import crypto from 'node:crypto';
import createError from 'http-errors';
import type { PredictionBatcher } from './batcher';
import type { Db } from './database';
import { ItemInput, StoredItem, checkItems, classifyItems, countItems, insertClassifiedItems, insertPendingItems, listItems } from './items';
import type { LoadedModel } from './model';
import type { ImageLimits } from './model-input';
import { cancelTask, insertTask } from './task-store';
import { type Page, writeForUser } from './users';

export type OrderStatus = 'pending' | 'completed' | 'failed' | 'cancelled';

/** Money in integer minor units of `currency` (cents for USD). */
export interface Bill {
  items: number;
  unitPrice: number;
  total: number;
  currency: string;
}

export interface Order {
  id: string;
  status: OrderStatus;
  items: StoredItem[];
  bill: Bill;
  note: string | null;
  taskId: string | null;
  createdAt: string;
  updatedAt: string;
}

export type OrderSummary = Omit<Order, 'items'> & { itemCount: number };

export interface OrderSettings {
  unitPrice: number;
  currency: string;
  syncMaxItems: number;
  limits: ImageLimits;
  /** Queued tasks above which an order that needs a task is rejected with 503 (TASK_QUEUE_MAX). */
  taskQueueMax: number;
}

/** Result of createOrder: a completed order (201), or a queued task (202). */
export type CreateOrderResult =
  | { status: 201; location: string; body: Order }
  | { status: 202; location: string; body: { id: string; status: 'queued'; orderId: string } };

interface OrderRow {
  id: string;
  user_id: string;
  status: OrderStatus;
  note: string | null;
  unit_price: number;
  currency: string;
  task_id: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Places an order. Small orders are classified during the request. Orders of more than
 * SYNC_MAX_ITEMS items, or sent with `Prefer: respond-async`, become a task that the runner
 * classifies in the background. A synchronous order is rejected with 503, and nothing is stored,
 * when the prediction queue is full, and an order for the background when the task queue is. An
 * order whose user has been deleted since its token was checked is 401.
 */
export async function createOrder(
  db: Db,
  model: LoadedModel,
  batcher: PredictionBatcher,
  settings: OrderSettings,
  request: { userId: string; items: ItemInput[]; note: string | null; preferAsync: boolean },
): Promise<CreateOrderResult> {
  const now = new Date().toISOString();
  const id = crypto.randomUUID();
  const insertOrder = db.prepare(
    'INSERT INTO orders (id, user_id, status, note, unit_price, currency, task_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );

  if (request.preferAsync || request.items.length > settings.syncMaxItems) {
    // Items are checked before the transaction, so the write lock, which blocks the writes of
    // every other process on the database, is held only for the inserts.
    const checked = checkItems(request.items, model, settings.limits);
    const task = writeForUser(db, request.userId, () => {
      insertOrder.run(id, request.userId, 'pending', request.note, settings.unitPrice, settings.currency, null, now, now);
      insertPendingItems(db, id, checked);
      const queued = insertTask(db, { kind: 'order', userId: request.userId, orderId: id, total: checked.length }, settings.taskQueueMax);
      db.prepare('UPDATE orders SET task_id = ? WHERE id = ?').run(queued.id, id);
      return queued;
    });
    return { status: 202, location: `/tasks/${task.id}`, body: { id: task.id, status: 'queued', orderId: id } };
  }

  // The account can be deleted while the items are classified, which writeForUser reports as 401.
  const predictions = await classifyItems(request.items, model, batcher, settings.limits);
  writeForUser(db, request.userId, () => {
    insertOrder.run(id, request.userId, 'completed', request.note, settings.unitPrice, settings.currency, null, now, now);
    insertClassifiedItems(db, id, predictions, model);
  });
  return { status: 201, location: `/orders/${id}`, body: getOrder(db, request.userId, id) };
}

/** Returns one of the user's orders. Another user's order is 404, never 403, so ids reveal nothing. */
export function getOrder(db: Db, userId: string, id: string): Order {
  const row = findOrderRow(db, userId, id);
  return { ...toSummaryFields(db, row), items: listItems(db, row.id) };
}

/** Returns the bill of one of the user's orders. */
export function getBill(db: Db, userId: string, id: string): Bill {
  return computeBill(db, findOrderRow(db, userId, id));
}

/** Returns a page of the user's orders, newest first, without their items. */
export function listOrders(db: Db, userId: string, limit: number, offset: number): Page<OrderSummary> {
  const rows = db
    .prepare('SELECT * FROM orders WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?')
    .all(userId, limit, offset) as OrderRow[];
  const { total } = db.prepare('SELECT COUNT(*) AS total FROM orders WHERE user_id = ?').get(userId) as { total: number };
  return {
    items: rows.map((row) => {
      const counts = countItems(db, row.id);
      return { ...toSummaryFields(db, row), itemCount: counts.pending + counts.classified + counts.failed };
    }),
    total,
    limit,
    offset,
  };
}

/**
 * Changes an order's note, or cancels it (which cancels its task). Only a pending order can be
 * cancelled; cancelling any other is 409.
 */
export function updateOrder(
  db: Db,
  userId: string,
  id: string,
  changes: { note?: string | null; status?: 'cancelled' },
  taskTtlSeconds: number,
): Order {
  // IMMEDIATE: the transaction reads before it writes (see runOnce in idempotency.ts).
  const change = db.transaction(() => {
    const row = findOrderRow(db, userId, id);
    const now = new Date().toISOString();

    if (changes.status === 'cancelled') {
      if (row.status !== 'pending') {
        throw createError(409, `order ${id} is ${row.status}; only a pending order can be cancelled`);
      }
      if (row.task_id !== null) cancelTask(db, row.task_id, taskTtlSeconds);
      db.prepare("UPDATE orders SET status = 'cancelled', updated_at = ? WHERE id = ?").run(now, id);
    }
    if (changes.note !== undefined) {
      db.prepare('UPDATE orders SET note = ?, updated_at = ? WHERE id = ?').run(changes.note, now, id);
    }
  });
  change.immediate();
  return getOrder(db, userId, id);
}

/** Moves a pending order to its final status when its task ends. */
export function settleOrder(db: Db, orderId: string, status: 'completed' | 'failed' | 'cancelled'): void {
  db.prepare("UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = 'pending'").run(status, new Date().toISOString(), orderId);
}

/** Returns the bill of an order by id, without an ownership check; for the task runner. */
export function billOfOrder(db: Db, orderId: string): Bill {
  const row = db.prepare('SELECT * FROM orders WHERE id = ?').get(orderId) as OrderRow;
  return computeBill(db, row);
}

// Only classified items of completed orders are billed: pending, failed and cancelled orders cost nothing.
function computeBill(db: Db, row: OrderRow): Bill {
  const billed = row.status === 'completed' ? countItems(db, row.id).classified : 0;
  return { items: billed, unitPrice: row.unit_price, total: billed * row.unit_price, currency: row.currency };
}

function findOrderRow(db: Db, userId: string, id: string): OrderRow {
  const row = db.prepare('SELECT * FROM orders WHERE id = ? AND user_id = ?').get(id, userId) as OrderRow | undefined;
  if (!row) throw createError(404, `order ${id} not found`);
  return row;
}

function toSummaryFields(db: Db, row: OrderRow): Omit<Order, 'items'> {
  return {
    id: row.id,
    status: row.status,
    bill: computeBill(db, row),
    note: row.note,
    taskId: row.task_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
