import type { ClientRateLimitInfo } from 'express-rate-limit';
import type { HttpError } from 'http-errors';
import type winston from 'winston';
import { seededRandom } from '../scripts/augment';
import { ClusterRateStorePrimary, ClusterRateStoreWorker, RateLimitChannel } from '../services/cluster-rate-store';
import { LEASE_DURATION_TARGET_MS, RateLeaseLedger, sizeLease } from '../services/rate-lease-ledger';
import { RateLimitPrimaryMessage, RateLimitWorkerMessage, isRateLimitWorkerMessage } from '../services/rate-limit-messages';

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Delivers messages in the order they were sent, each after a random delay of up to `maxDelayMs`,
 * as one direction of a cluster's IPC channel does. Messages go through JSON, the channel's encoding.
 */
class OrderedLink<T> {
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;

  constructor(
    private readonly deliver: (message: T) => void,
    private readonly random: () => number,
    private readonly maxDelayMs: number,
  ) {}

  send(message: T): void {
    const copy = JSON.parse(JSON.stringify(message)) as T;
    this.inFlight++;
    this.tail = this.tail
      .then(() => delay(Math.floor(this.random() * (this.maxDelayMs + 1))))
      .then(() => {
        this.inFlight--;
        this.deliver(copy);
      });
  }

  get idle(): boolean {
    return this.inFlight === 0;
  }
}

/**
 * A primary and `workerCount` workers in this process. Each worker has a store per group, all
 * connected to one ClusterRateStorePrimary through ordered links with random delays. `sent` keeps
 * every message the workers sent.
 */
class SimulatedCluster {
  readonly primary: ClusterRateStorePrimary;
  readonly sent: { workerId: number; message: RateLimitWorkerMessage }[] = [];
  private readonly toPrimary = new Map<number, OrderedLink<RateLimitWorkerMessage>>();
  private readonly toWorker = new Map<number, OrderedLink<RateLimitPrimaryMessage>>();
  private readonly listeners = new Map<number, ((message: RateLimitPrimaryMessage) => void)[]>();
  private readonly stores: ClusterRateStoreWorker[] = [];

  constructor(
    private readonly workerCount: number,
    private readonly options: { seed?: number; maxDelayMs?: number; idleReleaseMs?: number; timeoutMs?: number } = {},
  ) {
    this.primary = new ClusterRateStorePrimary(workerCount);
    const random = seededRandom(options.seed ?? 1);
    const maxDelayMs = options.maxDelayMs ?? 2;
    for (let workerId = 1; workerId <= workerCount; workerId++) {
      this.listeners.set(workerId, []);
      this.toPrimary.set(
        workerId,
        new OrderedLink((message) => {
          expect(isRateLimitWorkerMessage(message)).toBe(true);
          for (const outgoing of this.primary.handleMessage(workerId, message)) this.toWorker.get(outgoing.workerId)?.send(outgoing.message);
        }, random, maxDelayMs),
      );
      this.toWorker.set(
        workerId,
        new OrderedLink((message) => {
          for (const listener of this.listeners.get(workerId) ?? []) listener(message);
        }, random, maxDelayMs),
      );
    }
  }

  /** Creates the store of `group` in worker `workerId`, initialized as express-rate-limit would. */
  store(workerId: number, group: string, settings: { limit: number; windowMs: number }): ClusterRateStoreWorker {
    const channel: RateLimitChannel = {
      send: (message) => {
        this.sent.push({ workerId, message });
        this.toPrimary.get(workerId)?.send(message);
      },
      listen: (listener) => this.listeners.get(workerId)?.push(listener),
    };
    const store = new ClusterRateStoreWorker({ group, channel, idleReleaseMs: this.options.idleReleaseMs, timeoutMs: this.options.timeoutMs });
    store.init(settings);
    this.stores.push(store);
    return store;
  }

  /** Resolves once no message is on its way, in either direction. */
  async settle(): Promise<void> {
    const links = [...this.toPrimary.values(), ...this.toWorker.values()];
    for (let round = 0; round < 1000; round++) {
      if (links.every((link) => link.idle)) return;
      await delay(1);
    }
    throw new Error('messages still in flight after 1000 rounds');
  }

