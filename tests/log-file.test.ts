import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { LogRotation } from '../services/log-file';
import { AppLogger, createLogger } from '../services/logger';

let directory: string;

beforeEach(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-log-file-'));
});

afterEach(() => {
  fs.rmSync(directory, { recursive: true, force: true });
});

function openLog(rotation?: LogRotation): AppLogger {
  return createLogger({ level: 'info', logDir: directory, console: false, rotation });
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Logs lines numbered from `first`, `perTurn` of them in each turn of the event loop. */
async function logNumbered(log: AppLogger, first: number, count: number, perTurn: number): Promise<void> {
  for (let sequence = first; sequence < first + count; sequence++) {
    log.logger.info('numbered line', { sequence });
    if ((sequence - first + 1) % perTurn === 0) await nextTurn();
  }
}

/** Lists app.log and its rotated files, oldest first: app.log.N, ..., app.log.1, app.log. */
function logFiles(): string[] {
  const rotated = fs
    .readdirSync(directory)
    .filter((name) => /^app\.log\.\d+$/.test(name))
    .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
  return [...rotated, 'app.log'];
}

function readLines(name: string): string[] {
  const text = fs.readFileSync(path.join(directory, name), 'utf8');
  return text.split('\n').slice(0, -1);
}

function sequencesOf(names: string[]): number[] {
  return names.flatMap((name) => readLines(name).map((line) => (JSON.parse(line) as { sequence: number }).sequence));
}

describe('log file rotation', () => {
  test('keeps every line once, in order', async () => {
    const log = openLog({ maxBytes: 2000, maxFiles: 50 });

    await logNumbered(log, 0, 300, 7);
    await log.close();

    const files = logFiles();
    expect(files.length).toBeGreaterThan(5);
    expect(sequencesOf(files)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    for (const name of files) {
      const text = fs.readFileSync(path.join(directory, name), 'utf8');
      expect({ name, withinLimit: Buffer.byteLength(text) <= 2000, endsWithNewline: text.endsWith('\n') }).toEqual({ name, withinLimit: true, endsWithNewline: true });
    }
  });

  test('splits one turn of lines across files', async () => {
    const log = openLog({ maxBytes: 1000, maxFiles: 50 });

    await logNumbered(log, 0, 100, 100);
    await log.close();

    const files = logFiles();
    expect(files.length).toBeGreaterThan(3);
    expect(sequencesOf(files)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  test('keeps at most LOG_MAX_FILES rotated files', async () => {
    const log = openLog({ maxBytes: 1000, maxFiles: 3 });

    await logNumbered(log, 0, 200, 5);
    await log.close();

    const files = logFiles();
    const sequences = sequencesOf(files);
    expect(files).toEqual(['app.log.3', 'app.log.2', 'app.log.1', 'app.log']);
    expect(sequences[sequences.length - 1]).toBe(199);
    expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => 200 - sequences.length + i));
  });

  test('line longer than LOG_MAX_BYTES gets its own file', async () => {
    const log = openLog({ maxBytes: 500, maxFiles: 10 });

    log.logger.info('short', { sequence: 0 });
    log.logger.info('long', { sequence: 1, padding: 'x'.repeat(2000) });
    log.logger.info('short', { sequence: 2 });
    await log.close();

    expect(logFiles()).toEqual(['app.log.2', 'app.log.1', 'app.log']);
    expect(logFiles().map((name) => sequencesOf([name]))).toEqual([[0], [1], [2]]);
  });

  test('counts the bytes already in the file', async () => {
    const existing = `${JSON.stringify({ message: 'from the previous start', padding: 'x'.repeat(900) })}\n`;
    fs.writeFileSync(path.join(directory, 'app.log'), existing);
    const log = openLog({ maxBytes: 1000, maxFiles: 5 });

    log.logger.info('numbered line', { sequence: 0 });
    await log.close();

    expect(fs.readFileSync(path.join(directory, 'app.log.1'), 'utf8')).toBe(existing);
    expect(sequencesOf(['app.log'])).toEqual([0]);
  });

  test('shifts gzipped rotated files too', async () => {
    const gzipped = zlib.gzipSync(`${JSON.stringify({ message: 'compressed by another tool' })}\n`);
    fs.writeFileSync(path.join(directory, 'app.log.1.gz'), gzipped);
    fs.writeFileSync(path.join(directory, 'app.log'), `${JSON.stringify({ message: 'before', padding: 'x'.repeat(300) })}\n`);
    const log = openLog({ maxBytes: 400, maxFiles: 5 });

    log.logger.info('numbered line', { sequence: 0, padding: 'y'.repeat(200) });
    await log.close();

    expect(fs.readdirSync(directory).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2.gz']);
    expect(fs.readFileSync(path.join(directory, 'app.log.2.gz'))).toEqual(gzipped);
  });

  test('LOG_MAX_BYTES 0 never rotates', async () => {
    const log = openLog({ maxBytes: 0, maxFiles: 5 });

    await logNumbered(log, 0, 200, 10);
    await log.close();

    expect(logFiles()).toEqual(['app.log']);
    expect(sequencesOf(['app.log'])).toHaveLength(200);
  });

  test('failed rotation loses no line', async () => {
    // app.log.1 is a directory with a file in it, so renaming app.log onto it fails.
    fs.mkdirSync(path.join(directory, 'app.log.1'));
    fs.writeFileSync(path.join(directory, 'app.log.1', 'keep'), '');
    const log = openLog({ maxBytes: 500, maxFiles: 1 });
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);

    let messages: string[];
    try {
      await logNumbered(log, 0, 50, 5);
      await log.close();
    } finally {
      messages = stderr.mock.calls.map((call) => String(call[0]));
      stderr.mockRestore();
    }

    expect(sequencesOf(['app.log'])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('cannot rotate the log file');
  });
});

describe('log file after a crash', () => {
  test('cut-off last line stays on its own line', async () => {
    const complete = JSON.stringify({ message: 'complete' });
    fs.writeFileSync(path.join(directory, 'app.log'), `${complete}\n{"level":"info","mess`);
    const log = openLog();

    log.logger.info('after the restart');
    await log.close();

    const lines = readLines('app.log');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(complete);
    expect(lines[1]).toBe('{"level":"info","mess');
    expect(JSON.parse(lines[2]).message).toBe('after the restart');
  });
});
