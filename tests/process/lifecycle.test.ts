import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  checkedFetch,
  LogRecord,
  MODEL_DIR,
  delay,
  digitThreeBase64,
  isJson,
  isRunningWithItemsLeft,
  placeAsyncOrder,
  readLog,
  readLogLines,
  readResponse,
  signUp,
  spawnServer,
  startServer,
  stopLeftoverServers,
  waitForTask,
  withMessage,
} from './helpers';

// Each test starts one or two server processes (1-2 s each) and may wait for a background task.
const TEST_TIMEOUT_MS = 60_000;

// `npm start` builds the project first, which took 12 s (`time npm run build`, two cores shared with other work).
const NPM_START_TIMEOUT_MS = 120_000;

// 600 items took about 4 s at the default TASK_CHUNK_SIZE on 2 cores with one busy, so a stop sent
// once the task runs lands while it still has items left.
const ORDER_ITEMS = 600;

/** True while a process with this pid exists. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function getOrder(baseUrl: string, orderId: string, auth: string): Promise<LogRecord> {
  const response = await checkedFetch(`${baseUrl}/orders/${orderId}`, { headers: { Authorization: auth } });
  if (response.status !== 200) throw new Error(`GET /orders/${orderId} returned ${response.status}: ${await response.text()}`);
  return (await response.json()) as LogRecord;
}

describe('server process lifecycle', () => {
  afterEach(stopLeftoverServers);

  test(
    'SIGTERM logs every request, exits 0',
    async () => {
      const server = await startServer();
      const image = digitThreeBase64();
      const requests = [
        { requestId: 'lifecycle-healthz', method: 'GET', path: '/healthz', body: undefined, status: 200 },
        { requestId: 'lifecycle-sign-up', method: 'POST', path: '/users', body: JSON.stringify({ username: 'lifecycle-user' }), status: 201 },
        { requestId: 'lifecycle-predict', method: 'POST', path: '/predict', body: JSON.stringify({ instances: [{ image }] }), status: 200 },
        { requestId: 'lifecycle-unknown-route', method: 'GET', path: '/no-such-route', body: undefined, status: 404 },
        { requestId: 'lifecycle-malformed-json', method: 'POST', path: '/users', body: '{"username": ', status: 400 },
        { requestId: 'lifecycle-no-token', method: 'GET', path: '/users/me', body: undefined, status: 401 },
      ];

      const statuses: Record<string, number> = {};
      let predictedLabel: unknown;
      for (const request of requests) {
        const response = await checkedFetch(`${server.baseUrl}${request.path}`, {
          method: request.method,
          headers: { 'X-Request-Id': request.requestId, ...(request.body ? { 'Content-Type': 'application/json' } : {}) },
          body: request.body,
        });
        statuses[request.requestId] = response.status;
        const body = (await response.json()) as LogRecord;
        if (request.path === '/predict') predictedLabel = body.predictions?.[0]?.label;
      }
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(statuses).toEqual(Object.fromEntries(requests.map((request) => [request.requestId, request.status])));
      expect(predictedLabel).toBe('3');
      expect(exit).toEqual({ code: 0, signal: null });

      const lines = readLogLines(server.logDir);
      expect(lines.filter((line) => !isJson(line))).toEqual([]);

      const records = readLog(server.logDir);
      const completed = withMessage(records, 'request completed');
      expect(completed).toHaveLength(requests.length);
      for (const request of requests) {
        const matching = completed.filter((record) => record.requestId === request.requestId);
        expect(matching.map((record) => [record.requestId, record.status])).toEqual([[request.requestId, request.status]]);
      }

      const shutdownStarted = withMessage(records, 'shutdown started');
      expect(shutdownStarted).toHaveLength(1);
      expect(shutdownStarted[0].signal).toBe('SIGTERM');

      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(summary.requestsServed).toBe(requests.length);
      expect(summary.uptimeMs).toBeGreaterThan(0);
      expect(summary.tasksSucceeded).toBe(0);
      expect(summary.tasksFailed).toBe(0);
      expect(summary.tasksLeftQueued).toBe(0);
      expect(summary.forced).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'server started line describes the model',
    async () => {
      const metadata = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'metadata.json'), 'utf8')) as LogRecord;

      const server = await startServer();
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      const { started } = server;
      expect(['tensorflow', 'wasm', 'cpu']).toContain(started.backend);
      expect(started.model).toBe(metadata.name);
      expect(started.modelVersion).toBe(metadata.version);
      expect(started.inputShape).toEqual([null, 28, 28, 1]);
      expect(started.address).toBe(`http://127.0.0.1:${server.port}`);
      expect(typeof started.startupMs).toBe('number');
      expect(started.startupMs).toBeGreaterThanOrEqual(0);
      expect(withMessage(readLog(server.logDir), 'server started')).toEqual([started]);
      expect(exit.code).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'SIGTERM lets an in-flight request finish',
    async () => {
      const server = await startServer();
      const image = digitThreeBase64();
      // 200 images keep the request busy for about a second, well past the signal.
      const payload = JSON.stringify({ instances: Array.from({ length: 200 }, () => ({ image })) });
      const request = http.request(`${server.baseUrl}/predict`, {
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), 'X-Request-Id': 'in-flight-predict' },
      });
      const responded = readResponse(request);
      const bodyWritten = new Promise((resolve) => request.once('finish', resolve));

      request.end(payload);
      await bodyWritten;
      // Gives the idle server time to accept the connection and parse the headers.
      await delay(50);
      server.child.kill('SIGTERM');
      const response = await responded;
      const exit = await server.waitForExit();

      expect(response.status).toBe(200);
      const body = JSON.parse(response.body) as LogRecord;
      expect(body.predictions).toHaveLength(200);
      expect(new Set(body.predictions.map((prediction: LogRecord) => prediction.label))).toEqual(new Set(['3']));
      expect(exit).toEqual({ code: 0, signal: null });

      const records = readLog(server.logDir);
      const shutdownIndex = records.findIndex((record) => record.message === 'shutdown started');
      const requestIndex = records.findIndex((record) => record.message === 'request completed' && record.requestId === 'in-flight-predict');
      expect(shutdownIndex).toBeGreaterThanOrEqual(0);
      // The request completed after shutdown began, so the signal really arrived while it ran.
      expect(requestIndex).toBeGreaterThan(shutdownIndex);
      expect(records[requestIndex].status).toBe(200);
      expect(records[requestIndex].aborted).toBe(false);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'second SIGTERM starts no second shutdown',
    async () => {
      const server = await startServer();
      // A request whose body is half sent keeps the first shutdown draining until the test sends
      // the rest. The 100 Continue shows that the server has read the request's headers.
      const body = JSON.stringify({ instances: [{ image: digitThreeBase64() }] });
      const upload = http.request(`${server.baseUrl}/predict`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Expect: '100-continue' },
        agent: false,
      });
      const reply = readResponse(upload);
      await new Promise<void>((resolve) => upload.once('continue', resolve));
      upload.write(body.slice(0, 100));

      server.child.kill('SIGTERM');
      // Sending the second signal only after the first was handled keeps the kernel from
      // merging the two into one pending signal.
      await server.waitForStdoutRecord((record) => record.message === 'shutdown started', 10_000);
      server.child.kill('SIGTERM');
      await server.waitForStdoutRecord((record) => record.message === 'shutdown already in progress; signal ignored', 10_000);
      upload.end(body.slice(100));
      const response = await reply;
      const exit = await server.waitForExit();

      expect(response.status).toBe(200);
      expect(exit).toEqual({ code: 0, signal: null });
      const records = readLog(server.logDir);
      expect(withMessage(records, 'shutdown started')).toHaveLength(1);
      expect(withMessage(records, 'shutdown already in progress; signal ignored')).toHaveLength(1);
      expect(withMessage(records, 'shutdown complete')).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'idle keep-alive connection does not delay exit',
    async () => {
      const server = await startServer();
      const agent = new http.Agent({ keepAlive: true });
      try {
        const response = await readResponse(http.get(`${server.baseUrl}/healthz`, { agent }));
        await delay(20);
        const idleSockets = Object.values(agent.freeSockets).flat();

        const signalledAt = Date.now();
        server.child.kill('SIGTERM');
        const exit = await server.waitForExit(10_000);
        const exitMs = Date.now() - signalledAt;

        expect(response.status).toBe(200);
        expect(response.headers.connection).toBe('keep-alive');
        expect(idleSockets).toHaveLength(1);
        expect(exit).toEqual({ code: 0, signal: null });
        // Node's default keepAliveTimeout is 5 s, so an exit that waited for the idle socket to
        // time out would take longer than this.
        expect(exitMs).toBeLessThan(2000);
      } finally {
        agent.destroy();
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'task interrupted by SIGTERM resumes after restart',
    async () => {
      const first = await startServer();
      const user = await signUp(first.baseUrl, 'restart-user');
      const { taskId, orderId } = await placeAsyncOrder(first.baseUrl, user.auth, ORDER_ITEMS);
      const before = await waitForTask(first.baseUrl, taskId, user.auth, isRunningWithItemsLeft);

      first.child.kill('SIGTERM');
      const firstExit = await first.waitForExit();
      const firstLog = readLog(first.logDir);
      const summary = firstLog[firstLog.length - 1];
      const second = await startServer({ DATABASE_PATH: first.databasePath });
      const after = await waitForTask(second.baseUrl, taskId, user.auth, (task) => task.status === 'succeeded');
      const order = await getOrder(second.baseUrl, orderId, user.auth);

      expect(before.status).toBe('running');
      expect(before.progress.done).toBeLessThan(ORDER_ITEMS);
      expect(firstExit).toEqual({ code: 0, signal: null });
      expect(summary.message).toBe('shutdown complete');
      expect(summary.tasksLeftQueued).toBeGreaterThanOrEqual(1);
      expect(withMessage(firstLog, 'task interrupted by the shutdown; requeued').map((record) => record.taskId)).toEqual([taskId]);
      expect(second.started.tasksPending).toBeGreaterThanOrEqual(1);
      expect(after.id).toBe(taskId);
      expect(after.progress).toEqual({ done: ORDER_ITEMS, total: ORDER_ITEMS });
      expect(order.status).toBe('completed');
      expect(order.items).toHaveLength(ORDER_ITEMS);
      expect(order.items.filter((item: LogRecord) => item.status !== 'classified')).toEqual([]);
      expect(order.bill.items).toBe(ORDER_ITEMS);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'task killed by SIGKILL resumes after restart',
    async () => {
      const first = await startServer();
      const user = await signUp(first.baseUrl, 'crash-user');
      const { taskId, orderId } = await placeAsyncOrder(first.baseUrl, user.auth, ORDER_ITEMS);
      const before = await waitForTask(first.baseUrl, taskId, user.auth, isRunningWithItemsLeft);

      first.child.kill('SIGKILL');
      const firstExit = await first.waitForExit();
      const second = await startServer({ DATABASE_PATH: first.databasePath });
      const after = await waitForTask(second.baseUrl, taskId, user.auth, (task) => task.status === 'succeeded');
      const order = await getOrder(second.baseUrl, orderId, user.auth);

      expect(before.status).toBe('running');
      expect(before.progress.done).toBeLessThan(ORDER_ITEMS);
      expect(firstExit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(second.started.tasksPending).toBeGreaterThanOrEqual(1);
      expect(after.id).toBe(taskId);
      expect(after.progress).toEqual({ done: ORDER_ITEMS, total: ORDER_ITEMS });
      expect(order.status).toBe('completed');
      expect(order.items).toHaveLength(ORDER_ITEMS);
      expect(order.items.filter((item: LogRecord) => item.status !== 'classified')).toEqual([]);
      expect(order.bill.items).toBe(ORDER_ITEMS);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'SIGTERM to npm start stops the server',
    async () => {
      // No update check: it would ask the npm registry.
      const server = await spawnServer({ npm_config_update_notifier: 'false' }, ['npm', 'start']);
      const npmExited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
      const starting = await server.waitForStdoutRecord((record) => record.message === 'server starting', NPM_START_TIMEOUT_MS);
      await server.waitForStdoutRecord((record) => record.message === 'server started', NPM_START_TIMEOUT_MS);

      server.child.kill('SIGTERM');
      const npmCode = await npmExited;
      const serverLeftRunning = isRunning(starting.pid);
      // The afterEach hook stops only the npm process, so a server it left behind is killed here.
      if (serverLeftRunning) process.kill(starting.pid, 'SIGKILL');
      await server.waitForExit();
      const records = readLog(server.logDir);

      expect(serverLeftRunning).toBe(false);
      expect(npmCode).toBe(0);
      const summaries = withMessage(records, 'shutdown complete');
      expect(summaries).toHaveLength(1);
      expect(summaries[0]).toMatchObject({ signal: 'SIGTERM', forced: false });
    },
    NPM_START_TIMEOUT_MS + TEST_TIMEOUT_MS,
  );
});
