import Transport from 'winston-transport';
import type { WorkerMessage } from './cluster-messages';

const LEVEL = Symbol.for('level');
const MESSAGE = Symbol.for('message');

/**
 * A winston transport for cluster workers: it sends each formatted line to the primary over the
 * IPC channel, and the primary alone writes the log file and the console. One writer keeps lines
 * whole and in the order the primary receives them.
 */
export class IpcLogTransport extends Transport {
  private pendingSends = 0;
  private flushWaiters: (() => void)[] = [];

  constructor(options: Transport.TransportStreamOptions = {}) {
    super(options);
    if (typeof process.send !== 'function') {
      throw new Error('IpcLogTransport needs an IPC channel to the parent process; start the process with cluster.fork');
    }
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    const message: WorkerMessage = { type: 'log', level: String(info[LEVEL]), line: String(info[MESSAGE]) };
    this.send(message);
    next();
  }

  /** Sends a message on the IPC channel, counted like log lines so that `flush` waits for it too. */
  send(message: WorkerMessage): void {
    if (!process.connected || !process.send) return;
    this.pendingSends++;
    // The callback runs once the message is written to the channel, or with an error when the
    // primary has gone. The lines are then lost: there is no one left to write them.
    process.send(message, undefined, {}, () => {
      this.pendingSends--;
      if (this.pendingSends === 0) this.resolveFlushWaiters();
    });
  }

  /** Resolves once every message sent so far is written to the IPC channel. */
  flush(): Promise<void> {
    if (this.pendingSends === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  private resolveFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
