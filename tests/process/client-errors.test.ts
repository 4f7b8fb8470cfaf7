import net from 'node:net';
import { readLog, startServer, stopLeftoverServers } from './helpers';

jest.setTimeout(60_000);

afterEach(async () => {
  await stopLeftoverServers();
});

/** Sends raw bytes and returns everything the server writes back before it closes the connection. */
function sendRaw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(text));
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString()));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

describe('requests the HTTP parser rejects', () => {
  test.each([
    ['unknown method', 'FOO /users HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['oversized headers', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ])('%s gets problem+json', async (_name, raw, status) => {
    const server = await startServer();

    const response = await sendRaw(server.port, raw);

    const [head, body] = response.split('\r\n\r\n');
    expect(head).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
    expect(head).toMatch(/content-type: application\/problem\+json/i);
    const problem = JSON.parse(body);
    expect(problem.status).toBe(status);
    expect(head).toContain(`X-Request-Id: ${problem.requestId}`);

    server.child.kill('SIGTERM');
    await server.waitForExit();
    const logged = readLog(server.logDir).filter((line) => line.message === 'request rejected by the HTTP parser');
    expect(logged).toHaveLength(1);
    expect(logged[0].requestId).toBe(problem.requestId);
  });
});
