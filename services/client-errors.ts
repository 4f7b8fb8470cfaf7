import crypto from 'node:crypto';
import { STATUS_CODES, type Server } from 'node:http';
import type winston from 'winston';

/**
 * Sends problem+json for requests that Node's HTTP parser rejects before they reach Express (an unknown method,
 * oversized headers, conflicting length headers) or that time out before their headers or body
 * arrive, with a request id, in place of Node's bare status line.
 */
export function answerClientErrors(server: Server, logger: winston.Logger): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }

    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    let status = 400;
    if (error.code === 'HPE_HEADER_OVERFLOW') status = 431;
    if (timedOut) status = 408;
    const title = STATUS_CODES[status] ?? 'Bad Request';
    const requestId = crypto.randomUUID();
    const body = JSON.stringify({
      type: 'about:blank',
      title,
      status,
      detail: timedOut
        ? 'the request headers or body did not arrive within HEADERS_TIMEOUT_MS or REQUEST_TIMEOUT_MS'
        : `the request could not be parsed (${error.code ?? 'invalid HTTP'})`,
      instance: '',
      requestId,
    });
    logger.warn(timedOut ? 'request timed out' : 'request rejected by the HTTP parser', { status, code: error.code, requestId });
    socket.end(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
