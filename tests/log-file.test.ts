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

describe('log file when writes fail', () => {
  const noSpace = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

  /** Makes the next `count` writes fail with ENOSPC, as on a full disk, and returns the stderr lines. */
  function failWrites(count: number): { messages: () => string[]; restore: () => void } {
    const realWrite = fs.writeSync;
    let failures = 0;
    const write = jest.spyOn(fs, 'writeSync').mockImplementation(((...args: Parameters<typeof fs.writeSync>) => {
      if (failures++ < count) throw noSpace();
      return (realWrite as (...a: unknown[]) => number)(...args);
    }) as typeof fs.writeSync);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    return {
      messages: () => stderr.mock.calls.map((call) => String(call[0])),
      restore: () => {
        write.mockRestore();
        stderr.mockRestore();
      },
    };
  }

  test('failed lines are written later', async () => {
    const log = openLog();
    const failing = failWrites(3);

    let messages: string[];
    try {
      await logNumbered(log, 0, 40, 10);
      await log.close();
    } finally {
      messages = failing.messages();
      failing.restore();
    }

    expect(sequencesOf(['app.log'])).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(messages).toHaveLength(2);
    expect(messages[0]).toContain('cannot write the log file');
    expect(messages[0]).toContain('ENOSPC');
    expect(messages[1]).toContain('works again; no line was lost');
  });

  test('lost lines are reported first', async () => {
    const log = openLog();
    const failing = failWrites(1000);
    const padding = 'x'.repeat(2000);

    let messages: string[] = [];
    try {
      // About 1.2 MB while writes fail: more than the 1 MB kept in memory.
      for (let sequence = 0; sequence < 600; sequence++) {
        log.logger.info('numbered line', { sequence, padding });
        if (sequence % 50 === 49) await nextTurn();
      }
      await nextTurn();
      messages = failing.messages();
    } finally {
      failing.restore();
    }
    log.logger.info('numbered line', { sequence: 600 });
    await log.close();

    const records = readLines('app.log').map((line) => JSON.parse(line) as { message: string; sequence?: number; lostLines?: number; error?: string });
    const lostLines = records[0].lostLines ?? 0;
    expect(records[0].message).toBe('log lines were lost: the log file could not be written');
    expect(records[0].error).toContain('ENOSPC');
    expect(lostLines).toBeGreaterThan(0);
    expect(records.slice(1).map((record) => record.sequence)).toEqual(Array.from({ length: 601 - lostLines }, (_, i) => lostLines + i));
    expect(messages[0]).toContain('cannot write the log file');
  });

  test('partial line is cut off', async () => {
    const log = openLog();
    log.logger.info('before the failure');
    await nextTurn();
    const realWrite = fs.writeSync;
    let calls = 0;
    const write = jest.spyOn(fs, 'writeSync').mockImplementation(((descriptor: number, buffer: Buffer, offset: number) => {
      calls++;
      // The first write stores 10 bytes and the next one fails: the disk filled up in between.
      if (calls === 1) return realWrite(descriptor, buffer, offset, 10);
      if (calls === 2) throw noSpace();
      return realWrite(descriptor, buffer, offset);
    }) as typeof fs.writeSync);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);

    try {
      log.logger.info('during the failure');
      await nextTurn();
      log.logger.info('after the failure');
      await log.close();
    } finally {
      write.mockRestore();
      stderr.mockRestore();
    }

    const messages = readLines('app.log').map((line) => (JSON.parse(line) as { message: string }).message);
    expect(messages).toEqual(['before the failure', 'during the failure', 'after the failure']);
  });

  test('writeFileNow on full device throws', () => {
    fs.symlinkSync('/dev/full', path.join(directory, 'app.log'));
    const log = openLog();

    log.logger.info('first line');

    expect(() => log.writeFileNow()).toThrow(`cannot write the log file ${path.join(directory, 'app.log')}: ENOSPC`);
  });
});

