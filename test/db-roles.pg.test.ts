/**
 * The least-privilege roles of migration 0004, exercised by connecting as them: stockwire_app can run the
 * API's statements but cannot rewrite the ledger or the audit log (privileges, before any trigger), change
 * the schema, or read the WAL; stockwire_replication can decode the slot and read exactly what the
 * publication publishes, and write nothing.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealAuditRows, verifyAuditChain } from '../api/domain/audit-chain.ts';
import { SNAPSHOT_TABLES } from '../cdc/snapshot.ts';
import { openDatabase, type DatabaseHandle } from '../db/connection.ts';
import { prepareServiceRoles, type ServiceRoleUrls } from '../scripts/database.ts';
import { createHarness, type Harness } from './harness.ts';

let h: Harness;
let urls: ServiceRoleUrls;
let app: DatabaseHandle;
let replication: pg.Pool;

const denied = { code: '42501', message: expect.stringMatching(/^permission denied/) };

beforeAll(async () => {
  h = await createHarness();
  // the launcher's own step: passwords for both roles, URLs on the test database
  urls = await prepareServiceRoles({
    pool: h.pool, ownerUrl: h.url, passwords: { app: randomBytes(12).toString('base64url'), replication: randomBytes(12).toString('base64url') },
  });
  app = openDatabase({ url: urls.app, max: 2, applicationName: 'test-app-role' });
  replication = new pg.Pool({ connectionString: urls.replication, max: 2 });
  replication.on('error', () => {});
  await h.fixtures.location('MAIN');
  await h.fixtures.product('ROLE-1');
  await h.fixtures.receive('ROLE-1', 'MAIN', 10);
  await h.fixtures.order([{ sku: 'ROLE-1', qty: 1 }], { customer: { email: 'someone@example.com' } });
});

afterAll(async () => {
  await app?.close();
  await replication?.end();
  await h?.close();
});

describe('stockwire_app (the API)', () => {
  it('connects as itself and owns nothing', async () => {
    expect((await app.pool.query('SELECT current_user AS u')).rows[0].u).toBe('stockwire_app');
    const owned = await h.pool.query("SELECT relname FROM pg_class WHERE relowner = 'stockwire_app'::regrole");
    expect(owned.rows).toEqual([]);
    const attrs = await h.pool.query("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = 'stockwire_app'");
    expect(attrs.rows[0]).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolreplication: false, rolbypassrls: false });
  });

  it('reads and appends to the ledger; the ledger trigger still moves the balance', async () => {
    await app.pool.query(
      "INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, actor, cause) VALUES ('ROLE-1', 'MAIN', 3, 0, 'adjustment', 'role-test', 'found')");
    const { rows } = await app.pool.query("SELECT on_hand FROM stock_levels WHERE sku = 'ROLE-1' AND location = 'MAIN'");
    expect(rows[0].on_hand).toBe(13);
    expect((await app.pool.query("SELECT count(*)::int AS n FROM stock_movements WHERE sku = 'ROLE-1'")).rows[0].n).toBeGreaterThanOrEqual(2);
  });

  it('runs the statements the API itself needs: row locks, advisory locks, WAL positions, slot status', async () => {
    const client = await app.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT * FROM stock_levels WHERE sku = 'ROLE-1' FOR UPDATE");
      await client.query('SELECT id FROM audit_log WHERE hash IS NULL ORDER BY id LIMIT 1 FOR UPDATE');
      await client.query("UPDATE products SET reorder_point = 2 WHERE sku = 'ROLE-1'");
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await app.pool.query('SELECT pg_try_advisory_lock(1), pg_advisory_unlock(1)');
    await app.pool.query('SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_lsn()::text');
    await app.pool.query("SELECT active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'stockwire'");
    await app.pool.query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '1 day'");
  });

  it('uses the api_keys table (0003) and, through default privileges, tables later migrations create', async () => {
    await app.pool.query('SELECT id, key_prefix FROM api_keys LIMIT 1');
    await app.pool.query('UPDATE api_keys SET last_used_at = now() WHERE false');
    await h.pool.query('CREATE TABLE role_probe_later (id int)');
    try {
      await app.pool.query('INSERT INTO role_probe_later VALUES (1)');
      expect((await app.pool.query('SELECT count(*)::int AS n FROM role_probe_later')).rows[0].n).toBe(1);
      // the replication role gets nothing by default
      await expect(replication.query('SELECT * FROM role_probe_later')).rejects.toMatchObject(denied);
    } finally {
      await h.pool.query('DROP TABLE role_probe_later');
    }
  });

  it('cannot UPDATE, DELETE or TRUNCATE the ledger: refused by privilege, not only by the trigger', async () => {
    await expect(app.pool.query("UPDATE stock_movements SET note = 'x' WHERE sku = 'ROLE-1'")).rejects.toMatchObject(denied);
    await expect(app.pool.query("DELETE FROM stock_movements WHERE sku = 'ROLE-1'")).rejects.toMatchObject(denied);
    await expect(app.pool.query('TRUNCATE stock_movements')).rejects.toMatchObject(denied);
  });

  it('cannot DELETE or TRUNCATE the audit log, nor UPDATE anything but the three chain columns', async () => {
    await expect(app.pool.query('DELETE FROM audit_log')).rejects.toMatchObject(denied);
    await expect(app.pool.query('TRUNCATE audit_log')).rejects.toMatchObject(denied);
    await expect(app.pool.query("UPDATE audit_log SET actor = 'someone-else'")).rejects.toMatchObject(denied);
    await expect(app.pool.query("UPDATE audit_log SET after = '{}'::jsonb")).rejects.toMatchObject(denied);
  });

  it('seals the audit chain (the column-level UPDATE the sealer needs) and the chain verifies', async () => {
    await app.pool.query("INSERT INTO audit_log (actor, action, entity, entity_id) VALUES ('role-test', 'test.role', 'test', '1')");
    expect(await sealAuditRows(app.db)).toBeGreaterThan(0);
    expect(await verifyAuditChain(app.db)).toMatchObject({ ok: true });
    // a sealed row stays sealed: the trigger refuses a second write of the chain columns
    await expect(app.pool.query("UPDATE audit_log SET hash = repeat('0', 64) WHERE hash IS NOT NULL")).rejects.toMatchObject({ message: expect.stringMatching(/append-only/) });
  });

  it('cannot change the schema: no CREATE, no ALTER or DROP of the tables, no switching the append-only triggers off', async () => {
    await expect(app.pool.query('CREATE TABLE role_probe (id int)')).rejects.toMatchObject(denied);
    await expect(app.pool.query('ALTER TABLE stock_movements DISABLE TRIGGER stock_movements_append_only')).rejects.toMatchObject({ code: '42501' });
    await expect(app.pool.query('DROP TABLE audit_log')).rejects.toMatchObject({ code: '42501' });
    await expect(app.pool.query('DROP TRIGGER audit_log_append_only ON audit_log')).rejects.toMatchObject({ code: '42501' });
    // granting itself more is a no-op (Postgres warns "no privileges were granted")
    await app.pool.query('GRANT DELETE ON stock_movements TO stockwire_app');
    await expect(app.pool.query("DELETE FROM stock_movements WHERE sku = 'ROLE-1'")).rejects.toMatchObject(denied);
  });

  it('cannot read the WAL or create a replication slot', async () => {
    await expect(app.pool.query("SELECT pg_create_logical_replication_slot('role_probe_app', 'pgoutput', true)")).rejects.toMatchObject({ code: '42501' });
  });
});

describe('stockwire_replication (the cdc reader)', () => {
  it('has REPLICATION and nothing else among the role attributes', async () => {
    const { rows } = await h.pool.query("SELECT rolreplication, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'stockwire_replication'");
    expect(rows[0]).toEqual({ rolreplication: true, rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolbypassrls: false, rolcanlogin: true });
  });

  it('opens a replication connection and decodes the publication from a slot', async () => {
    const walsender = new pg.Client({ connectionString: urls.replication, replication: 'database' } as pg.ClientConfig);
    await walsender.connect();
    try {
      const { rows } = await walsender.query('IDENTIFY_SYSTEM');
      expect(rows[0].dbname).toBe(new URL(h.url).pathname.slice(1));
    } finally {
      await walsender.end();
    }
    const client = await replication.connect();
    try {
      const slot = `role_probe_${process.pid}`;
      // temporary: dropped with this session, so it pins no WAL and does not block dropping the database
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput', true)", [slot]);
      await h.pool.query("INSERT INTO locations (code, name) VALUES ('ROLE-WH', 'Role warehouse')");
      const changes = await client.query(
        "SELECT count(*)::int AS n FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'stockwire')", [slot]);
      expect(changes.rows[0].n).toBeGreaterThan(0);
    } finally {
      client.release(true);
    }
  });

  it('reads every snapshot table in its published columns, and not the customer contact', async () => {
    for (const table of SNAPSHOT_TABLES) {
      const { rows } = await replication.query<{ attnames: string[] }>(
        "SELECT attnames::text[] AS attnames FROM pg_publication_tables WHERE pubname = 'stockwire' AND tablename = $1", [table]);
      const columns = rows[0]!.attnames.map((c) => pg.escapeIdentifier(c)).join(', ');
      await replication.query(`SELECT ${columns} FROM ${pg.escapeIdentifier(table)} LIMIT 1`);
    }
    await replication.query('SELECT sku, delta_on_hand FROM stock_movements LIMIT 1');
    await expect(replication.query('SELECT customer_contact FROM orders')).rejects.toMatchObject(denied);
    await expect(replication.query('SELECT * FROM orders')).rejects.toMatchObject(denied);
  });

  it('reads nothing unpublished and writes nothing', async () => {
    for (const table of ['audit_log', 'idempotency_keys', 'order_lines', 'reservations']) {
      await expect(replication.query(`SELECT 1 FROM ${table} LIMIT 1`)).rejects.toMatchObject(denied);
    }
    await expect(replication.query("INSERT INTO locations (code, name) VALUES ('ROLE-NO', 'no')")).rejects.toMatchObject(denied);
    await expect(replication.query("UPDATE products SET name = 'x'")).rejects.toMatchObject(denied);
    await expect(replication.query('DELETE FROM stock_levels')).rejects.toMatchObject(denied);
    await expect(replication.query('CREATE TABLE role_probe (id int)')).rejects.toMatchObject(denied);
  });
});
