import { ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { findFreePort } from '../../bench/processes';
import { recordResponse } from '../helpers/response-check';

export { findFreePort };

export const ROOT = path.join(__dirname, '..', '..');
export const SERVER_SCRIPT = path.join(ROOT, 'dist', 'server.js');
export const MODEL_DIR = path.join(ROOT, 'models', 'digits');

// Generous because the machine may be busy: a start takes 1-2 s when idle.
const START_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 30_000;

/** One parsed JSON log line. */
export type LogRecord = Record<string, any>;

// Statuses whose responses have no body, which the Response constructor rejects a body for.
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * Sends a request with fetch and checks the response against the OpenAPI document, as test apps do
 * for the in-process tests. Returns a Response with the same status, headers and body.
 */
export async function checkedFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(url, init);
  const body = Buffer.from(await response.arrayBuffer());
  recordReceived(init.method ?? 'GET', url, { status: response.status, headers: Object.fromEntries(response.headers), body });

  return new Response(NULL_BODY_STATUSES.has(response.status) ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/** Checks a response that a test read itself, for example with node:http, against the OpenAPI document. */
export function recordReceived(method: string, url: string, response: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer | string }): void {
  const { pathname, search } = new URL(url);
  const body = typeof response.body === 'string' ? Buffer.from(response.body, 'utf8') : response.body;
  recordResponse({ method: method.toUpperCase(), url: pathname + search, status: response.status, headers: response.headers, body });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A `node dist/server.js` child process and what it has written so far. */
export interface ServerProcess {
  child: ChildProcess;
  port: number;
  baseUrl: string;
  /** Temporary directory of this start: database and log directory unless `env` moved them. */
  directory: string;
  databasePath: string;
  logDir: string;
  stdoutLines: string[];
  stderrLines: string[];
  /** Resolves once the process has exited and its output is read. Rejects after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<ExitStatus>;
  /** Resolves with the first JSON line on stdout that matches, including lines already written. */
  waitForStdoutRecord(matches: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
}

const servers = new Set<ServerProcess>();

/** True when the line parses as JSON. */
export function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/** Returns the records whose `message` is exactly `message`. */
export function withMessage(records: LogRecord[], message: string): LogRecord[] {
  return records.filter((record) => record.message === message);
}

/** Parses the lines that are JSON objects and skips the others. */
export function parseJsonLines(lines: string[]): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of lines) {
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) records.push(value as LogRecord);
    } catch {
      // Not a JSON line: callers that require JSON check the raw lines themselves.
    }
  }
  return records;
}

/**
 * Spawns the built server on 127.0.0.1 with a free port, a temporary database and log directory,
 * and console logging, without waiting for it to start. Only PATH and HOME are inherited, so
 * configuration variables of the shell that runs jest cannot change the test. An `env` value of
 * undefined removes a default. `command` replaces `node dist/server.js`, for example with `npm start`.
 */
