import http from 'node:http';
import Database from 'better-sqlite3';
import {
  LogRecord,
  checkedFetch,
  delay,
  digitThreeBase64,
  holdDatabaseLock,
  readLog,
  recordReceived,
  requestOnNewConnection,
  signUp,
  startServer,
  stopLeftoverServers,
  withMessage,
} from './helpers';

// Faults that the service must survive without losing an accepted order or request. The kill -9
// during a task, the second SIGTERM and the idle keep-alive connection are in lifecycle.test.ts.

const TEST_TIMEOUT_MS = 90_000;

afterEach(stopLeftoverServers);

/** Runs PRAGMA integrity_check on a database file and returns its rows. */
function checkIntegrity(databasePath: string): string[] {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    return (db.pragma('integrity_check') as { integrity_check: string }[]).map((row) => row.integrity_check);
  } finally {
    db.close();
  }
}

describe('kill -9 after an order', () => {
  test(
    'order survives, database intact',
    async () => {
      const first = await startServer();
      const user = await signUp(first.baseUrl, 'killed_after_order');
      const placed = await checkedFetch(`${first.baseUrl}/orders`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: user.auth },
        body: JSON.stringify({ items: [{ image: digitThreeBase64() }], note: 'placed right before the kill' }),
      });
      const body = (await placed.json()) as LogRecord;
      first.child.kill('SIGKILL');
      const firstExit = await first.waitForExit();

      const second = await startServer({ DATABASE_PATH: first.databasePath });
      const read = await checkedFetch(`${second.baseUrl}/orders/${body.id}`, { headers: { Authorization: user.auth } });
      const order = (await read.json()) as LogRecord;
      second.child.kill('SIGTERM');
      await second.waitForExit();

      expect(placed.status).toBe(201);
      expect(firstExit.signal).toBe('SIGKILL');
      expect(read.status).toBe(200);
      expect(order.status).toBe('completed');
      expect(order.note).toBe('placed right before the kill');
      expect(order.items.map((item: LogRecord) => item.label)).toEqual(['3']);
      expect(order.bill.items).toBe(1);
      expect(checkIntegrity(first.databasePath)).toEqual(['ok']);
    },
    TEST_TIMEOUT_MS,
  );
});

interface Outcome {
  requestId: string;
  status: number | null;
  complete: boolean;
  error: string | null;
}

/**
 * Sends POST /predict on one keep-alive connection, one request after another, until `stop()`
 * returns true or a request fails. A response counts as complete when its body parses and contains
 * one prediction.
 */
async function sendUntilClosed(baseUrl: string, connection: number, body: string, stop: () => boolean): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const outcomes: Outcome[] = [];
  try {
    for (let sequence = 0; !stop(); sequence++) {
      const requestId = `drain-${connection}-${sequence}`;
      const outcome = await new Promise<Outcome>((resolve) => {
        const request = http.request(`${baseUrl}/predict`, {
          method: 'POST',
          agent,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestId },
        });
        request.once('error', (error) => resolve({ requestId, status: null, complete: false, error: (error as NodeJS.ErrnoException).code ?? error.message }));
        request.once('response', (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.once('error', (error) => resolve({ requestId, status: response.statusCode ?? 0, complete: false, error: error.message }));
          response.once('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            recordReceived('POST', `${baseUrl}/predict`, { status: response.statusCode ?? 0, headers: response.headers, body: text });
            let complete = false;
            try {
              complete = (JSON.parse(text) as LogRecord).predictions?.length === 1;
            } catch {
              complete = false;
            }
            resolve({ requestId, status: response.statusCode ?? 0, complete, error: null });
          });
        });
        request.end(body);
      });
      outcomes.push(outcome);
      if (outcome.error !== null) break;
    }
  } finally {
    agent.destroy();
  }
  return outcomes;
}

