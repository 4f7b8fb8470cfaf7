import fs from 'node:fs';
import path from 'node:path';
import Transport from 'winston-transport';

const MESSAGE = Symbol.for('message');

/**
 * A winston transport that appends formatted lines to one file and can be closed with a promise that
 * resolves once every line is on disk. Winston's own File transport emits "finish" before its
 * stream has flushed, which loses the last lines at exit.
 */
export class LogFile extends Transport {
  readonly filePath: string;
  private readonly descriptor: number;
  private ended = false;
  private failed = false;
  // Lines logged in one turn of the event loop go to the file in one write: a write per line cost
  // about a tenth of the server's CPU under load.
  private pending: string[] = [];
  private flushScheduled = false;

  constructor(filePath: string, options: Transport.TransportStreamOptions = {}) {
    super(options);
    this.filePath = filePath;
    fs.mkdirSync(path.dirname(filePath), { recursive: true });
    // Open synchronously so that an unwritable destination fails the start at once, with its path.
    this.descriptor = fs.openSync(filePath, 'a');
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
   * Writes the pending lines synchronously, because an append of a few kilobytes to the page cache
   * takes microseconds. An asynchronous write hands each one to the thread pool, which costs more
   * than the write itself when the server and that thread share a core.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const text = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    try {
      let written = 0;
      while (written < text.length) written += fs.writeSync(this.descriptor, text, written);
    } catch (error) {
      // The logger cannot log its own failure, so it reports it once on stderr and keeps serving.
      if (!this.failed) process.stderr.write(`cannot write the log file ${this.filePath}: ${(error as Error).message}\n`);
      this.failed = true;
    }
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
}
