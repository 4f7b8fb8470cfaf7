import { z } from 'zod';
import type { Problem } from '../middleware/error-handler';
import type { StoredItem } from '../services/items';
import type { Order, OrderSummary } from '../services/orders';
import type { PredictResponse } from '../services/predictions';
import type { Task } from '../services/task-store';
import type { Page, User } from '../services/users';
import { note } from './order';
import { username } from './user';

// Schemas of the response bodies, for the OpenAPI document and for the tests that check every
// response against it. They are strict: a field that a response has and its schema lacks is an error.

const uuid = z.uuid();
const timestamp = z.iso.datetime({ offset: true }).meta({ description: 'ISO 8601 date and time' });
const probability = z.number().min(0).max(1);

export const userSchema = z.strictObject({ id: uuid, username, createdAt: timestamp }).meta({ id: 'User' });

export const newUserSchema = userSchema
  .extend({ token: z.string().meta({ description: 'Bearer token for `Authorization: Bearer <token>`; shown only in this response' }) })
  .meta({ id: 'UserWithToken' });

/** Builds the schema of one page of a list endpoint. */
function pageOf<T extends z.ZodType>(item: T, id: string) {
  return z
    .strictObject({
      items: z.array(item),
      total: z.number().int().min(0).meta({ description: 'Number of items in the whole list' }),
      limit: z.number().int(),
      offset: z.number().int(),
    })
    .meta({ id });
}

export const userPageSchema = pageOf(userSchema, 'UserPage');

export const modelRefSchema = z.strictObject({ name: z.string(), version: z.string() }).meta({ id: 'ModelRef' });

export const predictionSchema = z
  .strictObject({
    label: z.string(),
    confidence: probability.meta({ description: 'Probability of `label`' }),
    probabilities: z.array(probability).meta({ description: "One probability a label, in the order of the model's `labels`" }),
  })
  .meta({ id: 'Prediction' });

export const predictResponseSchema = z
  .strictObject({ predictions: z.array(predictionSchema), model: modelRefSchema })
  .meta({ id: 'PredictResponse' });

export const storedItemSchema = z
  .strictObject({
    index: z.number().int().min(0),
    status: z.enum(['pending', 'classified', 'failed', 'cancelled']).meta({ description: 'cancelled: the order or task was cancelled before this item was classified' }),
    label: z.string().nullable(),
    confidence: probability.nullable(),
    probabilities: z.array(probability).nullable(),
    model: modelRefSchema.nullable(),
    error: z.strictObject({ message: z.string() }).nullable(),
  })
  .meta({ id: 'Item' });

export const billSchema = z
  .strictObject({
    items: z.number().int().min(0).meta({ description: 'Classified items billed; pending, failed and cancelled orders cost nothing' }),
    unitPrice: z.number().int().meta({ description: 'Price of one item in minor units of `currency`' }),
    total: z.number().int().meta({ description: 'items × unitPrice, in minor units of `currency`' }),
    currency: z.string().meta({ description: 'ISO 4217 code' }),
  })
  .meta({ id: 'Bill' });

const orderFields = {
  id: uuid,
  status: z.enum(['pending', 'completed', 'failed', 'cancelled']),
  bill: billSchema,
  note: note.nullable(),
  taskId: uuid.nullable().meta({ description: 'The background task of an order placed with 202, else null' }),
  createdAt: timestamp,
  updatedAt: timestamp,
};

export const orderSchema = z.strictObject({ ...orderFields, items: z.array(storedItemSchema) }).meta({ id: 'Order' });

export const orderSummarySchema = z
  .strictObject({ ...orderFields, itemCount: z.number().int().min(0) })
  .meta({ id: 'OrderSummary' });

export const orderPageSchema = pageOf(orderSummarySchema, 'OrderSummaryPage');

export const predictionTaskAcceptedSchema = z
  .strictObject({ id: uuid, status: z.literal('queued') })
  .meta({ id: 'PredictionTaskAccepted', description: 'A queued prediction task; follow it at the `Location` header' });

export const orderTaskAcceptedSchema = z
  .strictObject({ id: uuid, status: z.literal('queued'), orderId: uuid })
  .meta({ id: 'OrderTaskAccepted', description: 'A queued order task; follow it at the `Location` header' });

