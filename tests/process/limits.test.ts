import http from 'node:http';
import net from 'node:net';
import { parseMetrics, sampleValue } from '../helpers/metrics';
import { LogRecord, Reply, delay, digitThreeBase64, readLog, readResponse, requestOnNewConnection, signUp, startServer, stopLeftoverServers, withMessage } from './helpers';

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

  test.each([
    ['a byte every 200 ms', true],
    ['one byte, then nothing', false],
  ])(
    'body sent as %s gets 408',
    async (_pace, keepsSending) => {
      const server = await startServer(timeouts);
      const socket = await connect(server.port);
      const received = readUntilClosed(socket);

      const sentAt = Date.now();
      socket.write('POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      // One byte every 200 ms would take 20 s for the whole body.
      const trickle = setInterval(() => {
        if (keepsSending && !socket.destroyed) socket.write(' ');
      }, 200);
      const { text, closedAt } = await received;
      clearInterval(trickle);
      server.child.kill('SIGTERM');
      await server.waitForExit();

      expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(closedAt - sentAt).toBeGreaterThanOrEqual(1900);
      expect(closedAt - sentAt).toBeLessThan(5000);
      // The access line records the 408 that the client got, under the id that it got.
      const requestId = /^X-Request-Id: (.+)$/im.exec(text)?.[1].trim();
      expect(requestId).toBeDefined();
      const accessLines = withMessage(readLog(server.logDir), 'request completed').filter((record) => record.path === '/users');
      expect(accessLines).toHaveLength(1);
      expect(accessLines[0]).toMatchObject({ method: 'POST', status: 408, requestId });
    },
    TEST_TIMEOUT_MS,
  );

  test.each([
    ['/users', false],
    ['/orders', true],
  ])(
    'body sent after a 408 to POST %s is not carried out',
    async (path, needsToken) => {
      const server = await startServer(timeouts);
      const auth = needsToken ? (await signUp(server.baseUrl, 'orders_after_timeout')).auth : null;
      const body = path === '/users' ? JSON.stringify({ username: 'signed_up_after_timeout' }) : JSON.stringify({ items: [{ image: digitThreeBase64() }] });
      const head =
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
        (auth ? `Authorization: ${auth}\r\n` : '') +
        `\r\n${body.slice(0, 1)}`;

      const response = await sendRestAfterResponse(server.port, head, body.slice(1));
      const retry =
        path === '/users'
          ? await requestOnNewConnection(`${server.baseUrl}/users`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
          : await requestOnNewConnection(`${server.baseUrl}/orders`, { headers: { Authorization: auth! } });
      const metrics = await requestOnNewConnection(`${server.baseUrl}/metrics`);
      server.child.kill('SIGTERM');
      await server.waitForExit();
      const records = readLog(server.logDir);

      const problem = JSON.parse(response.body);
      expect(response.status).toBe(408);
      expect(response.headers['x-request-id']).toBe(problem.requestId);
      expect(problem.instance).toBe(path);
      expect(problem.detail).toContain('REQUEST_TIMEOUT_MS');
      // Created nothing: the username is still free, and the caller has no order.
      if (path === '/users') expect(retry.status).toBe(201);
      else expect(JSON.parse(retry.body).total).toBe(0);

      const accessLines = withMessage(records, 'request completed').filter((record) => record.requestId === problem.requestId);
      expect(accessLines).toHaveLength(1);
      expect(accessLines[0]).toMatchObject({ method: 'POST', path, status: 408 });
      const timeoutLines = withMessage(records, 'request timed out');
      expect(timeoutLines).toHaveLength(1);
      expect(timeoutLines[0]).toMatchObject({ method: 'POST', path, requestId: problem.requestId, status: 408 });
      expect(sampleValue(parseMetrics(metrics.body), 'inferline_http_request_duration_seconds_count', { method: 'POST', route: path, status: '408' })).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'headers sent after a 408 never reach the app',
    async () => {
      const server = await startServer(timeouts);
      const body = JSON.stringify({ username: 'headers_after_timeout' });

      const response = await sendRestAfterResponse(
        server.port,
        'POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\n',
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      const retry = await requestOnNewConnection(`${server.baseUrl}/users`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'sign-up-retry' },
        body,
      });
      const metrics = await requestOnNewConnection(`${server.baseUrl}/metrics`);
      server.child.kill('SIGTERM');
      await server.waitForExit();
      const records = readLog(server.logDir);

      const problem = JSON.parse(response.body);
      expect(response.status).toBe(408);
      expect(response.headers['x-request-id']).toBe(problem.requestId);
      expect(problem.detail).toContain('HEADERS_TIMEOUT_MS');
      // The request line never reached the app, so no path is known.
      expect(problem).not.toHaveProperty('instance');
      expect(retry.status).toBe(201);
      const signUps = withMessage(records, 'request completed').filter((record) => record.method === 'POST' && record.path === '/users');
      expect(signUps.map((record) => record.requestId)).toEqual(['sign-up-retry']);
      expect(withMessage(records, 'request timed out').map((record) => record.requestId)).toEqual([problem.requestId]);
      expect(sampleValue(parseMetrics(metrics.body), 'inferline_http_client_errors_total', { status: '408' })).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );
});

/** A response read from a raw socket. */
interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses one HTTP/1.1 response with a Content-Length, or returns null while it is incomplete. */
function parseRawResponse(text: string): RawResponse | null {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd === -1) return null;
  const [statusLine, ...headerLines] = text.slice(0, headEnd).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = text.slice(headEnd + 4);
  if (Buffer.byteLength(body) < Number(headers['content-length'])) return null;
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * Sends `head` on a new connection, waits for the server's response, then sends `rest`, as a
 * client that ignores the response would, and closes the connection 500 ms later. The connection
 * stays open for writing after the server ends its side, so `rest` reaches a server that still reads.
 */
async function sendRestAfterResponse(port: number, head: string, rest: string): Promise<RawResponse> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  let text = '';
  const response = new Promise<RawResponse>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const parsed = parseRawResponse(text);
      if (parsed) resolve(parsed);
    });
    socket.once('close', () => reject(new Error(`connection closed before a whole response arrived: ${JSON.stringify(text)}`)));
  });

  socket.write(head);
  const parsed = await response;
  socket.write(rest);
  // Time for a request that the server still reads to reach its route.
  await delay(500);
  socket.destroy();
  return parsed;
}
