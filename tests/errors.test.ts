import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import request from 'supertest';
import { LoadedModel, loadModel } from '../services/model';
import { selectBackend } from '../services/backend';
import { MODEL_DIR, TestApp, expectProblem, readLogLines, signUp, startTestApp } from './helpers/app';
import { fixture } from './helpers/images';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type LogLine = Record<string, unknown>;

/** Asserts that an error body is plain JSON: no HTML page and no stack frame. */
function expectNoLeak(response: request.Response): void {
  expect(response.text).not.toContain('<html');
  expect(response.text).not.toContain('    at ');
}

let barrierCount = 0;

/**
 * Returns the log lines once every line logged so far is on disk. The file is written
 * asynchronously, so this sends one more request and waits for its access line. Lines are appended
 * in order, so every earlier line is in the file by then.
 */
async function settledLogLines(testApp: TestApp): Promise<LogLine[]> {
  const barrierId = `log-barrier-${++barrierCount}`;
  await request(testApp.app).get('/healthz').set('X-Request-Id', barrierId).expect(200);

  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = await readLogLines(testApp);
    if (lines.some((line) => line.message === 'request completed' && line.requestId === barrierId)) return lines;
    if (Date.now() > deadline) throw new Error(`access line of request ${barrierId} not in the log after 5000 ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function accessLines(lines: LogLine[], requestId: string): LogLine[] {
  return lines.filter((line) => line.message === 'request completed' && line.requestId === requestId);
}

describe('error middleware', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('JSON string body is 400', async () => {
    const response = await request(testApp.app).post('/users').set('Content-Type', 'application/json').send('"alice"');

    expectProblem(response, 400);
    expect(response.body.detail).toBe('the request body must be a JSON object');
  });

  test('non-JSON user body is 415', async () => {
    const response = await request(testApp.app).post('/users').set('Content-Type', 'text/plain').send('{"username":"alice"}');

    expectProblem(response, 415);
    expect(response.body.detail).toContain('application/json');
  });

  test.each([
    ['no boundary', 'multipart/form-data', 'garbage'],
    ['cut-off body', 'multipart/form-data; boundary=xyz', '--xyz\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n\r\nabc'],
  ])('malformed multipart (%s) is 400', async (_name, contentType, body) => {
    const response = await request(testApp.app).post('/predict').set('Content-Type', contentType).send(body);

    expectProblem(response, 400);
    expect(response.body.detail).toContain('invalid multipart body');
  });

  test('field errors are capped', async () => {
    const body: Record<string, unknown> = { username: 'manyk' };
    for (let i = 0; i < 5000; i++) body[`k${i}`] = 0;

    const response = await request(testApp.app).post('/users').send(body);

    expectProblem(response, 400);
    expect(response.body.errors).toHaveLength(20);
    expect(response.body.detail).toContain('and 4980 more');
    expect(response.text.length).toBeLessThan(5000);
  });

  test('uppercase UUID finds the user', async () => {
    const created = await request(testApp.app).post('/users').send({ username: 'upper-case' }).expect(201);

    const response = await request(testApp.app).get(`/users/${created.body.id.toUpperCase()}`);

    expect(response.status).toBe(200);
    expect(response.body.id).toBe(created.body.id);
  });

  test('malformed JSON is 400', async () => {
    const response = await request(testApp.app).post('/predict').set('Content-Type', 'application/json').send('{"instances": [');

    expectProblem(response, 400);
    expect(response.body.detail).toMatch(/not valid JSON/);
    expectNoLeak(response);
  });

  test('unsupported charset is 415', async () => {
    const response = await request(testApp.app).post('/predict').set('Content-Type', 'application/json; charset=latin1').send('{"instances": []}');

    expectProblem(response, 415);
    expect(response.body.detail).toMatch(/charset/i);
    expectNoLeak(response);
  });

  test('unsupported Content-Encoding is 415', async () => {
    const response = await request(testApp.app)
      .post('/predict')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'bogus')
      .send('{"instances": []}');

    expectProblem(response, 415);
    expect(response.body.detail).toMatch(/encoding/i);
    expectNoLeak(response);
  });

  test('unknown route is 404', async () => {
    const response = await request(testApp.app).get('/no-such-route');

    expectProblem(response, 404);
    expect(response.body.instance).toBe('/no-such-route');
    expectNoLeak(response);
  });

  test('wrong method is 405 with Allow', async () => {
    const response = await request(testApp.app).get('/predict');

    expectProblem(response, 405);
    expect(response.headers.allow).toBe('POST, OPTIONS');
    expectNoLeak(response);
  });

  test('OPTIONS is 204 with Allow', async () => {
    const response = await request(testApp.app).options('/predict');

    expect(response.status).toBe(204);
    expect(response.headers.allow).toBe('POST, OPTIONS');
    expect(response.text).toBe('');
  });

  test('OPTIONS needs no token on token routes', async () => {
    const response = await request(testApp.app).options('/orders');

    expect(response.status).toBe(204);
    expect(response.headers.allow).toBe('POST, GET, HEAD, OPTIONS');
  });

  describe('request ids', () => {
    test('client request id is echoed', async () => {
      const response = await request(testApp.app).get('/healthz').set('X-Request-Id', 'client-id_1.2:3');
      const lines = await settledLogLines(testApp);

      expect(response.headers['x-request-id']).toBe('client-id_1.2:3');
      expect(accessLines(lines, 'client-id_1.2:3')).toHaveLength(1);
    });

    test.each([
      ['with spaces', 'id with spaces'],
      ['of 200 characters', 'a'.repeat(200)],
      ['with a newline escape', 'abc\\nforged'],
    ])('invalid request id %s is replaced', async (_case, sent) => {
      const response = await request(testApp.app).get('/no-such-route').set('X-Request-Id', sent);

      expect(response.headers['x-request-id']).toMatch(UUID);
      expect(response.body.requestId).toBe(response.headers['x-request-id']);
    });

    test('missing request id is generated', async () => {
      const response = await request(testApp.app).get('/healthz');

      expect(response.headers['x-request-id']).toMatch(UUID);
    });
  });

  describe('access log', () => {
    test('one line per request', async () => {
      const response = await request(testApp.app).get('/healthz?verbose=1').set('X-Request-Id', 'access-ok');
      const lines = await settledLogLines(testApp);
      const access = accessLines(lines, 'access-ok');

      expect(response.status).toBe(200);
      expect(access).toHaveLength(1);
      expect(access[0].level).toBe('info');
      expect(access[0].method).toBe('GET');
      expect(access[0].path).toBe('/healthz');
      expect(access[0].status).toBe(200);
      expect(typeof access[0].durationMs).toBe('number');
      expect(access[0].durationMs as number).toBeGreaterThanOrEqual(0);
      expect(access[0].userId).toBeNull();
    });

    test('4xx is logged at warn', async () => {
      await request(testApp.app).get('/no-such-route').set('X-Request-Id', 'access-404').expect(404);
      const lines = await settledLogLines(testApp);
      const access = accessLines(lines, 'access-404');

      expect(access).toHaveLength(1);
      expect(access[0].level).toBe('warn');
      expect(access[0].status).toBe(404);
    });

    test('client address of the connection', async () => {
      // Without TRUST_PROXY, X-Forwarded-For is the client's claim and is not logged.
      await request(testApp.app).get('/healthz').set('X-Forwarded-For', '203.0.113.7').set('X-Request-Id', 'access-ip').expect(200);
      const lines = await settledLogLines(testApp);
      const access = accessLines(lines, 'access-ip');

      expect(access).toHaveLength(1);
      expect(access[0].ip).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    });

    test('user id of a token', async () => {
      const user = await signUp(testApp.app, 'log-user');

      await request(testApp.app).get('/users/me').set('Authorization', user.auth).set('X-Request-Id', 'access-user').expect(200);
      const lines = await settledLogLines(testApp);
      const access = accessLines(lines, 'access-user');

      expect(access).toHaveLength(1);
      expect(access[0].userId).toBe(user.id);
    });

    test('no token or image data', async () => {
      const user = await signUp(testApp.app, 'secret-user');
      const image = fixture('digit-3-canvas-transparent.png').toString('base64');

      await request(testApp.app)
        .post('/predict')
        .set('Authorization', user.auth)
        .send({ instances: [{ image }] })
        .expect(200);
      await request(testApp.app)
        .post('/predict')
        .set('Authorization', user.auth)
        .send({ instances: [{ image }, { image: image.slice(0, 200) }] })
        .expect(400);
      await request(testApp.app).get('/users/me').set('Authorization', 'Bearer not-a-real-token-0123456789').expect(401);
      await settledLogLines(testApp);
      const raw = fs.readFileSync(path.join(testApp.logDir, 'app.log'), 'utf8');

      expect(raw).not.toContain(user.token);
      expect(raw).not.toContain('not-a-real-token-0123456789');
      expect(raw).not.toContain(image.slice(0, 64));
      expect(raw).not.toContain(image.slice(-64));
    });
  });
});

describe('access log behind a proxy', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ TRUST_PROXY: 'loopback' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('client address from X-Forwarded-For', async () => {
    await request(testApp.app).get('/healthz').set('X-Forwarded-For', '198.51.100.20, 203.0.113.7').set('X-Request-Id', 'proxied-ip').expect(200);
    const lines = await settledLogLines(testApp);
    const access = accessLines(lines, 'proxied-ip');

    expect(access).toHaveLength(1);
    expect(access[0].ip).toBe('203.0.113.7');
  });
});

describe('request body limit', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ MAX_BODY_BYTES: '1000' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('body over MAX_BODY_BYTES is 413', async () => {
    const body = { instances: [{ image: 'A'.repeat(2000) }] };

    const response = await request(testApp.app).post('/predict').send(body);

    expectProblem(response, 413);
    expect(response.body.detail).toContain('MAX_BODY_BYTES');
    expectNoLeak(response);
  });

  test('multipart over MAX_BODY_BYTES is 413', async () => {
    const response = await request(testApp.app).post('/predict').attach('image', Buffer.alloc(2000, 1), 'big.png');

    expectProblem(response, 413);
    expect(response.body.detail).toContain('MAX_BODY_BYTES');
  });

  test('JSON request without a body is 400', async () => {
    const server = testApp.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;

    try {
      // A raw request, because HTTP clients add Content-Length: 0 or chunked encoding to a POST.
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end('POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n');
        });
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      const [head, body] = reply.split('\r\n\r\n');

      expect(head).toMatch(/^HTTP\/1\.1 400 /);
      expect(JSON.parse(body).detail).toBe('the request body is missing; send a JSON object with Content-Type: application/json');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('chunked multipart is 411', async () => {
    const server = testApp.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;

    try {
      const response = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const call = http.request(
          { host: '127.0.0.1', port, method: 'POST', path: '/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=x', 'Transfer-Encoding': 'chunked' } },
          (res) => {
            let body = '';
            res.on('data', (chunk) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
          },
        );
        call.on('error', reject);
        call.write('--x\r\n');
        call.end('--x--\r\n');
      });

      expect(response.status).toBe(411);
      expect(response.type).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(response.body).detail).toContain('Content-Length');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('failing async handler', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    await selectBackend('wasm');
    const real = await loadModel(MODEL_DIR, 32);
    // The metadata promises 14x14 inputs, so the request passes validation and the network itself
    // throws inside model.predict, as an unexpected failure in an async handler would.
    const broken = new LoadedModel((real as any).network, { ...real.metadata, inputShape: [null, 14, 14, 1] }, 32);
    testApp = await startTestApp({}, broken);
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('rejection becomes a 500', async () => {
    const pixels = Array.from({ length: 14 }, () => Array.from({ length: 14 }, () => 0.5));

    const response = await request(testApp.app).post('/predict').set('X-Request-Id', 'broken-model').send({ instances: [{ pixels }] });
    const lines = await settledLogLines(testApp);
    const failure = lines.find((line) => line.message === 'request failed' && line.requestId === 'broken-model');
    const access = accessLines(lines, 'broken-model');

    expectProblem(response, 500);
    expect(response.body.title).toBe('Internal Server Error');
    expect(response.body.requestId).toBe('broken-model');
    expect(response.body.detail).toContain('broken-model');
    expect(response.body.errors).toBeUndefined();
    expect(response.text).not.toMatch(/shape|tensor|Error:/i);
    expectNoLeak(response);

    expect(failure).toBeDefined();
    expect(failure?.level).toBe('error');
    expect(failure?.status).toBe(500);
    expect(failure?.error).toMatch(/incompatible with layer .* shape/);
    expect(failure?.stack).toEqual(expect.stringContaining('    at '));

    expect(access).toHaveLength(1);
    expect(access[0].level).toBe('error');
    expect(access[0].status).toBe(500);
  });

  test('process keeps serving after a 500', async () => {
    const pixels = Array.from({ length: 14 }, () => Array.from({ length: 14 }, () => 0.5));
    await request(testApp.app).post('/predict').send({ instances: [{ pixels }] }).expect(500);

    const response = await request(testApp.app).get('/healthz');

    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok' });
  });
});
