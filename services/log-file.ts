import fs from 'node:fs';
import path from 'node:path';
import Transport from 'winston-transport';

const MESSAGE = Symbol.for('message');
const NEWLINE = 0x0a;

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
 */
export class LogFile extends Transport {
  readonly filePath: string;
  private readonly rotation: LogRotation | null;
  private descriptor: number;
  /** Bytes in the open file. */
  private size: number;
  private ended = false;
  private failed = false;
  /** Set while rotations fail, so that stderr gets one message until a rotation works again. */
  private rotationFailing = false;
  // Lines logged in one turn of the event loop go to the file in one write: a write per line cost
  // about a tenth of the server's CPU under load.
  private pending: string[] = [];
  private flushScheduled = false;

  constructor(filePath: string, options: LogFileOptions = {}) {
    const { rotation, ...transportOptions } = options;
    super(transportOptions);
    this.filePath = filePath;
    this.rotation = rotation && rotation.maxBytes > 0 ? rotation : null;
    fs.mkdirSync(path.dirname(filePath), { recursive: true });
    // Open synchronously so that an unwritable destination fails the start at once, with its path.
    this.descriptor = fs.openSync(filePath, 'a+');
    this.size = fs.fstatSync(this.descriptor).size;
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

  /** Writes everything logged so far and closes the file. */
  closeFile(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.flush();
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
    const lines = this.pending;
    this.pending = [];

    const text = Buffer.from(lines.join(''), 'utf8');
    if (this.rotation === null || this.size + text.length <= this.rotation.maxBytes) {
      this.appendToFile(text);
      return;
    }
    this.writeRotating(lines, this.rotation.maxBytes);
  }

  /**
   * Writes lines one file at a time, rotating wherever the next line would take the file past
   * `maxBytes`. A line longer than `maxBytes` gets a file of its own.
   */
  private writeRotating(lines: string[], maxBytes: number): void {
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    // After a failed rotation the rest of these lines go to the open file; the next flush tries again.
    let canRotate = true;
    for (const line of lines) {
      const bytes = Buffer.from(line, 'utf8');
      const wouldPassLimit = this.size + chunkBytes + bytes.length > maxBytes;
      if (wouldPassLimit && this.size + chunkBytes > 0 && canRotate) {
        this.appendToFile(Buffer.concat(chunk));
        chunk = [];
        chunkBytes = 0;
        canRotate = this.rotate();
      }
      chunk.push(bytes);
      chunkBytes += bytes.length;
    }
    this.appendToFile(Buffer.concat(chunk));
  }

  private appendToFile(text: Buffer): void {
    try {
      let written = 0;
      while (written < text.length) written += fs.writeSync(this.descriptor, text, written);
      this.size += written;
    } catch (error) {
      // The logger cannot log its own failure, so it reports it once on stderr and keeps serving.
      if (!this.failed) process.stderr.write(`cannot write the log file ${this.filePath}: ${(error as Error).message}\n`);
      this.failed = true;
    }
  }

  /**
   * Shifts the rotated files up by one, renames the file to `<file>.1` and opens a new one. The
   * renames come before the old descriptor is closed, so when one fails, lines keep going to the
   * file that is open, over the limit but not lost.
   */
  private rotate(): boolean {
    const { maxFiles } = this.rotation as LogRotation;
    let descriptor: number;
    try {
      for (const suffix of ['', '.gz']) fs.rmSync(`${this.filePath}.${maxFiles}${suffix}`, { force: true });
      for (let index = maxFiles - 1; index >= 1; index--) {
        for (const suffix of ['', '.gz']) renameIfExists(`${this.filePath}.${index}${suffix}`, `${this.filePath}.${index + 1}${suffix}`);
      }
      fs.renameSync(this.filePath, `${this.filePath}.1`);
      descriptor = fs.openSync(this.filePath, 'a+');
    } catch (error) {
      if (!this.rotationFailing) {
        process.stderr.write(`cannot rotate the log file ${this.filePath}, so it grows past LOG_MAX_BYTES: ${(error as Error).message}\n`);
      }
      this.rotationFailing = true;
      return false;
    }

    try {
      fs.closeSync(this.descriptor);
    } catch {
      // The rotated file was written up to its last line; an error at close loses nothing more.
    }
    this.descriptor = descriptor;
    this.size = 0;
    this.rotationFailing = false;
    return true;
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

function renameIfExists(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