  acquiresOf(workerId?: number): RateLimitWorkerMessage[] {
    return this.sent.filter((entry) => entry.message.type === 'rate-limit-acquire' && (workerId === undefined || entry.workerId === workerId)).map((entry) => entry.message);
  }

  releases(): Extract<RateLimitWorkerMessage, { type: 'rate-limit-release' }>[] {
    return this.sent.map((entry) => entry.message).filter((message) => message.type === 'rate-limit-release');
  }

  shutdown(): void {
    for (const store of this.stores) store.shutdown();
  }
}

/** Rejects a request as express-rate-limit does: when its totalHits exceed the limit. */
function isAdmitted(info: ClientRateLimitInfo, limit: number): boolean {
  return info.totalHits <= limit;
}

const MINUTE_MS = 60_000;

describe('sizeLease', () => {
  const NOW = 1_000_000;

  test.each([
    { case: 'first grant', previous: undefined, left: 1000, workers: 2, expected: 1 },
    { case: 'quick return doubles', previous: { size: 8, leased: 7, grantedAt: NOW - 1, recalled: false }, left: 1000, workers: 2, expected: 16 },
    { case: 'return after the target keeps size', previous: { size: 8, leased: 7, grantedAt: NOW - LEASE_DURATION_TARGET_MS, recalled: false }, left: 1000, workers: 2, expected: 8 },
    { case: 'slow return shrinks', previous: { size: 8, leased: 7, grantedAt: NOW - 4 * LEASE_DURATION_TARGET_MS, recalled: false }, left: 1000, workers: 2, expected: 2 },
    { case: 'very slow return gives 1', previous: { size: 8, leased: 7, grantedAt: NOW - 100 * LEASE_DURATION_TARGET_MS, recalled: false }, left: 1000, workers: 2, expected: 1 },
    { case: 'capped by what is left', previous: { size: 64, leased: 63, grantedAt: NOW - 1, recalled: false }, left: 100, workers: 2, expected: 25 },
    { case: 'cap grows with fewer workers', previous: { size: 64, leased: 63, grantedAt: NOW - 1, recalled: false }, left: 100, workers: 1, expected: 50 },
    { case: 'near the limit gives 1', previous: { size: 64, leased: 63, grantedAt: NOW - 1, recalled: false }, left: 3, workers: 2, expected: 1 },
  ])('$case', ({ previous, left, workers, expected }) => {
    expect(sizeLease(previous, NOW, left, workers)).toBe(expected);
  });
});

