/**
 * One rate limit shared by the workers of a cluster, as an express-rate-limit store, without a
 * round trip to the primary for most requests.
 *
 * The primary counts each client key of each group in fixed windows (RateLeaseLedger). A worker
 * requests a grant from it for the requests that wait on a key. The primary grants them, and on
 * top a lease: requests the worker may admit on its own before it comes back. A lease starts at 1
 * for a worker's first request in a window. It at most doubles each time the worker comes back
 * and is sized to last about LEASE_DURATION_TARGET_MS at the worker's rate. It is capped at
 * left / (2 × workers), so near the limit every request goes to the primary and is counted there.
 * While a worker waits for the primary, further requests of that key wait for the same reply, so
 * each worker has at most one request per key in flight.
 *
 * Guarantees:
 * - Admitted requests never exceed the limit in a window. Every grant comes out of what is left of
 *   the limit in the key's window, and a worker takes requests from a lease only before the end of
 *   that window. The exception is resetKey (see RateLeaseLedger.reset).
 * - Requests over the limit are counted, as express-rate-limit's MemoryStore counts them, but a
 *   returned grant can still admit a later request in the same window.
 * - Early rejection: a request can be rejected while fewer than `limit` were admitted only while
 *   grants of the key are unused elsewhere. Each other worker has at most one lease a key, with
 *   at most max(1, floor(limit / (2 × workers))) unused grants. The first rejection makes the
 *   primary recall them, and a holder returns them as soon as its event loop handles the recall.
 *   Unused grants also return after IDLE_RELEASE_MS without a request of the key. Grants are lost
 *   until the window ends when their worker exits, or when their reply came after its timeout.
 * - `resetTime` is the primary's end of the window. `totalHits` of an admitted request is the
 *   primary's count of grants when it made this one, plus the request's place in it. That count
 *   includes the grants that other workers held unused then, misses the grants they got since and
 *   leaves out rejected requests. So it is off by at most the other workers' leases, plus the
 *   rejected requests when a returned grant admits requests after rejections. It is exact while no
 *   other worker has unused grants. A rejected request gets the limit plus the rejected requests
 *   so far, always above the limit.
 *
 * Store failures fail the request: when the primary does not reply within PRIMARY_REPLY_TIMEOUT_MS,
 * or the channel to it is closed, the waiting requests get 503 with Retry-After. Admitting them
 * unlimited instead (passOnStoreError) would lift the limits that protect sign-up and the model in
 * the moments when the cluster is stopping or overloaded.
 */
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import createError from 'http-errors';
import type winston from 'winston';
import { type Grant, RateLeaseLedger } from './rate-lease-ledger';
import {
  type RateLimitPrimaryMessage,
  type RateLimitReply,
  type RateLimitWorkerMessage,
  isRateLimitPrimaryMessage,
} from './rate-limit-messages';

// How long a worker waits for the primary. The primary replies between two turns of its event
// loop, so only a primary that is blocked, overloaded or gone comes near it.
// NOTE: an estimate. @express-rate-limit/cluster-memory-store 0.3.1, used before this store, waited 1 s.
export const PRIMARY_REPLY_TIMEOUT_MS = 2000;

// A worker returns the unused grants of a key after this long without a request of that key.
export const IDLE_RELEASE_MS = 1000;

// Retry-After, in seconds, of the 503 for a primary that did not reply.
const RETRY_AFTER_SECONDS = 1;

/** The IPC channel from a worker's store to the primary, or a stand-in for tests. */
export interface RateLimitChannel {
  /** Sends a message; `onError` runs when it cannot be written, for example once the primary has gone. */
  send(message: RateLimitWorkerMessage, onError: (error: Error) => void): void;
  /** Calls `listener` with every rate limit message from the primary. */
  listen(listener: (message: RateLimitPrimaryMessage) => void): void;
}

/** Returns the channel of a cluster worker, which sends with process.send and listens to the process's 'message' event. */
export function processChannel(): RateLimitChannel {
  return {
    send(message, onError) {
      if (!process.send || !process.connected) {
        onError(new Error('the IPC channel to the cluster primary is closed'));
        return;
      }
      process.send(message, undefined, {}, (error: Error | null) => {
        if (error) onError(error);
      });
    },
    listen(listener) {
      process.on('message', (message: unknown) => {
        if (isRateLimitPrimaryMessage(message)) listener(message);
      });
    },
  };
}

interface Waiter {
  resolve(info: ClientRateLimitInfo): void;
  reject(error: unknown): void;
}

