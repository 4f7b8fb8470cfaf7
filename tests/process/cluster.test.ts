import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { findSamples, parseMetrics, sampleValue } from '../helpers/metrics';
import {
  checkedFetch,
  delay,
  digitThreeBase64,
  recordReceived,
  LogRecord,
  MODEL_DIR,
  isJson,
  isRunningWithItemsLeft,
  placeAsyncOrder,
  readLog,
  readLogLines,
  Reply,
  requestOnNewConnection,
  signUp,
  spawnServer,
  startServer,
  stopLeftoverServers,
  waitForTask,
  withMessage,
} from './helpers';

// Each test starts a primary and two workers (each loads the model) and may wait for a task.
const TEST_TIMEOUT_MS = 120_000;
const TASK_TIMEOUT_MS = 60_000;

// Large enough that a task still has items left when the test acts on it; lifecycle.test.ts uses
// the same size for the same reason.
const ORDER_ITEMS = 600;

const CLUSTER = { WORKERS: '2' };

async function getOrder(baseUrl: string, orderId: string, auth: string): Promise<LogRecord> {
  const response = await checkedFetch(`${baseUrl}/orders/${orderId}`, { headers: { Authorization: auth } });
  if (response.status !== 200) throw new Error(`GET /orders/${orderId} returned ${response.status}: ${await response.text()}`);
  return (await response.json()) as LogRecord;
}

/** Reads which process has claimed a task, straight from the server's database. */
function readClaimedByPid(databasePath: string, taskId: string): number | null {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT claimed_by_pid FROM tasks WHERE id = ?').get(taskId) as { claimed_by_pid: number | null } | undefined;
    return row?.claimed_by_pid ?? null;
  } finally {
    db.close();
  }
}

function isWorkerLine(record: LogRecord): boolean {
  return record.workerId !== undefined;
}

