import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { LogArgumentError, parseLogArguments } from '../services/log-arguments';
import { LogFilter, formatRecordLine, matchesFilter, selectsLines } from '../services/log-filter';
import { LogEntry, LogReadIssue, LogTargetError, listLogFiles, readLogEntries } from '../services/log-reader';
import { formatDuration, formatSummary } from '../services/log-report';
import { LogSummarizer, LogSummary, nearestRank, routeOf } from '../services/log-summary';

const NOW = Date.parse('2026-12-04T12:00:00.000Z');
const NO_FILTER: LogFilter = { since: null, until: null, level: null, requestId: null, status: null, pathPrefix: null };
const ORDER_ID = '0b9d1a2e-1111-4222-8333-444455556666';

let directory: string;

beforeEach(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-log-review-'));
});

afterEach(() => {
  fs.rmSync(directory, { recursive: true, force: true });
});

function jsonLines(records: Record<string, unknown>[]): string {
  return records.map((record) => `${JSON.stringify(record)}\n`).join('');
}

function writeLog(name: string, text: string | Buffer): string {
  const file = path.join(directory, name);
  fs.writeFileSync(file, text);
  return file;
}

async function readAll(files: string[]): Promise<{ entries: LogEntry[]; issues: LogReadIssue[] }> {
  const entries: LogEntry[] = [];
  const issues: LogReadIssue[] = [];
  for await (const entry of readLogEntries(files, (issue) => issues.push(issue))) entries.push(entry);
  return { entries, issues };
}

function at(second: number): string {
  return new Date(Date.parse('2026-12-04T10:00:00.000Z') + second * 1000).toISOString();
}

function accessLine(second: number, method: string, urlPath: string, status: number, durationMs: number, extra: Record<string, unknown> = {}) {
  let level = 'info';
  if (status >= 500) level = 'error';
  else if (status >= 400) level = 'warn';
  return { level, message: 'request completed', method, path: urlPath, status, durationMs, requestId: `request-${second}`, timestamp: at(second), ...extra };
}

describe('listLogFiles', () => {
  test('reads rotated files oldest first', () => {
    for (const name of ['app.log', 'app.log.1', 'app.log.2.gz', 'app.log.10', 'app.log.9', 'other.log', 'app.log.bak']) writeLog(name, '');

    const files = listLogFiles(directory);

    expect(files.map((file) => path.basename(file))).toEqual(['app.log.10', 'app.log.9', 'app.log.2.gz', 'app.log.1', 'app.log']);
  });

  test('plain file wins over its gzipped twin', () => {
    for (const name of ['app.log', 'app.log.1', 'app.log.1.gz']) writeLog(name, '');

    const files = listLogFiles(directory);

    expect(files.map((file) => path.basename(file))).toEqual(['app.log.1', 'app.log']);
  });

  test('a file is read alone', () => {
    const file = writeLog('service.log', '');

    expect(listLogFiles(file)).toEqual([file]);
  });

  test.each<[string, () => string, RegExp]>([
    ['missing path', () => path.join(directory, 'missing'), /does not exist; pass a log file, or a directory with app.log/],
    ['directory without logs', () => directory, /contains no app.log or rotated app.log.N files/],
  ])('%s is rejected', (_case, target, message) => {
    expect(() => listLogFiles(target())).toThrow(LogTargetError);
    expect(() => listLogFiles(target())).toThrow(message);
  });
});