/** A worker's grants for one key, and the requests that wait for more. */
interface KeyLease {
  key: string;
  windowId: number;
  /** End of the window, in milliseconds since the epoch; 0 before the first grant. */
  resetTime: number;
  resetDate: Date;
  /** Grants of the lease that no request has used yet. */
  remaining: number;
  /** `totalHits` of the latest request admitted from this lease. */
  hits: number;
  lastUsedAt: number;
  waiting: Waiter[];
  /** True while a request to the primary for this key is in flight. */
  acquiring: boolean;
  idleTimer: NodeJS.Timeout | null;
}

interface PendingReply {
  resolve(reply: RateLimitReply): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

/** The options of express-rate-limit that the store reads. */
type Settings = Pick<Options, 'limit' | 'windowMs'> & Partial<Pick<Options, 'skipFailedRequests' | 'skipSuccessfulRequests'>>;

export interface ClusterRateStoreWorkerOptions {
  /** The limiter's group; it keeps the counts of the groups apart in the primary. */
  group: string;
  /** Receives a warning when unused grants cannot be returned or a reply comes too late. */
  logger?: winston.Logger;
  channel?: RateLimitChannel;
  timeoutMs?: number;
  idleReleaseMs?: number;
}

/**
 * A cluster worker's side of the shared rate limit: an express-rate-limit store that admits
 * requests from leases of the primary's count. The file header describes the design.
 */
export class ClusterRateStoreWorker implements Store {
  /** Tells express-rate-limit that other processes share the counts. */
  readonly localKeys = false;
  /** Lets express-rate-limit's double-count check tell the groups apart. */
  readonly prefix: string;
  private readonly group: string;
  private readonly channel: RateLimitChannel;
  private readonly logger: winston.Logger | undefined;
  private readonly timeoutMs: number;
  private readonly idleReleaseMs: number;
  private settings: { limit: number; windowMs: number } | null = null;
  private readonly leases = new Map<string, KeyLease>();
  private readonly pending = new Map<number, PendingReply>();
  private nextRequestId = 1;

  constructor(options: ClusterRateStoreWorkerOptions) {
    this.group = options.group;
    this.prefix = `${options.group}:`;
    this.channel = options.channel ?? processChannel();
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs ?? PRIMARY_REPLY_TIMEOUT_MS;
    this.idleReleaseMs = options.idleReleaseMs ?? IDLE_RELEASE_MS;
    this.channel.listen((message) => this.handleMessage(message));
  }

  /** Takes the limit and the window from the limiter's options. */
  init(options: Settings): void {
    if (typeof options.limit !== 'number' || !Number.isSafeInteger(options.limit) || options.limit < 1) {
      throw new TypeError(`invalid limit for the rate limit group "${this.group}": ClusterRateStoreWorker needs a whole number of at least 1, not a function`);
    }
    // A decrement cannot tell whether it undoes an admitted or a rejected request; see decrement.
    if (options.skipFailedRequests || options.skipSuccessfulRequests) {
      throw new TypeError(`ClusterRateStoreWorker does not support skipFailedRequests or skipSuccessfulRequests (group "${this.group}")`);
    }
    this.settings = { limit: options.limit, windowMs: options.windowMs };
  }

  /** Counts a request of `key` and returns its totalHits and resetTime; the file header says how exact they are. */
  async increment(key: string): Promise<ClientRateLimitInfo> {
    const lease = this.leases.get(key);
    const now = Date.now();
    if (lease && lease.waiting.length === 0 && lease.remaining > 0 && now < lease.resetTime) return this.take(lease, now);
    if (!this.settings) throw new Error(`the rate limit store of group "${this.group}" was used before init`);

    const waiting = lease ?? this.createLease(key, now);
    return new Promise((resolve, reject) => {
      waiting.waiting.push({ resolve, reject });
      this.serve(waiting);
    });
  }

  /**
   * Not supported, because the primary counts admitted and rejected requests apart and a decrement
   * does not say which one it undoes. express-rate-limit calls it only with skipFailedRequests or
   * skipSuccessfulRequests, which init rejects.
   */
  decrement(_key: string): void {
    throw new Error('ClusterRateStoreWorker does not support decrement: do not set skipFailedRequests or skipSuccessfulRequests');
  }

  /** Forgets the count of `key` in the primary and the grants of this worker. */
  async resetKey(key: string): Promise<void> {
    const lease = this.leases.get(key);
    if (lease) {
      // The grants belong to the window that the reset ends, so they are dropped, not returned.
      lease.remaining = 0;
      this.leases.delete(key);
    }
    await this.request({ type: 'rate-limit-reset', requestId: this.nextRequestId++, group: this.group, key });
  }

  /** Returns the primary's count of `key`, including grants that workers hold unused. */
  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const reply = await this.request({ type: 'rate-limit-get', requestId: this.nextRequestId++, group: this.group, key });
    if (reply.type !== 'rate-limit-count' || reply.count === null) return undefined;
    return { totalHits: reply.count.totalHits, resetTime: new Date(reply.count.resetTime) };
  }