export async function spawnServer(env: Record<string, string | undefined> = {}, command: string[] = [process.execPath, SERVER_SCRIPT]): Promise<ServerProcess> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-process-'));
  const port = env.PORT !== undefined && /^\d+$/.test(env.PORT) ? Number(env.PORT) : await findFreePort();
  const settings: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HOST: '127.0.0.1',
    PORT: String(port),
    MODEL_DIR,
    DATABASE_PATH: path.join(directory, 'app.db'),
    LOG_DIR: path.join(directory, 'logs'),
    LOG_CONSOLE: 'true',
    ...env,
  };
  const childEnv = Object.fromEntries(Object.entries(settings).filter((entry): entry is [string, string] => entry[1] !== undefined));

  const child = spawn(command[0], command.slice(1), { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  const lineListeners = new Set<() => void>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    stdoutLines.push(line);
    for (const listener of lineListeners) listener();
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => stderrLines.push(line));

  // 'close' fires after the exit and after both output streams ended, so every line is collected.
  const exited = new Promise<ExitStatus>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    for (const listener of lineListeners) listener();
  });

  const describeOutput = () => `stdout:\n${stdoutLines.join('\n')}\nstderr:\n${stderrLines.join('\n')}`;

  const server: ServerProcess = {
    child,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    directory,
    databasePath: childEnv.DATABASE_PATH,
    logDir: childEnv.LOG_DIR,
    stdoutLines,
    stderrLines,
    waitForExit(timeoutMs = EXIT_TIMEOUT_MS) {
      return withTimeout(exited, timeoutMs, () => `server pid ${child.pid} did not exit within ${timeoutMs} ms\n${describeOutput()}`);
    },
    waitForStdoutRecord(matches, timeoutMs = START_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = parseJsonLines(stdoutLines).find(matches);
          if (found) {
            finish();
            resolve(found);
          } else if (hasExited) {
            finish();
            reject(new Error(`server exited before writing the expected line\n${describeOutput()}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`server did not write the expected line within ${timeoutMs} ms\n${describeOutput()}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          lineListeners.delete(check);
        };
        lineListeners.add(check);
        check();
      });
    },
  };
  servers.add(server);
  return server;
}

/** Starts the built server and waits for its 'server started' line. */
export async function startServer(env: Record<string, string | undefined> = {}): Promise<ServerProcess & { started: LogRecord }> {
  const server = await spawnServer(env);
  const started = await server.waitForStdoutRecord((record) => record.message === 'server started');
  return { ...server, started };
}

/**
 * Kills every server that a test left running and removes the temporary directories. Call it in
 * afterEach, so that a failed test leaves no child process that would keep jest from exiting.
 */
export async function stopLeftoverServers(): Promise<void> {
  for (const server of servers) {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
    }
    await server.waitForExit().catch(() => undefined);
    fs.rmSync(server.directory, { recursive: true, force: true });
  }
  servers.clear();
}

/** Reads `LOG_DIR/app.log` as raw lines, without the empty line after the last newline. */
export function readLogLines(logDir: string): string[] {
  return fs
    .readFileSync(path.join(logDir, 'app.log'), 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

/** Reads `LOG_DIR/app.log` as JSON records. Throws on the first line that is not JSON. */
export function readLog(logDir: string): LogRecord[] {
  return readLogLines(logDir).map((line, index) => {
    try {
      return JSON.parse(line) as LogRecord;
    } catch {
      throw new Error(`line ${index + 1} of ${path.join(logDir, 'app.log')} is not JSON: ${line}`);
    }
  });
}

/** Resolves `work`, or rejects with `describe()` once `timeoutMs` has passed. */
export function withTimeout<T>(work: Promise<T>, timeoutMs: number, describe: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(describe())), timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Resolves after `ms` milliseconds; tests use it only to pace polling and to order signals. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads the digit-3 canvas export of tests/fixtures as base64, for `{image}` items in JSON bodies. */
export function digitThreeBase64(): string {
  return fs.readFileSync(path.join(ROOT, 'tests', 'fixtures', 'digit-3-canvas-transparent.png')).toString('base64');
}

/** Creates a user with POST /users and returns its id and bearer header value. */
export async function signUp(baseUrl: string, username: string): Promise<{ id: string; auth: string }> {
  const response = await checkedFetch(`${baseUrl}/users`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username }),
  });
  if (response.status !== 201) throw new Error(`POST /users returned ${response.status}: ${await response.text()}`);
  const user = (await response.json()) as { id: string; token: string };
  return { id: user.id, auth: `Bearer ${user.token}` };
}

/**
 * Places an order of `itemCount` copies of the digit-3 image with `Prefer: respond-async` and
 * returns the ids of its task and order.
 */