describe('readLogEntries', () => {
  test('reads gzipped and plain files in order', async () => {
    const older = writeLog('app.log.1.gz', zlib.gzipSync(jsonLines([{ message: 'first' }, { message: 'second' }])));
    const newer = writeLog('app.log', jsonLines([{ message: 'third' }]));

    const { entries, issues } = await readAll([older, newer]);

    expect(entries.map((entry) => [path.basename(entry.file), entry.line, entry.record.message])).toEqual([
      ['app.log.1.gz', 1, 'first'],
      ['app.log.1.gz', 2, 'second'],
      ['app.log', 1, 'third'],
    ]);
    expect(issues).toEqual([]);
  });

  test('cut-off last line is reported and skipped', async () => {
    const file = writeLog('app.log', `${jsonLines([{ message: 'whole' }])}{"level":"info","message":"request compl`);

    const { entries, issues } = await readAll([file]);

    expect(entries.map((entry) => entry.record.message)).toEqual(['whole']);
    expect(issues).toEqual([{ file, line: 2, problem: 'cut off at the end of the file', excerpt: '{"level":"info","message":"request compl' }]);
  });

  test('cut-off line ended by the next start is reported', async () => {
    const file = writeLog('app.log', `{"level":"info","mess\n${jsonLines([{ message: 'server started' }])}`);

    const { entries, issues } = await readAll([file]);

    expect(entries.map((entry) => entry.record.message)).toEqual(['server started']);
    expect(issues.map((issue) => [issue.line, issue.problem])).toEqual([[1, 'cut off']]);
  });

  test('record appended to a cut-off line is kept', async () => {
    const file = writeLog('app.log', `{"level":"info","message":"task sta${jsonLines([{ message: 'server started', workers: [{ id: 1 }] }])}`);

    const { entries, issues } = await readAll([file]);

    expect(entries.map((entry) => entry.record)).toEqual([{ message: 'server started', workers: [{ id: 1 }] }]);
    expect(issues).toEqual([{ file, line: 1, problem: 'cut off, followed on the same line by the next record', excerpt: '{"level":"info","message":"task sta' }]);
  });

  test('line that is not JSON is reported', async () => {
    const file = writeLog('app.log', `${jsonLines([{ message: 'before' }])}Error: something printed by hand\n\n[1,2]\n${jsonLines([{ message: 'after' }])}`);

    const { entries, issues } = await readAll([file]);

    expect(entries.map((entry) => [entry.line, entry.record.message])).toEqual([
      [1, 'before'],
      [5, 'after'],
    ]);
    expect(issues.map((issue) => [issue.line, issue.problem])).toEqual([
      [2, 'not JSON'],
      [4, 'not JSON'],
    ]);
  });

  test('truncated gzip file is reported; the next file is read', async () => {
    const gzipped = zlib.gzipSync(jsonLines(Array.from({ length: 2000 }, (_, i) => ({ message: 'line', sequence: i }))));
    const truncated = writeLog('app.log.1.gz', gzipped.subarray(0, Math.floor(gzipped.length / 2)));
    const current = writeLog('app.log', jsonLines([{ message: 'current' }]));

    const { entries, issues } = await readAll([truncated, current]);

    expect(issues).toHaveLength(1);
    expect(issues[0].file).toBe(truncated);
    expect(issues[0].problem).toMatch(/^could not be read: /);
    expect(entries[entries.length - 1].record.message).toBe('current');
  });

  test('multi-byte characters across read chunks stay whole', async () => {
    const message = 'é✓'.repeat(40_000);
    const file = writeLog('app.log', jsonLines([{ message }, { message: 'next' }]));

    const { entries } = await readAll([file]);

    expect(entries.map((entry) => entry.record.message)).toEqual([message, 'next']);
  });
});

describe('parseLogArguments', () => {
  const parse = (args: string[]) => parseLogArguments(args, { now: NOW, defaultTarget: 'logs' });

  test('no arguments reads the default target', () => {
    expect(parse([])).toEqual({ target: 'logs', filter: NO_FILTER, json: false, help: false });
  });

  test('every option is parsed', () => {
    const query = parse(['/var/log/inferline', '--since', '2h', '--until', '2026-12-04T11:30', '--level', 'warn', '--request-id', 'abc', '--status', '5xx,404', '--path', '/orders', '--json']);

    expect(query).toEqual({
      target: '/var/log/inferline',
      filter: {
        since: NOW - 2 * 3_600_000,
        until: Date.parse('2026-12-04T11:30:00Z'),
        level: 'warn',
        requestId: 'abc',
        status: [{ statusClass: 5 }, { code: 404 }],
        pathPrefix: '/orders',
      },
      json: true,
      help: false,
    });
  });

  test.each<[string, number]>([
    ['30s', NOW - 30_000],
    ['15m', NOW - 900_000],
    ['7d', NOW - 7 * 86_400_000],
    ['2026-12-04', Date.parse('2026-12-04T00:00:00Z')],
    ['2026-12-04T10:00', Date.parse('2026-12-04T10:00:00Z')],
    ['2026-12-04T10:00:05.250Z', Date.parse('2026-12-04T10:00:05.250Z')],
    ['2026-12-04T12:00:00+02:00', Date.parse('2026-12-04T10:00:00Z')],
  ])('--since %s', (value, expected) => {
    expect(parse(['--since', value]).filter.since).toBe(expected);
  });

  test.each<[string[], RegExp]>([
    [['--since', 'yesterday'], /^--since "yesterday" is invalid: expected an ISO 8601 date or time such as 2026-12-04/],
    [['--until', '2026-13-45'], /^--until "2026-13-45" is invalid/],
    [['--since', '5 minutes'], /^--since "5 minutes" is invalid: .* or a duration before now such as 30s, 15m, 2h or 7d$/],
    [['--since', '1h', '--until', '2h'], /^--since 1h is after --until 2h/],
    [['--level', 'fatal'], /^--level "fatal" is invalid: expected one of error, warn, info, debug$/],
    [['--status', '6xx'], /^--status "6xx" is invalid: expected status codes or classes separated by commas, such as 5xx or 404,429$/],
    [['--status', '5xx,'], /^--status "5xx," is invalid/],
    [['--path', 'orders'], /^--path "orders" is invalid: expected a path that starts with \/, such as \/orders$/],
    [['--request-id', ' '], /^--request-id is empty/],
    [['--sinse', '1h'], /^unknown option --sinse: expected one of --since TIME, --until TIME/],
    [['--since'], /^--since is missing its value: expected --since TIME$/],
    [['--json=yes'], /^--json takes no value: expected --json alone$/],
    [['logs', 'more-logs'], /^FILE\|DIR: expected one log file or directory, got 2: logs more-logs$/],
  ])('%p is rejected', (args, message) => {
    expect(() => parse(args)).toThrow(LogArgumentError);
    expect(() => parse(args)).toThrow(message);
  });
});

