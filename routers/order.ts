import express from 'express';
import createError from 'http-errors';
import { z } from 'zod';
import { currentUser, requireUser } from '../middleware/auth';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { requireJson } from '../middleware/require-json';
import { parseMultipart, uploadedFiles } from '../middleware/uploads';
import { AppServices, servicesOf } from '../services/app-services';
import { hashRequest, runOnce } from '../services/idempotency';
import { imageLimits } from '../services/model-input';
import { createOrder, getBill, getOrder, listOrders, updateOrder } from '../services/orders';
import { idParams, pageQuery, prefersAsync } from './common';
import { filesToItems, imageItem, isMultipart, jsonToItems } from './items';

// A lone UTF-16 surrogate cannot be stored as UTF-8: SQLite would keep replacement characters instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The client's note on an order. */
export const note = z
  .string()
  .max(500, 'must be at most 500 characters')
  .refine((text) => !LONE_SURROGATE.test(text), 'must be valid Unicode text; it contains a lone surrogate (\\ud800 to \\udfff)');

/** JSON body of POST /orders. */
export const newOrderBody = z
  .strictObject({
    items: z.array(imageItem).min(1, 'an order needs at least one item'),
    note: note.nullable().optional(),
  })
  .meta({ id: 'NewOrder' });

/** Text fields of a multipart POST /orders; its files are the items. */
export const multipartFields = z.object({ note: note.optional() });

/** Body of PATCH /orders/{id}. */
export const orderChanges = z
  .strictObject({
    note: note.nullable().optional(),
    status: z.literal('cancelled', { message: 'the only status a client can set is "cancelled"' }).optional(),
  })
  .refine((changes) => changes.note !== undefined || changes.status !== undefined, { message: 'send "note", "status" or both' })
  .meta({ id: 'OrderChanges' });

/** The `Idempotency-Key` request header of POST /orders. */
export const idempotencyHeader = z.object({
  'idempotency-key': z.string().regex(/^[\x21-\x7e]{1,255}$/, 'must be 1 to 255 visible ASCII characters'),
});

function orderSettings(services: AppServices) {
  const { config } = services;
  return {
    unitPrice: config.UNIT_PRICE,
    currency: config.CURRENCY,
    syncMaxItems: config.SYNC_MAX_ITEMS,
    limits: imageLimits(config),
    taskQueueMax: config.TASK_QUEUE_MAX,
  };
}

/** Routes under /orders: place, list, read, change and bill the caller's orders. Every route needs a token. */
export const orderRouter = express.Router();

const orders = orderRouter.route('/');
// The token is checked before a multipart body is read into memory.
orders.post(requireUser, parseMultipart, async function createOrderRoute(req, res) {
  const services = servicesOf(req);
  const user = currentUser(req);

  let request;
  let hashParts: (string | Buffer)[];
  if (isMultipart(req)) {
    const fields = multipartFields.parse(req.body ?? {});
    request = { items: filesToItems(req, services.config.MAX_ITEMS), note: fields.note ?? null };
    hashParts = ['multipart', fields.note ?? '', ...uploadedFiles(req).map((file) => file.buffer)];
  } else {
    if (!req.is('application/json')) throw createError(415, 'send the order as application/json or multipart/form-data');
    const body = newOrderBody.parse(req.body ?? {});
    request = { items: jsonToItems(body.items, 'items', services.config.MAX_ITEMS), note: body.note ?? null };
    hashParts = ['json', JSON.stringify(body)];
  }
  const preferAsync = prefersAsync(req);
  const place = async () => {
    const result = await createOrder(services.db, services.model, services.batcher, orderSettings(services), { userId: user.id, ...request, preferAsync });
    if (result.status === 202) services.runner.notifyTaskQueued();
    return result;
  };

  const keyHeader = req.get('idempotency-key');
  const response =
    keyHeader === undefined
      ? await place()
      : await runOnce(services.db, user.id, idempotencyHeader.parse({ 'idempotency-key': keyHeader })['idempotency-key'], hashRequest(hashParts), place);

  if (response.status === 202 && preferAsync) res.setHeader('Preference-Applied', 'respond-async');
  if (response.location) res.location(response.location);
  if ('replayed' in response && response.replayed) res.setHeader('Idempotent-Replayed', 'true');
  res.status(response.status).json(response.body);
});
orders.get(requireUser, function listOrdersRoute(req, res) {
  const { limit, offset } = pageQuery.parse(req.query);
  res.json(listOrders(servicesOf(req).db, currentUser(req).id, limit, offset));
});
orders.all(rejectOtherMethods(orders));

const one = orderRouter.route('/:id');
one.get(requireUser, function getOrderRoute(req, res) {
  const { id } = idParams.parse(req.params);
  res.json(getOrder(servicesOf(req).db, currentUser(req).id, id));
});
one.patch(requireUser, requireJson, function updateOrderRoute(req, res) {
  const { id } = idParams.parse(req.params);
  const changes = orderChanges.parse(req.body ?? {});
  const services = servicesOf(req);
  res.json(updateOrder(services.db, currentUser(req).id, id, changes, services.config.TASK_TTL_SECONDS));
});
one.all(rejectOtherMethods(one));

const bill = orderRouter.route('/:id/bill');
bill.get(requireUser, function getBillRoute(req, res) {
  const { id } = idParams.parse(req.params);
  res.json(getBill(servicesOf(req).db, currentUser(req).id, id));
});
bill.all(rejectOtherMethods(bill));
