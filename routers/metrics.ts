import express from 'express';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { servicesOf } from '../services/app-services';

/** GET /metrics: the service's metrics in the Prometheus text format. */
export const metricsRouter = express.Router();

const scrape = metricsRouter.route('/');
scrape.get(async function metricsRoute(req, res) {
  const { metrics } = servicesOf(req);
  const text = await metrics.render();
  res.type(metrics.contentType).send(text);
});
scrape.all(rejectOtherMethods(scrape));
