import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../services/config';
import { AppLogger, createFileLogger, createLogger, logLifecycleEvent } from '../services/logger';

let directory: string;

beforeEach(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-logger-'));
});

afterEach(() => {
  fs.rmSync(directory, { recursive: true, force: true });
});

function openLog(level: string): AppLogger {
  return createLogger({ level, logDir: directory, console: false });
}

function readRecords(): Record<string, unknown>[] {
  const text = fs.readFileSync(path.join(directory, 'app.log'), 'utf8');
  return text
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Logs one line at each level and one lifecycle event, then returns the messages written. */
async function messagesAtLevel(level: string): Promise<unknown[]> {
  const log = openLog(level);
  log.logger.error('error line');
  log.logger.warn('warn line');
  log.logger.info('info line');
  log.logger.debug('debug line');
  logLifecycleEvent(log.logger, 'server started');
  await log.close();
  return readRecords().map((record) => record.message);
}

describe('logger levels', () => {
  test.each<[string, string[]]>([
    ['error', ['error line', 'server started']],
    ['warn', ['error line', 'warn line', 'server started']],
    ['info', ['error line', 'warn line', 'info line', 'server started']],
    ['debug', ['error line', 'warn line', 'info line', 'debug line', 'server started']],
  ])('LOG_LEVEL=%s keeps lifecycle events', async (level, expected) => {
    expect(await messagesAtLevel(level)).toEqual(expected);
  });

  test('lifecycle event has only its fields', async () => {
    const log = openLog('error');

    logLifecycleEvent(log.logger, 'shutdown complete', { signal: 'SIGTERM', requestsServed: 3 });
    await log.close();

    const [record] = readRecords();
    expect(Object.keys(record).sort()).toEqual(['level', 'message', 'requestsServed', 'signal', 'timestamp']);
    expect(record.level).toBe('info');
  });

  test('startup check fails at LOG_LEVEL=error', () => {
    fs.symlinkSync('/dev/full', path.join(directory, 'app.log'));
    const config = loadConfig({ LOG_DIR: directory, LOG_LEVEL: 'error', LOG_CONSOLE: 'false' });

    expect(() => createFileLogger(config, { workers: 1 })).toThrow(`cannot write the log file ${path.join(directory, 'app.log')}: ENOSPC`);
  });
});