describe('RateLeaseLedger', () => {
  const request = (key: string, demand: number, limit = 10) => ({ key, demand, limit, windowMs: MINUTE_MS });

  test('grants never exceed the limit', () => {
    const random = seededRandom(7);
    const limit = 500;
    const workers = 8;
    const ledger = new RateLeaseLedger(workers);
    const leases = new Map<number, { windowId: number; unused: number }>();
    let admitted = 0;
    let now = 0;

    for (let step = 0; step < 20_000; step++) {
      now += Math.floor(random() * 3);
      const workerId = 1 + Math.floor(random() * workers);
      const lease = leases.get(workerId);
      if (lease && lease.unused > 0 && random() < 0.2) {
        expect(ledger.release(workerId, 'client', lease.windowId, lease.unused, now)).toBe(true);
        leases.delete(workerId);
        continue;
      }
      if (lease && lease.unused > 0) {
        lease.unused--;
        admitted++;
        continue;
      }
      const demand = 1 + Math.floor(random() * 4);
      const grant = ledger.acquire(workerId, { key: 'client', demand, limit, windowMs: MINUTE_MS }, now);
      const admittedNow = Math.min(grant.granted, demand);
      admitted += admittedNow;
      leases.set(workerId, { windowId: grant.windowId, unused: grant.granted - admittedNow });

      const unused = [...leases.values()].reduce((sum, entry) => sum + entry.unused, 0);
      expect(admitted + unused).toBeLessThanOrEqual(limit);
    }
    expect(admitted).toBe(limit);
  });

  test('first grant is 1, then leases grow', () => {
    const ledger = new RateLeaseLedger(2);

    const sizes = [0, 1, 2, 3, 4].map((step) => ledger.acquire(1, request('client', 1, 1000), step).granted);

    expect(sizes).toEqual([1, 2, 4, 8, 16]);
  });

  test('demand beyond the lease size is granted', () => {
    const ledger = new RateLeaseLedger(2);

    const grant = ledger.acquire(1, request('client', 7), 0);

    expect(grant.granted).toBe(7);
  });

  test('demand over the limit is rejected and counted', () => {
    const ledger = new RateLeaseLedger(2);
    ledger.acquire(1, request('client', 8), 0);

    const grant = ledger.acquire(2, request('client', 5), 1);

    expect(grant.granted).toBe(2);
    expect(grant.countBefore).toBe(8);
    expect(grant.rejectedBefore).toBe(0);
    expect(ledger.get('client', 2)).toEqual({ totalHits: 13, resetTime: MINUTE_MS });
    expect(ledger.acquire(1, request('client', 1), 3).rejectedBefore).toBe(3);
  });

  test('released grants can be granted again', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('client', 1), 0);
    const lease = ledger.acquire(1, request('client', 1), 1);
    expect(lease.granted).toBe(2);
    ledger.acquire(2, request('client', 7), 2);
    expect(ledger.acquire(2, request('client', 1), 3).granted).toBe(0);

    expect(ledger.release(1, 'client', lease.windowId, 1, 4)).toBe(true);

    expect(ledger.acquire(2, request('client', 1), 5).granted).toBe(1);
  });

  test('release rejected for another window', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('client', 1), 0);
    const lease = ledger.acquire(1, request('client', 1), 1);

    const afterEnd = ledger.release(1, 'client', lease.windowId, 1, MINUTE_MS);
    const staleId = ledger.release(1, 'client', lease.windowId + 1, 1, 2);

    expect(afterEnd).toBe(false);
    expect(staleId).toBe(false);
    expect(ledger.get('client', 3)?.totalHits).toBe(3);
  });

  test('release rejected beyond the unused part', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('client', 1), 0);
    const lease = ledger.acquire(1, request('client', 1), 1);

    expect(ledger.release(1, 'client', lease.windowId, 2, 2)).toBe(false);
    expect(ledger.release(1, 'client', lease.windowId, 1, 3)).toBe(true);
    expect(ledger.release(1, 'client', lease.windowId, 1, 4)).toBe(false);
    expect(ledger.get('client', 5)?.totalHits).toBe(2);
  });

  test('window end restarts the count', () => {
    const ledger = new RateLeaseLedger(2);
    const first = ledger.acquire(1, request('client', 10), 0);
    expect(ledger.acquire(1, request('client', 1), 1).granted).toBe(0);

    const next = ledger.acquire(1, request('client', 1), MINUTE_MS);

    expect(next.granted).toBe(1);
    expect(next.countBefore).toBe(0);
    expect(next.rejectedBefore).toBe(0);
    expect(next.windowId).not.toBe(first.windowId);
    expect(next.resetTime).toBe(2 * MINUTE_MS);
  });

  test('keys counted apart', () => {
    const ledger = new RateLeaseLedger(2);
    ledger.acquire(1, request('first', 10), 0);

    expect(ledger.acquire(1, request('second', 1), 1).granted).toBe(1);
    expect(ledger.get('first', 2)?.totalHits).toBe(10);
    expect(ledger.get('second', 2)?.totalHits).toBe(1);
  });

  test('recall lists each holder once', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('client', 1, 100), 0);
    ledger.acquire(1, request('client', 1, 100), 1);
    ledger.acquire(2, request('client', 1, 100), 2);
    ledger.acquire(3, request('client', 50, 100), 3);

    expect(ledger.recallUnusedGrants('client', 3)).toEqual([1]);
    expect(ledger.recallUnusedGrants('client', 3)).toEqual([]);
  });

  test('exited worker keeps its grants counted', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('client', 1), 0);
    const lease = ledger.acquire(1, request('client', 1), 1);

    ledger.forgetWorker(1);

    expect(ledger.get('client', 2)?.totalHits).toBe(3);
    expect(ledger.release(1, 'client', lease.windowId, 1, 3)).toBe(false);
    expect(ledger.acquire(1, request('client', 1), 4).granted).toBe(1);
  });

  test('reset starts a new window', () => {
    const ledger = new RateLeaseLedger(1);
    const first = ledger.acquire(1, request('client', 10), 0);

    ledger.reset('client');

    expect(ledger.get('client', 1)).toBeUndefined();
    const next = ledger.acquire(1, request('client', 1), 2);
    expect(next.granted).toBe(1);
    expect(next.windowId).not.toBe(first.windowId);
  });

  test('expired windows removed', () => {
    const ledger = new RateLeaseLedger(1);
    ledger.acquire(1, request('old', 1), 0);
    ledger.acquire(1, request('new', 1), MINUTE_MS / 2);

    expect(ledger.removeExpired(MINUTE_MS)).toBe(1);
    expect(ledger.get('new', MINUTE_MS)?.totalHits).toBe(1);
  });

  test('invalid worker count rejected', () => {
    expect(() => new RateLeaseLedger(0)).toThrow('invalid worker count 0');
  });
});

