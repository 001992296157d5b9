import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { anchorHead, natsAnchorStore } from '../api/domain/audit-anchor.ts';
import { GENESIS_HASH, sealAuditRows, verifyAuditChain } from '../api/domain/audit-chain.ts';
import { createHarness, dayFrom, type CallOptions, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
  await h.fixtures.product('AUD-ITEM');
  await h.fixtures.product('AUD-LOT', { lot_tracked: true });
  await h.fixtures.receive('AUD-ITEM', 'MAIN', 10);
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

interface AuditRow {
  id: string;
  actor: string;
  action: string;
  entity: string;
  entity_id: string;
  request_id: string | null;
  before: any;
  after: any;
  chain_seq: string | null;
  prev_hash: string | null;
  hash: string | null;
}

async function maxAuditId(): Promise<string> {
  const { rows } = await h.pool.query('SELECT coalesce(max(id), 0)::text AS id FROM audit_log');
  return rows[0].id;
}

async function auditCount(): Promise<number> {
  const { rows } = await h.pool.query('SELECT count(*)::int AS n FROM audit_log');
  return rows[0].n;
}

async function auditSince(id: string): Promise<AuditRow[]> {
  const { rows } = await h.pool.query('SELECT * FROM audit_log WHERE id > $1 ORDER BY id', [id]);
  return rows;
}

let requestSeq = 0;

/** Runs one API call and returns it with the audit rows it wrote. */
async function withAudit(method: string, path: string, options: CallOptions = {}) {
  const requestId = `audit-test-${++requestSeq}`;
  const since = await maxAuditId();
  const res = await h.call(method, path, { ...options, headers: { ...options.headers, 'x-request-id': requestId } });
  return { res, rows: await auditSince(since), requestId };
}

/** Runs SQL on one connection inside a transaction with the audit_log append-only trigger disabled. */
async function withoutAppendOnlyTrigger(text: string, params: unknown[] = []) {
  const client = await h.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
    const result = await client.query(text, params);
    await client.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

async function sealAll(): Promise<number> {
  let total = 0;
  for (let n = await sealAuditRows(h.db); n > 0; n = await sealAuditRows(h.db)) total += n;
  return total;
}

async function sealedRow(seq: number): Promise<AuditRow> {
  const { rows } = await h.pool.query('SELECT * FROM audit_log WHERE chain_seq = $1', [seq]);
  expect(rows).toHaveLength(1);
  return rows[0];
}

describe('one audit row per command', () => {
  it('writes exactly one row for each successful command, with actor, action, entity and request id', async () => {
    const cases: { call: [string, string, CallOptions]; role: string; action: string; entity: string; entityId: string | ((res: any) => string) }[] = [
      { call: ['POST', '/v1/locations', { body: { code: 'AUD-LOC', name: 'Audit' } }], role: 'admin', action: 'location.create', entity: 'location', entityId: 'AUD-LOC' },
      { call: ['POST', '/v1/products', { role: 'manager', body: { sku: 'AUD-NEW', name: 'New', category: 'linens' } }], role: 'manager', action: 'product.create', entity: 'product', entityId: 'AUD-NEW' },
      { call: ['PATCH', '/v1/products/AUD-NEW', { role: 'manager', body: { name: 'Renamed' } }], role: 'manager', action: 'product.update', entity: 'product', entityId: 'AUD-NEW' },
      { call: ['DELETE', '/v1/products/AUD-NEW', { role: 'manager' }], role: 'manager', action: 'product.update', entity: 'product', entityId: 'AUD-NEW' },
      { call: ['POST', '/v1/receipts', { role: 'clerk', body: { sku: 'AUD-ITEM', location: 'MAIN', qty: 3 } }], role: 'clerk', action: 'stock.receive', entity: 'stock', entityId: 'AUD-ITEM@MAIN' },
      { call: ['POST', '/v1/adjustments', { role: 'clerk', body: { sku: 'AUD-ITEM', location: 'MAIN', delta: -1, reason: 'damaged' } }], role: 'clerk', action: 'stock.adjust', entity: 'stock', entityId: 'AUD-ITEM@MAIN' },
      { call: ['POST', '/v1/transfers', { role: 'clerk', body: { sku: 'AUD-ITEM', from: 'MAIN', to: 'SHOP', qty: 2 } }], role: 'clerk', action: 'stock.transfer', entity: 'stock', entityId: 'AUD-ITEM@MAIN->SHOP' },
      { call: ['POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'AUD-ITEM', qty: 1 }] } }], role: 'order-system', action: 'order.create', entity: 'order', entityId: (res) => res.id },
    ];
    for (const c of cases) {
      const { res, rows, requestId } = await withAudit(...c.call);
      const label = `${c.call[0]} ${c.call[1]}`;
      expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
      expect(rows, label).toHaveLength(1);
      expect(rows[0], label).toMatchObject({
        actor: `test-${c.role}`,
        action: c.action,
        entity: c.entity,
        entity_id: typeof c.entityId === 'function' ? c.entityId(res.body) : c.entityId,
        request_id: requestId,
        chain_seq: null,
        hash: null,
      });
      expect(rows[0]!.after, label).not.toBeNull();
    }
  });

  it('records before and after for changes', async () => {
    const { rows } = await withAudit('PATCH', '/v1/products/AUD-ITEM', { body: { reorder_point: 7 } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.before).toMatchObject({ sku: 'AUD-ITEM', reorder_point: 0 });
    expect(rows[0]!.after).toMatchObject({ sku: 'AUD-ITEM', reorder_point: 7 });
    const adj = await withAudit('POST', '/v1/adjustments', { body: { sku: 'AUD-ITEM', location: 'MAIN', counted: 20, reason: 'count' } });
    expect(adj.rows[0]!.before).toMatchObject({ sku: 'AUD-ITEM', location: 'MAIN' });
    expect(adj.rows[0]!.after).toMatchObject({ stock: { on_hand: 20 } });
  });

  it('writes one row per order transition, including a harmless replay', async () => {
    const order = await h.fixtures.order([{ sku: 'AUD-ITEM', qty: 1 }]);
    const confirm = await withAudit('POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(confirm.rows).toHaveLength(1);
    expect(confirm.rows[0]).toMatchObject({ action: 'order.confirmed', entity_id: order.id, before: { status: 'reserved' }, after: { status: 'confirmed' } });
    const replay = await withAudit('POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(replay.res.status).toBe(200);
    expect(replay.rows).toHaveLength(1);
    expect(replay.rows[0]!.after).toEqual({ status: 'confirmed', replay: true });
    const other = await h.fixtures.order([{ sku: 'AUD-ITEM', qty: 1 }]);
    const cancel = await withAudit('POST', `/v1/orders/${other.id}/cancel`, { role: 'order-system' });
    expect(cancel.rows.map((r) => r.action)).toEqual(['order.cancelled']);
  });

  it('writes nothing for refused commands, reads, or an idempotent replay', async () => {
    const before = await auditCount();
    const refused: [string, string, CallOptions, number, string][] = [
      ['POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'AUD-ITEM', qty: 10_000 }] } }, 409, 'insufficient_stock'],
      ['POST', '/v1/transfers', { body: { sku: 'AUD-ITEM', from: 'MAIN', to: 'SHOP', qty: 10_000 } }, 409, 'insufficient_stock'],
      ['POST', '/v1/adjustments', { body: { sku: 'AUD-ITEM', location: 'MAIN', delta: -10_000, reason: 'lost' } }, 409, 'negative_stock'],
      ['PATCH', '/v1/products/AUD-ITEM', { body: { name: 'x', expected_version: 1 } }, 409, 'version_conflict'],
      ['POST', '/v1/products', { body: { sku: 'AUD-BAD-SET', name: 'x', category: 'bundle', components: [{ sku: 'AUD-NOPE', qty: 1 }] } }, 422, 'invalid_component'],
      ['POST', '/v1/receipts', { body: { sku: 'AUD-LOT', location: 'MAIN', qty: 1, lot_code: 'OLD', expires_on: dayFrom(h.clock, -1) } }, 422, 'lot_expired'],
      ['POST', '/v1/locations', { body: { code: 'MAIN', name: 'again' } }, 409, 'already_exists'],
      ['POST', '/v1/orders', { role: 'viewer', body: { lines: [{ sku: 'AUD-ITEM', qty: 1 }] } }, 403, 'forbidden'],
      ['POST', '/v1/adjustments', { body: { sku: 'AUD-ITEM', location: 'MAIN', delta: 1 } }, 400, 'validation_failed'],
    ];
    for (const [method, path, options, status, code] of refused) {
      const res = await h.call(method, path, options);
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    // the bundle's product row, inserted before its components were refused, was rolled back with it
    expect((await h.call('GET', '/v1/products/AUD-BAD-SET')).status).toBe(404);
    for (const path of ['/v1/products', '/v1/stock', '/v1/movements', '/v1/orders', '/v1/locations']) await h.ok(200, 'GET', path);
    expect(await auditCount()).toBe(before);

    const headers = { 'idempotency-key': 'audit-idem-1' };
    const body = { sku: 'AUD-ITEM', location: 'MAIN', qty: 1 };
    await h.ok(201, 'POST', '/v1/receipts', { body, headers });
    expect(await auditCount()).toBe(before + 1);
    const replay = await h.call('POST', '/v1/receipts', { body, headers });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await auditCount()).toBe(before + 1);
  });

  it('writes the audit row in the command\'s transaction: when it cannot be written, the command does not happen', async () => {
    await h.pool.query("ALTER TABLE audit_log ADD CONSTRAINT audit_test_refuse_location CHECK (action <> 'location.create') NOT VALID");
    try {
      const before = await auditCount();
      const res = await h.call('POST', '/v1/locations', { body: { code: 'AUD-ROLLBACK', name: 'never' } });
      expect(res.status).toBeGreaterThanOrEqual(400);
      const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM locations WHERE code = 'AUD-ROLLBACK'");
      expect(rows[0].n).toBe(0);
      expect(await auditCount()).toBe(before);
    } finally {
      await h.pool.query('ALTER TABLE audit_log DROP CONSTRAINT audit_test_refuse_location');
    }
    await h.ok(201, 'POST', '/v1/locations', { body: { code: 'AUD-ROLLBACK', name: 'now' } });
  });
});

describe('the audit hash chain', () => {
  it('seals every row into one contiguous chain that verifies', async () => {
    const unsealed = (await h.pool.query('SELECT count(*)::int AS n FROM audit_log WHERE hash IS NULL')).rows[0].n;
    expect(unsealed).toBeGreaterThan(5);
    expect(await sealAll()).toBe(unsealed);
    expect(await sealAuditRows(h.db)).toBe(0);
    const { rows } = await h.pool.query('SELECT chain_seq::int AS seq, prev_hash, hash FROM audit_log ORDER BY chain_seq');
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    expect(rows[0].prev_hash).toBe(GENESIS_HASH);
    for (let i = 1; i < rows.length; i++) expect(rows[i].prev_hash).toBe(rows[i - 1].hash);
    expect(new Set(rows.map((r) => r.hash)).size).toBe(rows.length);
    expect(await verifyAuditChain(h.db)).toEqual({ ok: true, checked: rows.length });
    expect(await verifyAuditChain(h.db, 3)).toEqual({ ok: true, checked: rows.length }); // across pages
  });

  it('extends the chain in later batches without breaking it', async () => {
    const sealed = await auditCount();
    for (let i = 0; i < 5; i++) await h.fixtures.receive('AUD-ITEM', 'MAIN', 1);
    expect(await sealAuditRows(h.db, 2)).toBe(2);
    expect(await sealAuditRows(h.db, 2)).toBe(2);
    expect(await sealAuditRows(h.db, 2)).toBe(1);
    expect(await verifyAuditChain(h.db)).toEqual({ ok: true, checked: sealed + 5 });
    expect((await sealedRow(sealed + 1)).prev_hash).toBe((await sealedRow(sealed)).hash);
  });

  it('refuses a plain UPDATE, DELETE or TRUNCATE of audit_log', async () => {
    const sealed = await sealedRow(2);
    await expect(h.pool.query(`UPDATE audit_log SET after = '{"forged":true}' WHERE id = $1`, [sealed.id]))
      .rejects.toMatchObject({ code: '42501', message: expect.stringContaining('append-only') });
    await expect(h.pool.query("UPDATE audit_log SET actor = 'mallory' WHERE id = $1", [sealed.id])).rejects.toMatchObject({ code: '42501' });
    // a sealed row's chain columns cannot be re-sealed either
    await expect(h.pool.query("UPDATE audit_log SET hash = repeat('f', 64) WHERE id = $1", [sealed.id])).rejects.toMatchObject({ code: '42501' });
    await expect(h.pool.query('DELETE FROM audit_log WHERE id = $1', [sealed.id])).rejects.toMatchObject({ code: '42501' });
    await expect(h.pool.query('TRUNCATE audit_log')).rejects.toMatchObject({ code: '42501' });

    // an unsealed row's content is just as fixed: only the sealer's chain columns may be filled
    await h.fixtures.receive('AUD-ITEM', 'MAIN', 1);
    const { rows } = await h.pool.query('SELECT id FROM audit_log WHERE hash IS NULL');
    expect(rows).toHaveLength(1);
    await expect(h.pool.query(`UPDATE audit_log SET after = '{}' WHERE id = $1`, [rows[0].id])).rejects.toMatchObject({ code: '42501' });
    await expect(h.pool.query('DELETE FROM audit_log WHERE id = $1', [rows[0].id])).rejects.toMatchObject({ code: '42501' });

    expect(await sealedRow(2)).toEqual(sealed);
    expect(await sealAll()).toBe(1);
    expect((await verifyAuditChain(h.db)).ok).toBe(true);
  });

  it('reports a row whose content was changed behind the trigger\'s back', async () => {
    const victim = await sealedRow(3);
    await withoutAppendOnlyTrigger(`UPDATE audit_log SET after = jsonb_set(after, '{forged}', 'true') WHERE id = $1`, [victim.id]);
    const report = await verifyAuditChain(h.db);
    expect(report.ok).toBe(false);
    expect(report.checked).toBe(2);
    expect(report.broken).toEqual({ id: victim.id, chain_seq: '3', reason: 'row content does not match its hash' });
    expect((await verifyAuditChain(h.db, 2)).broken?.id).toBe(victim.id);

    // putting the original content back makes the chain whole again
    await withoutAppendOnlyTrigger('UPDATE audit_log SET after = $2::jsonb WHERE id = $1', [victim.id, JSON.stringify(victim.after)]);
    expect((await verifyAuditChain(h.db)).ok).toBe(true);
  });

  it('reports a change to another column and a relinked prev_hash', async () => {
    const victim = await sealedRow(4);
    await withoutAppendOnlyTrigger("UPDATE audit_log SET actor = 'mallory' WHERE id = $1", [victim.id]);
    expect((await verifyAuditChain(h.db)).broken).toMatchObject({ id: victim.id, chain_seq: '4' });
    await withoutAppendOnlyTrigger('UPDATE audit_log SET actor = $2 WHERE id = $1', [victim.id, victim.actor]);
    expect((await verifyAuditChain(h.db)).ok).toBe(true);

    await withoutAppendOnlyTrigger("UPDATE audit_log SET prev_hash = repeat('a', 64) WHERE id = $1", [victim.id]);
    expect((await verifyAuditChain(h.db)).broken).toEqual({ id: victim.id, chain_seq: '4', reason: 'prev_hash does not match the previous row' });
    await withoutAppendOnlyTrigger('UPDATE audit_log SET prev_hash = $2 WHERE id = $1', [victim.id, victim.prev_hash]);
    expect((await verifyAuditChain(h.db)).ok).toBe(true);
  });

  it('reports a deleted sealed row as a missing chain_seq', async () => {
    const total = await auditCount();
    const victim = await sealedRow(5);
    const next = await sealedRow(6);
    await withoutAppendOnlyTrigger('DELETE FROM audit_log WHERE id = $1', [victim.id]);
    expect(await auditCount()).toBe(total - 1);
    const report = await verifyAuditChain(h.db);
    expect(report).toEqual({ ok: false, checked: 4, broken: { id: next.id, chain_seq: '6', reason: 'chain_seq 5 is missing' } });

    // sealing more rows does not hide the gap
    await h.fixtures.receive('AUD-ITEM', 'MAIN', 1);
    expect(await sealAll()).toBe(1);
    expect((await verifyAuditChain(h.db)).broken?.reason).toBe('chain_seq 5 is missing');
  });
});

/** Runs `npm run audit:verify` (its script) with `env` on top of this process's environment. */
function runAuditVerify(env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/audit-verify.ts'], {
    cwd: path.resolve(import.meta.dirname, '..'), env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
  });
  return { code: result.status, out: result.stdout + result.stderr };
}

describe('npm run audit:verify', () => {
  // its own database: the tests above leave a deliberately broken chain behind
  let fresh: Harness;
  beforeAll(async () => {
    fresh = await createHarness();
    await fresh.fixtures.location('MAIN');
    await fresh.fixtures.product('AUD-CLI');
    await fresh.fixtures.receive('AUD-CLI', 'MAIN', 5);
  });
  afterAll(async () => fresh.close());

  const verifyCli = () => runAuditVerify({ DATABASE_URL: fresh.url });

  it('seals what is pending, verifies the chain (exit 0), and names the first broken row (exit 1)', async () => {
    const ok = verifyCli();
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/audit chain ok: 3 rows verified \(3 sealed now\)/);
    const { rows } = await fresh.pool.query('SELECT id, actor FROM audit_log WHERE chain_seq = 2');
    const client = await fresh.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
      await client.query("UPDATE audit_log SET actor = 'someone-else' WHERE id = $1", [rows[0].id]);
      await client.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const broken = verifyCli();
    expect(broken.code).toBe(1);
    expect(broken.out).toContain(`BROKEN at row ${rows[0].id} (chain_seq 2): row content does not match its hash`);
  });
});

describe('GET /v1/audit', () => {
  it('lists entries newest first for admins, filtered by entity and id or by actor, a page at a time', async () => {
    await h.fixtures.product('AUDIT-READ-1');
    await h.ok(200, 'PATCH', '/v1/products/AUDIT-READ-1', { body: { name: 'Renamed for the audit read' } });
    const byEntity = await h.ok(200, 'GET', '/v1/audit?entity=product&entity_id=AUDIT-READ-1');
    expect(byEntity.entries.map((e: { action: string }) => e.action)).toEqual(['product.update', 'product.create']);
    expect(byEntity.entries[0]).toMatchObject({ actor: 'test-admin', entity: 'product', entity_id: 'AUDIT-READ-1' });
    expect(byEntity.entries[0].after.name).toBe('Renamed for the audit read');
    expect(byEntity.entries[0].before.name).toBe('Product AUDIT-READ-1');

    const page1 = await h.ok(200, 'GET', '/v1/audit?actor=test-admin&limit=2');
    expect(page1.entries).toHaveLength(2);
    expect(page1.entries.every((e: { actor: string }) => e.actor === 'test-admin')).toBe(true);
    expect(Number(page1.entries[0].id)).toBeGreaterThan(Number(page1.entries[1].id));
    const page2 = await h.ok(200, 'GET', `/v1/audit?actor=test-admin&limit=2&before_id=${page1.next_before_id}`);
    expect(Number(page2.entries[0].id)).toBeLessThan(Number(page1.entries[1].id));

    const sealed = await sealAuditRows(h.db);
    expect(sealed).toBeGreaterThan(0);
    const after = await h.ok(200, 'GET', '/v1/audit?entity=product&entity_id=AUDIT-READ-1');
    expect(after.entries[0].hash).toMatch(/^[0-9a-f]{64}$/);
    expect(after.entries[0].chain_seq).not.toBeNull();
  });

  it('refuses everyone but admins, and an id filter without its entity', async () => {
    for (const role of ['manager', 'clerk', 'viewer', 'order-system', 'sheet-sync'] as const) {
      expect((await h.call('GET', '/v1/audit', { role })).status).toBe(403);
    }
    const res = await h.call('GET', '/v1/audit?entity_id=X');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
  });
});

describe('the audit anchor (rows removed from the end of the chain)', () => {
  let own: Harness;
  let nc: NatsConnection;
  const bucket = `audit_anchor_test_${process.pid}_${Date.now().toString(36)}`;
  beforeAll(async () => {
    own = await createHarness();
    await own.fixtures.location('MAIN');
    await own.fixtures.product('AUD-TAIL');
    for (let i = 0; i < 4; i++) await own.fixtures.receive('AUD-TAIL', 'MAIN', 1);
    nc = await connect({ servers: 'nats://127.0.0.1:4222' });
  });
  afterAll(async () => {
    await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => {});
    await nc.close();
    await own.close();
  });

  const verifyCli = () => runAuditVerify({ DATABASE_URL: own.url, NATS_URL: 'nats://127.0.0.1:4222', AUDIT_ANCHOR_BUCKET: bucket });

  it('records the chain head outside Postgres and reports a truncated tail the chain alone cannot show', async () => {
    while ((await sealAuditRows(own.db)) > 0) { /* all sealed */ }
    const store = natsAnchorStore({ nats: () => nc, key: new URL(own.url).pathname.slice(1), bucket });
    await anchorHead(own.db, store, new Date());
    const anchored = await store.latest();
    expect(anchored?.chain_seq).toBe('6'); // location, product, 4 receipts
    const ok = verifyCli();
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain('audit anchor ok: the chain still holds chain_seq 6');

    const client = await own.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
      await client.query('DELETE FROM audit_log WHERE chain_seq >= 5');
      await client.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect((await verifyAuditChain(own.db)).ok).toBe(true); // the shortened chain still links up
    const truncated = verifyCli();
    expect(truncated.code).toBe(1);
    expect(truncated.out).toContain('audit chain TRUNCATED');
    expect(truncated.out).toContain('reached chain_seq 6, but the database ends at 4');
  });
});