describe('log file changed by another tool', () => {
  /** Runs `work` with stderr captured and returns the messages written there. */
  async function captureStderr(work: () => Promise<void>): Promise<string[]> {
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let messages: string[] = [];
    try {
      await work();
    } finally {
      messages = stderr.mock.calls.map((call) => String(call[0]));
      stderr.mockRestore();
    }
    return messages;
  }

  function waitForPathCheck(): Promise<void> {
    // Flushes compare the path with the open file at most once a second.
    return new Promise((resolve) => setTimeout(resolve, 1100));
  }

  function rotatedFiles(): Map<string, string> {
    return new Map(logFiles().filter((name) => name !== 'app.log').map((name) => [name, fs.readFileSync(path.join(directory, name), 'utf8')]));
  }

  test('moved app.log keeps rotated lines', async () => {
    const log = openLog({ maxBytes: 1000, maxFiles: 5 });
    await logNumbered(log, 0, 40, 1);
    const overwritten = sequencesOf(['app.log.1']);
    expect(logFiles()).toEqual(['app.log.3', 'app.log.2', 'app.log.1', 'app.log']);

    const messages = await captureStderr(async () => {
      // As logrotate does by default, without knowing the service's own rotated files.
      fs.renameSync(path.join(directory, 'app.log'), path.join(directory, 'app.log.1'));
      await logNumbered(log, 40, 20, 1);
      await log.close();
    });

    const expected = Array.from({ length: 60 }, (_, i) => i).filter((sequence) => !overwritten.includes(sequence));
    expect(sequencesOf(logFiles())).toEqual(expected);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(`the log file ${path.join(directory, 'app.log')} was moved or deleted`);
  });

  test('deleted app.log keeps rotated files', async () => {
    const log = openLog({ maxBytes: 1000, maxFiles: 5 });
    await logNumbered(log, 0, 40, 1);
    const rotatedBefore = rotatedFiles();

    const messages = await captureStderr(async () => {
      fs.rmSync(path.join(directory, 'app.log'));
      // Enough lines to take the deleted file past the limit, too few to fill a new file.
      await logNumbered(log, 40, 10, 1);
      await log.close();
    });

    expect(rotatedFiles()).toEqual(rotatedBefore);
    const inNewFile = sequencesOf(['app.log']);
    expect(inNewFile.length).toBeGreaterThan(0);
    expect(inNewFile).toEqual(Array.from({ length: inNewFile.length }, (_, i) => 50 - inNewFile.length + i));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('was moved or deleted');
  });

  test('deleted app.log is recreated without rotation', async () => {
    const log = openLog();
    await logNumbered(log, 0, 1, 1);

    const messages = await captureStderr(async () => {
      fs.rmSync(path.join(directory, 'app.log'));
      await waitForPathCheck();
      await logNumbered(log, 1, 2, 1);
      await log.close();
    });

    expect(sequencesOf(['app.log'])).toEqual([1, 2]);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('was moved or deleted');
  });

  test('replaced app.log gets the next lines', async () => {
    const log = openLog();
    await logNumbered(log, 0, 1, 1);

    const messages = await captureStderr(async () => {
      // logrotate's create option: move the file aside and create an empty one in its place.
      fs.renameSync(path.join(directory, 'app.log'), path.join(directory, 'app.log.1'));
      fs.writeFileSync(path.join(directory, 'app.log'), '');
      await waitForPathCheck();
      await logNumbered(log, 1, 1, 1);
      await log.close();
    });

    expect(sequencesOf(['app.log.1'])).toEqual([0]);
    expect(sequencesOf(['app.log'])).toEqual([1]);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('was replaced by another file');
  });

  test('reopenFile follows a moved file at once', async () => {
    const log = openLog();
    await logNumbered(log, 0, 1, 1);

    const messages = await captureStderr(async () => {
      fs.renameSync(path.join(directory, 'app.log'), path.join(directory, 'moved.log'));
      log.reopenFile();
      await logNumbered(log, 1, 1, 1);
      await log.close();
    });

    expect(sequencesOf(['moved.log'])).toEqual([0]);
    expect(sequencesOf(['app.log'])).toEqual([1]);
    expect(messages).toHaveLength(1);
  });

  test('truncated app.log is not rotated early', async () => {
    const log = openLog({ maxBytes: 1000, maxFiles: 5 });
    await logNumbered(log, 0, 8, 1);
    expect(logFiles()).toEqual(['app.log']);

    // logrotate's copytruncate option: copy the file, then truncate it in place.
    fs.truncateSync(path.join(directory, 'app.log'), 0);
    await waitForPathCheck();
    await logNumbered(log, 8, 4, 1);
    await log.close();

    expect(logFiles()).toEqual(['app.log']);
    expect(sequencesOf(['app.log'])).toEqual([8, 9, 10, 11]);
  });
});
