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
  private readonly stream: fs.WriteStream;
  private ended = false;
  // Lines logged in one turn of the event loop go to the file in one write: a write per line cost
  // about a tenth of the server's CPU under load.
  private pending: string[] = [];
  private flushScheduled = false;

  constructor(filePath: string, options: Transport.TransportStreamOptions = {}) {
    super(options);
    this.filePath = filePath;
    fs.mkdirSync(path.dirname(filePath), { recursive: true });
    // Open synchronously so that an unwritable destination fails the start at once, with its path.
    const descriptor = fs.openSync(filePath, 'a');
    this.stream = fs.createWriteStream(filePath, { fd: descriptor, autoClose: true });
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

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.stream.write(text);
  }

  /** Ends the file once everything written so far is flushed. */
  closeFile(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.flush();
    return new Promise((resolve, reject) => {
      this.stream.once('error', reject);
      this.stream.end(() => resolve());
    });
  }
}