describe('matchesFilter', () => {
  const access = accessLine(0, 'GET', `/orders/${ORDER_ID}`, 404, 2);

  test.each<[string, Partial<LogFilter>, Record<string, unknown>, boolean]>([
    ['no filter', {}, access, true],
    ['level warn takes warn', { level: 'warn' }, access, true],
    ['level warn takes error', { level: 'warn' }, { level: 'error' }, true],
    ['level warn leaves info', { level: 'warn' }, { level: 'info' }, false],
    ['status class', { status: [{ statusClass: 4 }] }, access, true],
    ['status code', { status: [{ code: 404 }] }, access, true],
    ['other status', { status: [{ statusClass: 5 }, { code: 400 }] }, access, false],
    ['status on a line without one', { status: [{ statusClass: 4 }] }, { message: 'task started' }, false],
    ['path prefix', { pathPrefix: '/orders' }, access, true],
    ['other path prefix', { pathPrefix: '/users' }, access, false],
    ['request id', { requestId: 'request-0' }, access, true],
    ['other request id', { requestId: 'request-1' }, access, false],
    ['since, equal', { since: Date.parse(at(0)) }, access, true],
    ['since, later', { since: Date.parse(at(1)) }, access, false],
    ['until, earlier', { until: Date.parse(at(-1)) }, access, false],
    ['time range, no timestamp', { since: Date.parse(at(-1)) }, { message: 'no time' }, false],
  ])('%s', (_case, filter, record, expected) => {
    expect(matchesFilter(record, { ...NO_FILTER, ...filter })).toBe(expected);
  });

  test('only time filters keep the summary', () => {
    expect(selectsLines({ ...NO_FILTER, since: 0, until: 1 })).toBe(false);
    expect(selectsLines({ ...NO_FILTER, pathPrefix: '/orders' })).toBe(true);
  });
});

describe('formatRecordLine', () => {
  test('access line reads as one line', () => {
    const line = formatRecordLine({ ...accessLine(0, 'POST', '/predict', 503, 1.234, { error: 'the prediction queue is full', route: '/predict' }), stack: 'Error\n    at x' });

    expect(line).toBe(`${at(0)}  ERROR  request completed  POST /predict  503  1.2 ms  requestId=request-0  error="the prediction queue is full"`);
  });

  test('other fields follow as key=value', () => {
    const line = formatRecordLine({ level: 'info', message: 'task succeeded', taskId: 't-1', classified: 3, timestamp: at(5), workerId: 2 });

    expect(line).toBe(`${at(5)}  INFO   task succeeded  taskId=t-1  classified=3  workerId=2`);
  });
});

