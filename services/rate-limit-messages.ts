import type { Grant } from './rate-lease-ledger';

/**
 * Messages of the shared rate limit (services/cluster-rate-store.ts) that a worker's store sends to
 * the primary. Each names the limiter's group. 'rate-limit-acquire', 'rate-limit-get' and
 * 'rate-limit-reset' carry a request id, which the reply repeats, and 'rate-limit-release' needs no
 * reply. They travel on the cluster's IPC channel beside WorkerMessage, with their own type guard.
 */
export type RateLimitWorkerMessage =
  | { type: 'rate-limit-acquire'; requestId: number; group: string; key: string; demand: number; limit: number; windowMs: number }
  | { type: 'rate-limit-release'; group: string; key: string; windowId: number; count: number }
  | { type: 'rate-limit-get'; requestId: number; group: string; key: string }
  | { type: 'rate-limit-reset'; requestId: number; group: string; key: string };

/**
 * Messages the primary sends to a worker's store: a reply to one of its requests, or
 * 'rate-limit-recall' of the unused grants of a key, which the store returns at once, sent when the
 * key's window has run out.
 */
export type RateLimitPrimaryMessage =
  | { type: 'rate-limit-grant'; requestId: number; group: string; grant: Grant }
  | { type: 'rate-limit-count'; requestId: number; group: string; count: { totalHits: number; resetTime: number } | null }
  | { type: 'rate-limit-reset-done'; requestId: number; group: string }
  | { type: 'rate-limit-recall'; group: string; key: string; windowId: number };

export type RateLimitReply = Exclude<RateLimitPrimaryMessage, { type: 'rate-limit-recall' }>;

function isWholeNumber(value: unknown, minimum: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= minimum;
}

function hasGroupAndKey(message: Record<string, unknown>): boolean {
  return typeof message.group === 'string' && typeof message.key === 'string';
}

/**
 * True when `value` is a well-formed RateLimitWorkerMessage. The primary checks every field,
 * because a grant computed from a malformed count could admit requests over the limit.
 */
export function isRateLimitWorkerMessage(value: unknown): value is RateLimitWorkerMessage {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as Record<string, unknown>;
  switch (message.type) {
    case 'rate-limit-acquire':
      return isWholeNumber(message.requestId, 0) && hasGroupAndKey(message) && isWholeNumber(message.demand, 1) && isWholeNumber(message.limit, 1) && isWholeNumber(message.windowMs, 1);
    case 'rate-limit-release':
      return hasGroupAndKey(message) && isWholeNumber(message.windowId, 1) && isWholeNumber(message.count, 1);
    case 'rate-limit-get':
    case 'rate-limit-reset':
      return isWholeNumber(message.requestId, 0) && hasGroupAndKey(message);
    default:
      return false;
  }
}

const PRIMARY_MESSAGE_TYPES = new Set<unknown>(['rate-limit-grant', 'rate-limit-count', 'rate-limit-reset-done', 'rate-limit-recall']);

/** True when `value` is a RateLimitPrimaryMessage; the primary is trusted to fill in its fields. */
export function isRateLimitPrimaryMessage(value: unknown): value is RateLimitPrimaryMessage {
  return typeof value === 'object' && value !== null && PRIMARY_MESSAGE_TYPES.has((value as { type?: unknown }).type);
}
