import fs from 'node:fs';
import path from 'node:path';
import Transport from 'winston-transport';
import { createDirectories } from './directories';

const MESSAGE = Symbol.for('message');
const NEWLINE = 0x0a;
// Lines kept in memory while writes fail; at about 400 bytes a line, some 2,500 lines.
const RETAINED_BYTES = 1024 * 1024;
// How often at most a flush checks that the path still names the open file. A check is one stat
// call, 2-3 µs on a 2-core AMD EPYC VM, and a flush between checks adds one Date.now() call.
const PATH_CHECK_INTERVAL_MS = 1000;

/** When the log file rotates: LOG_MAX_BYTES and LOG_MAX_FILES. */
export interface LogRotation {
  /** Size in bytes that a write may not take the file past; 0 turns rotation off. */
  maxBytes: number;
  /** Rotated files kept, from `app.log.1` (the newest) to `app.log.<maxFiles>`. */
  maxFiles: number;
}

export interface LogFileOptions extends Transport.TransportStreamOptions {
  rotation?: LogRotation;
}

/**
 * A winston transport that appends formatted lines to one file and can be closed with a promise that
 * resolves once every line is on disk. Winston's own File transport emits "finish" before its
 * stream has flushed, which loses the last lines at exit.
 *
 * With `rotation`, a write that would take the file past `maxBytes` first renames it to
 * `<file>.1`, after shifting `<file>.N` to `<file>.N+1` and deleting the oldest beyond `maxFiles`.
 * Files end at line boundaries, so every line is whole in exactly one file. Rotated files that
 * another tool gzipped (`<file>.N.gz`) are shifted in the same way.
 *
 * When another tool moves, deletes or replaces the file (logrotate moves it aside), the path is
 * reopened, and lines go on in the file it now names. That is checked at most once a second
 * during flushes, before every rotation, at close, and on `reopenIfMoved`.
 */
export class LogFile extends Transport {
  readonly filePath: string;
  private readonly rotation: LogRotation | null;
  private descriptor: number;
  /** Bytes in the open file. */
  private size: number;
  /** Device and inode of the open file, to tell whether the path still names it. */
  private openedFile: FileIdentity;
  /** When the path was last compared with the open file, in milliseconds since the epoch. */
  private lastPathCheck = Date.now();
  /** Set while reopening a moved file fails, so that stderr gets one message until it works. */
  private reopenFailing = false;
  private ended = false;
  /** The first failed write since writes last worked, or null while they work. */
  private failure: { at: Date; error: string } | null = null;
  /** Lines dropped since writes last worked, when even the retained ones did not fit. */
  private lostLines = 0;
  /** Set while rotations fail, so that stderr gets one message until a rotation works again. */
  private rotationFailing = false;
  // Lines logged in one turn of the event loop go to the file in one write: a write per line cost
  // about a tenth of the server's CPU under load.
  private pending: string[] = [];
  private flushScheduled = false;
  private lastWriteError = '';

  constructor(filePath: string, options: LogFileOptions = {}) {
    const { rotation, ...transportOptions } = options;
    super(transportOptions);
    this.filePath = filePath;
    this.rotation = rotation && rotation.maxBytes > 0 ? rotation : null;
    createDirectories(path.dirname(filePath));
    // Open synchronously so that an unwritable destination fails the start at once, with its path.
    const opened = openForAppend(filePath);
    this.descriptor = opened.descriptor;
    this.size = opened.size;
    this.openedFile = opened.identity;
    this.endCutOffLine();
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    if (!this.ended) {
      this.pending.push(`${String(info[MESSAGE])}\n`);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    }
    next();
  }

  /**
   * Writes the lines logged so far at once, and throws when the file cannot take them, so that a
   * start can fail on a log destination that opens but cannot be written, such as a full disk.
   */
  writeNow(): void {
    const lines = this.pending;
    this.pending = [];
    if (this.writeLines(lines) === lines.length) return;

    // The start fails, so the file is closed: the flush already scheduled then reports nothing more.
    this.ended = true;
    try {
      fs.closeSync(this.descriptor);
    } catch {
      // Closing a file that could not be written loses nothing more.
    }
    throw new Error(`cannot write the log file ${this.filePath}: ${this.lastWriteError}`);
  }

  /**
   * Reopens the path when another tool moved, deleted or replaced the file, and writes the
   * pending lines. This is what SIGHUP does, as logrotate's postrotate scripts expect.
   */
  reopenIfMoved(): void {
    if (this.ended) return;
    this.followPath();
    this.flush();
  }