const orderTaskResult = z
  .strictObject({ orderId: uuid, classified: z.number().int().min(0), failed: z.number().int().min(0), bill: billSchema })
  .meta({ id: 'OrderTaskResult' });

const failedPrediction = z.strictObject({ error: z.strictObject({ message: z.string() }) });

const predictionTaskResult = z
  .strictObject({
    predictions: z.array(z.union([predictionSchema, failedPrediction])).meta({ description: 'One entry an item, in order: a prediction, or the error of an item that failed' }),
    model: modelRefSchema,
  })
  .meta({ id: 'PredictionTaskResult' });

export const taskSchema = z
  .strictObject({
    id: uuid,
    kind: z.enum(['order', 'predict']),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
    progress: z.strictObject({ done: z.number().int().min(0), total: z.number().int().min(0) }),
    result: z.union([orderTaskResult, predictionTaskResult]).nullable().meta({ description: 'Set when the task succeeded' }),
    error: z.strictObject({ message: z.string() }).nullable().meta({ description: 'Set when the task failed' }),
    createdAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'Task' });

export const modelInfoSchema = z
  .strictObject({
    name: z.string(),
    version: z.string(),
    backend: z.string().meta({ description: 'TensorFlow.js backend: tensorflow (tfjs-node), wasm or cpu' }),
    inference: z.strictObject({
      kind: z.enum(['fused', 'layers', 'graph']),
      detail: z.string(),
    }),
    inputShape: z
      .tuple([z.null(), z.number().int().min(1), z.number().int().min(1), z.number().int().min(1).max(4)])
      .meta({ description: '[batch, height, width, channels], where null marks a batch of any size' }),
    preprocessing: z.enum(['mnist-digit', 'plain']),
    labels: z.array(z.string()),
    heldOutAccuracy: probability.nullable(),
    trainingSamples: z.number().int().nullable(),
    testSamples: z.number().int().nullable(),
  })
  .meta({ id: 'ModelInfo' });

export const healthSchema = z.strictObject({ status: z.literal('ok') }).meta({ id: 'Health' });

export const readinessSchema = z
  .strictObject({
    status: z.enum(['ready', 'not ready']),
    checks: z.strictObject({
      model: z.enum(['loaded', 'not loaded']),
      database: z.enum(['open', 'closed']),
      shutdown: z.enum(['in progress', 'not started']),
    }),
  })
  .meta({ id: 'Readiness' });

export const problemSchema = z
  .strictObject({
    type: z.string().meta({ description: 'Always `about:blank`, so the status code alone defines the problem type' }),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    instance: z.string().meta({ description: 'Path and query of the request' }),
    requestId: z.string().meta({ description: 'Same as the `X-Request-Id` response header' }),
    errors: z
      .array(z.strictObject({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'The invalid fields or items, at most 20' }),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

// Compile-time checks that the types the services return match these schemas in both directions,
// so that a field added to a service type without its schema, or the reverse, fails the build.
export type Fits<Actual extends Documented, Documented> = Actual;
type TaskBody = z.infer<typeof taskSchema>;
export type SchemaTypeChecks = [
  Fits<User, z.infer<typeof userSchema>>,
  Fits<z.infer<typeof userSchema>, User>,
  Fits<Page<User>, z.infer<typeof userPageSchema>>,
  Fits<z.infer<typeof userPageSchema>, Page<User>>,
  Fits<PredictResponse, z.infer<typeof predictResponseSchema>>,
  Fits<z.infer<typeof predictResponseSchema>, PredictResponse>,
  Fits<StoredItem, z.infer<typeof storedItemSchema>>,
  Fits<z.infer<typeof storedItemSchema>, StoredItem>,
  Fits<Order, z.infer<typeof orderSchema>>,
  Fits<z.infer<typeof orderSchema>, Order>,
  Fits<Page<OrderSummary>, z.infer<typeof orderPageSchema>>,
  Fits<z.infer<typeof orderPageSchema>, Page<OrderSummary>>,
  // A task's result is stored as JSON, so the service types it as unknown.
  Fits<Omit<Task, 'result'>, Omit<TaskBody, 'result'>>,
  Fits<Omit<TaskBody, 'result'>, Omit<Task, 'result'>>,
  Fits<Problem, z.infer<typeof problemSchema>>,
  Fits<z.infer<typeof problemSchema>, Problem>,
];
