import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LogRecord, delay, startServer, stopLeftoverServers } from './helpers';

const TEST_TIMEOUT_MS = 120_000;
const MAX_BYTES = 8192;
const MAX_FILES = 30;
const REQUESTS = 200;

/** Sends GET /healthz on a new connection, so that a cluster's requests reach every worker. */
function getHealthz(baseUrl: string, requestId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${baseUrl}/healthz`, { headers: { 'X-Request-Id': requestId }, agent: false }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
    });
    request.once('error', reject);
  });
}

/** Lists app.log and its rotated files, oldest first. */
function logFiles(logDir: string): string[] {
  const rotated = fs
    .readdirSync(logDir)
    .filter((name) => /^app\.log\.\d+$/.test(name))
    .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
  return [...rotated, 'app.log'].map((name) => path.join(logDir, name));
}

/** Reads every file of `logDir` by name: the rotated files, app.log and any other. */
function readFiles(logDir: string): Map<string, string> {
  return new Map(fs.readdirSync(logDir).map((name) => [name, fs.readFileSync(path.join(logDir, name), 'utf8')]));
}

function parseRecords(text: string): LogRecord[] {
  return text
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as LogRecord);
}

/** Sends GET /healthz for each id, one after the other. */
async function getEach(baseUrl: string, requestIds: string[]): Promise<void> {
  for (const requestId of requestIds) await getHealthz(baseUrl, requestId);
}

/** Resolves once the server has written a stderr line that contains `text`; rejects after 10 s. */
async function waitForStderr(server: { stderrLines: string[] }, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!server.stderrLines.some((line) => line.includes(text))) {
    if (Date.now() > deadline) throw new Error(`no stderr line contains "${text}" after 10 s:\n${server.stderrLines.join('\n')}`);
    await delay(20);
  }
}

const ONE_PROCESS_AND_CLUSTER: [string, Record<string, string>][] = [
  ['one process', {}],
  ['cluster', { WORKERS: '2' }],
];

describe('log rotation', () => {
  afterEach(stopLeftoverServers);

  test.each(ONE_PROCESS_AND_CLUSTER)(
    '%s keeps every line once',
    async (_name, env) => {
      const server = await startServer({ ...env, LOG_MAX_BYTES: String(MAX_BYTES), LOG_MAX_FILES: String(MAX_FILES) });
      const requestIds = Array.from({ length: REQUESTS }, (_, i) => `rotation-${String(i).padStart(3, '0')}`);
      for (const requestId of requestIds) await getHealthz(server.baseUrl, requestId);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(exit).toEqual({ code: 0, signal: null });
      const files = logFiles(server.logDir);
      expect(files.length).toBeGreaterThan(3);
      expect(files.length).toBeLessThanOrEqual(MAX_FILES + 1);

      const records: LogRecord[] = [];
      for (const file of files) {
        const text = fs.readFileSync(file, 'utf8');
        const withinLimit = Buffer.byteLength(text) <= MAX_BYTES;
        expect({ file, withinLimit, endsWithNewline: text.endsWith('\n') }).toEqual({ file, withinLimit: true, endsWithNewline: true });
        for (const line of text.split('\n').slice(0, -1)) records.push(JSON.parse(line) as LogRecord);
      }

      const logged = records.filter((record) => record.message === 'request completed').map((record) => record.requestId as string);
      expect([...logged].sort()).toEqual(requestIds);
      if (env.WORKERS === undefined) {
        expect(logged).toEqual(requestIds);
      } else {
        // Each worker's lines reach the primary in the order the worker sent them.
        for (const workerId of new Set(records.map((record) => record.workerId).filter((id) => id !== undefined))) {
          const ofWorker = records.filter((record) => record.message === 'request completed' && record.workerId === workerId).map((record) => record.requestId as string);
          expect(ofWorker).toEqual([...ofWorker].sort());
        }
      }
      // The oldest file starts with the first line of the start, so no line was rotated away.
      expect(records[0].message).toBe('server starting');
      expect(records[records.length - 1].message).toBe('shutdown complete');
      expect(records[records.length - 1].requestsServed).toBe(REQUESTS);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('log file moved by another tool', () => {
  afterEach(stopLeftoverServers);

  test.each(ONE_PROCESS_AND_CLUSTER)(
    '%s: deleted app.log keeps rotated files',
    async (_name, env) => {
      const server = await startServer({ ...env, LOG_MAX_BYTES: String(MAX_BYTES), LOG_MAX_FILES: String(MAX_FILES) });
      await getEach(server.baseUrl, Array.from({ length: 100 }, (_, i) => `before-${i}`));
      // Wait for the access lines, which a cluster worker sends to the primary after its response.
      await delay(200);
      const rotatedBefore = [...readFiles(server.logDir).entries()].filter(([name]) => name !== 'app.log');

      fs.rmSync(path.join(server.logDir, 'app.log'));
      const requestIds = Array.from({ length: 60 }, (_, i) => `after-${String(i).padStart(2, '0')}`);
      await getEach(server.baseUrl, requestIds);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(exit).toEqual({ code: 0, signal: null });
      expect(rotatedBefore.length).toBeGreaterThanOrEqual(2);
      const contentsAfter = new Set(readFiles(server.logDir).values());
      for (const [name, text] of rotatedBefore) expect({ name, kept: contentsAfter.has(text) }).toEqual({ name, kept: true });

      const records = logFiles(server.logDir).flatMap((file) => parseRecords(fs.readFileSync(file, 'utf8')));
      const logged = new Set(records.map((record) => record.requestId));
      // Lines go to the deleted file until the service notices, at the limit or within a second:
      // these ids come after both.
      expect(requestIds.slice(-30).filter((requestId) => !logged.has(requestId))).toEqual([]);
      expect(records[records.length - 1].message).toBe('shutdown complete');
      expect(server.stderrLines.filter((line) => line.includes('was moved or deleted'))).toHaveLength(1);
    },
    TEST_TIMEOUT_MS,
  );

  test.each(ONE_PROCESS_AND_CLUSTER)(
    '%s: SIGHUP reopens a moved app.log',
    async (_name, env) => {
      const server = await startServer(env);
      const firstIds = Array.from({ length: 20 }, (_, i) => `first-${i}`);
      const secondIds = Array.from({ length: 20 }, (_, i) => `second-${i}`);
      await getEach(server.baseUrl, firstIds);
      await delay(200);

      // What logrotate does with a postrotate script that sends SIGHUP.
      fs.renameSync(path.join(server.logDir, 'app.log'), path.join(server.logDir, 'moved.log'));
      server.child.kill('SIGHUP');
      await waitForStderr(server, 'was moved or deleted');
      // A SIGHUP that reaches a worker, as one sent to the process group would, leaves it running.
      const workerPids = server.stdoutLines.filter((line) => line.includes('"worker started"')).map((line) => (JSON.parse(line) as LogRecord).pid as number);
      for (const pid of workerPids) process.kill(pid, 'SIGHUP');
      await getEach(server.baseUrl, secondIds);
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();

      expect(exit).toEqual({ code: 0, signal: null });
      expect(workerPids).toHaveLength(env.WORKERS === undefined ? 0 : 2);
      const moved = parseRecords(fs.readFileSync(path.join(server.logDir, 'moved.log'), 'utf8'));
      const reopened = parseRecords(fs.readFileSync(path.join(server.logDir, 'app.log'), 'utf8'));
      const accessIds = (records: LogRecord[]) => records.filter((record) => record.message === 'request completed').map((record) => record.requestId);
      expect([...accessIds(moved)].sort()).toEqual([...firstIds].sort());
      expect([...accessIds(reopened)].sort()).toEqual([...secondIds].sort());
      expect(reopened.filter((record) => record.message === 'worker exited')).toEqual([]);
      expect(reopened[reopened.length - 1].message).toBe('shutdown complete');
      expect(reopened[reopened.length - 1].requestsServed).toBe(firstIds.length + secondIds.length);
    },
    TEST_TIMEOUT_MS,
  );
});