  /** Writes everything logged so far and closes the file. */
  closeFile(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    // The last lines, the shutdown summary among them, go to the file that the path names.
    this.followPath();
    this.flush();
    if (this.pending.length > 0) {
      process.stderr.write(`${this.pending.length} log lines could not be written to ${this.filePath} before it was closed\n`);
    }
    try {
      fs.closeSync(this.descriptor);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  /**
   * Writes the pending lines synchronously, because an append of a few kilobytes to the page cache
   * takes microseconds. An asynchronous write hands each one to the thread pool, which costs more
   * than the write itself when the server and that thread share a core.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    if (Date.now() - this.lastPathCheck >= PATH_CHECK_INTERVAL_MS) this.followPath();
    const lines = this.pending;
    this.pending = [];

    // After failed writes, a line that reports the loss goes first, and only if this write works.
    const note = this.lostLines > 0 ? this.describeLoss() : null;
    const batch = note === null ? lines : [note, ...lines];
    const written = this.writeLines(batch);
    if (written === batch.length) {
      if (this.failure !== null) this.reportRecovery();
      return;
    }
    this.retainUnwritten(batch.slice(Math.max(written, note === null ? 0 : 1)));
  }

  /** Writes `lines` in order and returns how many of them were written. */
  private writeLines(lines: string[]): number {
    const text = Buffer.from(lines.join(''), 'utf8');
    if (this.rotation === null || this.size + text.length <= this.rotation.maxBytes) {
      return this.appendToFile(text) ? lines.length : 0;
    }
    return this.writeRotating(lines, this.rotation.maxBytes);
  }

  /**
   * Keeps lines that a failed write (a full disk, for example) could not store, to write them
   * first next time, up to RETAINED_BYTES. Older lines beyond that are dropped and counted. The
   * first failure is reported on stderr, because the logger cannot log its own failure.
   */
  private retainUnwritten(lines: string[]): void {
    if (this.failure === null) {
      this.failure = { at: new Date(), error: this.lastWriteError };
      process.stderr.write(`cannot write the log file ${this.filePath}: ${this.lastWriteError}; log lines are kept in memory up to ${RETAINED_BYTES} bytes and written once writes work again\n`);
    }

    let bytes = 0;
    let first = lines.length;
    while (first > 0 && bytes + Buffer.byteLength(lines[first - 1]) <= RETAINED_BYTES) bytes += Buffer.byteLength(lines[--first]);
    this.lostLines += first;
    this.pending = [...lines.slice(first), ...this.pending];
  }

  /** Formats the line that reports to a reader of the file how many lines were lost, and when. */
  private describeLoss(): string {
    const failure = this.failure as { at: Date; error: string };
    const record = {
      level: 'warn',
      message: 'log lines were lost: the log file could not be written',
      lostLines: this.lostLines,
      failedSince: failure.at.toISOString(),
      error: failure.error,
      pid: process.pid,
      timestamp: new Date().toISOString(),
    };
    return `${JSON.stringify(record)}\n`;
  }

  private reportRecovery(): void {
    const lost = this.lostLines > 0 ? `; ${this.lostLines} lines were lost` : '; no line was lost';
    process.stderr.write(`writing the log file ${this.filePath} works again${lost}\n`);
    this.failure = null;
    this.lostLines = 0;
  }

  /**
   * Writes lines one file at a time, rotating wherever the next line would take the file past
   * `maxBytes`. A line longer than `maxBytes` gets a file of its own.
   */
  private writeRotating(lines: string[], maxBytes: number): number {
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    let chunkStart = 0;
    // After a failed rotation the rest of these lines go to the open file; the next flush tries again.
    let canRotate = true;
    for (let index = 0; index < lines.length; index++) {
      const bytes = Buffer.from(lines[index], 'utf8');
      const wouldPassLimit = this.size + chunkBytes + bytes.length > maxBytes;
      if (wouldPassLimit && this.size + chunkBytes > 0 && canRotate) {
        if (!this.appendToFile(Buffer.concat(chunk))) return chunkStart;
        chunk = [];
        chunkBytes = 0;
        chunkStart = index;
        canRotate = this.rotate();
        // A file that rotate() reopened instead may hold lines already, so the limit is checked again.
        if (canRotate && this.size > 0 && this.size + bytes.length > maxBytes) canRotate = this.rotate();
      }
      chunk.push(bytes);
      chunkBytes += bytes.length;
    }
    return this.appendToFile(Buffer.concat(chunk)) ? lines.length : chunkStart;
  }

  /**
   * Appends `text` and returns true, or returns false when the write failed. A failed write is
   * cut back off the file, so that a partly written line cannot sit between two whole ones.
   */
  private appendToFile(text: Buffer): boolean {
    let written = 0;
    try {
      while (written < text.length) written += fs.writeSync(this.descriptor, text, written);
      this.size += written;
      return true;
    } catch (error) {
      this.lastWriteError = (error as Error).message;
      if (written > 0) truncateQuietly(this.descriptor, this.size);
      return false;
    }
  }

  /**
   * Shifts the rotated files up by one, renames the file to `<file>.1` and opens a new one. The
   * renames come before the old descriptor is closed, so when one fails, lines keep going to the
   * file that is open, over the limit but not lost.
   *
   * When the path no longer names the open file, it is reopened instead, and nothing is shifted or
   * deleted, because the rename of the open file could not happen. Shifting first would delete the
   * oldest rotated file, and shift the others, on every write past the limit.
   */
  private rotate(): boolean {
    const followed = this.followPath();
    if (followed === 'reopened') return true;
    if (followed === 'failed') return false;

    const { maxFiles } = this.rotation as LogRotation;
    let opened: OpenedFile;
    try {
      for (const suffix of ['', '.gz']) fs.rmSync(`${this.filePath}.${maxFiles}${suffix}`, { force: true });
      for (let index = maxFiles - 1; index >= 1; index--) {
        for (const suffix of ['', '.gz']) renameIfExists(`${this.filePath}.${index}${suffix}`, `${this.filePath}.${index + 1}${suffix}`);
      }
      // NOTE: a tool that moves the file between the check above and this rename makes it fail
      // after the shifts. The next rotation then finds the path moved and reopens it.
      fs.renameSync(this.filePath, `${this.filePath}.1`);
      opened = openForAppend(this.filePath);
    } catch (error) {
      if (!this.rotationFailing) {
        process.stderr.write(`cannot rotate the log file ${this.filePath}, so it grows past LOG_MAX_BYTES: ${(error as Error).message}\n`);
      }
      this.rotationFailing = true;
      return false;
    }

    this.replaceOpenFile(opened);
    this.rotationFailing = false;
    return true;
  }

  /**
   * Reopens the path when it no longer names the open file, because another tool moved, deleted
   * or replaced the file, and reports that on stderr. Returns 'same', 'reopened', or 'failed' when
   * the path cannot be opened, and lines then go on to the open file. With the same file, it takes
   * the file's size, which a tool that truncated it (logrotate's copytruncate) has changed.
   */
  private followPath(): 'same' | 'reopened' | 'failed' {
    this.lastPathCheck = Date.now();
    let current: fs.BigIntStats | undefined;
    try {
      current = fs.statSync(this.filePath, { bigint: true, throwIfNoEntry: false });
    } catch {
      // After an error such as EACCES on LOG_DIR, which file the path names is unknown, so the open one stays.
      return 'same';
    }
    if (current !== undefined && current.dev === this.openedFile.dev && current.ino === this.openedFile.ino) {
      this.size = Number(current.size);
      this.reopenFailing = false;
      return 'same';
    }

    const change = current === undefined ? 'was moved or deleted' : 'was replaced by another file';
    let opened: OpenedFile;
    try {
      createDirectories(path.dirname(this.filePath));
      opened = openForAppend(this.filePath);
    } catch (error) {
      if (!this.reopenFailing) {
        process.stderr.write(`the log file ${this.filePath} ${change}, and it cannot be reopened: ${(error as Error).message}; lines go on to the old file until it can\n`);
      }
      this.reopenFailing = true;
      return 'failed';
    }

    this.replaceOpenFile(opened);
    this.reopenFailing = false;
    this.endCutOffLine();
    process.stderr.write(`the log file ${this.filePath} ${change}; writing on to the file now at that path\n`);
    return 'reopened';
  }

  private replaceOpenFile(opened: OpenedFile): void {
    try {
      fs.closeSync(this.descriptor);
    } catch {
      // The old file was written up to its last line; an error at close loses nothing more.
    }
    this.descriptor = opened.descriptor;
    this.size = opened.size;
    this.openedFile = opened.identity;
  }

  /**
   * Ends a last line that a crash cut off, so that the first line of this start begins on a line
   * of its own. The cut-off line stays for `npm run logs` to report.
   */
  private endCutOffLine(): void {
    if (this.size === 0) return;
    const last = Buffer.alloc(1);
    try {
      fs.readSync(this.descriptor, last, 0, 1, this.size - 1);
    } catch {
      // A file that cannot be read back, such as some devices, is written as it is.
      return;
    }
    if (last[0] !== NEWLINE) this.appendToFile(Buffer.from('\n'));
  }
}

interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

interface OpenedFile {
  descriptor: number;
  size: number;
  identity: FileIdentity;
}

/** Opens `filePath` for appending, creating it when missing, and reads its size and identity. */
function openForAppend(filePath: string): OpenedFile {
  const descriptor = fs.openSync(filePath, 'a+');
  try {
    const stat = fs.fstatSync(descriptor, { bigint: true });
    return { descriptor, size: Number(stat.size), identity: { dev: stat.dev, ino: stat.ino } };
  } catch (error) {
    fs.closeSync(descriptor);
    throw error;
  }
}

function truncateQuietly(descriptor: number, size: number): void {
  try {
    fs.ftruncateSync(descriptor, size);
  } catch {
    // A device such as /dev/full cannot be truncated, and a failed write there stored nothing.
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