describe('cluster of two workers', () => {
  afterEach(stopLeftoverServers);

  test(
    'requests reach both workers; SIGTERM exits 0',
    async () => {
      const server = await startServer(CLUSTER);
      const requestIds = Array.from({ length: 20 }, (_, i) => `cluster-healthz-${i}`);

      const statuses: number[] = [];
      for (const requestId of requestIds) {
        const reply = await requestOnNewConnection(`${server.baseUrl}/healthz`, { headers: { 'X-Request-Id': requestId } });
        statuses.push(reply.status);
      }
      const unknown = await requestOnNewConnection(`${server.baseUrl}/no-such-route`, { headers: { 'X-Request-Id': 'cluster-unknown-route' } });
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(statuses).toEqual(requestIds.map(() => 200));
      expect(unknown.status).toBe(404);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(server.started.workers).toBe(2);
      expect(server.started.address).toBe(`http://127.0.0.1:${server.port}`);
      expect(server.started.inputShape).toEqual([null, 28, 28, 1]);
      expect(typeof server.started.backend).toBe('string');
      expect(typeof server.started.model).toBe('string');
      expect(typeof server.started.modelVersion).toBe('string');
      expect(server.started.startupMs).toBeGreaterThan(0);

      const lines = readLogLines(server.logDir);
      expect(lines.filter((line) => !isJson(line))).toEqual([]);
      expect(server.stdoutLines.filter((line) => !isJson(line))).toEqual([]);

      const records = readLog(server.logDir);
      const completed = withMessage(records, 'request completed');
      expect(completed).toHaveLength(requestIds.length + 1);
      for (const requestId of [...requestIds, 'cluster-unknown-route']) {
        expect(completed.filter((record) => record.requestId === requestId)).toHaveLength(1);
      }
      expect(completed.find((record) => record.requestId === 'cluster-unknown-route')?.status).toBe(404);
      expect(new Set(completed.map((record) => record.workerId)).size).toBe(2);
      expect(new Set(completed.map((record) => record.pid)).size).toBe(2);
      expect(completed.filter((record) => !isWorkerLine(record))).toEqual([]);

      expect(withMessage(records, 'server started')).toHaveLength(1);
      expect(withMessage(records, 'worker started')).toHaveLength(2);
      expect(withMessage(records, 'worker stopped')).toHaveLength(2);
      expect(withMessage(records, 'shutdown started').filter((record) => !isWorkerLine(record))).toHaveLength(1);

      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(isWorkerLine(summary)).toBe(false);
      expect(summary.signal).toBe('SIGTERM');
      expect(summary.workers).toBe(2);
      expect(summary.forced).toBe(false);
      expect(summary.requestsServed).toBe(requestIds.length + 1);
      expect(summary.tasksSucceeded).toBe(0);
      expect(summary.tasksFailed).toBe(0);
      expect(summary.tasksLeftQueued).toBe(0);
      expect(summary.workersLost).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'task queued through one worker is readable through any',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster-reader');
      const { taskId, orderId } = await placeAsyncOrder(server.baseUrl, user.auth, 40);
      const finished = await waitForTask(server.baseUrl, taskId, user.auth, (task) => task.status === 'succeeded', TASK_TIMEOUT_MS);

      const readIds = Array.from({ length: 10 }, (_, i) => `cluster-read-task-${i}`);
      const reads: Reply[] = [];
      for (const requestId of readIds) {
        reads.push(await requestOnNewConnection(`${server.baseUrl}/tasks/${taskId}`, { headers: { Authorization: user.auth, 'X-Request-Id': requestId } }));
      }
      const order = await getOrder(server.baseUrl, orderId, user.auth);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(finished.progress).toEqual({ done: 40, total: 40 });
      expect(reads.map((read) => read.status)).toEqual(readIds.map(() => 200));
      expect(reads.map((read) => JSON.parse(read.body))).toEqual(readIds.map(() => finished));
      expect(order.status).toBe('completed');
      expect(order.bill.items).toBe(40);
      expect(exit).toEqual({ code: 0, signal: null });

      const records = readLog(server.logDir);
      const readLines = withMessage(records, 'request completed').filter((record) => readIds.includes(record.requestId));
      expect(new Set(readLines.map((record) => record.workerId)).size).toBe(2);
      expect(withMessage(records, 'task started').filter((record) => record.taskId === taskId)).toHaveLength(1);
      expect(withMessage(records, 'task succeeded').filter((record) => record.taskId === taskId)).toHaveLength(1);
      expect(records[records.length - 1].tasksSucceeded).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'one scrape adds up the metrics of both workers',
    async () => {
      const server = await startServer(CLUSTER);
      const healthIds = Array.from({ length: 10 }, (_, i) => `cluster-metrics-healthz-${i}`);
      for (const requestId of healthIds) await requestOnNewConnection(`${server.baseUrl}/healthz`, { headers: { 'X-Request-Id': requestId } });
      const user = await signUp(server.baseUrl, 'cluster-metrics');
      const { taskId } = await placeAsyncOrder(server.baseUrl, user.auth, 40);
      await waitForTask(server.baseUrl, taskId, user.auth, (task) => task.status === 'succeeded', TASK_TIMEOUT_MS);

      const scrapeIds = Array.from({ length: 4 }, (_, i) => `cluster-metrics-scrape-${i}`);
      const scrapes: Reply[] = [];
      for (const requestId of scrapeIds) scrapes.push(await requestOnNewConnection(`${server.baseUrl}/metrics`, { headers: { 'X-Request-Id': requestId } }));
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(exit).toEqual({ code: 0, signal: null });
      expect(scrapes.map((scrape) => scrape.status)).toEqual(scrapeIds.map(() => 200));
      const records = withMessage(readLog(server.logDir), 'request completed');
      const workersOf = (ids: string[]) => new Set(records.filter((record) => ids.includes(record.requestId)).map((record) => record.workerId));
      expect(workersOf(healthIds).size).toBe(2);
      expect(workersOf(scrapeIds).size).toBe(2);

      for (const [index, scrape] of scrapes.entries()) {
        const samples = parseMetrics(scrape.body);
        const requests = (route: string) => sampleValue(samples, 'inferline_http_request_duration_seconds_count', { method: 'GET', route, status: '200' });
        expect({ index, healthz: requests('/healthz'), metrics: requests('/metrics') ?? 0 }).toEqual({ index, healthz: 10, metrics: index });
        expect(sampleValue(samples, 'inferline_tasks', { status: 'succeeded' })).toBe(1);
        expect(sampleValue(samples, 'inferline_tasks', { status: 'queued' })).toBe(0);
        expect(findSamples(samples, 'inferline_model_info').map((sample) => sample.value)).toEqual([1]);
        expect(sampleValue(samples, 'inferline_inference_batch_size_sum')).toBe(40);
        expect(sampleValue(samples, 'inferline_queued_inputs')).toBe(0);
        expect(findSamples(samples, 'nodejs_version_info')).toHaveLength(1);
        expect(findSamples(samples, 'process_start_time_seconds')).toEqual([]);
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'idle worker takes a task while the other is busy',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster-two-tasks');
      const first = await placeAsyncOrder(server.baseUrl, user.auth, ORDER_ITEMS);
      await waitForTask(server.baseUrl, first.taskId, user.auth, isRunningWithItemsLeft, TASK_TIMEOUT_MS);
      const second = await placeAsyncOrder(server.baseUrl, user.auth, 40);

      const secondDone = await waitForTask(server.baseUrl, second.taskId, user.auth, (task) => task.status === 'succeeded', TASK_TIMEOUT_MS);
      const firstAtThatTime = await waitForTask(server.baseUrl, first.taskId, user.auth, () => true);
      await waitForTask(server.baseUrl, first.taskId, user.auth, (task) => task.status === 'succeeded', TASK_TIMEOUT_MS);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(secondDone.progress).toEqual({ done: 40, total: 40 });
      // The small task finished while the large one still ran, so it did not wait in the queue.
      expect(firstAtThatTime.status).toBe('running');
      expect(exit).toEqual({ code: 0, signal: null });
      const started = withMessage(readLog(server.logDir), 'task started');
      const firstStarted = started.filter((record) => record.taskId === first.taskId);
      const secondStarted = started.filter((record) => record.taskId === second.taskId);
      expect(firstStarted).toHaveLength(1);
      expect(secondStarted).toHaveLength(1);
      expect(secondStarted[0].workerId).not.toBe(firstStarted[0].workerId);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'killed worker is replaced; its task finishes',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster-crash');
      const { taskId, orderId } = await placeAsyncOrder(server.baseUrl, user.auth, ORDER_ITEMS);
      // Some items are classified before the kill, so the next worker has to resume, not restart.
      const before = await waitForTask(server.baseUrl, taskId, user.auth, (task) => isRunningWithItemsLeft(task) && task.progress.done > 0, TASK_TIMEOUT_MS);
      const taskStarted = await server.waitForStdoutRecord((record) => record.message === 'task started' && record.taskId === taskId);
      const claimedByPid = readClaimedByPid(server.databasePath, taskId);

      process.kill(taskStarted.pid, 'SIGKILL');
      const workerExited = await server.waitForStdoutRecord((record) => record.message === 'worker exited');
      const released = await server.waitForStdoutRecord((record) => record.message === 'tasks of a dead worker put back in the queue');
      const replacement = await server.waitForStdoutRecord((record) => record.message === 'worker started' && record.workerId > 2);
      const after = await waitForTask(server.baseUrl, taskId, user.auth, (task) => task.status === 'succeeded', TASK_TIMEOUT_MS);
      const order = await getOrder(server.baseUrl, orderId, user.auth);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(before.progress.done).toBeGreaterThan(0);
      expect(before.progress.done).toBeLessThan(ORDER_ITEMS);
      expect(claimedByPid).toBe(taskStarted.pid);
      expect(workerExited.workerId).toBe(taskStarted.workerId);
      expect(workerExited.pid).toBe(taskStarted.pid);
      expect(workerExited.signal).toBe('SIGKILL');
      expect(workerExited.level).toBe('error');
      expect(released.taskIds).toEqual([taskId]);
      expect(replacement.pid).not.toBe(taskStarted.pid);
      expect(after.id).toBe(taskId);
      expect(after.progress).toEqual({ done: ORDER_ITEMS, total: ORDER_ITEMS });
      expect(order.status).toBe('completed');
      expect(order.items.map((item: LogRecord) => item.index)).toEqual(Array.from({ length: ORDER_ITEMS }, (_, i) => i));
      expect(order.items.filter((item: LogRecord) => item.status !== 'classified')).toEqual([]);
      expect(order.bill.items).toBe(ORDER_ITEMS);
      expect(exit).toEqual({ code: 0, signal: null });

      // Two claims of the task, the second after the first worker's death: no two workers ran it
      // at once.
      const records = readLog(server.logDir);
      const startedIndexes = records.flatMap((record, index) => (record.message === 'task started' && record.taskId === taskId ? [index] : []));
      const exitedIndex = records.findIndex((record) => record.message === 'worker exited');
      expect(startedIndexes).toHaveLength(2);
      expect(records[startedIndexes[0]].pid).toBe(taskStarted.pid);
      expect(records[startedIndexes[1]].pid).not.toBe(taskStarted.pid);
      expect(startedIndexes[1]).toBeGreaterThan(exitedIndex);
      expect(records[startedIndexes[1]].done).toBeGreaterThanOrEqual(before.progress.done);
      expect(records[startedIndexes[1]].done).toBeLessThan(ORDER_ITEMS);
      expect(withMessage(records, 'task succeeded').filter((record) => record.taskId === taskId)).toHaveLength(1);

      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(summary.workers).toBe(2);
      expect(summary.workersLost).toBe(1);
      expect(summary.tasksLeftQueued).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'worker killed during a connection hand-off is replaced',
    async () => {
      const server = await startServer(CLUSTER);
      const first = await server.waitForStdoutRecord((record) => record.message === 'worker started' && record.workerId === 1);

      // A stopped worker never acknowledges the connections that the primary hands to it, and
      // Node postpones the worker's 'disconnect' until it does.
      process.kill(first.pid, 'SIGSTOP');
      const clients = Array.from({ length: 6 }, () => {
        const request = http.get(`${server.baseUrl}/healthz`, { agent: false, timeout: 10_000 });
        request.on('timeout', () => request.destroy());
        return new Promise<void>((resolve) => {
          request.once('response', (response) => response.resume().once('end', resolve));
          request.once('error', () => resolve());
        });
      });
      await delay(300);
      process.kill(first.pid, 'SIGKILL');
      const exited = await server.waitForStdoutRecord((record) => record.message === 'worker exited' && record.pid === first.pid, 10_000);
      const replacement = await server.waitForStdoutRecord((record) => record.message === 'worker started' && record.workerId === 3);
      const health = await checkedFetch(`${server.baseUrl}/healthz`);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();
      await Promise.all(clients);

      expect(exited.signal).toBe('SIGKILL');
      expect(replacement.pid).not.toBe(first.pid);
      expect(health.status).toBe(200);
      expect(exit).toEqual({ code: 0, signal: null });
      const records = readLog(server.logDir);
      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(summary.workersLost).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'task whose workers keep dying fails',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster-poison');
      const { taskId, orderId } = await placeAsyncOrder(server.baseUrl, user.auth, ORDER_ITEMS);

      const killedPids: number[] = [];
      for (let death = 1; death <= 3; death++) {
        const started = await server.waitForStdoutRecord(
          (record) => record.message === 'task started' && record.taskId === taskId && !killedPids.includes(record.pid),
          TASK_TIMEOUT_MS,
        );
        process.kill(started.pid, 'SIGKILL');
        killedPids.push(started.pid);
        await server.waitForStdoutRecord((record) => record.message === 'worker exited' && record.pid === started.pid);
      }
      // Worker ids count up from 1, so the third replacement is worker 5. Until a replacement
      // listens, every worker may be gone, and connections are refused.
      await server.waitForStdoutRecord((record) => record.message === 'worker started' && record.workerId === 5);
      const failed = await waitForTask(server.baseUrl, taskId, user.auth, (task) => task.status === 'failed', TASK_TIMEOUT_MS);
      const order = await getOrder(server.baseUrl, orderId, user.auth);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(new Set(killedPids).size).toBe(3);
      expect(failed.error.message).toContain('exited 3 times');
      expect(order.status).toBe('failed');
      expect(order.bill.items).toBe(0);
      expect(exit).toEqual({ code: 0, signal: null });
      const records = readLog(server.logDir);
      expect(withMessage(records, 'tasks of a dead worker put back in the queue')).toHaveLength(2);
      expect(withMessage(records, 'task failed').filter((record) => record.taskId === taskId)).toHaveLength(1);
      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(summary.workersLost).toBe(3);
      expect(summary.tasksFailed).toBe(1);
      expect(summary.tasksLeftQueued).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'second SIGTERM starts no second shutdown',
    async () => {
      // A chunk of 100 images takes about half a second, so the workers are still draining when
      // the second signal arrives.
      const server = await startServer({ ...CLUSTER, TASK_CHUNK_SIZE: '100' });
      const user = await signUp(server.baseUrl, 'cluster-second-signal');
      const { taskId } = await placeAsyncOrder(server.baseUrl, user.auth, ORDER_ITEMS);
      await waitForTask(server.baseUrl, taskId, user.auth, isRunningWithItemsLeft, TASK_TIMEOUT_MS);

      server.child.kill('SIGTERM');
      await server.waitForStdoutRecord((record) => record.message === 'shutdown started' && !isWorkerLine(record), 10_000);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(exit).toEqual({ code: 0, signal: null });
      const records = readLog(server.logDir);
      const primaryRecords = records.filter((record) => !isWorkerLine(record));
      expect(withMessage(primaryRecords, 'shutdown started')).toHaveLength(1);
      expect(withMessage(primaryRecords, 'shutdown already in progress; signal ignored')).toHaveLength(1);
      expect(withMessage(records, 'shutdown complete')).toHaveLength(1);
      expect(records[records.length - 1].message).toBe('shutdown complete');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'replacement that fails to start stops the cluster',
    async () => {
      // A copy of the model that the test removes once the first workers have loaded it.
      const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-cluster-model-'));
      for (const file of ['model.json', 'weights.bin', 'metadata.json']) fs.copyFileSync(path.join(MODEL_DIR, file), path.join(modelDir, file));
      try {
        const server = await startServer({ ...CLUSTER, MODEL_DIR: modelDir });
        const ready = await server.waitForStdoutRecord((record) => record.message === 'worker started');

        fs.rmSync(modelDir, { recursive: true, force: true });
        process.kill(ready.pid, 'SIGKILL');
        const exit = await server.waitForExit();

        const records = readLog(server.logDir);
        const errors = records.filter((record) => record.level === 'error');
        const summary = records[records.length - 1];
        expect(exit).toEqual({ code: 1, signal: null });
        expect(errors.map((record) => record.message)).toEqual(['worker exited', 'model could not be loaded']);
        expect(errors[1].error).toContain(modelDir);
        expect(errors[1].workerId).toBe(3);
        expect(summary.message).toBe('shutdown complete');
        expect(summary.workersLost).toBe(1);
        expect(withMessage(records, 'worker stopped')).toHaveLength(1);
      } finally {
        fs.rmSync(modelDir, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'worker startup failure exits 1',
    async () => {
      const missing = path.join(__dirname, 'no-such-model');
      const server = await spawnServer({ ...CLUSTER, MODEL_DIR: missing });
      const exit = await server.waitForExit();

      const output = [...server.stdoutLines, ...server.stderrLines];
      const records = readLog(server.logDir);
      const errors = records.filter((record) => record.level === 'error');
      expect(exit).toEqual({ code: 1, signal: null });
      expect(output.filter((line) => !isJson(line))).toEqual([]);
      expect(withMessage(records, 'server started')).toEqual([]);
      expect(errors).toHaveLength(1);
      expect(errors[0].message).toBe('model could not be loaded');
      expect(errors[0].error).toContain(missing);
      expect(typeof errors[0].workerId).toBe('number');
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'account deleted during its orders',
    async () => {
      const server = await startServer(CLUSTER);
      const image = digitThreeBase64();
      const orderStatuses: number[] = [];
      const deleteStatuses: number[] = [];

      // Each round deletes the account while eight orders, spread over both workers, are in flight.
      // A warm server finishes an order within 30 ms, so later rounds delete sooner.
      for (const [round, deleteAfterMs] of [30, 10, 3].entries()) {
        const user = await signUp(server.baseUrl, `cluster_leaver_${round}`);
        const orders = Array.from({ length: 8 }, () =>
          requestOnNewConnection(`${server.baseUrl}/orders`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: user.auth },
            body: JSON.stringify({ items: [{ image }] }),
          }),
        );
        await delay(deleteAfterMs);
        const deleted = await requestOnNewConnection(`${server.baseUrl}/users/me`, { method: 'DELETE', headers: { Authorization: user.auth } });
        deleteStatuses.push(deleted.status);
        orderStatuses.push(...(await Promise.all(orders)).map((reply) => reply.status));
      }
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(deleteStatuses).toEqual([204, 204, 204]);
      expect(orderStatuses).toHaveLength(24);
      expect(orderStatuses.filter((status) => status !== 201 && status !== 401)).toEqual([]);
      expect(readLog(server.logDir).filter((record) => record.status >= 500)).toEqual([]);
      expect(exit).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );
});
