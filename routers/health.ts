import express from 'express';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { servicesOf } from '../services/app-services';

/** Liveness (/healthz) and readiness (/readyz) probes. */
export const healthRouter = express.Router();

const live = healthRouter.route('/healthz');
live.get(function livenessRoute(_req, res) {
  res.json({ status: 'ok' });
});
live.all(rejectOtherMethods(live));

const ready = healthRouter.route('/readyz');
ready.get(function readinessRoute(req, res) {
  const { lifecycle } = servicesOf(req);
  const checks = {
    model: lifecycle.modelLoaded ? 'loaded' : 'not loaded',
    database: lifecycle.databaseOpen ? 'open' : 'closed',
    shutdown: lifecycle.shuttingDown ? 'in progress' : 'not started',
  };
  res.status(lifecycle.ready ? 200 : 503).json({ status: lifecycle.ready ? 'ready' : 'not ready', checks });
});
ready.all(rejectOtherMethods(ready));