describe('SIGTERM under load', () => {
  test(
    '32 connections get full responses',
    async () => {
      // The test sends a few hundred predictions a second, more than the default limit of 600 a
      // minute allows. The limit has tests of its own, so this one raises it.
      const server = await startServer({ PREDICT_RATE_LIMIT: '100000' });
      const body = JSON.stringify({ instances: [{ image: digitThreeBase64() }] });
      let stopSending = false;

      const senders = Array.from({ length: 32 }, (_, connection) => sendUntilClosed(server.baseUrl, connection, body, () => stopSending));
      await delay(1000);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();
      stopSending = true;
      const outcomes = (await Promise.all(senders)).flat();

      const answered = outcomes.filter((outcome) => outcome.status !== null);
      const unanswered = outcomes.filter((outcome) => outcome.status === null);
      const records = readLog(server.logDir);
      const lines = withMessage(records, 'request completed').filter((record) => String(record.requestId).startsWith('drain-'));
      expect(exit).toEqual({ code: 0, signal: null });
      expect(answered.length).toBeGreaterThan(32);
      expect(answered.filter((outcome) => outcome.status !== 200 || !outcome.complete)).toEqual([]);
      // A request that got no response was never read: the server closed the connection first.
      expect(unanswered.filter((outcome) => !['ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(outcome.error ?? ''))).toEqual([]);
      expect(lines.map((line) => line.requestId).sort()).toEqual(answered.map((outcome) => outcome.requestId).sort());
      expect(lines.filter((line) => line.status !== 200 || line.aborted)).toEqual([]);
      // Requests completed after the shutdown began, so the signal arrived while they ran.
      const shutdownIndex = records.findIndex((record) => record.message === 'shutdown started');
      expect(records.slice(shutdownIndex).filter((record) => String(record.requestId).startsWith('drain-')).length).toBeGreaterThan(0);
      const summary = records[records.length - 1];
      expect(summary.message).toBe('shutdown complete');
      expect(summary.forced).toBe(false);
      expect(summary.requestsServed).toBe(lines.length);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('database write lock held by another process', () => {
  test(
    'lock of 2 s delays writes, fails none',
    async () => {
      const server = await startServer();
      const holder = await holdDatabaseLock(server.databasePath, 2000);
      const started = Date.now();

      const replies = await Promise.all(
        Array.from({ length: 4 }, (_, index) =>
          requestOnNewConnection(`${server.baseUrl}/users`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ username: `waited_${index}` }),
          }),
        ),
      );
      const elapsedMs = Date.now() - started;
      await holder.released;
      server.child.kill('SIGTERM');
      await server.waitForExit();

      expect(replies.map((reply) => reply.status)).toEqual([201, 201, 201, 201]);
      // The writes waited for the lock, which the other process held for 2 s from before they were sent.
      expect(elapsedMs).toBeGreaterThanOrEqual(1500);
      expect(readLog(server.logDir).filter((record) => record.status >= 500)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'lock past busy timeout is 503',
    async () => {
      const server = await startServer({ DATABASE_BUSY_TIMEOUT_MS: '300' });
      const user = await signUp(server.baseUrl, 'blocked_writer');
      const holder = await holdDatabaseLock(server.databasePath, 3000);

      const signUpReply = await requestOnNewConnection(`${server.baseUrl}/users`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'locked_out' }),
      });
      const rotateReply = await requestOnNewConnection(`${server.baseUrl}/users/me/token`, { method: 'POST', headers: { Authorization: user.auth } });
      const read = await requestOnNewConnection(`${server.baseUrl}/users/me`, { headers: { Authorization: user.auth } });
      await holder.released;
      const retry = await requestOnNewConnection(`${server.baseUrl}/users`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'locked_out' }),
      });
      server.child.kill('SIGTERM');
      await server.waitForExit();

      for (const reply of [signUpReply, rotateReply]) {
        expect(reply.status).toBe(503);
        expect(reply.headers['retry-after']).toBe('1');
        expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(reply.body).detail).toContain('DATABASE_BUSY_TIMEOUT_MS');
      }
      // Readers are not blocked: in WAL mode a write lock does not stop them.
      expect(read.status).toBe(200);
      expect(retry.status).toBe(201);
      expect(readLog(server.logDir).filter((record) => record.status === 500)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
