import express from 'express';
import createError from 'http-errors';
import { identifyUser } from '../middleware/auth';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { servicesOf } from '../services/app-services';
import { settleOrder } from '../services/orders';
import { cancelTask, getVisibleTask, toTaskView } from '../services/task-store';
import { idParams } from './common';

/** Routes under /tasks: follow a background task, or cancel it. */
export const taskRouter = express.Router();

const one = taskRouter.route('/:id');
one.get(identifyUser, function getTaskRoute(req, res) {
  const { id } = idParams.parse(req.params);
  const task = getVisibleTask(servicesOf(req).db, id, req.user?.id ?? null);
  res.json(toTaskView(task));
});
one.delete(identifyUser, function cancelTaskRoute(req, res) {
  const { id } = idParams.parse(req.params);
  const { db, config } = servicesOf(req);
  const task = getVisibleTask(db, id, req.user?.id ?? null);

  const cancelled = db.transaction(() => {
    if (!cancelTask(db, task.id, config.TASK_TTL_SECONDS)) return false;
    if (task.orderId !== null) settleOrder(db, task.orderId, 'cancelled');
    return true;
  })();
  if (!cancelled) throw createError(409, `task ${id} is ${task.status}; only a queued or running task can be cancelled`);

  res.json(toTaskView(getVisibleTask(db, id, req.user?.id ?? null)));
});
one.all(rejectOtherMethods(one));
