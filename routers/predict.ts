import express from 'express';
import createError from 'http-errors';
import { z } from 'zod';
import { identifyUser } from '../middleware/auth';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { parseMultipart } from '../middleware/uploads';
import { servicesOf } from '../services/app-services';
import { imageLimits } from '../services/model-input';
import { predictNow, queuePrediction } from '../services/predictions';
import { prefersAsync } from './common';
import { filesToItems, imageItem, isMultipart, jsonToItems, pixelsItem } from './items';

/** JSON body of POST /predict. */
export const predictBody = z
  .strictObject({
    // Pixels first: zod tries the members in order, and a failed try costs more than the match.
    instances: z
      .array(z.union([pixelsItem, imageItem], { error: 'expected {"pixels": [[...rows of numbers]]} or {"image": "<base64>"}, with no other keys' }))
      .min(1, 'send at least one instance'),
  })
  .meta({ id: 'PredictRequest' });

/**
 * POST /predict: classify images or pixel arrays. A token is optional. The task of a request with
 * `Prefer: respond-async` and a token is visible only with that token.
 */
export const predictRouter = express.Router();

const predict = predictRouter.route('/');
predict.post(identifyUser, parseMultipart, async function predictRoute(req, res) {
  const services = servicesOf(req);
  const { config } = services;
  const limits = imageLimits(config);

  let items;
  if (isMultipart(req)) {
    items = filesToItems(req, config.MAX_ITEMS);
  } else {
    if (!req.is('application/json')) throw createError(415, 'send instances as application/json or images as multipart/form-data');
    items = jsonToItems(predictBody.parse(req.body ?? {}).instances, 'instances', config.MAX_ITEMS);
  }

  if (prefersAsync(req)) {
    const taskId = queuePrediction(services.db, services.model, items, limits, req.user?.id ?? null, config.TASK_QUEUE_MAX);
    services.runner.notifyTaskQueued();
    res.setHeader('Preference-Applied', 'respond-async');
    res.status(202).location(`/tasks/${taskId}`).json({ id: taskId, status: 'queued' });
    return;
  }
  res.json(await predictNow(services.model, services.batcher, items, limits));
});
predict.all(rejectOtherMethods(predict));
