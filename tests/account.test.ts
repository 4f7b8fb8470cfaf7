import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { deleteUser, rotateToken } from '../services/users';
import { TestApp, expectProblem, readLogLines, signUp, startTestApp } from './helpers/app';
import { fixture } from './helpers/images';

const IMAGE_BYTES = fixture('digit-3-canvas-transparent.png');
const IMAGE = IMAGE_BYTES.toString('base64');

function countRows(testApp: TestApp, sql: string, ...parameters: unknown[]): number {
  return (testApp.services.db.prepare(sql).get(...parameters) as { count: number }).count;
}

describe('token rotation', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('new token works, old is 401', async () => {
    const user = await signUp(testApp.app, 'rotating_user');

    const rotated = await request(testApp.app).post('/users/me/token').set('Authorization', user.auth);
    const withNew = await request(testApp.app).get('/users/me').set('Authorization', `Bearer ${rotated.body.token}`);
    const withOld = await request(testApp.app).get('/users/me').set('Authorization', user.auth);

    expect(rotated.status).toBe(200);
    expect(rotated.body.id).toBe(user.id);
    expect(rotated.body.username).toBe('rotating_user');
    expect(rotated.body.token).not.toBe(user.token);
    expect(rotated.body.token.length).toBeGreaterThanOrEqual(32);
    expect(withNew.status).toBe(200);
    expect(withNew.body.id).toBe(user.id);
    expectProblem(withOld, 401);
    expect(withOld.headers['www-authenticate']).toBe('Bearer');
  });

  test('orders stay with the user', async () => {
    const user = await signUp(testApp.app, 'rotating_owner');
    const placed = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: [{ image: IMAGE }] });

    const rotated = await request(testApp.app).post('/users/me/token').set('Authorization', user.auth);
    const order = await request(testApp.app).get(`/orders/${placed.body.id}`).set('Authorization', `Bearer ${rotated.body.token}`);

    expect(placed.status).toBe(201);
    expect(order.status).toBe(200);
    expect(order.body.id).toBe(placed.body.id);
  });

  test('rotation without a token is 401', async () => {
    const response = await request(testApp.app).post('/users/me/token');

    expectProblem(response, 401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
  });

  test('GET on token path is 405', async () => {
    const user = await signUp(testApp.app, 'token_getter');

    const response = await request(testApp.app).get('/users/me/token').set('Authorization', user.auth);

    expectProblem(response, 405);
    expect(response.headers.allow).toBe('POST, OPTIONS');
  });
});

describe('account deletion', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    // Small chunks keep a task of many items running for a while.
    testApp = await startTestApp({ TASK_CHUNK_SIZE: '2' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('deleted user is gone with its data', async () => {
    const user = await signUp(testApp.app, 'leaving_user');
    const order = await request(testApp.app).post('/orders').set('Authorization', user.auth).set('Idempotency-Key', 'leaving-order').send({ items: [{ image: IMAGE }] });
    const queued = await request(testApp.app).post('/orders').set('Authorization', user.auth).set('Prefer', 'respond-async').send({ items: [{ image: IMAGE }] });
    const prediction = await request(testApp.app).post('/predict').set('Authorization', user.auth).set('Prefer', 'respond-async').send({ instances: [{ image: IMAGE }] });

    const deleted = await request(testApp.app).delete('/users/me').set('Authorization', user.auth);
    const me = await request(testApp.app).get('/users/me').set('Authorization', user.auth);
    const byId = await request(testApp.app).get(`/users/${user.id}`);

    expect(order.status).toBe(201);
    expect(queued.status).toBe(202);
    expect(prediction.status).toBe(202);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expectProblem(me, 401);
    expectProblem(byId, 404);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM orders WHERE user_id = ?', user.id)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM tasks WHERE user_id = ?', user.id)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM items WHERE owner_id IN (?, ?, ?)', order.body.id, queued.body.orderId, prediction.body.id)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM idempotency_keys WHERE user_id = ?', user.id)).toBe(0);
  });

  test('other users keep their data', async () => {
    const staying = await signUp(testApp.app, 'staying_user');
    const leaving = await signUp(testApp.app, 'leaving_again');
    const keptOrder = await request(testApp.app).post('/orders').set('Authorization', staying.auth).send({ items: [{ image: IMAGE }] });
    await request(testApp.app).post('/orders').set('Authorization', leaving.auth).send({ items: [{ image: IMAGE }] });

    const deleted = await request(testApp.app).delete('/users/me').set('Authorization', leaving.auth);
    const order = await request(testApp.app).get(`/orders/${keptOrder.body.id}`).set('Authorization', staying.auth);

    expect(deleted.status).toBe(204);
    expect(order.status).toBe(200);
    expect(order.body.items).toHaveLength(1);
    expect(order.body.items[0].status).toBe('classified');
  });

  test('running task stops when its user is deleted', async () => {
    const user = await signUp(testApp.app, 'leaving_mid_task');
    const placed = await request(testApp.app)
      .post('/orders')
      .set('Authorization', user.auth)
      .set('Prefer', 'respond-async')
      .send({ items: Array.from({ length: 200 }, () => ({ image: IMAGE })) });
    const taskId = placed.body.id as string;
    // Waits until the runner has claimed the task and stored at least one chunk.
    const deadline = Date.now() + 30_000;
    let task = await request(testApp.app).get(`/tasks/${taskId}`).set('Authorization', user.auth);
    while (!(task.body.status === 'running' && task.body.progress.done > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      task = await request(testApp.app).get(`/tasks/${taskId}`).set('Authorization', user.auth);
    }

    const cancelledBefore = testApp.services.runner.counts.cancelled;
    const deleted = await request(testApp.app).delete('/users/me').set('Authorization', user.auth);
    // The runner finds the task gone at the end of its current chunk.
    let lines = await readLogLines(testApp);
    const stopDeadline = Date.now() + 10_000;
    while (!lines.some((line) => line.message === 'task cancelled' && line.taskId === taskId) && Date.now() < stopDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      lines = await readLogLines(testApp);
    }
    const ended = lines.filter((line) => line.taskId === taskId && line.message !== 'task started');

    expect(task.body.status).toBe('running');
    expect(task.body.progress.done).toBeLessThan(200);
    expect(deleted.status).toBe(204);
    expect(ended.map((line) => [line.message, line.reason])).toEqual([['task cancelled', 'deleted with its user']]);
    expect(testApp.services.runner.counts.cancelled).toBe(cancelledBefore + 1);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM tasks WHERE id = ?', taskId)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM items WHERE owner_id = ?', placed.body.orderId)).toBe(0);
  });

  test('deletion without a token is 401', async () => {
    const response = await request(testApp.app).delete('/users/me');

    expectProblem(response, 401);
  });
});

