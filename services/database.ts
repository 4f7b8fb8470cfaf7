import path from 'node:path';
import Database from 'better-sqlite3';
import { createDirectories } from './directories';

export type Db = Database.Database;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

// Applied in order, each once, inside a transaction. Add new migrations at the end; never edit one
// that has shipped, because databases in the field have already recorded it.
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'users, orders, tasks',
    sql: `
      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );

      CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('order', 'predict')),
        user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
        -- Set for order tasks. Items belong to the order for those, and to the task itself otherwise.
        order_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        done INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL,
        result TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        expires_at TEXT
      );
      CREATE INDEX tasks_status ON tasks (status, created_at);

      CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'cancelled')),
        note TEXT,
        unit_price INTEGER NOT NULL,
        currency TEXT NOT NULL,
        task_id TEXT REFERENCES tasks (id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX orders_user ON orders (user_id, created_at);

      -- Inputs and outputs of both orders and asynchronous predictions: an order's items have
      -- order_id set, a prediction task's items only task_id.
      CREATE TABLE items (
        owner_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'classified', 'failed')),
        input_kind TEXT NOT NULL CHECK (input_kind IN ('image', 'pixels')),
        input BLOB,
        label TEXT,
        confidence REAL,
        probabilities TEXT,
        model_name TEXT,
        model_version TEXT,
        error TEXT,
        PRIMARY KEY (owner_id, idx)
      );

      CREATE TABLE idempotency_keys (
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status INTEGER,
        location TEXT,
        body TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, key)
      );
    `,
  },
  {
    version: 2,
    name: 'tasks.claimed_by_pid',
    // The process that runs a task. With WORKERS > 1, the primary puts the tasks of a worker that
    // died back in the queue by this id, and leaves the tasks of the other workers alone.
    sql: `
      ALTER TABLE tasks ADD COLUMN claimed_by_pid INTEGER;
    `,
  },
  {
    version: 3,
    name: 'items.status cancelled',
    // A cancelled task's pending items become cancelled, so that an order shows why they were
    // never classified. SQLite cannot change a CHECK constraint, so the table is rebuilt. Items
    // that earlier cancellations left pending are marked as well.
    sql: `
      CREATE TABLE items_with_cancelled (
        owner_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'classified', 'failed', 'cancelled')),
        input_kind TEXT NOT NULL CHECK (input_kind IN ('image', 'pixels')),
        input BLOB,
        label TEXT,
        confidence REAL,
        probabilities TEXT,
        model_name TEXT,
        model_version TEXT,
        error TEXT,
        PRIMARY KEY (owner_id, idx)
      );
      INSERT INTO items_with_cancelled
        SELECT owner_id, idx, status, input_kind, input, label, confidence, probabilities, model_name, model_version, error FROM items;
      DROP TABLE items;
      ALTER TABLE items_with_cancelled RENAME TO items;

      UPDATE items SET status = 'cancelled', input = NULL
        WHERE status = 'pending' AND owner_id IN (SELECT COALESCE(order_id, id) FROM tasks WHERE status = 'cancelled');
    `,
  },
];

/**
 * Opens the SQLite database (creating its file and directory when missing), sets WAL mode, the busy
 * timeout and foreign keys, and applies pending migrations.
 */
export function openDatabase(databasePath: string, busyTimeoutMs: number): Db {
  if (databasePath !== ':memory:') createDirectories(path.dirname(databasePath));

  const db = new Database(databasePath, { timeout: busyTimeoutMs });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  applyMigrations(db);
  return db;
}

/**
 * Applies the migrations that the database has not recorded yet; returns their versions. Tests
 * pass the first few `migrations` to build a database as an older release left it.
 */
export function applyMigrations(db: Db, migrations: Migration[] = MIGRATIONS): number[] {
  db.exec(`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )
  `);
  const applied = new Set(
    db.prepare('SELECT version FROM schema_migrations').all().map((row) => (row as { version: number }).version),
  );

  const newlyApplied: number[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        new Date().toISOString(),
      );
    })();
    newlyApplied.push(migration.version);
  }
  return newlyApplied;
}