export async function placeAsyncOrder(baseUrl: string, auth: string, itemCount: number): Promise<{ taskId: string; orderId: string }> {
  const image = digitThreeBase64();
  const response = await checkedFetch(`${baseUrl}/orders`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: auth, Prefer: 'respond-async' },
    body: JSON.stringify({ items: Array.from({ length: itemCount }, () => ({ image })) }),
  });
  if (response.status !== 202) throw new Error(`POST /orders returned ${response.status}: ${await response.text()}`);
  const body = (await response.json()) as { id: string; orderId: string };
  return { taskId: body.id, orderId: body.orderId };
}

/**
 * Polls GET /tasks/{id} every 20 ms until `matches` accepts the task. Fails when the task ends in
 * another state, or after `timeoutMs`.
 */
export async function waitForTask(
  baseUrl: string,
  taskId: string,
  auth: string,
  matches: (task: LogRecord) => boolean,
  timeoutMs = 30_000,
): Promise<LogRecord> {
  const deadline = Date.now() + timeoutMs;
  let task: LogRecord = {};
  while (Date.now() < deadline) {
    const response = await checkedFetch(`${baseUrl}/tasks/${taskId}`, { headers: { Authorization: auth } });
    if (response.status !== 200) throw new Error(`GET /tasks/${taskId} returned ${response.status}: ${await response.text()}`);
    task = (await response.json()) as LogRecord;
    if (matches(task)) return task;
    if (task.status !== 'queued' && task.status !== 'running') {
      throw new Error(`task ${taskId} ended without reaching the expected state: ${JSON.stringify(task)}`);
    }
    await delay(20);
  }
  throw new Error(`task ${taskId} did not reach the expected state within ${timeoutMs} ms. Last seen: ${JSON.stringify(task)}`);
}

/** True while a task is running and has items left, so a stop now interrupts it. */
export function isRunningWithItemsLeft(task: LogRecord): boolean {
  return task.status === 'running' && task.progress.done < task.progress.total;
}

/** Status, headers and body of a response read with node:http. */
export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * Sends a request on a new connection and checks the response against the OpenAPI document. The
 * cluster primary hands connections, not requests, to the workers in turn, so a keep-alive
 * connection would reach one worker only.
 */
export function requestOnNewConnection(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const request = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false });
  const reply = readResponse(request);
  request.end(options.body);
  return reply;
}

/** Collects the status, headers and body of a node:http request, and checks them against the OpenAPI document. */
export function readResponse(request: http.ClientRequest): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request.once('error', reject);
    request.once('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('error', reject);
      response.once('end', () => {
        const reply = { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') };
        recordReceived(request.method, `${request.protocol}//${request.host}${request.path}`, reply);
        resolve(reply);
      });
    });
  });
}

// Run by holdDatabaseLock in a child process: takes the write lock, reports it, holds it, releases it.
const LOCK_HOLDER_SCRIPT = `
const Database = require('better-sqlite3');
const [databasePath, holdMs] = process.argv.slice(1);
const db = new Database(databasePath);
db.exec('BEGIN IMMEDIATE');
process.stdout.write('locked\\n');
setTimeout(() => {
  db.exec('COMMIT');
  db.close();
  process.stdout.write('released\\n');
}, Number(holdMs));
`;

/** A process that holds the write lock of a database, as holdDatabaseLock starts it. */
export interface LockHolder {
  /** Resolves once the process has released the lock and exited. */
  released: Promise<void>;
}

/**
 * Starts another process (node with better-sqlite3) that holds the write lock of the database at
 * `databasePath` with BEGIN IMMEDIATE for `holdMs` milliseconds. Resolves once the lock is taken.
 */
export function holdDatabaseLock(databasePath: string, holdMs: number): Promise<LockHolder> {
  const child = spawn(process.execPath, ['-e', LOCK_HOLDER_SCRIPT, databasePath, String(holdMs)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<void>((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`the lock holder exited with code ${code}: ${stderr.join('\n')}`)))),
  );

  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'locked') resolve({ released: exited });
    });
    exited.catch(reject);
  });
}