describe('ClusterRateStoreWorker', () => {
  let cluster: SimulatedCluster | null = null;

  afterEach(() => {
    cluster?.shutdown();
    cluster = null;
  });

  test.each([11, 12, 13])('exact limit across workers (seed %d)', async (seed) => {
    const limit = 60;
    cluster = new SimulatedCluster(4, { seed, maxDelayMs: 3 });
    const stores = [1, 2, 3, 4].map((workerId) => cluster!.store(workerId, 'predict', { limit, windowMs: MINUTE_MS }));
    const random = seededRandom(seed);
    let admitted = 0;

    // Rounds of concurrent requests, spread at random over the workers, until a round that
    // finds every grant of the window used admits none.
    for (let round = 0; round < 30; round++) {
      const results = await Promise.all(Array.from({ length: 40 }, () => stores[Math.floor(random() * stores.length)].increment('client')));
      const admittedNow = results.filter((info) => isAdmitted(info, limit)).length;
      admitted += admittedNow;
      expect(admitted).toBeLessThanOrEqual(limit);
      await cluster.settle();
      if (admittedNow === 0) break;
    }

    expect(admitted).toBe(limit);
  });

  test('admitted totalHits within the limit', async () => {
    const limit = 40;
    cluster = new SimulatedCluster(2, { seed: 3 });
    const stores = [cluster.store(1, 'predict', { limit, windowMs: MINUTE_MS }), cluster.store(2, 'predict', { limit, windowMs: MINUTE_MS })];

    const results = await Promise.all(Array.from({ length: 100 }, (_, index) => stores[index % 2].increment('client')));

    const admitted = results.filter((info) => isAdmitted(info, limit));
    for (const info of results) expect(Number.isInteger(info.totalHits) && info.totalHits >= 1).toBe(true);
    expect(admitted.length).toBeLessThanOrEqual(limit);
    expect(new Set(results.map((info) => info.resetTime?.getTime())).size).toBe(1);
  });

  test('one worker counts exactly', async () => {
    cluster = new SimulatedCluster(2);
    const store = cluster.store(1, 'sign-up', { limit: 3, windowMs: MINUTE_MS });
    const startedAt = Date.now();

    const hits: number[] = [];
    for (let request = 0; request < 5; request++) hits.push((await store.increment('client')).totalHits);
    const info = await store.increment('client');

    expect(hits).toEqual([1, 2, 3, 4, 5]);
    expect(info.resetTime!.getTime()).toBeGreaterThanOrEqual(startedAt + MINUTE_MS);
    expect(info.resetTime!.getTime()).toBeLessThanOrEqual(Date.now() + MINUTE_MS);
  });

  test('one request in flight per key', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 5 });
    const store = cluster.store(1, 'predict', { limit: 1000, windowMs: MINUTE_MS });

    const pending = Array.from({ length: 20 }, () => store.increment('client'));
    const acquiresWhileWaiting = cluster.acquiresOf(1).length;
    const results = await Promise.all(pending);

    expect(acquiresWhileWaiting).toBe(1);
    expect(results.map((info) => info.totalHits)).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
    expect(cluster.acquiresOf(1).map((message) => (message as { demand: number }).demand)).toEqual([1, 19]);
  });

  test('leases spare most round trips', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const store = cluster.store(1, 'predict', { limit: 1_000_000, windowMs: MINUTE_MS });

    for (let request = 0; request < 2000; request++) await store.increment('client');

    expect(cluster.acquiresOf(1).length).toBeLessThan(40);
  });

  test('idle lease returned to the primary', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0, idleReleaseMs: 30 });
    const store = cluster.store(1, 'predict', { limit: 1000, windowMs: MINUTE_MS });
    const countOf = () => cluster!.primary.handleMessage(1, { type: 'rate-limit-get', requestId: 0, group: 'predict', key: 'client' })[0].message;
    // Grants of 1, 2 and 4 requests: the fourth request leaves 3 unused.
    for (let request = 0; request < 4; request++) await store.increment('client');
    const beforeRelease = countOf();

    await delay(100);
    await cluster.settle();

    expect(beforeRelease).toMatchObject({ count: { totalHits: 7 } });
    expect(cluster.releases().map((message) => message.count)).toEqual([3]);
    expect(countOf()).toMatchObject({ count: { totalHits: 4 } });
  });

  test('recall returns grants at once', async () => {
    const limit = 100;
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const holder = cluster.store(1, 'predict', { limit, windowMs: MINUTE_MS });
    const other = cluster.store(2, 'predict', { limit, windowMs: MINUTE_MS });
    for (let request = 0; request < 8; request++) await holder.increment('client');

    const results = await Promise.all(Array.from({ length: 150 }, () => other.increment('client')));
    await cluster.settle();
    const late = await other.increment('client');

    expect(results.filter((info) => isAdmitted(info, limit)).length).toBeLessThan(limit - 8);
    expect(cluster.releases()).toHaveLength(1);
    expect(isAdmitted(late, limit)).toBe(true);
  });

  test('window end admits again', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const store = cluster.store(1, 'order', { limit: 2, windowMs: 50 });
    const first = [await store.increment('client'), await store.increment('client'), await store.increment('client')];

    await delay(70);
    const next = await store.increment('client');

    expect(first.map((info) => info.totalHits)).toEqual([1, 2, 3]);
    expect(next.totalHits).toBe(1);
    expect(next.resetTime!.getTime()).toBeGreaterThan(first[0].resetTime!.getTime());
  });

  test('lease unused after window end', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const store = cluster.store(1, 'order', { limit: 100, windowMs: 50 });
    // Grants of 1, 2 and 4 requests: the fourth request leaves 3 unused.
    const first: ClientRateLimitInfo[] = [];
    for (let request = 0; request < 4; request++) first.push(await store.increment('client'));

    await delay(70);
    const next = await store.increment('client');

    expect(cluster.acquiresOf(1)).toHaveLength(4);
    expect(next.totalHits).toBe(1);
    expect(next.resetTime!.getTime()).toBeGreaterThan(first[3].resetTime!.getTime());
  });

  test('groups counted apart', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const predict = cluster.store(1, 'predict', { limit: 1, windowMs: MINUTE_MS });
    const order = cluster.store(1, 'order', { limit: 1, windowMs: MINUTE_MS });

    const predicted = await predict.increment('client');
    const ordered = await order.increment('client');

    expect(predicted.totalHits).toBe(1);
    expect(ordered.totalHits).toBe(1);
  });

  test('get and resetKey reach the primary', async () => {
    cluster = new SimulatedCluster(2, { maxDelayMs: 0 });
    const store = cluster.store(1, 'predict', { limit: 1, windowMs: MINUTE_MS });
    await store.increment('client');
    await store.increment('client');

    const counted = await store.get('client');
    await store.resetKey('client');
    const afterReset = await store.get('client');
    const next = await store.increment('client');

    expect(counted?.totalHits).toBe(2);
    expect(afterReset).toBeUndefined();
    expect(next.totalHits).toBe(1);
  });

  test('silent primary fails with 503', async () => {
    const channel: RateLimitChannel = { send: () => undefined, listen: () => undefined };
    const store = new ClusterRateStoreWorker({ group: 'predict', channel, timeoutMs: 30 });
    store.init({ limit: 10, windowMs: MINUTE_MS });

    const outcomes = await Promise.allSettled([store.increment('client'), store.increment('client')]);

    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as HttpError;
      expect(error.status).toBe(503);
      expect(error.message).toContain('did not reply within 30 ms');
      expect(error.headers).toEqual({ 'Retry-After': '1' });
    }
  });

  test('closed channel fails at once', async () => {
    const channel: RateLimitChannel = { send: (_message, onError) => onError(new Error('channel closed')), listen: () => undefined };
    const store = new ClusterRateStoreWorker({ group: 'predict', channel, timeoutMs: 60_000 });
    store.init({ limit: 10, windowMs: MINUTE_MS });

    await expect(store.increment('client')).rejects.toMatchObject({ status: 503, message: expect.stringContaining('channel closed') });
  });

  test('late reply ignored after timeout', async () => {
    const acquires: number[] = [];
    let deliver: (message: RateLimitPrimaryMessage) => void = () => undefined;
    const channel: RateLimitChannel = {
      send: (message) => {
        if (message.type === 'rate-limit-acquire') acquires.push(message.requestId);
      },
      listen: (listener) => {
        deliver = listener;
      },
    };
    const warn = jest.fn();
    const store = new ClusterRateStoreWorker({ group: 'predict', channel, timeoutMs: 20, logger: { warn } as unknown as winston.Logger });
    store.init({ limit: 10, windowMs: MINUTE_MS });
    await expect(store.increment('client')).rejects.toMatchObject({ status: 503 });

    const grant = { windowId: 1, resetTime: Date.now() + MINUTE_MS, countBefore: 0, granted: 5, rejectedBefore: 0 };
    deliver({ type: 'rate-limit-grant', requestId: acquires[0], group: 'predict', grant });
    const retried = store.increment('client');

    await expect(retried).rejects.toMatchObject({ status: 503 });
    expect(acquires).toHaveLength(2);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('arrived after its timeout'), expect.objectContaining({ group: 'predict' }));
  });

  test.each([
    { case: 'function limit', settings: { limit: () => 5, windowMs: MINUTE_MS }, message: 'invalid limit' },
    { case: 'skipFailedRequests', settings: { limit: 5, windowMs: MINUTE_MS, skipFailedRequests: true }, message: 'skipFailedRequests' },
    { case: 'skipSuccessfulRequests', settings: { limit: 5, windowMs: MINUTE_MS, skipSuccessfulRequests: true }, message: 'skipSuccessfulRequests' },
  ])('init rejects $case', ({ settings, message }) => {
    const store = new ClusterRateStoreWorker({ group: 'predict', channel: { send: () => undefined, listen: () => undefined } });

    expect(() => store.init(settings)).toThrow(message);
  });

  test('decrement unsupported', () => {
    const store = new ClusterRateStoreWorker({ group: 'predict', channel: { send: () => undefined, listen: () => undefined } });

    expect(() => store.decrement('client')).toThrow('does not support decrement');
  });

  test('increment before init fails', async () => {
    const store = new ClusterRateStoreWorker({ group: 'predict', channel: { send: () => undefined, listen: () => undefined } });

    await expect(store.increment('client')).rejects.toThrow('used before init');
  });
});

