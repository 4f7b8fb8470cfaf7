import crypto from 'node:crypto';
import createError from 'http-errors';
import type { Db } from './database';

export interface User {
  id: string;
  username: string;
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

interface UserRow {
  id: string;
  username: string;
  created_at: string;
}

const toUser = (row: UserRow): User => ({ id: row.id, username: row.username, createdAt: row.created_at });

/** Hashes a bearer token for storage and lookup; the token itself is never stored. */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Creates a user with a new random token. The token is returned here once and never again. */
export function createUser(db: Db, username: string): User & { token: string } {
  const token = newToken();
  const user: User = { id: crypto.randomUUID(), username, createdAt: new Date().toISOString() };

  try {
    db.prepare('INSERT INTO users (id, username, token_hash, created_at) VALUES (?, ?, ?, ?)').run(
      user.id,
      user.username,
      hashToken(token),
      user.createdAt,
    );
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && /username/.test((error as Error).message)) {
      throw createError(409, `username "${username}" is already taken; choose another`);
    }
    throw error;
  }
  return { ...user, token };
}

/**
 * Returns the user that owns a bearer token, or null. The index finds the row by the SHA-256 hash
 * of the token. The comparison that decides is crypto.timingSafeEqual on the two hashes, so its
 * duration does not depend on how many leading characters of a guessed token are right.
 */
export function findUserByToken(db: Db, token: string): User | null {
  const hash = hashToken(token);
  const row = db.prepare('SELECT id, username, created_at, token_hash FROM users WHERE token_hash = ?').get(hash) as
    | (UserRow & { token_hash: string })
    | undefined;
  if (!row) return null;
  return crypto.timingSafeEqual(Buffer.from(row.token_hash, 'hex'), Buffer.from(hash, 'hex')) ? toUser(row) : null;
}

/**
 * Builds the 401 of a request whose token was valid when it was checked, but whose account has
 * been deleted since: by another request of this process while this one awaited, or by another
 * worker at any time.
 */
function accountDeleted(userId: string): createError.HttpError {
  return createError(401, `the account of this bearer token (user ${userId}) has been deleted; create a user with POST /users to get a new token`, {
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}

/**
 * Runs `write`, which stores rows that reference user `userId`, in an IMMEDIATE transaction that
 * first checks that the user still exists. Throws 401 when it does not; without the check, the
 * foreign key would fail the insert and the request would get 500. IMMEDIATE takes the write lock
 * before the check, so no other process can delete the user between the check and the write. A
 * null `userId` (an anonymous request) skips the check.
 */
export function writeForUser<T>(db: Db, userId: string | null, write: () => T): T {
  const transaction = db.transaction(() => {
    if (userId !== null && db.prepare('SELECT 1 FROM users WHERE id = ?').get(userId) === undefined) throw accountDeleted(userId);
    return write();
  });
  return transaction.immediate();
}

/**
 * Issues a new random token for a user and stores its hash in place of the old one, so the old
 * token is rejected from the next request on, by every process that shares the database. Throws
 * 401 when the account has been deleted since the request's token was checked.
 */
export function rotateToken(db: Db, userId: string): User & { token: string } {
  const token = newToken();
  const row = db.prepare('UPDATE users SET token_hash = ? WHERE id = ? RETURNING id, username, created_at').get(hashToken(token), userId) as
    | UserRow
    | undefined;
  if (!row) throw accountDeleted(userId);
  return { ...toUser(row), token };
}

/**
 * Deletes a user with its orders, tasks, items and idempotency keys, in one transaction. A running
 * task stops after its current chunk, when its runner finds the task gone. Throws 401 when another
 * request has deleted the user since this one's token was checked.
 */
export function deleteUser(db: Db, userId: string): void {
  db.transaction(() => {
    // Items have no foreign key, because they belong to an order or to a prediction task.
    db.prepare('DELETE FROM items WHERE owner_id IN (SELECT id FROM orders WHERE user_id = ?)').run(userId);
    db.prepare('DELETE FROM items WHERE owner_id IN (SELECT id FROM tasks WHERE user_id = ?)').run(userId);
    db.prepare('DELETE FROM orders WHERE user_id = ?').run(userId);
    db.prepare('DELETE FROM tasks WHERE user_id = ?').run(userId);
    // Idempotency keys go with the user through ON DELETE CASCADE.
    const change = db.prepare('DELETE FROM users WHERE id = ?').run(userId);
    if (change.changes === 0) throw accountDeleted(userId);
  })();
}

/** Returns one user; throws 404 when the id is unknown. */
export function getUser(db: Db, id: string): User {
  const row = db.prepare('SELECT id, username, created_at FROM users WHERE id = ?').get(id) as UserRow | undefined;
  if (!row) throw createError(404, `user ${id} not found`);
  return toUser(row);
}

/** Returns a page of users, oldest first. */
export function listUsers(db: Db, limit: number, offset: number): Page<User> {
  const rows = db
    .prepare('SELECT id, username, created_at FROM users ORDER BY created_at, id LIMIT ? OFFSET ?')
    .all(limit, offset) as UserRow[];
  const { total } = db.prepare('SELECT COUNT(*) AS total FROM users').get() as { total: number };
  return { items: rows.map(toUser), total, limit, offset };
}
