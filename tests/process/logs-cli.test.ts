import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { LogRecord, ROOT, delay, readLogLines, startServer, stopLeftoverServers } from './helpers';

const LOGS_SCRIPT = path.join(ROOT, 'dist', 'scripts', 'logs.js');
// Three starts of the server, each loading the model.
const TEST_TIMEOUT_MS = 120_000;
const CUT_OFF_LINE = '{"level":"info","message":"request compl';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runLogs(args: string[]): Run {
  const result = spawnSync(process.execPath, [LOGS_SCRIPT, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function get(baseUrl: string, urlPath: string, requestId: string): Promise<number> {
  const response = await fetch(`${baseUrl}${urlPath}`, { headers: { 'X-Request-Id': requestId } });
  await response.arrayBuffer();
  return response.status;
}

/** Waits until the server has written the access line of `requestId` to app.log. */
async function waitForAccessLine(logDir: string, requestId: string): Promise<void> {
  for (let attempt = 0; attempt < 250; attempt++) {
    if (readLogLines(logDir).some((line) => line.includes(`"requestId":"${requestId}"`))) return;
    await delay(20);
  }
  throw new Error(`the access line of ${requestId} is not in ${logDir}/app.log after 5 s`);
}

/** Returns `file:line` of the plain file in `logDir` that contains `text` as a whole line. */
function findLine(logDir: string, text: string): string {
  for (const name of fs.readdirSync(logDir).filter((entry) => !entry.endsWith('.gz'))) {
    const lines = fs.readFileSync(path.join(logDir, name), 'utf8').split('\n');
    const index = lines.indexOf(text);
    if (index !== -1) return `${path.join(logDir, name)}:${index + 1}`;
  }
  throw new Error(`no file in ${logDir} contains the line ${text}`);
}

describe('npm run logs', () => {
  let logDir: string;
  const healthIds: string[] = [];
  // Where the cut-off line is once the third run has rotated the files.
  let cutOffPlace = '';

  // Three runs on one log directory: a clean stop, a kill -9 that cut a line off, and a clean stop.
  beforeAll(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-logs-cli-'));
    const env = { LOG_DIR: logDir, LOG_MAX_BYTES: '4096', LOG_MAX_FILES: '50' };
    try {
      const first = await startServer(env);
      for (let i = 0; i < 40; i++) {
        healthIds.push(`first-healthz-${i}`);
        await get(first.baseUrl, '/healthz', healthIds[healthIds.length - 1]);
      }
      await get(first.baseUrl, '/no-such-path', 'first-unknown');
      first.child.kill('SIGTERM');
      await first.waitForExit();
      // As logrotate's compress option would, with the second-oldest rotated file.
      const rotated = path.join(logDir, 'app.log.2');
      fs.writeFileSync(`${rotated}.gz`, zlib.gzipSync(fs.readFileSync(rotated)));
      fs.rmSync(rotated);

      const second = await startServer(env);
      for (let i = 0; i < 5; i++) {
        healthIds.push(`second-healthz-${i}`);
        await get(second.baseUrl, '/healthz', healthIds[healthIds.length - 1]);
      }
      await waitForAccessLine(logDir, healthIds[healthIds.length - 1]);
      second.child.kill('SIGKILL');
      await second.waitForExit();
      // A crash in the middle of a write leaves the start of a line without its newline.
      fs.appendFileSync(path.join(logDir, 'app.log'), CUT_OFF_LINE);

      const third = await startServer(env);
      for (let i = 0; i < 5; i++) {
        healthIds.push(`third-healthz-${i}`);
        await get(third.baseUrl, '/healthz', healthIds[healthIds.length - 1]);
      }
      await get(third.baseUrl, '/tasks/0b9d1a2e-1111-4222-8333-444455556666', 'third-unknown-task');
      third.child.kill('SIGTERM');
      await third.waitForExit();
      cutOffPlace = findLine(logDir, CUT_OFF_LINE);
    } finally {
      await stopLeftoverServers();
    }
  }, TEST_TIMEOUT_MS);

  afterAll(() => {
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  test('summary covers rotated and gzipped files', () => {
    const run = runLogs([logDir, '--json']);

    expect(run.status).toBe(0);
    const summary = JSON.parse(run.stdout) as LogRecord;
    const files = (summary.files as LogRecord[]).map((entry) => path.basename(entry.file as string));
    expect(files[files.length - 1]).toBe('app.log');
    expect(files.filter((name) => name.endsWith('.gz'))).toHaveLength(1);
    expect(files.length).toBeGreaterThan(2);
    expect(summary.requests).toEqual({ total: healthIds.length + 2, aborted: 0, byStatusClass: { '2xx': healthIds.length, '4xx': 2 } });
    const routes = Object.fromEntries((summary.routes as LogRecord[]).map((route) => [`${route.method} ${route.route}`, route.count]));
    expect(routes).toEqual({ 'GET /healthz': healthIds.length, 'GET unmatched': 1, 'GET /tasks/:id': 1 });
    expect(summary.starts).toEqual({ count: 3, withoutShutdownSummary: 1, lastStillOpen: false });
    expect((summary.shutdowns as LogRecord[]).map((shutdown) => shutdown.requestsServed)).toEqual([41, 6]);
  });

  test('cut-off line is reported with its place', () => {
    const run = runLogs([logDir, '--json']);

    const summary = JSON.parse(run.stdout) as LogRecord;
    const skipped = (summary.skippedLines as LogRecord[]).map((issue) => ({ place: `${issue.file}:${issue.line}`, problem: issue.problem, excerpt: issue.excerpt }));
    expect(skipped).toEqual([{ place: cutOffPlace, problem: 'cut off', excerpt: CUT_OFF_LINE }]);
  });

  test('text summary prints the counts', () => {
    const run = runLogs([logDir]);

    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`Requests: ${healthIds.length + 2}`);
    expect(run.stdout).toContain(`${cutOffPlace}  cut off: ${CUT_OFF_LINE}`);
    expect(run.stdout).toContain('1 ended without a shutdown summary before the next start');
    expect(run.stdout).toMatch(/GET \/healthz +50 /);
  });

  test('lines come in the order they were written', () => {
    const run = runLogs([logDir, '--path', '/healthz', '--json']);

    expect(run.status).toBe(0);
    const records = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as LogRecord);
    expect(records.map((record) => record.requestId)).toEqual(healthIds);
  });

  test('--request-id prints one line', () => {
    const run = runLogs([logDir, '--request-id', 'third-unknown-task']);

    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ WARN +request completed {2}GET \/tasks\/0b9d1a2e-1111-4222-8333-444455556666 {2}404 {2}/);
    expect(run.stderr).toContain(`skipped ${cutOffPlace}: cut off`);
  });

  test('--status 4xx prints the client errors', () => {
    const run = runLogs([logDir, '--status', '4xx', '--json']);

    const requestIds = run.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as LogRecord).requestId);
    expect(requestIds).toEqual(['first-unknown', 'third-unknown-task']);
  });

  test.each<[string, (directory: string) => string[], string]>([
    ['invalid status', (directory) => [directory, '--status', '6xx'], '--status "6xx" is invalid'],
    ['unknown option', (directory) => [directory, '--verbose'], 'unknown option --verbose'],
    ['missing directory', () => ['/nonexistent/inferline-logs'], '/nonexistent/inferline-logs does not exist'],
  ])('%s exits 2', (_case, args, message) => {
    const run = runLogs(args(logDir));

    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`npm run logs: ${message}`);
    expect(run.stdout).toBe('');
  });
});