/** Status and parsed body of a response read with node:http. */
interface UploadReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/**
 * Starts a multipart POST of one image to `path` and sends all of its body except the last bytes,
 * so that the server has checked the token and waits for the rest. `finish` sends the rest and
 * resolves with the response.
 */
function startUpload(port: number, path: string, headers: Record<string, string>): { finish(): Promise<UploadReply> } {
  const boundary = 'account-race-boundary';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\nContent-Type: image/png\r\n\r\n`),
    IMAGE_BYTES,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const call = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    headers: { ...headers, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(body.length) },
  });
  const reply = new Promise<UploadReply>((resolve, reject) => {
    call.once('error', reject);
    call.once('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(text) as Record<string, unknown> }));
    });
  });
  call.write(body.subarray(0, body.length - 16));
  return {
    finish() {
      call.end(body.subarray(body.length - 16));
      return reply;
    },
  };
}

describe('account deleted during a request', () => {
  let testApp: TestApp;
  let userCount = 0;
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    testApp = await startTestApp();
    server = testApp.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await testApp.close();
  });

  test.each([
    ['order', '/orders', {}],
    ['order in the background', '/orders', { Prefer: 'respond-async' }],
    ['order with an Idempotency-Key', '/orders', { 'Idempotency-Key': 'deleted-meanwhile' }],
    ['prediction task', '/predict', { Prefer: 'respond-async' }],
  ])('%s is 401', async (_case, path, headers) => {
    const user = await signUp(testApp.app, `deleted_meanwhile_${++userCount}`);
    const upload = startUpload(port, path, { ...headers, Authorization: user.auth });
    // The token is checked when the headers arrive, before the body is read.
    await new Promise((resolve) => setTimeout(resolve, 200));

    await request(testApp.app).delete('/users/me').set('Authorization', user.auth).expect(204);
    const reply = await upload.finish();

    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).toBe('Bearer');
    expect(reply.body.detail).toContain('has been deleted');
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM orders WHERE user_id = ?', user.id)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM tasks WHERE user_id = ?', user.id)).toBe(0);
    expect(countRows(testApp, 'SELECT COUNT(*) AS count FROM idempotency_keys WHERE user_id = ?', user.id)).toBe(0);
  });

  test.each([
    ['token rotation', (userId: string) => rotateToken(testApp.services.db, userId)],
    ['second deletion', (userId: string) => deleteUser(testApp.services.db, userId)],
  ])('%s of a deleted user is 401', async (_case, change) => {
    // Two workers can each check the token before either deletes the account.
    const user = await signUp(testApp.app, `deleted_meanwhile_${++userCount}`);
    deleteUser(testApp.services.db, user.id);

    let thrown: { status?: number; headers?: Record<string, string> } | undefined;
    try {
      change(user.id);
    } catch (error) {
      thrown = error as typeof thrown;
    }

    expect(thrown?.status).toBe(401);
    expect(thrown?.headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
  });
});