  /** Returns every unused grant to the primary and stops the timers. Requests in flight still get their replies. */
  shutdown(): void {
    const now = Date.now();
    for (const lease of this.leases.values()) {
      if (lease.idleTimer) clearTimeout(lease.idleTimer);
      lease.idleTimer = null;
      if (lease.remaining > 0 && now < lease.resetTime) this.release(lease);
    }
    this.leases.clear();
  }

  private createLease(key: string, now: number): KeyLease {
    const lease: KeyLease = { key, windowId: 0, resetTime: 0, resetDate: new Date(0), remaining: 0, hits: 0, lastUsedAt: now, waiting: [], acquiring: false, idleTimer: null };
    this.leases.set(key, lease);
    this.armIdleTimer(lease, this.idleReleaseMs);
    return lease;
  }

  private take(lease: KeyLease, now: number): ClientRateLimitInfo {
    lease.remaining--;
    lease.hits++;
    lease.lastUsedAt = now;
    return { totalHits: lease.hits, resetTime: lease.resetDate };
  }

  /** Admits waiting requests from the lease, and requests grants for the rest when no request to the primary is in flight. */
  private serve(lease: KeyLease): void {
    const now = Date.now();
    while (lease.waiting.length > 0 && lease.remaining > 0 && now < lease.resetTime) {
      const waiter = lease.waiting.shift() as Waiter;
      waiter.resolve(this.take(lease, now));
    }
    if (lease.waiting.length === 0 || lease.acquiring) return;

    const demand = lease.waiting.length;
    const { limit, windowMs } = this.settings as { limit: number; windowMs: number };
    lease.acquiring = true;
    this.request({ type: 'rate-limit-acquire', requestId: this.nextRequestId++, group: this.group, key: lease.key, demand, limit, windowMs }).then(
      (reply) => {
        lease.acquiring = false;
        if (reply.type === 'rate-limit-grant') this.applyGrant(lease, reply.grant, demand);
        this.serve(lease);
      },
      (error: unknown) => {
        lease.acquiring = false;
        // Every waiting request fails, also those that came after this one was sent, so that
        // none waits longer than one timeout for a primary that does not reply.
        for (const waiter of lease.waiting.splice(0)) waiter.reject(error);
      },
    );
  }

  /**
   * Resolves the `demand` requests that waited for `grant`, oldest first: admitted while the grant
   * lasts, then rejected. The rest of the grant becomes the lease.
   */
  private applyGrant(lease: KeyLease, grant: Grant, demand: number): void {
    const admitted = Math.min(grant.granted, demand);
    const resetDate = new Date(grant.resetTime);
    // Rejections happen only once the grant has taken all that was left, so they count on from
    // the limit: countBefore + granted.
    const firstRejectedHits = grant.countBefore + grant.granted + grant.rejectedBefore + 1;
    const answered = lease.waiting.splice(0, demand);
    for (let index = 0; index < answered.length; index++) {
      const totalHits = index < admitted ? grant.countBefore + index + 1 : firstRejectedHits + (index - admitted);
      answered[index].resolve({ totalHits, resetTime: resetDate });
    }

    lease.windowId = grant.windowId;
    lease.resetTime = grant.resetTime;
    lease.resetDate = resetDate;
    lease.remaining = grant.granted - admitted;
    lease.hits = grant.countBefore + admitted;
    lease.lastUsedAt = Date.now();
  }

  private armIdleTimer(lease: KeyLease, delayMs: number): void {
    lease.idleTimer = setTimeout(() => this.checkIdle(lease), delayMs);
    lease.idleTimer.unref();
  }

  /** Returns the unused grants of a key without requests for IDLE_RELEASE_MS to the primary, and deletes the key's lease. */
  private checkIdle(lease: KeyLease): void {
    lease.idleTimer = null;
    const now = Date.now();
    if (lease.acquiring || lease.waiting.length > 0) {
      this.armIdleTimer(lease, this.idleReleaseMs);
      return;
    }
    const idleMs = now - lease.lastUsedAt;
    const windowOpen = now < lease.resetTime;
    if (windowOpen && idleMs < this.idleReleaseMs) {
      this.armIdleTimer(lease, this.idleReleaseMs - idleMs);
      return;
    }

    // Grants of a window that has ended need not go back: the primary's count ended with it.
    if (windowOpen && lease.remaining > 0) this.release(lease);
    if (this.leases.get(lease.key) === lease) this.leases.delete(lease.key);
  }

  private release(lease: KeyLease): void {
    const count = lease.remaining;
    lease.remaining = 0;
    this.channel.send({ type: 'rate-limit-release', group: this.group, key: lease.key, windowId: lease.windowId, count }, (error) => {
      this.logger?.warn('unused rate limit grants could not be returned to the cluster primary', { group: this.group, count, error: error.message });
    });
  }

