import crypto from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Request, Response } from 'express';
import createError from 'http-errors';
import type winston from 'winston';
import { type ErrorFormatOptions, sendError } from '../middleware/error-handler';
import type { ServiceMetrics } from './metrics';

export interface ClientErrorOptions extends ErrorFormatOptions {
  logger: winston.Logger;
  metrics: ServiceMetrics;
}

/** A request that the app is handling, and its response. */
interface Exchange {
  req: Request;
  res: Response;
}

/** A fault of a request on a connection, as its response and its log line state it. */
interface ClientFault {
  status: number;
  detail: string;
  code: string | undefined;
  message: 'request timed out' | 'request rejected by the HTTP parser';
}

/**
 * Sends problem+json, with a request id, for the errors that Node's HTTP server raises on a
 * connection ('clientError'), in place of Node's bare status line, and closes the connection. The
 * errors are requests that its parser rejects (an unknown method, oversized headers, conflicting
 * length headers, a malformed or cut-off body) and requests whose headers or body do not arrive
 * within HEADERS_TIMEOUT_MS or REQUEST_TIMEOUT_MS.
 *
 * Closing the connection aborts a request that the app is already handling (its headers arrived and
 * its body did not), so its body reader fails and no route carries it out. Such a request gets its
 * response through the app's response object, which carries the request's own id and path, and its
 * access line and request metrics record the status sent.
 */
export function answerClientErrors(server: Server, options: ClientErrorOptions): void {
  // The latest request of each connection, the only one whose body can still be arriving.
  const latestRequests = new WeakMap<Socket, Exchange>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // The Express app is the server's first 'request' listener, so both objects are Express's by now.
    latestRequests.set(req.socket, { req: req as Request, res: res as Response });
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }

    const exchange = latestRequests.get(socket);
    const bodyIncomplete = exchange !== undefined && !exchange.req.complete;
    const fault = describeFault(error, bodyIncomplete, server);
    if (bodyIncomplete && !exchange.res.writableEnded) {
      failRequest(exchange, fault, socket, options);
    } else {
      writeProblemToSocket(fault, socket, options);
    }
  });
}

function describeFault(error: NodeJS.ErrnoException, bodyIncomplete: boolean, server: Server): ClientFault {
  const { code } = error;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const detail = bodyIncomplete
      ? `the whole request, body included, did not arrive within REQUEST_TIMEOUT_MS (${server.requestTimeout} ms)`
      : `the request headers did not arrive within HEADERS_TIMEOUT_MS (${server.headersTimeout} ms)`;
    return { status: 408, detail, code, message: 'request timed out' };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, detail: `the request headers are too large (${code})`, code, message: 'request rejected by the HTTP parser' };
  }
  // llhttp raises this when the client ends its side of the connection before the body is complete.
  if (code === 'HPE_INVALID_EOF_STATE') {
    return { status: 400, detail: 'the connection ended before the request body was complete', code, message: 'request rejected by the HTTP parser' };
  }
  return { status: 400, detail: `the request could not be parsed (${code ?? 'invalid HTTP'})`, code, message: 'request rejected by the HTTP parser' };
}

/** Sends the error response of a request that the app is handling through its response object, and closes the connection. */
function failRequest({ req, res }: Exchange, fault: ClientFault, socket: Socket, options: ClientErrorOptions): void {
  const fields = { status: fault.status, code: fault.code, method: req.method, path: req.originalUrl.split('?')[0], requestId: req.id };
  if (res.headersSent) {
    // A response that has begun cannot turn into an error: the client sees the connection close.
    options.logger.warn(fault.message, { ...fields, responseStarted: true });
  } else {
    options.logger.warn(fault.message, fields);
    res.setHeader('Connection', 'close');
    sendError(createError(fault.status, fault.detail), req, res, options);
  }
  // Closing at once, rather than after the client has read the response, is what stops the request:
  // its body reader fails with "request aborted" before the body can complete. The response is
  // already written to the socket unless earlier responses on the connection are still queued.
  // NOTE: a response queued behind earlier pipelined responses is lost, so that client sees only the close.
  socket.destroy();
}

/** Writes a response for a request that never reached the app, and closes the connection. */
function writeProblemToSocket(fault: ClientFault, socket: Socket, options: ClientErrorOptions): void {
  const { status, detail } = fault;
  const title = STATUS_CODES[status] ?? 'Bad Request';
  const requestId = crypto.randomUUID();
  // No `instance`, which RFC 9457 makes optional: the request's path never reached the app.
  const body = JSON.stringify({ type: 'about:blank', title, status, detail, requestId });
  options.logger.warn(fault.message, { status, code: fault.code, requestId });
  options.metrics.observeClientError(status);

  socket.write(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
  // Ending the connection would leave its reading side open, and headers that complete after the
  // timeout would still reach the app. Destroying it stops the parser, as Node's default handler does.
  socket.destroy();
}
