import type { PredictionBatcher } from './batcher';
import type { Db } from './database';
import type { LoadedModel, Prediction } from './model';
import { ImageLimits, checkImage, imageToInput, pixelsToInput } from './model-input';

/** One input to classify, as received: an encoded image, or a pixel array already parsed from JSON. */
export type ItemInput =
  | { kind: 'image'; bytes: Buffer; path: string }
  | { kind: 'pixels'; pixels: unknown; path: string };

/** The stored state of one item of an order or an asynchronous prediction. */
export interface StoredItem {
  index: number;
  status: 'pending' | 'classified' | 'failed' | 'cancelled';
  label: string | null;
  confidence: number | null;
  probabilities: number[] | null;
  model: { name: string; version: string } | null;
  error: { message: string } | null;
}

interface ItemRow {
  idx: number;
  status: StoredItem['status'];
  input_kind: 'image' | 'pixels';
  input: Buffer | null;
  label: string | null;
  confidence: number | null;
  probabilities: string | null;
  model_name: string | null;
  model_version: string | null;
  error: string | null;
}

/**
 * Checks what can be checked without decoding: image size and format, and pixel arrays in full.
 * Returns the bytes to store for each item. Throws the 4xx error of the first bad item.
 */
export function checkItems(items: ItemInput[], model: LoadedModel, limits: ImageLimits): { kind: ItemInput['kind']; data: Buffer }[] {
  return items.map((item) => {
    if (item.kind === 'image') {
      checkImage(item.bytes, item.path, limits);
      return { kind: 'image', data: item.bytes };
    }
    const input = pixelsToInput(item.pixels, item.path, model);
    return { kind: 'pixels', data: Buffer.from(input.buffer, input.byteOffset, input.byteLength) };
  });
}

/**
 * Checks every item, then, once the batcher admits the request, decodes and preprocesses the images
 * and classifies all items. Any bad item fails the whole call with its 4xx error, as a synchronous
 * request requires, and a full queue fails it with 503 before any image is decoded.
 */
export async function classifyItems(items: ItemInput[], model: LoadedModel, batcher: PredictionBatcher, limits: ImageLimits): Promise<Prediction[]> {
  // Pixel arrays are converted once here, and images only format-checked, so that a malformed
  // request gets its 400 even when the queue is full.
  const checked = items.map((item) => {
    if (item.kind === 'pixels') return pixelsToInput(item.pixels, item.path, model);
    checkImage(item.bytes, item.path, limits);
    return item;
  });

  return batcher.admitAndPredict(items.length, () =>
    firstErrorInOrder(checked.map((entry) => (entry instanceof Float32Array ? entry : imageToInput(entry.bytes, entry.path, model, limits)))),
  );
}

/**
 * Waits for every input, then rejects with the error of the first failed item in request order,
 * rather than with the one that fails first in time, which depends on decoding speed.
 */
async function firstErrorInOrder(inputs: (Float32Array | Promise<Float32Array>)[]): Promise<Float32Array[]> {
  const settled = await Promise.allSettled(inputs);
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<Float32Array>).value);
}

/** Stores items as pending, to be classified later by the task runner. */
export function insertPendingItems(db: Db, ownerId: string, items: { kind: ItemInput['kind']; data: Buffer }[]): void {
  const insert = db.prepare("INSERT INTO items (owner_id, idx, status, input_kind, input) VALUES (?, ?, 'pending', ?, ?)");
  items.forEach((item, index) => insert.run(ownerId, index, item.kind, item.data));
}

/** Stores items that were classified at once, without their inputs. */
export function insertClassifiedItems(db: Db, ownerId: string, predictions: Prediction[], model: LoadedModel): void {
  const insert = db.prepare(
    `INSERT INTO items (owner_id, idx, status, input_kind, label, confidence, probabilities, model_name, model_version)
     VALUES (?, ?, 'classified', 'image', ?, ?, ?, ?, ?)`,
  );
  predictions.forEach((prediction, index) =>
    insert.run(ownerId, index, prediction.label, prediction.confidence, JSON.stringify(prediction.probabilities), model.metadata.name, model.metadata.version),
  );
}

/** Returns an owner's items in order. */
export function listItems(db: Db, ownerId: string): StoredItem[] {
  const rows = db
    .prepare(
      `SELECT idx, status, input_kind, NULL AS input, label, confidence, probabilities, model_name, model_version, error
       FROM items WHERE owner_id = ? ORDER BY idx`,
    )
    .all(ownerId) as ItemRow[];
  return rows.map(toStoredItem);
}