  private request(message: Extract<RateLimitWorkerMessage, { requestId: number }>): Promise<RateLimitReply> {
    return new Promise((resolve, reject) => {
      const { requestId } = message;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(primaryUnavailable(this.group, `the cluster primary did not reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(requestId, { resolve, reject, timer });

      this.channel.send(message, (error) => {
        if (!this.pending.delete(requestId)) return;
        clearTimeout(timer);
        reject(primaryUnavailable(this.group, `the message to the cluster primary could not be sent: ${error.message}`));
      });
    });
  }

  private handleMessage(message: RateLimitPrimaryMessage): void {
    if (message.group !== this.group) return;
    if (message.type === 'rate-limit-recall') {
      const lease = this.leases.get(message.key);
      if (lease && lease.windowId === message.windowId && lease.remaining > 0) this.release(lease);
      return;
    }

    const pending = this.pending.get(message.requestId);
    if (!pending) {
      this.logger?.warn('rate limit reply arrived after its timeout, so its grants stay unused until the window ends', { group: this.group, type: message.type });
      return;
    }
    this.pending.delete(message.requestId);
    clearTimeout(pending.timer);
    pending.resolve(message);
  }
}

function primaryUnavailable(group: string, detail: string): Error {
  return createError(503, `the rate limit of "${group}" could not be checked: ${detail}; retry after ${RETRY_AFTER_SECONDS} s`, {
    expose: true,
    headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
  });
}

// The primary deletes the windows that have ended this often, so keys that stopped sending
// requests do not stay in memory.
const EXPIRED_WINDOW_SWEEP_MS = 60_000;

/** A message for the primary to send, and the id of the worker it goes to. */
export interface Outgoing {
  workerId: number;
  message: RateLimitPrimaryMessage;
}

/** The primary's side of the shared rate limit: one RateLeaseLedger a group, fed by the workers' messages. */
export class ClusterRateStorePrimary {
  private readonly workers: number;
  private readonly ledgers = new Map<string, RateLeaseLedger>();

  /** `workers` is the number of workers that share each limit. */
  constructor(workers: number) {
    this.workers = workers;
  }

  /**
   * Handles a message from worker `workerId` and returns the messages to send, each with the id of
   * the worker it goes to. The caller sends them, so that tests can run it without processes.
   */
  handleMessage(workerId: number, message: RateLimitWorkerMessage, now = Date.now()): Outgoing[] {
    const { group } = message;
    const ledger = this.ledgerOf(group);
    switch (message.type) {
      case 'rate-limit-acquire': {
        const grant = ledger.acquire(workerId, message, now);
        const outgoing: Outgoing[] = [{ workerId, message: { type: 'rate-limit-grant', requestId: message.requestId, group, grant } }];
        // The window has run out while other workers may hold unused grants of the key. Recall
        // them, so that the next requests of the key, on any worker, can use them.
        if (grant.granted < message.demand) {
          for (const holder of ledger.recallUnusedGrants(message.key, workerId)) {
            outgoing.push({ workerId: holder, message: { type: 'rate-limit-recall', group, key: message.key, windowId: grant.windowId } });
          }
        }
        return outgoing;
      }
      case 'rate-limit-release':
        ledger.release(workerId, message.key, message.windowId, message.count, now);
        return [];
      case 'rate-limit-get':
        return [{ workerId, message: { type: 'rate-limit-count', requestId: message.requestId, group, count: ledger.get(message.key, now) ?? null } }];
      case 'rate-limit-reset':
        ledger.reset(message.key);
        return [{ workerId, message: { type: 'rate-limit-reset-done', requestId: message.requestId, group } }];
    }
  }

  /** Forgets the leases of a worker that has exited; see RateLeaseLedger.forgetWorker. */
  forgetWorker(workerId: number): void {
    for (const ledger of this.ledgers.values()) ledger.forgetWorker(workerId);
  }

  /** Deletes the windows that have ended, in every group. */
  removeExpired(now = Date.now()): void {
    for (const ledger of this.ledgers.values()) ledger.removeExpired(now);
  }

  /** Starts the timer that deletes ended windows. It does not keep the process alive. */
  startSweeping(): NodeJS.Timeout {
    const timer = setInterval(() => this.removeExpired(), EXPIRED_WINDOW_SWEEP_MS);
    timer.unref();
    return timer;
  }

  private ledgerOf(group: string): RateLeaseLedger {
    let ledger = this.ledgers.get(group);
    if (!ledger) {
      ledger = new RateLeaseLedger(this.workers);
      this.ledgers.set(group, ledger);
    }
    return ledger;
  }
}
