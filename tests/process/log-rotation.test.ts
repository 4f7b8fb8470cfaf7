import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { LogRecord, startServer, stopLeftoverServers } from './helpers';

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

describe('log rotation', () => {
  afterEach(stopLeftoverServers);

  test.each<[string, Record<string, string>]>([
    ['one process', {}],
    ['cluster', { WORKERS: '2' }],
  ])(
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