describe('LogSummarizer', () => {
  function summarize(records: Record<string, unknown>[]): LogSummary {
    const summarizer = new LogSummarizer();
    records.forEach((record, index) => summarizer.add({ file: 'app.log', line: index + 1, record }));
    return summarizer.finish();
  }

  test('counts requests by status class', () => {
    const summary = summarize([
      accessLine(0, 'GET', '/healthz', 200, 1),
      accessLine(1, 'POST', '/predict', 503, 1),
      accessLine(2, 'GET', '/nope', 404, 1),
      accessLine(3, 'POST', '/orders', 499, 30, { aborted: true }),
      accessLine(4, 'POST', '/orders', 201, 30),
    ]);

    expect(summary.requests).toEqual({ total: 5, aborted: 1, byStatusClass: { '2xx': 2, '4xx': 2, '5xx': 1 } });
  });

  test('percentiles by route use the nearest rank', () => {
    const lines = Array.from({ length: 100 }, (_, i) => accessLine(i, 'GET', `/orders/${i % 2 === 0 ? ORDER_ID : '7f3e0000-0000-4000-8000-000000000000'}`, 200, 100 - i));

    const summary = summarize(lines);

    expect(summary.routes).toEqual([{ method: 'GET', route: '/orders/:id', count: 100, p50Ms: 50, p95Ms: 95, p99Ms: 99, maxMs: 100 }]);
  });

  test('route field wins over the path', () => {
    const summary = summarize([accessLine(0, 'GET', '/nope', 404, 1, { route: 'unmatched' }), accessLine(1, 'GET', '/other', 404, 3, { route: 'unmatched' })]);

    expect(summary.routes.map((route) => [route.method, route.route, route.count])).toEqual([['GET', 'unmatched', 2]]);
  });

  test('groups errors by message', () => {
    const summary = summarize([
      { level: 'error', message: 'request failed', error: `order ${ORDER_ID} could not be stored`, timestamp: at(10) },
      { level: 'error', message: 'request failed', error: 'order 7f3e0000-0000-4000-8000-000000000000 could not be stored', timestamp: at(5) },
      { level: 'error', message: 'task failed', error: 'the worker running this task exited 3 times', timestamp: at(20) },
      { level: 'warn', message: 'shutdown already in progress; signal ignored', timestamp: at(30) },
    ]);

    expect(summary.errors).toEqual([
      { message: 'request failed: order :id could not be stored', count: 2, firstTime: at(5), lastTime: at(10), example: `request failed: order ${ORDER_ID} could not be stored` },
      { message: 'task failed: the worker running this task exited N times', count: 1, firstTime: at(20), lastTime: at(20), example: 'task failed: the worker running this task exited 3 times' },
    ]);
  });

  test('counts task outcomes', () => {
    const messages = [
      'task started',
      'task started',
      'task succeeded',
      'task failed',
      'task cancelled',
      'task interrupted by the shutdown; requeued',
      // The message of the same event in older logs.
      'task left queued for the next start',
    ];
    const summary = summarize(messages.map((message) => ({ level: 'info', message })));

    expect(summary.tasks).toEqual({ started: 2, succeeded: 1, failed: 1, cancelled: 1, interrupted: 2 });
  });

  test('interrupted tasks counted per run', () => {
    const interrupted = { level: 'info', message: 'task interrupted by the shutdown; requeued' };
    const shutdown = { level: 'info', message: 'shutdown complete', signal: 'SIGTERM', forced: false, requestsServed: 5, tasksSucceeded: 0, tasksFailed: 0, tasksCancelled: 0 };
    const records = [
      // A run killed while a task ran: its interrupted line belongs to no shutdown.
      { level: 'info', message: 'server starting', timestamp: at(0) },
      { level: 'info', message: 'server started', timestamp: at(1) },
      { ...interrupted, timestamp: at(2) },
      // WORKERS=2 and five orders: two tasks running and three queued at SIGTERM.
      { level: 'info', message: 'server starting', timestamp: at(10) },
      { level: 'info', message: 'server started', timestamp: at(11) },
      { ...interrupted, timestamp: at(12) },
      { ...interrupted, timestamp: at(12) },
      { ...shutdown, tasksLeftQueued: 5, timestamp: at(13) },
    ];
    const summarizer = new LogSummarizer();
    records.forEach((record, index) => summarizer.add({ file: 'logs/app.log', line: index + 1, record }));

    const summary = summarizer.finish();
    const text = formatSummary(summary);

    expect(summary.tasks.interrupted).toBe(3);
    expect(summary.shutdowns.map((entry) => [entry.tasksInterrupted, entry.tasksLeftQueued])).toEqual([[2, 5]]);
    expect(text).toContain('Tasks: 0 started, 0 succeeded, 0 failed, 0 cancelled, 3 interrupted by a shutdown and requeued');
    expect(text).toContain('tasks 0 succeeded, 0 failed, 0 cancelled, 2 interrupted; 5 queued for the next start, interrupted ones included; clean');
  });

  test('lists shutdowns and starts without one', () => {
    const shutdown = { level: 'info', message: 'shutdown complete', signal: 'SIGTERM', forced: false, uptimeMs: 60_000, requestsServed: 7, tasksSucceeded: 1, tasksFailed: 0, tasksCancelled: 0, tasksLeftQueued: 2 };
    const summary = summarize([
      { level: 'info', message: 'server started', timestamp: at(0) },
      { ...shutdown, timestamp: at(60) },
      { level: 'info', message: 'server started', timestamp: at(100) },
      { level: 'info', message: 'server started', timestamp: at(200) },
    ]);

    expect(summary.starts).toEqual({ count: 3, withoutShutdownSummary: 1, lastStillOpen: true });
    expect(summary.shutdowns).toEqual([
      { time: at(60), signal: 'SIGTERM', forced: false, uptimeMs: 60_000, requestsServed: 7, tasksSucceeded: 1, tasksFailed: 0, tasksCancelled: 0, tasksInterrupted: 0, tasksLeftQueued: 2, workers: undefined },
    ]);
    expect(summary.firstTime).toBe(at(0));
    expect(summary.lastTime).toBe(at(200));
  });
});

