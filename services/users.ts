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

/** Creates a user with a new random token. The token is returned here once and never again. */
export function createUser(db: Db, username: string): User & { token: string } {
  const token = crypto.randomBytes(32).toString('base64url');
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

/** Returns the user that owns a bearer token, or null. The lookup is by SHA-256 hash of the token. */
export function findUserByToken(db: Db, token: string): User | null {
  const row = db.prepare('SELECT id, username, created_at FROM users WHERE token_hash = ?').get(hashToken(token)) as UserRow | undefined;
  return row ? toUser(row) : null;
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