describe('isRateLimitWorkerMessage', () => {
  test.each([
    { case: 'acquire', message: { type: 'rate-limit-acquire', requestId: 1, group: 'predict', key: '::1', demand: 1, limit: 5, windowMs: 1000 }, expected: true },
    { case: 'zero demand', message: { type: 'rate-limit-acquire', requestId: 1, group: 'predict', key: '::1', demand: 0, limit: 5, windowMs: 1000 }, expected: false },
    { case: 'fractional limit', message: { type: 'rate-limit-acquire', requestId: 1, group: 'predict', key: '::1', demand: 1, limit: 5.5, windowMs: 1000 }, expected: false },
    { case: 'release', message: { type: 'rate-limit-release', group: 'predict', key: '::1', windowId: 3, count: 2 }, expected: true },
    { case: 'negative release', message: { type: 'rate-limit-release', group: 'predict', key: '::1', windowId: 3, count: -2 }, expected: false },
    { case: 'get without key', message: { type: 'rate-limit-get', requestId: 1, group: 'predict' }, expected: false },
    { case: 'log line', message: { type: 'log', level: 'info', line: '{}' }, expected: false },
    { case: 'null', message: null, expected: false },
  ])('$case', ({ message, expected }) => {
    expect(isRateLimitWorkerMessage(message)).toBe(expected);
  });
});