describe('formatSummary', () => {
  test('prints every section', () => {
    const summarizer = new LogSummarizer();
    const records = [
      { level: 'info', message: 'server started', timestamp: at(0) },
      accessLine(1, 'GET', '/healthz', 200, 0.5),
      accessLine(2, 'POST', '/predict', 500, 12.25),
      { level: 'error', message: 'request failed', error: 'boom', timestamp: at(2) },
      { level: 'info', message: 'shutdown complete', signal: 'SIGTERM', forced: false, uptimeMs: 3000, requestsServed: 2, tasksSucceeded: 0, tasksFailed: 0, tasksCancelled: 0, tasksLeftQueued: 0, timestamp: at(3) },
    ];
    records.forEach((record, index) => summarizer.add({ file: 'logs/app.log', line: index + 1, record }));
    summarizer.noteIssue({ file: 'logs/app.log', line: 6, problem: 'cut off at the end of the file', excerpt: '{"lev' });

    const text = formatSummary(summarizer.finish());

    for (const expected of [
      'logs/app.log  6 lines',
      'logs/app.log:6  cut off at the end of the file: {"lev',
      `Time span: ${at(0)} to ${at(3)} (3 s)`,
      'Lines: 5 (error 2, info 3)',
      'Requests: 2',
      '2xx 1, 5xx 1',
      'POST /predict      1  12.3  12.3  12.3  12.3',
      'GET /healthz       1  0.50  0.50  0.50  0.50',
      'Errors: 2 in 2 groups',
      'request failed: boom',
      'Tasks: 0 started, 0 succeeded, 0 failed, 0 cancelled, 0 interrupted by a shutdown and requeued',
      'Starts: 1',
      `${at(3)}  SIGTERM after 3 s: 2 requests; tasks 0 succeeded, 0 failed, 0 cancelled, 0 interrupted; 0 queued for the next start, interrupted ones included; clean`,
    ]) {
      expect(text).toContain(expected);
    }
  });
});

describe('summary helpers', () => {
  test.each<[number, string]>([
    [850, '850 ms'],
    [4000, '4 s'],
    [250_000, '4 min 10 s'],
    [3_600_000, '1 h 0 min'],
    [2 * 86_400_000 + 3 * 3_600_000 + 59_000, '2 d 3 h'],
  ])('formatDuration(%p) is %p', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  test.each<[string, string]>([
    [`/orders/${ORDER_ID}/bill`, '/orders/:id/bill'],
    [`/tasks/${ORDER_ID.toUpperCase()}`, '/tasks/:id'],
    ['/healthz', '/healthz'],
  ])('routeOf(%p) is %p', (urlPath, expected) => {
    expect(routeOf(urlPath)).toBe(expected);
  });

  test('nearestRank of one value', () => {
    expect(nearestRank([7], 0.99)).toBe(7);
  });
});
