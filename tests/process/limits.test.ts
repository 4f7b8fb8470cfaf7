import http from 'node:http';
import net from 'node:net';
import { LogRecord, Reply, delay, readLog, readResponse, requestOnNewConnection, signUp, startServer, stopLeftoverServers, withMessage } from './helpers';

// A primary and two workers start in about 3 s when the machine is idle.
const TEST_TIMEOUT_MS = 120_000;

const CLUSTER = { WORKERS: '2' };

// A /predict body of one blank 28 × 28 digit.
const BLANK_DIGIT_BODY = JSON.stringify({ instances: [{ pixels: Array.from({ length: 28 }, () => new Array(28).fill(0)) }] });

afterEach(stopLeftoverServers);

/** Worker ids of the access lines of the given requests. */
function workersOf(records: LogRecord[], requestIds: string[]): Set<number> {
  return new Set(withMessage(records, 'request completed').filter((record) => requestIds.includes(record.requestId)).map((record) => record.workerId as number));
}

/** Returns the `r` (remaining requests) of a response's draft-8 RateLimit header, or NaN without one. */
function remainingOf(reply: Reply): number {
  return Number(/; r=(\d+);/.exec(String(reply.headers.ratelimit))?.[1]);
}

describe('limits shared by two workers', () => {
  test(
    'one sign-up limit for the cluster',
    async () => {
      const server = await startServer({ ...CLUSTER, SIGN_UP_RATE_LIMIT: '4' });
      const requestIds = Array.from({ length: 8 }, (_, index) => `shared-limit-${index}`);

      // Each request on a new connection, which the primary hands to the workers in turn.
      const replies = [];
      for (const [index, requestId] of requestIds.entries()) {
        replies.push(
          await requestOnNewConnection(`${server.baseUrl}/users`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-Request-Id': requestId },
            body: JSON.stringify({ username: `cluster_user_${index}` }),
          }),
        );
      }
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(replies.map((reply) => reply.status)).toEqual([201, 201, 201, 201, 429, 429, 429, 429]);
      expect(replies[7].headers['ratelimit-policy']).toMatch(/^"sign-up"; q=4; w=3600;/);
      expect(workersOf(readLog(server.logDir), requestIds).size).toBe(2);
      expect(exit).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'exact predict limit over many connections',
    async () => {
      const limit = 25;
      const server = await startServer({ ...CLUSTER, PREDICT_RATE_LIMIT: String(limit) });
      const requestIds = Array.from({ length: 100 }, (_, index) => `spread-${index}`);

      // Waves of 10 concurrent requests, each on a new connection, so that both workers admit
      // requests of the one client and race for its grants.
      const replies: Reply[] = [];
      for (let wave = 0; wave < 10; wave++) {
        const waveIds = requestIds.slice(wave * 10, wave * 10 + 10);
        const sent = waveIds.map((requestId) =>
          requestOnNewConnection(`${server.baseUrl}/predict`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'X-Request-Id': requestId },
            body: BLANK_DIGIT_BODY,
          }),
        );
        replies.push(...(await Promise.all(sent)));
      }
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();
      const admitted = replies.filter((reply) => reply.status === 200);
      const rejected = replies.filter((reply) => reply.status === 429);
      const admittedIds = requestIds.filter((_, index) => replies[index].status === 200);

      expect(admitted).toHaveLength(limit);
      expect(rejected).toHaveLength(requestIds.length - limit);
      expect(workersOf(readLog(server.logDir), admittedIds).size).toBe(2);
      for (const reply of admitted) expect(remainingOf(reply)).toBeLessThan(limit);
      for (const reply of rejected) {
        expect(reply.headers.ratelimit).toMatch(/^"predict"; r=0; t=\d+$/);
        expect(Number(reply.headers['retry-after'])).toBeGreaterThan(0);
      }
      expect(exit).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'silent primary gives 503',
    async () => {
      const server = await startServer(CLUSTER);
      // The primary hands new connections to the workers, so while it is stopped only a connection
      // opened before can reach a worker.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const send = (method: string, url: string, body?: string) => {
        const request = http.request(url, { method, agent, headers: body ? { 'Content-Type': 'application/json' } : {} });
        const reply = readResponse(request);
        request.end(body);
        return reply;
      };
      let reply: Reply;
      let elapsedMs: number;
      try {
        await send('GET', `${server.baseUrl}/healthz`);
        server.child.kill('SIGSTOP');
        const sentAt = Date.now();
        reply = await send('POST', `${server.baseUrl}/predict`, BLANK_DIGIT_BODY);
        elapsedMs = Date.now() - sentAt;
      } finally {
        server.child.kill('SIGCONT');
        agent.destroy();
      }
      // Gives the primary time to handle the request that the worker stopped waiting for.
      await delay(1000);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();
      const lateReplies = withMessage(readLog(server.logDir), 'rate limit reply arrived after its timeout, so its grants stay unused until the window ends');

      expect(reply.status).toBe(503);
      expect(reply.headers['retry-after']).toBe('1');
      expect(JSON.parse(reply.body).detail).toMatch(/the rate limit of "predict" could not be checked: the cluster primary did not reply within 2000 ms/);
      expect(elapsedMs).toBeGreaterThanOrEqual(1900);
      expect(elapsedMs).toBeLessThan(6000);
      expect(lateReplies).toHaveLength(1);
      expect(exit).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'rotated token rejected by every worker',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster_rotator');

      const rotated = await requestOnNewConnection(`${server.baseUrl}/users/me/token`, { method: 'POST', headers: { Authorization: user.auth } });
      const newAuth = `Bearer ${JSON.parse(rotated.body).token}`;
      const oldIds = Array.from({ length: 4 }, (_, index) => `old-token-${index}`);
      const newIds = Array.from({ length: 4 }, (_, index) => `new-token-${index}`);
      const withOld = [];
      for (const requestId of oldIds) {
        withOld.push(await requestOnNewConnection(`${server.baseUrl}/users/me`, { headers: { Authorization: user.auth, 'X-Request-Id': requestId } }));
      }
      const withNew = [];
      for (const requestId of newIds) {
        withNew.push(await requestOnNewConnection(`${server.baseUrl}/users/me`, { headers: { Authorization: newAuth, 'X-Request-Id': requestId } }));
      }
      server.child.kill('SIGTERM');
      await server.waitForExit();
      const records = readLog(server.logDir);

      expect(rotated.status).toBe(200);
      expect(withOld.map((reply) => reply.status)).toEqual([401, 401, 401, 401]);
      expect(withNew.map((reply) => reply.status)).toEqual([200, 200, 200, 200]);
      expect(workersOf(records, oldIds).size).toBe(2);
      expect(workersOf(records, newIds).size).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'deleted account rejected by every worker',
    async () => {
      const server = await startServer(CLUSTER);
      const user = await signUp(server.baseUrl, 'cluster_leaver');

      const deleted = await requestOnNewConnection(`${server.baseUrl}/users/me`, { method: 'DELETE', headers: { Authorization: user.auth } });
      const requestIds = Array.from({ length: 4 }, (_, index) => `deleted-account-${index}`);
      const replies = [];
      for (const requestId of requestIds) {
        replies.push(await requestOnNewConnection(`${server.baseUrl}/orders`, { headers: { Authorization: user.auth, 'X-Request-Id': requestId } }));
      }
      server.child.kill('SIGTERM');
      await server.waitForExit();

      expect(deleted.status).toBe(204);
      expect(replies.map((reply) => reply.status)).toEqual([401, 401, 401, 401]);
      expect(workersOf(readLog(server.logDir), requestIds).size).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );
});

