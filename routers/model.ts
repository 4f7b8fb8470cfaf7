import express from 'express';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { servicesOf } from '../services/app-services';

/** GET /model: what the service is serving. */
export const modelRouter = express.Router();

const info = modelRouter.route('/');
info.get(function modelInfoRoute(req, res) {
  const { model } = servicesOf(req);
  const { metadata } = model;
  res.json({
    name: metadata.name,
    version: metadata.version,
    backend: model.backend,
    inference: model.inferencePath,
    inputShape: metadata.inputShape,
    preprocessing: metadata.preprocessing,
    labels: metadata.labels,
    heldOutAccuracy: metadata.heldOutAccuracy ?? null,
    trainingSamples: metadata.trainingSamples ?? null,
    testSamples: metadata.testSamples ?? null,
  });
});
info.all(rejectOtherMethods(info));
