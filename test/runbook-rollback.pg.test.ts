/**
 * The runbook's "Rolling back a migration" steps, run against a fresh database: roll back the newest
 * migration (0002_cdc_publication) and re-apply it, first through the migrator and then through the very
 * commands the runbook gives operators (`scripts/migrate.ts down|up`, `npm run migrate:down -- --steps N`,
 * `npm run migrate`) as child processes with DATABASE_URL. Rolling back the publication must keep every
 * core table and its rows; the commands must exit 0 and say what they did. Also pins the runbook's warning
 * that a replication slot which lived through the rollback cannot decode past it and must be recreated.
 * The rehearsal runs on a copy of the first two migrations (MIGRATIONS_DIR), so 0002 stays "the newest"
 * however many migrations follow it.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureDatabase } from '../db/cluster.ts';
import { migrateDown, migrateUp } from '../db/migrator.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CORE_TABLES = [
  'audit_log', 'bundle_components', 'idempotency_keys', 'locations', 'lots', 'order_lines', 'orders', 'products',
  'reservations', 'stock_levels', 'stock_movements',
];
const PUBLISHED = ['bundle_components', 'locations', 'lots', 'orders', 'products', 'stock_levels', 'stock_movements'];
const ALL = ['0001_core', '0002_cdc_publication'];
/**
 * A migrate run takes ~10 s: the CLI exits only when pg's idle-client timer fires, because
 * DatabaseHandle.close() (kysely's destroy) does not end a pool kysely itself never used.
 */
const CLI_TIMEOUT_MS = 120_000;

