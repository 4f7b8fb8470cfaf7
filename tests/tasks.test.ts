import request from 'supertest';
import { TestApp, expectProblem, readLogLines, signUp, startTestApp, waitForTask } from './helpers/app';
import { fixture } from './helpers/images';

// Large orders run for seconds on purpose, so that tests can act while their task runs.
jest.setTimeout(60_000);

const DIGIT_FIXTURES = ['digit-3-canvas-transparent.png', 'digit-5-exif-orientation-6.jpg', 'digit-2-16bit-grey.png', 'digit-8-light-on-dark.jpg'];

/** Builds order items from the real fixtures, repeated to `count` items. */
function orderItems(count: number): { image: string }[] {
  const images = DIGIT_FIXTURES.map((name) => fixture(name).toString('base64'));
  return Array.from({ length: count }, (_, i) => ({ image: images[i % images.length] }));
}

/** Polls until the task is running with some but not all items done. */
async function waitUntilRunning(testApp: TestApp, taskId: string, auth: string): Promise<Record<string, any>> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const response = await request(testApp.app).get(`/tasks/${taskId}`).set('Authorization', auth);
    const { status, progress } = response.body;
    if (status === 'running' && progress.done > 0 && progress.done < progress.total) return response.body;
    if (status !== 'queued' && status !== 'running') throw new Error(`task ended (${status}) before it was seen running`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`task ${taskId} was never seen running`);
}