describe('lifecycle lines at LOG_LEVEL=error', () => {
  afterEach(stopLeftoverServers);

  test.each<[string, Record<string, string>, string[]]>([
    ['one process', {}, ['server starting', 'server started', 'shutdown started', 'shutdown complete']],
    [
      'cluster',
      { WORKERS: '2' },
      ['server starting', 'worker started', 'worker started', 'server started', 'shutdown started', 'shutdown started', 'shutdown started', 'worker stopped', 'worker stopped', 'shutdown complete'],
    ],
  ])(
    '%s: npm run logs counts the run',
    async (_name, env, expectedMessages) => {
      const server = await startServer({ ...env, LOG_LEVEL: 'error' });
      await get(server.baseUrl, '/healthz', 'error-level-healthz');
      server.child.kill('SIGTERM');
      const exit = await server.waitForExit();
      const run = runLogs([server.logDir]);

      expect(exit).toEqual({ code: 0, signal: null });
      const messages = readLogLines(server.logDir).map((line) => (JSON.parse(line) as LogRecord).message as string);
      expect([...messages].sort()).toEqual([...expectedMessages].sort());
      expect(messages[messages.length - 1]).toBe('shutdown complete');
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('Starts: 1\nShutdowns: 1\n');
      expect(run.stdout).toContain('Requests: 0');
    },
    TEST_TIMEOUT_MS,
  );
});
