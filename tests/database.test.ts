import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, applyMigrations, openDatabase } from '../services/database';

let directory: string;

beforeEach(() => {
  directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-database-'));
});

afterEach(() => {
  fs.rmSync(directory, { recursive: true, force: true });
});

describe('database migrations', () => {
  test('new database gets every migration', () => {
    const db = openDatabase(path.join(directory, 'new.db'), 1000);

    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[];
    db.close();

    expect(versions.map((row) => row.version)).toEqual(MIGRATIONS.map((migration) => migration.version));
  });

  test('item status migration cancels pending items', () => {
    // A database as the release before the cancelled item status left it: an order whose task was
    // cancelled, with one item classified and two still pending, and a running order.
    const databasePath = path.join(directory, 'old.db');
    const old = new Database(databasePath);
    const cancelledStatusVersion = MIGRATIONS.find((migration) => migration.name === 'items.status cancelled')?.version;
    applyMigrations(
      old,
      MIGRATIONS.filter((migration) => migration.version < (cancelledStatusVersion ?? 0)),
    );
    const now = new Date().toISOString();
    old.prepare("INSERT INTO users VALUES ('u1', 'old_user', 'hash', ?)").run(now);
    for (const [taskId, orderId, status] of [
      ['t1', 'o1', 'cancelled'],
      ['t2', 'o2', 'running'],
    ]) {
      old.prepare("INSERT INTO tasks (id, kind, user_id, order_id, status, total, created_at) VALUES (?, 'order', 'u1', ?, ?, 3, ?)").run(taskId, orderId, status, now);
      old.prepare("INSERT INTO orders VALUES (?, 'u1', ?, NULL, 10, 'EUR', ?, ?, ?)").run(orderId, status === 'cancelled' ? 'cancelled' : 'pending', taskId, now, now);
      old.prepare("INSERT INTO items (owner_id, idx, status, input_kind, label, confidence) VALUES (?, 0, 'classified', 'pixels', '7', 0.9)").run(orderId);
      for (const index of [1, 2]) old.prepare("INSERT INTO items (owner_id, idx, status, input_kind, input) VALUES (?, ?, 'pending', 'pixels', x'00')").run(orderId, index);
    }
    old.close();

    const db = openDatabase(databasePath, 1000);
    const items = db.prepare('SELECT owner_id, idx, status, label, confidence, input FROM items ORDER BY owner_id, idx').all();
    db.close();

    expect(cancelledStatusVersion).toBeDefined();
    expect(items).toEqual([
      { owner_id: 'o1', idx: 0, status: 'classified', label: '7', confidence: 0.9, input: null },
      { owner_id: 'o1', idx: 1, status: 'cancelled', label: null, confidence: null, input: null },
      { owner_id: 'o1', idx: 2, status: 'cancelled', label: null, confidence: null, input: null },
      { owner_id: 'o2', idx: 0, status: 'classified', label: '7', confidence: 0.9, input: null },
      { owner_id: 'o2', idx: 1, status: 'pending', label: null, confidence: null, input: Buffer.from([0]) },
      { owner_id: 'o2', idx: 2, status: 'pending', label: null, confidence: null, input: Buffer.from([0]) },
    ]);
  });

  test('items table rejects an unknown status', () => {
    const db = openDatabase(path.join(directory, 'check.db'), 1000);

    const insert = () => db.prepare("INSERT INTO items (owner_id, idx, status, input_kind) VALUES ('o', 0, 'lost', 'pixels')").run();

    expect(insert).toThrow(/CHECK constraint failed/);
    db.close();
  });
});
