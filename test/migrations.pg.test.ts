import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureDatabase } from '../db/cluster.ts';
import { migrateDown, migrateUp } from '../db/migrator.ts';

const CORE_TABLES = [
  'audit_log', 'bundle_components', 'idempotency_keys', 'locations', 'lots', 'order_lines', 'orders', 'products',
  'reservations', 'stock_levels', 'stock_movements',
];
// tables later migrations add (0003_api_keys, 0006_webhooks)
const LATER_TABLES = ['api_keys', 'webhook_deliveries', 'webhook_endpoints'];
const CORE_FUNCTIONS = ['apply_stock_movement', 'bump_version', 'refuse_mutation', 'refuse_truncate'];
const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'db', 'migrations');

const adminUrl = inject('pgAdminUrl');
const name = `mig_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
let pool: pg.Pool;
const tempDirs: string[] = [];

beforeAll(async () => {
  const url = await ensureDatabase(adminUrl, name);
  pool = new pg.Pool({ connectionString: url, max: 4 });
});

afterAll(async () => {
  await pool?.end();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  await admin.end();
  expect(rowCount).toBe(0);
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function tables(): Promise<string[]> {
  const { rows } = await pool.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
  return rows.map((r) => r.table_name);
}

async function functions(): Promise<string[]> {
  const { rows } = await pool.query(
    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1");
  return rows.map((r) => r.proname);
}

async function recorded(): Promise<string[]> {
  const { rows } = await pool.query('SELECT name FROM schema_migrations ORDER BY name');
  return rows.map((r) => r.name);
}

/** A migrations directory holding 0001_core plus `extra` files. */
async function migrationsDirWith(extra: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-mig-'));
  tempDirs.push(dir);
  for (const file of ['0001_core.up.sql', '0001_core.down.sql']) {
    await writeFile(path.join(dir, file), await readFile(path.join(MIGRATIONS_DIR, file), 'utf8'));
  }
  for (const [file, text] of Object.entries(extra)) await writeFile(path.join(dir, file), text);
  return dir;
}

/** every migration in db/migrations, in the order the migrator applies them */
const ALL = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.up.sql')).map((f) => f.slice(0, -'.up.sql'.length)).sort();
/** those after 0002, newest first */
const LATER = ALL.slice(2).reverse();

describe('migrations on a fresh database', () => {
  it('starts empty', async () => {
    expect(await tables()).toEqual([]);
  });

  it('applies every migration: each core table, function and trigger exists and is recorded', async () => {
    const result = await migrateUp({ pool });
    expect(result).toEqual({ applied: ALL, reverted: [] });
    expect(await tables()).toEqual([...CORE_TABLES, ...LATER_TABLES, 'schema_migrations'].sort());
    expect(await functions()).toEqual(CORE_FUNCTIONS);
    expect(await recorded()).toEqual(ALL);
    const { rows } = await pool.query(
      "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'stock_movements'::regclass ORDER BY 1");
    expect(rows.map((r) => r.tgname)).toEqual(['stock_movements_append_only', 'stock_movements_apply', 'stock_movements_no_truncate']);
  });

  it('leaves a working schema: the ledger trigger moves balances and the CHECK refuses negative stock', async () => {
    await pool.query("INSERT INTO locations (code, name) VALUES ('MAIN', 'Main')");
    await pool.query("INSERT INTO products (sku, name, category, kind) VALUES ('MIG-1', 'x', 'sheets', 'simple')");
    await pool.query("INSERT INTO stock_levels (sku, location) VALUES ('MIG-1', 'MAIN')");
    await pool.query("INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor) VALUES ('MIG-1', 'MAIN', 5, 0, 'receipt', 't')");
    expect((await pool.query("SELECT on_hand, version FROM stock_levels WHERE sku = 'MIG-1'")).rows[0]).toEqual({ on_hand: 5, version: '2' });
    await expect(pool.query("INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor) VALUES ('MIG-1', 'MAIN', -6, 0, 'adjustment', 't')"))
      .rejects.toMatchObject({ code: '23514' });
  });

  it('publishes only what projectors need, and never the customer contact column', async () => {
    const { rows } = await pool.query("SELECT tablename, attnames FROM pg_publication_tables WHERE pubname = 'stockwire' ORDER BY 1");
    expect(rows.map((r) => r.tablename)).toEqual(['bundle_components', 'locations', 'lots', 'orders', 'products', 'stock_levels', 'stock_movements']);
    const orders = rows.find((r) => r.tablename === 'orders');
    expect(orders.attnames).toContain('status');
    expect(orders.attnames).not.toContain('customer_contact');
  });

  it('applies nothing the second time', async () => {
    expect(await migrateUp({ pool })).toEqual({ applied: [], reverted: [] });
    expect(await recorded()).toEqual(ALL);
    // the data written above is still there: nothing was re-run
    expect((await pool.query('SELECT count(*)::int AS n FROM stock_movements')).rows[0].n).toBe(1);
  });

  it('reverts newest first with migrateDown: tables, functions and the publication are gone, the records removed', async () => {
    expect(await migrateDown({ pool, steps: LATER.length })).toEqual({ applied: [], reverted: LATER });
    // 0004_db_roles down: the service roles hold no privilege left in this database (columns and defaults included)
    const { rows: grants } = await pool.query(`SELECT
        (SELECT count(*) FROM pg_class WHERE relacl::text ~ 'stockwire_')
      + (SELECT count(*) FROM pg_attribute WHERE attacl::text ~ 'stockwire_')
      + (SELECT count(*) FROM pg_namespace WHERE nspacl::text ~ 'stockwire_')
      + (SELECT count(*) FROM pg_default_acl WHERE defaclacl::text ~ 'stockwire_')
      + (SELECT count(*) FROM pg_database WHERE datname = current_database() AND datacl::text ~ 'stockwire_') AS n`);
    expect(Number(grants[0].n)).toBe(0);
    expect(await migrateDown({ pool })).toEqual({ applied: [], reverted: ['0002_cdc_publication'] });
    expect((await pool.query("SELECT count(*)::int AS n FROM pg_publication WHERE pubname = 'stockwire'")).rows[0].n).toBe(0);
    expect(await migrateDown({ pool })).toEqual({ applied: [], reverted: ['0001_core'] });
    expect(await tables()).toEqual(['schema_migrations']);
    expect(await functions()).toEqual([]);
    expect(await recorded()).toEqual([]);
    expect(await migrateDown({ pool })).toEqual({ applied: [], reverted: [] });
  });

  it('applies again after the revert, onto an empty schema', async () => {
    expect(await migrateUp({ pool })).toEqual({ applied: ALL, reverted: [] });
    expect(await tables()).toEqual([...CORE_TABLES, ...LATER_TABLES, 'schema_migrations'].sort());
    expect((await pool.query('SELECT count(*)::int AS n FROM products')).rows[0].n).toBe(0);
  });

  it('serialises concurrent runs: two migrateUp calls at once apply each migration once', async () => {
    await migrateDown({ pool, steps: ALL.length });
    const [a, b] = await Promise.all([migrateUp({ pool }), migrateUp({ pool })]);
    expect([...a.applied, ...b.applied].sort()).toEqual(ALL);
    expect(await recorded()).toEqual(ALL);
    // the tests below work with a directory holding 0001_core only
    expect(await migrateDown({ pool, steps: ALL.length - 1 })).toEqual({ applied: [], reverted: ALL.slice(1).reverse() });
  });

  it('rolls a failing migration back entirely and records nothing for it', async () => {
    const dir = await migrationsDirWith({
      '0002_broken.up.sql': 'CREATE TABLE mig_half_done (id int);\nSELECT * FROM no_such_table;\n',
      '0002_broken.down.sql': 'DROP TABLE IF EXISTS mig_half_done;\n',
    });
    await expect(migrateUp({ pool, dir })).rejects.toMatchObject({ code: '42P01' });
    expect(await tables()).not.toContain('mig_half_done');
    expect(await recorded()).toEqual(['0001_core']);
  });

  it('commits a migration together with its schema_migrations row: when the record fails, the migration is undone', async () => {
    // the migration itself claims its name, so the migrator's own bookkeeping insert hits the primary key
    const dir = await migrationsDirWith({
      '0002_atomic.up.sql': "CREATE TABLE mig_atomic (id int);\nINSERT INTO schema_migrations (name) VALUES ('0002_atomic');\n",
      '0002_atomic.down.sql': 'DROP TABLE IF EXISTS mig_atomic;\n',
    });
    await expect(migrateUp({ pool, dir })).rejects.toMatchObject({ code: '23505' });
    expect(await tables()).not.toContain('mig_atomic');
    expect(await recorded()).toEqual(['0001_core']);
  });

  it('applies and reverts a later migration one step at a time, newest first', async () => {
    const dir = await migrationsDirWith({
      '0002_extra.up.sql': 'CREATE TABLE mig_extra (id int PRIMARY KEY);\n',
      '0002_extra.down.sql': 'DROP TABLE mig_extra;\n',
    });
    expect(await migrateUp({ pool, dir })).toEqual({ applied: ['0002_extra'], reverted: [] });
    expect(await tables()).toContain('mig_extra');
    expect(await migrateDown({ pool, dir })).toEqual({ applied: [], reverted: ['0002_extra'] });
    expect(await tables()).not.toContain('mig_extra');
    expect(await tables()).toContain('products');
    expect(await recorded()).toEqual(['0001_core']);
  });

  it('refuses a migration without a down step before applying anything', async () => {
    const dir = await migrationsDirWith({ '0002_oneway.up.sql': 'CREATE TABLE mig_oneway (id int);\n' });
    await expect(migrateUp({ pool, dir })).rejects.toThrow(/0002_oneway has no down step/);
    expect(await tables()).not.toContain('mig_oneway');
  });
});
