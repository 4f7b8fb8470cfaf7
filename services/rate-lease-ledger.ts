/**
 * The cluster primary's count of rate-limited requests, which hands grants to workers in leases.
 * services/cluster-rate-store.ts carries the messages and describes the design and its guarantees.
 * This file has no I/O and takes the time as an argument, so that tests can drive it directly.
 */

// A lease is sized to last about this long at the rate at which the worker used its previous one.
// So a key with steady traffic costs each worker about 1000 / LEASE_DURATION_TARGET_MS round trips
// to the primary a second, and the unused grants of a worker are about this much of its traffic.
export const LEASE_DURATION_TARGET_MS = 100;

/** A worker's request for grants of one key, for the `demand` requests that wait now. */
export interface LeaseRequest {
  key: string;
  /** Requests that wait for this grant, at least 1. */
  demand: number;
  limit: number;
  windowMs: number;
}

/**
 * The primary's reply to a LeaseRequest. The first min(granted, demand) waiting requests are
 * admitted, the rest of the demand is rejected and counted, and what is left of `granted` is the
 * worker's lease.
 */
export interface Grant {
  /** Identifies the window, so that grants returned after it ended are ignored. */
  windowId: number;
  /** End of the window, in milliseconds since the epoch. */
  resetTime: number;
  /** Requests granted in the window before this grant: admitted ones and unused grants of workers. */
  countBefore: number;
  granted: number;
  /** Requests rejected in the window before this grant. */
  rejectedBefore: number;
}

/** A worker's latest grant for a key, from which its next lease is sized. */
export interface LeaseRecord {
  /** The whole grant, including the requests that were waiting for it. */
  size: number;
  /** The part of the grant beyond the waiting requests: the most the worker can return. */
  leased: number;
  grantedAt: number;
  /** Set once the primary has sent the worker a recall of the unused grants of this lease. */
  recalled: boolean;
}

interface KeyWindow {
  windowId: number;
  resetTime: number;
  /** Admitted requests plus the grants that workers hold unused; never more than the limit. */
  granted: number;
  /** Requests over the limit, counted as the memory store of express-rate-limit counts them. */
  rejected: number;
  leases: Map<number, LeaseRecord>;
}

/**
 * Sizes the grant for a worker that comes back for a key. It is 1 when the worker has no lease
 * record: at its first request in the window, or after it returned its grants. After that it is at
 * most double the previous grant, and shrinks to last about LEASE_DURATION_TARGET_MS at the rate at
 * which the worker used the previous one. The size is capped at `left / (2 × workers)`, so near the
 * limit the size is 1 and a worker gets grants only for the requests that wait.
 */
export function sizeLease(previous: LeaseRecord | undefined, now: number, left: number, workers: number): number {
  if (!previous) return 1;

  const cap = Math.max(1, Math.floor(left / (2 * workers)));
  const elapsedMs = Math.max(1, now - previous.grantedAt);
  const sizeForTarget = Math.floor((previous.size * LEASE_DURATION_TARGET_MS) / elapsedMs);
  return Math.min(cap, Math.max(1, Math.min(2 * previous.size, sizeForTarget)));
}

/**
 * The counts of one rate limit group, by client key, in fixed windows that start at a key's first
 * request, as in express-rate-limit's MemoryStore. Every grant comes out of what is left of the
 * limit in the key's window, so the grants of a window never add up to more than the limit.
 */
export class RateLeaseLedger {
  private readonly workers: number;
  private readonly windows = new Map<string, KeyWindow>();
  private nextWindowId = 1;

  /** `workers` is the number of workers that share the limit; it sets the cap on lease sizes. */
  constructor(workers: number) {
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`invalid worker count ${workers}: expected a whole number of at least 1`);
    this.workers = workers;
  }

  /** Grants what worker `workerId` may admit for `request.key`, and counts the rejected demand. */
  acquire(workerId: number, request: LeaseRequest, now: number): Grant {
    const window = this.currentWindow(request.key, request.windowMs, now);
    const left = Math.max(0, request.limit - window.granted);
    const size = sizeLease(window.leases.get(workerId), now, left, this.workers);
    const granted = Math.min(left, Math.max(request.demand, size));
    const admitted = Math.min(granted, request.demand);
    const grant: Grant = { windowId: window.windowId, resetTime: window.resetTime, countBefore: window.granted, granted, rejectedBefore: window.rejected };

    window.granted += granted;
    window.rejected += request.demand - admitted;
    if (granted > 0) window.leases.set(workerId, { size: granted, leased: granted - admitted, grantedAt: now, recalled: false });
    else window.leases.delete(workerId);
    return grant;
  }

  /**
   * Takes back `count` unused grants of worker `workerId`'s latest lease for `key`. Returns false,
   * and changes nothing, when the window has ended or the count exceeds what that lease left over.
   */
  release(workerId: number, key: string, windowId: number, count: number, now: number): boolean {
    const window = this.windows.get(key);
    if (!window || window.windowId !== windowId || window.resetTime <= now) return false;
    const lease = window.leases.get(workerId);
    if (!lease || count > lease.leased) return false;

    window.granted -= count;
    window.leases.delete(workerId);
    return true;
  }

  /**
   * Returns the workers other than `exceptWorkerId` that may hold unused grants of `key`, each
   * once a lease, for the primary to recall them when the window has run out.
   */
  recallUnusedGrants(key: string, exceptWorkerId: number): number[] {
    const window = this.windows.get(key);
    if (!window) return [];

    const holders: number[] = [];
    for (const [workerId, lease] of window.leases) {
      if (workerId === exceptWorkerId || lease.leased === 0 || lease.recalled) continue;
      lease.recalled = true;
      holders.push(workerId);
    }
    return holders;
  }

  /**
   * Returns the count of `key` in its current window, or undefined when it has none. `totalHits`
   * includes the grants that workers hold unused.
   */
  get(key: string, now: number): { totalHits: number; resetTime: number } | undefined {
    const window = this.windows.get(key);
    if (!window || window.resetTime <= now) return undefined;
    return { totalHits: window.granted + window.rejected, resetTime: window.resetTime };
  }

  /**
   * Forgets the count of `key`, so that its next request starts a new window.
   * NOTE: workers keep the unused grants of the old window until they use them up, return them or
   * reach its end, so up to those grants can be admitted on top of the limit of the new window.
   */
  reset(key: string): void {
    this.windows.delete(key);
  }

  /**
   * Forgets the lease records of a worker that has exited, so that sizes restart at 1 for its
   * replacement. Its unused grants stay counted until their windows end, because the primary does
   * not know how many of them the worker used.
   */
  forgetWorker(workerId: number): void {
    for (const window of this.windows.values()) window.leases.delete(workerId);
  }

  /** Deletes the windows that have ended and returns how many it deleted. */
  removeExpired(now: number): number {
    let removed = 0;
    for (const [key, window] of this.windows) {
      if (window.resetTime > now) continue;
      this.windows.delete(key);
      removed++;
    }
    return removed;
  }

  private currentWindow(key: string, windowMs: number, now: number): KeyWindow {
    const existing = this.windows.get(key);
    if (existing && existing.resetTime > now) return existing;

    const window: KeyWindow = { windowId: this.nextWindowId++, resetTime: now + windowMs, granted: 0, rejected: 0, leases: new Map() };
    this.windows.set(key, window);
    return window;
  }
}