const adminUrl = inject('pgAdminUrl');
const name = `rbk_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
const slot = `${name}_slot`;
let url: string;
let pool: pg.Pool;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-runbook-'));
  for (const m of ALL) for (const side of ['up', 'down']) await copyFile(path.join(ROOT, 'db/migrations', `${m}.${side}.sql`), path.join(dir, `${m}.${side}.sql`));
  url = await ensureDatabase(adminUrl, name);
  pool = new pg.Pool({ connectionString: url, max: 4 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  // a logical slot pins its database: DROP DATABASE refuses while one exists, even WITH (FORCE)
  await pool?.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]).catch(() => {});
  await pool?.end();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    expect(rowCount).toBe(0);
  } finally {
    await admin.end();
  }
});

// ---- helpers ---------------------------------------------------------------------------------------

async function tables(): Promise<string[]> {
  const { rows } = await pool.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
  return rows.map((r) => r.table_name);
}

async function recorded(): Promise<string[]> {
  return (await pool.query('SELECT name FROM schema_migrations ORDER BY name')).rows.map((r) => r.name);
}

async function publishedTables(): Promise<string[] | undefined> {
  const pub = await pool.query("SELECT 1 FROM pg_publication WHERE pubname = 'stockwire'");
  if (!pub.rowCount) return undefined;
  const { rows } = await pool.query("SELECT tablename FROM pg_publication_tables WHERE pubname = 'stockwire' ORDER BY 1");
  return rows.map((r) => r.tablename);
}

/** relreplident of stock_levels and lots: 'f' (FULL) while published, 'd' (default) otherwise. */
async function replicaIdentity(): Promise<Record<string, string>> {
  const { rows } = await pool.query("SELECT relname, relreplident FROM pg_class WHERE relname IN ('stock_levels', 'lots') AND relkind = 'r' ORDER BY 1");
  return Object.fromEntries(rows.map((r) => [r.relname, r.relreplident]));
}

/** The rows the rollback must not touch. */
async function snapshot() {
  const q = async (text: string) => (await pool.query(text)).rows;
  return {
    locations: await q('SELECT code, name FROM locations ORDER BY code'),
    products: await q('SELECT sku, kind, lot_tracked FROM products ORDER BY sku'),
    stock: await q('SELECT sku, location, on_hand, reserved, version FROM stock_levels ORDER BY sku, location'),
    lots: await q('SELECT sku, location, lot_code, on_hand FROM lots ORDER BY sku, lot_code'),
    movements: await q('SELECT sku, location, delta_on_hand, reason FROM stock_movements ORDER BY id'),
    audit: await q('SELECT count(*)::int AS n FROM audit_log'),
  };
}

async function receive(sku: string, qty: number) {
  await pool.query(
    "INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor) VALUES ($1, 'MAIN', $2, 0, 'receipt', 'runbook-test')",
    [sku, qty],
  );
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** the pino JSON lines of stdout */
  logs: { msg: string; [key: string]: unknown }[];
}

/** Runs a command in the project root with DATABASE_URL pointing at this test's database. */
function run(command: string, args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url, MIGRATIONS_DIR: dir, LOG_LEVEL: 'info', npm_config_loglevel: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: CLI_TIMEOUT_MS / 2, // a hung command is killed (and then fails on its exit code), not left behind
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const logs = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      resolve({ code, stdout, stderr, logs });
    });
  });
}

const migrateCli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/migrate.ts', ...args]);
const npmRun = (...args: string[]) => run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', ...args]);

function summary(result: CliRun) {
  const last = result.logs.at(-1);
  return { msg: last?.msg, applied: last?.applied, reverted: last?.reverted };
}

// ---- the runbook, step by step ---------------------------------------------------------------------

describe('runbook: rolling back a migration', () => {
  let before: Awaited<ReturnType<typeof snapshot>>;

  it('applies every migration on the fresh database, then holds real data', async () => {
    expect(await tables()).toEqual([]);
    expect(await migrateUp({ pool, dir })).toEqual({ applied: ALL, reverted: [] });
    await pool.query("INSERT INTO locations (code, name) VALUES ('MAIN', 'Main'), ('SHOP', 'Shop')");
    await pool.query("INSERT INTO products (sku, name, category, kind) VALUES ('RB-SHEET', 'Sheet', 'sheets', 'simple'), ('RB-TOWEL', 'Towel', 'linens', 'simple')");
    await pool.query("INSERT INTO products (sku, name, category, kind, lot_tracked) VALUES ('RB-CREAM', 'Cream', 'beauty', 'simple', true)");
    await pool.query("INSERT INTO stock_levels (sku, location) VALUES ('RB-SHEET', 'MAIN'), ('RB-TOWEL', 'MAIN'), ('RB-CREAM', 'MAIN')");
    await receive('RB-SHEET', 7);
    await receive('RB-TOWEL', 3);
    const lot = await pool.query("INSERT INTO lots (sku, location, lot_code, expires_on) VALUES ('RB-CREAM', 'MAIN', 'L1', '2030-01-31') RETURNING id");
    await pool.query(
      "INSERT INTO stock_movements (sku, location, lot_id, delta_on_hand, delta_reserved, reason, actor) VALUES ('RB-CREAM', 'MAIN', $1, 4, 0, 'receipt', 'runbook-test')",
      [lot.rows[0].id],
    );
    await pool.query("INSERT INTO audit_log (actor, action, entity, entity_id) VALUES ('runbook-test', 'receipt', 'stock', 'RB-SHEET')");
    before = await snapshot();
    expect(before.stock.find((r) => r.sku === 'RB-SHEET')).toMatchObject({ on_hand: 7, reserved: 0 });
    expect(before.lots).toEqual([{ sku: 'RB-CREAM', location: 'MAIN', lot_code: 'L1', on_hand: 4 }]);
    expect(before.movements).toHaveLength(3);
    expect(await publishedTables()).toEqual(PUBLISHED);
    expect(await replicaIdentity()).toEqual({ lots: 'f', stock_levels: 'f' });
  });

  it('migrateDown reverts only the newest (0002_cdc_publication): the publication is gone, core tables and rows stay', async () => {
    expect(await migrateDown({ pool, dir })).toEqual({ applied: [], reverted: ['0002_cdc_publication'] });
    expect(await publishedTables()).toBeUndefined();
    expect(await replicaIdentity()).toEqual({ lots: 'd', stock_levels: 'd' });
    expect(await tables()).toEqual([...CORE_TABLES, 'schema_migrations'].sort());
    expect(await recorded()).toEqual(['0001_core']);
    expect(await snapshot()).toEqual(before);
  });

  it('leaves a working write path while the publication is rolled back: the ledger trigger still moves balances', async () => {
    await receive('RB-TOWEL', 2);
    const { rows } = await pool.query("SELECT on_hand FROM stock_levels WHERE sku = 'RB-TOWEL' AND location = 'MAIN'");
    expect(rows[0].on_hand).toBe(5);
    before = await snapshot();
  });

  it('migrateUp re-applies it: the publication is back with its tables, the data untouched', async () => {
    expect(await migrateUp({ pool, dir })).toEqual({ applied: ['0002_cdc_publication'], reverted: [] });
    expect(await publishedTables()).toEqual(PUBLISHED);
    expect(await replicaIdentity()).toEqual({ lots: 'f', stock_levels: 'f' });
    expect(await recorded()).toEqual(ALL);
    expect(await snapshot()).toEqual(before);
  });

  it('`scripts/migrate.ts down` (npm run migrate:down) exits 0, reports the reverted migration and keeps the data', async () => {
    const result = await migrateCli('down');
    expect(result.code, result.stderr).toBe(0);
    expect(result.logs.filter((l) => l.msg === 'migration reverted').map((l) => l.migration)).toEqual(['0002_cdc_publication']);
    expect(summary(result)).toEqual({ msg: 'migrations done', applied: [], reverted: ['0002_cdc_publication'] });
    expect(await publishedTables()).toBeUndefined();
    expect(await replicaIdentity()).toEqual({ lots: 'd', stock_levels: 'd' });
    expect(await recorded()).toEqual(['0001_core']);
    expect(await snapshot()).toEqual(before);
  }, CLI_TIMEOUT_MS);

  it('`scripts/migrate.ts up` (npm run migrate) exits 0 and reports the re-applied migration; a second run applies nothing', async () => {
    const up = await migrateCli('up');
    expect(up.code, up.stderr).toBe(0);
    expect(up.logs.filter((l) => l.msg === 'migration applied').map((l) => l.migration)).toEqual(['0002_cdc_publication']);
    expect(summary(up)).toEqual({ msg: 'migrations done', applied: ['0002_cdc_publication'], reverted: [] });
    expect(await publishedTables()).toEqual(PUBLISHED);
    expect(await replicaIdentity()).toEqual({ lots: 'f', stock_levels: 'f' });
    expect(await snapshot()).toEqual(before);

    const again = await migrateCli('up');
    expect(again.code, again.stderr).toBe(0);
    expect(summary(again)).toEqual({ msg: 'schema already up to date', applied: [], reverted: [] });
    expect(await recorded()).toEqual(ALL);
  }, CLI_TIMEOUT_MS);

  it('a replication slot that lived through the rollback cannot decode past it; a recreated slot can (drop the slot, then resync)', async () => {
    await pool.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    const peek = () => pool.query(
      "SELECT count(*)::int AS n FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'stockwire')",
      [slot],
    );
    await receive('RB-SHEET', 1);
    expect((await peek()).rows[0].n).toBeGreaterThan(0); // the slot works before the rollback

    expect(await migrateDown({ pool, dir })).toEqual({ applied: [], reverted: ['0002_cdc_publication'] });
    await receive('RB-SHEET', 1); // written while the publication is gone: never streamed
    expect(await migrateUp({ pool, dir })).toEqual({ applied: ['0002_cdc_publication'], reverted: [] });
    await receive('RB-SHEET', 1);
    await expect(peek()).rejects.toThrow(/publication "stockwire" does not exist/);

    // the runbook's fix: drop the slot (cdc stopped) and let cdc create a new one
    await pool.query('SELECT pg_drop_replication_slot($1)', [slot]);
    await pool.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    await receive('RB-SHEET', 1);
    expect((await peek()).rows[0].n).toBeGreaterThan(0);
    await pool.query('SELECT pg_drop_replication_slot($1)', [slot]);
    expect((await pool.query("SELECT on_hand FROM stock_levels WHERE sku = 'RB-SHEET'")).rows[0].on_hand).toBe(11);
  });

  it('`npm run migrate:down -- --steps 2` reverts the newest two, newest first; `npm run migrate` restores the schema', async () => {
    const down = await npmRun('migrate:down', '--', '--steps', '2');
    expect(down.code, down.stderr).toBe(0);
    expect(down.logs.filter((l) => l.msg === 'migration reverted').map((l) => l.migration)).toEqual(['0002_cdc_publication', '0001_core']);
    expect(summary(down)).toEqual({ msg: 'migrations done', applied: [], reverted: ['0002_cdc_publication', '0001_core'] });
    // 0001_core's down step drops the core schema with its data: the runbook says so
    expect(await tables()).toEqual(['schema_migrations']);
    expect(await recorded()).toEqual([]);

    const up = await npmRun('migrate');
    expect(up.code, up.stderr).toBe(0);
    expect(summary(up)).toEqual({ msg: 'migrations done', applied: ALL, reverted: [] });
    expect(await tables()).toEqual([...CORE_TABLES, 'schema_migrations'].sort());
    expect(await publishedTables()).toEqual(PUBLISHED);
    expect((await pool.query('SELECT count(*)::int AS n FROM products')).rows[0].n).toBe(0);
  }, CLI_TIMEOUT_MS);
});
