import type { PredictionBatcher } from './batcher';
import type { Db } from './database';
import { ItemInput, checkItems, classifyItems, insertPendingItems } from './items';
import type { LoadedModel, Prediction } from './model';
import type { ImageLimits } from './model-input';
import { insertTask } from './task-store';
import { writeForUser } from './users';

export interface PredictResponse {
  predictions: Prediction[];
  model: { name: string; version: string };
}

/**
 * Classifies items during the request. Any bad item fails the whole request with its 4xx error,
 * and a full prediction queue fails it with 503.
 */
export async function predictNow(model: LoadedModel, batcher: PredictionBatcher, items: ItemInput[], limits: ImageLimits): Promise<PredictResponse> {
  const predictions = await classifyItems(items, model, batcher, limits);
  return { predictions, model: { name: model.metadata.name, version: model.metadata.version } };
}

/**
 * Stores items as a prediction task for the runner. Returns the task id. Items that fail the format
 * check are rejected now; items that fail to decode later are reported in the task's result. A full
 * task queue (TASK_QUEUE_MAX) is 503. A task of a user whose account has been deleted since the
 * token was checked is 401.
 */
export function queuePrediction(db: Db, model: LoadedModel, items: ItemInput[], limits: ImageLimits, userId: string | null, taskQueueMax: number): string {
  const checked = checkItems(items, model, limits);
  return writeForUser(db, userId, () => {
    const task = insertTask(db, { kind: 'predict', userId, orderId: null, total: checked.length }, taskQueueMax);
    insertPendingItems(db, task.id, checked);
    return task.id;
  });
}