/** Everything a raw socket receives until the server closes it, and when that happened. */
function readUntilClosed(socket: net.Socket): Promise<{ text: string; closedAt: number }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), closedAt: Date.now() }));
    socket.once('error', () => undefined);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('slow clients', () => {
  const timeouts = { HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000' };

  test(
    'headers sent too slowly get 408',
    async () => {
      const server = await startServer(timeouts);
      const socket = await connect(server.port);
      const received = readUntilClosed(socket);

      const sentAt = Date.now();
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      // The other clients are served meanwhile.
      const health = await requestOnNewConnection(`${server.baseUrl}/healthz`);
      const { text, closedAt } = await received;
      server.child.kill('SIGTERM');
      await server.waitForExit();

      expect(health.status).toBe(200);
      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(text).toContain('Content-Type: application/problem+json');
      expect(text).toContain('HEADERS_TIMEOUT_MS');
      // Node checks the timeouts once a second, so the close comes 1 to 2 s after the headers began.
      expect(closedAt - sentAt).toBeGreaterThanOrEqual(900);
      expect(closedAt - sentAt).toBeLessThan(4000);
      expect(withMessage(readLog(server.logDir), 'request timed out')).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'body sent too slowly gets 408',
    async () => {
      const server = await startServer(timeouts);
      const socket = await connect(server.port);
      const received = readUntilClosed(socket);

      const sentAt = Date.now();
      socket.write('POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      // One byte every 200 ms would take 20 s for the whole body.
      const trickle = setInterval(() => {
        if (!socket.destroyed) socket.write(' ');
      }, 200);
      const { text, closedAt } = await received;
      clearInterval(trickle);
      server.child.kill('SIGTERM');
      await server.waitForExit();

      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(closedAt - sentAt).toBeGreaterThanOrEqual(1900);
      expect(closedAt - sentAt).toBeLessThan(5000);
    },
    TEST_TIMEOUT_MS,
  );
});
