/**
 * Applies the ordered plain-SQL migrations in db/migrations (NNNN_name.up.sql with a matching .down.sql).
 * Each migration runs in its own transaction together with its schema_migrations row, under an advisory
 * lock, so concurrent runs are safe and re-running is a no-op. Migrations never import application code.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
const MIGRATION_LOCK_KEY = 0x5707_0001; // any constant; shared by every migrator of this schema

export interface MigrationResult {
  applied: string[];
  reverted: string[];
}

interface MigrationLog {
  info(obj: object, msg: string): void;
}

async function listMigrations(dir: string): Promise<string[]> {
  const files = await readdir(dir);
  const names = files.filter((f) => f.endsWith('.up.sql')).map((f) => f.slice(0, -'.up.sql'.length));
  for (const name of names) {
    if (!files.includes(`${name}.down.sql`)) throw new Error(`migration ${name} has no down step (${name}.down.sql)`);
  }
  return names.sort();
}

async function withMigrationLock<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    return await fn(client);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    client.release();
  }
}

async function inTransaction(client: pg.PoolClient, sqlText: string, bookkeeping: [string, string[]]) {
  await client.query('BEGIN');
  try {
    await client.query(sqlText);
    await client.query(bookkeeping[0], bookkeeping[1]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** Applies every migration not yet recorded, in name order. */
export async function migrateUp(props: { pool: pg.Pool; log?: MigrationLog; dir?: string }): Promise<MigrationResult> {
  const dir = props.dir ?? MIGRATIONS_DIR;
  const names = await listMigrations(dir);
  return withMigrationLock(props.pool, async (client) => {
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name));
    const applied: string[] = [];
    for (const name of names.filter((n) => !done.has(n))) {
      const text = await readFile(path.join(dir, `${name}.up.sql`), 'utf8');
      await inTransaction(client, text, ['INSERT INTO schema_migrations (name) VALUES ($1)', [name]]);
      props.log?.info({ migration: name }, 'migration applied');
      applied.push(name);
    }
    return { applied, reverted: [] };
  });
}

/** Reverts the last `steps` applied migrations, newest first. */
export async function migrateDown(props: { pool: pg.Pool; steps?: number; log?: MigrationLog; dir?: string }): Promise<MigrationResult> {
  const dir = props.dir ?? MIGRATIONS_DIR;
  return withMigrationLock(props.pool, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      'SELECT name FROM schema_migrations ORDER BY name DESC LIMIT $1',
      [props.steps ?? 1],
    );
    const reverted: string[] = [];
    for (const { name } of rows) {
      const text = await readFile(path.join(dir, `${name}.down.sql`), 'utf8');
      await inTransaction(client, text, ['DELETE FROM schema_migrations WHERE name = $1', [name]]);
      props.log?.info({ migration: name }, 'migration reverted');
      reverted.push(name);
    }
    return { applied: [], reverted };
  });
}