describe('background tasks', () => {
  let testApp: TestApp;
  let user: { id: string; auth: string };

  beforeAll(async () => {
    testApp = await startTestApp({ SYNC_MAX_ITEMS: '4', TASK_CHUNK_SIZE: '4' });
    user = await signUp(testApp.app, 'tasker');
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('large order returns 202 and completes', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(12) });

    expect(response.status).toBe(202);
    expect(response.body.status).toBe('queued');
    expect(response.headers.location).toBe(`/tasks/${response.body.id}`);
    expect(typeof response.body.orderId).toBe('string');

    const task = await waitForTask(testApp.app, response.body.id, user.auth);
    expect(task.status).toBe('succeeded');
    expect(task.kind).toBe('order');
    expect(task.progress).toEqual({ done: 12, total: 12 });
    expect(task.result.orderId).toBe(response.body.orderId);
    expect(task.result.bill.items).toBe(12);
    expect(task.startedAt).not.toBeNull();
    expect(task.finishedAt).not.toBeNull();

    const order = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);
    expect(order.body.status).toBe('completed');
    expect(order.body.items).toHaveLength(12);
    expect(order.body.items.map((item: { label: string }) => item.label).slice(0, 4)).toEqual(['3', '5', '2', '8']);
    expect(order.body.bill.total).toBe(12 * testApp.services.config.UNIT_PRICE);
  });

  test('pending order bills nothing until done', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(300) });
    await waitUntilRunning(testApp, response.body.id, user.auth);

    const pending = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);

    expect(pending.body.status).toBe('pending');
    expect(pending.body.bill.total).toBe(0);
    await waitForTask(testApp.app, response.body.id, user.auth);
  });

  test('health is served during a running task', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(300) });
    const running = await waitUntilRunning(testApp, response.body.id, user.auth);
    expect(running.progress.done).toBeLessThan(running.progress.total);

    const health = await request(testApp.app).get('/readyz');
    const prediction = await request(testApp.app).post('/predict').send({ instances: [{ image: orderItems(1)[0].image }] });
    const after = await request(testApp.app).get(`/tasks/${response.body.id}`).set('Authorization', user.auth);

    expect(health.status).toBe(200);
    expect(prediction.status).toBe(200);
    expect(after.body.status).toBe('running');
    await waitForTask(testApp.app, response.body.id, user.auth);
  });

  test('DELETE cancels a running task and its order', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(300) });
    const running = await waitUntilRunning(testApp, response.body.id, user.auth);
    expect(running.progress.done).toBeLessThan(running.progress.total);

    const cancelled = await request(testApp.app).delete(`/tasks/${response.body.id}`).set('Authorization', user.auth);

    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    const task = await waitForTask(testApp.app, response.body.id, user.auth);
    expect(task.status).toBe('cancelled');
    expect(task.progress.done).toBeLessThan(task.progress.total);
    const order = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);
    expect(order.body.status).toBe('cancelled');
    expect(order.body.bill.total).toBe(0);
  });

  test('cancel drops the chunk in flight', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(200) });
    await waitUntilRunning(testApp, response.body.id, user.auth);

    const cancelled = await request(testApp.app).delete(`/tasks/${response.body.id}`).set('Authorization', user.auth);
    // The chunk that was being classified when the cancel arrived has finished by now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const order = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);
    const task = await request(testApp.app).get(`/tasks/${response.body.id}`).set('Authorization', user.auth);

    const statuses: string[] = order.body.items.map((item: { status: string }) => item.status);
    const stored = statuses.filter((status) => status === 'classified' || status === 'failed').length;
    expect(stored).toBe(cancelled.body.progress.done);
    expect(task.body.progress.done).toBe(cancelled.body.progress.done);
    expect(statuses.filter((status) => status === 'cancelled')).toHaveLength(200 - stored);
    expect(statuses).not.toContain('pending');
  });

  test('DELETE on a finished task is 409', async () => {
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(5) });
    await waitForTask(testApp.app, response.body.id, user.auth);

    const again = await request(testApp.app).delete(`/tasks/${response.body.id}`).set('Authorization', user.auth);

    expectProblem(again, 409);
  });

  test('undecodable items fail alone and are not billed', async () => {
    const items = [...orderItems(4), { image: fixture('corrupt-truncated.jpg').toString('base64') }];

    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items });
    const task = await waitForTask(testApp.app, response.body.id, user.auth);

    expect(response.status).toBe(202);
    expect(task.status).toBe('succeeded');
    expect(task.result.classified).toBe(4);
    expect(task.result.failed).toBe(1);
    const order = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);
    expect(order.body.status).toBe('completed');
    expect(order.body.items[4].status).toBe('failed');
    expect(order.body.items[4].error.message).toMatch(/items\[4\].*cannot be decoded/);
    expect(order.body.bill.items).toBe(4);
  });

  test('task whose items all fail ends failed', async () => {
    const broken = fixture('corrupt-truncated.jpg').toString('base64');
    const unhandled = jest.fn();
    process.on('uncaughtException', unhandled);

    try {
      const response = await request(testApp.app)
        .post('/orders')
        .set('Authorization', user.auth)
        .set('Prefer', 'respond-async')
        .send({ items: [{ image: broken }, { image: broken }] });
      const task = await waitForTask(testApp.app, response.body.id, user.auth);

      expect(task.status).toBe('failed');
      expect(task.error.message).toMatch(/all 2 items failed/);
      expect(task.error.message).not.toMatch(/\n\s+at /);
      const order = await request(testApp.app).get(`/orders/${response.body.orderId}`).set('Authorization', user.auth);
      expect(order.body.status).toBe('failed');
      expect(order.body.bill.total).toBe(0);
      const logged = (await readLogLines(testApp)).filter((line) => line.message === 'task failed' && line.taskId === response.body.id);
      expect(logged).toHaveLength(1);
      expect(logged[0].level).toBe('error');
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('uncaughtException', unhandled);
    }

    const next = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(5) });
    const nextTask = await waitForTask(testApp.app, next.body.id, user.auth);
    expect(nextTask.status).toBe('succeeded');
  });

  test('format errors are rejected at submission', async () => {
    const items = [...orderItems(5), { image: Buffer.from('GIF89a').toString('base64') }];

    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items });

    expectProblem(response, 415);
    expect(response.body.errors[0].path).toBe('items[5].image');
  });

  test('tasks are visible only to their owner', async () => {
    const other = await signUp(testApp.app, 'stranger');
    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: orderItems(5) });

    const asOther = await request(testApp.app).get(`/tasks/${response.body.id}`).set('Authorization', other.auth);
    const anonymous = await request(testApp.app).get(`/tasks/${response.body.id}`);
    const cancelAsOther = await request(testApp.app).delete(`/tasks/${response.body.id}`).set('Authorization', other.auth);

    expectProblem(asOther, 404);
    expectProblem(anonymous, 404);
    expectProblem(cancelAsOther, 404);
    await waitForTask(testApp.app, response.body.id, user.auth);
  });

  test('anonymous prediction task is readable by id', async () => {
    const response = await request(testApp.app)
      .post('/predict')
      .set('Prefer', 'respond-async')
      .send({ instances: orderItems(3) });

    const task = await waitForTask(testApp.app, response.body.id);

    expect(response.status).toBe(202);
    expect(task.kind).toBe('predict');
    expect(task.status).toBe('succeeded');
    expect(task.result.predictions.map((p: { label: string }) => p.label)).toEqual(['3', '5', '2']);
  });

  test('unknown task id is 404', async () => {
    const response = await request(testApp.app).get('/tasks/00000000-0000-4000-8000-000000000000');

    expectProblem(response, 404);
  });
});

describe('task expiry', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ TASK_TTL_SECONDS: '1' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('finished task expires after TASK_TTL_SECONDS', async () => {
    const response = await request(testApp.app)
      .post('/predict')
      .set('Prefer', 'respond-async')
      .send({ instances: orderItems(1) });
    const task = await waitForTask(testApp.app, response.body.id);
    expect(task.status).toBe('succeeded');

    await new Promise((resolve) => setTimeout(resolve, 1100));
    const expired = await request(testApp.app).get(`/tasks/${response.body.id}`);

    expectProblem(expired, 404);
  });
});