/** Counts an owner's items by status. */
export function countItems(db: Db, ownerId: string): Record<StoredItem['status'], number> {
  const counts = { pending: 0, classified: 0, failed: 0, cancelled: 0 };
  const rows = db.prepare('SELECT status, COUNT(*) AS count FROM items WHERE owner_id = ? GROUP BY status').all(ownerId) as {
    status: StoredItem['status'];
    count: number;
  }[];
  for (const row of rows) counts[row.status] = row.count;
  return counts;
}

/**
 * Classifies the next `limit` pending items of an owner and stores their results. An item that
 * fails to decode is marked failed with its message and does not stop the others. Returns how
 * many items were processed (0 when none was pending).
 */
export async function classifyPendingItems(
  db: Db,
  ownerId: string,
  limit: number,
  model: LoadedModel,
  batcher: PredictionBatcher,
  limits: ImageLimits,
  store: ChunkStore = { isWanted: () => true, afterStore: () => undefined },
): Promise<number> {
  const rows = db
    .prepare("SELECT idx, input_kind, input FROM items WHERE owner_id = ? AND status = 'pending' ORDER BY idx LIMIT ?")
    .all(ownerId, limit) as Pick<ItemRow, 'idx' | 'input_kind' | 'input'>[];
  if (rows.length === 0) return 0;

  const prepared = await Promise.all(
    rows.map(async (row) => {
      const path = `items[${row.idx}]`;
      try {
        const input = row.input_kind === 'pixels' ? bytesToFloats(row.input ?? Buffer.alloc(0)) : await imageToInput(row.input ?? Buffer.alloc(0), path, model, limits);
        return { idx: row.idx, input, error: null };
      } catch (error) {
        return { idx: row.idx, input: null, error: (error as Error).message };
      }
    }),
  );

  // The chunk is work already accepted, so it bypasses the admission check and waits its turn.
  const ready = prepared.filter((item) => item.input !== null);
  const predictions = await batcher.predict(ready.map((item) => item.input as Float32Array));

  const markClassified = db.prepare(
    `UPDATE items SET status = 'classified', input = NULL, label = ?, confidence = ?, probabilities = ?, model_name = ?, model_version = ?
     WHERE owner_id = ? AND idx = ? AND status = 'pending'`,
  );
  const markFailed = db.prepare("UPDATE items SET status = 'failed', input = NULL, error = ? WHERE owner_id = ? AND idx = ? AND status = 'pending'");
  // The `status = 'pending'` conditions keep the first stored result of an item if two processes
  // ever classify the same item. Tasks are claimed atomically, so only a bug could cause that.
  // The transaction holds SQLite's write lock only for these updates, because decoding and the
  // model ran above, outside it. It takes the lock at its start (immediate), so that no other
  // process can cancel the task between the isWanted check and the writes.
  let stored = false;
  db.transaction(() => {
    if (!store.isWanted()) return;
    stored = true;
    ready.forEach((item, i) => {
      const prediction = predictions[i];
      markClassified.run(
        prediction.label,
        prediction.confidence,
        JSON.stringify(prediction.probabilities),
        model.metadata.name,
        model.metadata.version,
        ownerId,
        item.idx,
      );
    });
    for (const item of prepared) {
      if (item.error !== null) markFailed.run(item.error, ownerId, item.idx);
    }
    store.afterStore();
  }).immediate();
  return stored ? rows.length : 0;
}

/** Checks and follow-up writes that run in the same transaction as a chunk's results. */
export interface ChunkStore {
  /** False when the results are no longer wanted, for example because the task was cancelled. */
  isWanted(): boolean;
  /** Runs after the results are written, for example to record the task's progress. */
  afterStore(): void;
}

/** Deletes an owner's items. */
export function deleteItems(db: Db, ownerId: string): void {
  db.prepare('DELETE FROM items WHERE owner_id = ?').run(ownerId);
}

function bytesToFloats(bytes: Buffer): Float32Array {
  // Copy into a fresh buffer, because a Float32Array view needs a 4-byte aligned offset.
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

function toStoredItem(row: ItemRow): StoredItem {
  return {
    index: row.idx,
    status: row.status,
    label: row.label,
    confidence: row.confidence,
    probabilities: row.probabilities === null ? null : (JSON.parse(row.probabilities) as number[]),
    model: row.model_name === null ? null : { name: row.model_name, version: row.model_version ?? '' },
    error: row.error === null ? null : { message: row.error },
  };
}
