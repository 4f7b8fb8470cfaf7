import crypto from 'node:crypto';
import createError from 'http-errors';
import type { Db } from './database';
import { writeForUser } from './users';

/** A stored response, replayed for a retry with the same key and body. */
export interface StoredResponse {
  status: number;
  location: string | null;
  body: unknown;
}

/** Hashes a request's method, path and body parts, to tell a true retry from a reused key. */
export function hashRequest(parts: (string | Buffer)[]): string {
  const hash = crypto.createHash('sha256');
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : part;
    // Length-prefix every part, so that ["ab", "c"] and ["a", "bc"] hash differently.
    hash.update(`${bytes.length}:`).update(bytes);
  }
  return hash.digest('hex');
}

/**
 * Runs `create` once per (user, Idempotency-Key). A retry with the same key and request hash gets
 * the first response back. The same key with another body, or while the first request is still
 * running, is 409. When `create` throws, the key is released so that the client can retry. A user
 * deleted since the token was checked is 401.
 */
export async function runOnce(
  db: Db,
  userId: string,
  key: string,
  requestHash: string,
  create: () => Promise<StoredResponse>,
): Promise<StoredResponse & { replayed: boolean }> {
  // writeForUser takes the write lock before the SELECT (IMMEDIATE). A deferred transaction that
  // reads first fails at once with SQLITE_BUSY, without waiting for the busy timeout, when another
  // process has written in between. It also rejects a user deleted since the token was checked.
  const claimed = writeForUser(db, userId, () => {
    const existing = db
      .prepare('SELECT request_hash, status, location, body FROM idempotency_keys WHERE user_id = ? AND key = ?')
      .get(userId, key) as { request_hash: string; status: number | null; location: string | null; body: string | null } | undefined;
    if (!existing) {
      db.prepare('INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) VALUES (?, ?, ?, ?)').run(
        userId,
        key,
        requestHash,
        new Date().toISOString(),
      );
      return null;
    }
    if (existing.request_hash !== requestHash) {
      throw createError(409, `Idempotency-Key "${key}" was already used with a different request body; use a new key for a new request`);
    }
    if (existing.status === null) {
      throw createError(409, `a request with Idempotency-Key "${key}" is still being processed; retry when it has finished`, {
        headers: { 'Retry-After': '1' },
      });
    }
    return { status: existing.status, location: existing.location, body: JSON.parse(existing.body ?? 'null') as unknown, replayed: true };
  });
  if (claimed) return claimed;

  let response: StoredResponse;
  try {
    response = await create();
  } catch (error) {
    db.prepare('DELETE FROM idempotency_keys WHERE user_id = ? AND key = ?').run(userId, key);
    throw error;
  }
  db.prepare('UPDATE idempotency_keys SET status = ?, location = ?, body = ? WHERE user_id = ? AND key = ?').run(
    response.status,
    response.location,
    JSON.stringify(response.body),
    userId,
    key,
  );
  return { ...response, replayed: false };
}
