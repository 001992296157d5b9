import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMaintenance, expireDueOrders } from '../api/maintenance.ts';
import { createHarness, dayFrom, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness({ ttlSeconds: 600 });
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
  await h.fixtures.product('SHEET-A');
  await h.fixtures.product('CREAM-A', { lot_tracked: true });
  await h.fixtures.product('CREAM-B', { lot_tracked: true });
  await h.fixtures.product('BUNDLE-A', { components: [{ sku: 'SHEET-A', qty: 1 }, { sku: 'CREAM-A', qty: 2 }] });
  await h.fixtures.receive('SHEET-A', 'MAIN', 20);
  await h.fixtures.receive('CREAM-A', 'MAIN', 4, { lot_code: 'LATE', expires_on: dayFrom(h.clock, 300) });
  await h.fixtures.receive('CREAM-A', 'MAIN', 3, { lot_code: 'EARLY', expires_on: dayFrom(h.clock, 30) });
  await h.fixtures.receive('CREAM-A', 'MAIN', 5, { lot_code: 'MID', expires_on: dayFrom(h.clock, 90) });
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

async function stock(sku: string, location = 'MAIN') {
  const res = await h.ok(200, 'GET', `/v1/stock?sku=${sku}&location=${location}`);
  return res.stock[0];
}

async function lotsOf(sku: string) {
  const res = await h.ok(200, 'GET', `/v1/stock/${sku}`);
  return Object.fromEntries(res.lots.map((l: any) => [l.lot_code, l]));
}

describe('orders', () => {
  it('reserves a simple line and confirms it, decrementing on hand and reserved', async () => {
    const before = await stock('SHEET-A');
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 3 }]);
    expect(order.status).toBe('reserved');
    expect((await stock('SHEET-A')).reserved).toBe(before.reserved + 3);
    const confirmed = await h.ok(200, 'POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(confirmed.status).toBe('confirmed');
    const after = await stock('SHEET-A');
    expect(after.on_hand).toBe(before.on_hand - 3);
    expect(after.reserved).toBe(before.reserved);
  });

  it('picks lots first-expiry-first and splits across lots', async () => {
    const order = await h.fixtures.order([{ sku: 'CREAM-A', qty: 5 }]);
    const lots = await lotsOf('CREAM-A');
    const picked = Object.fromEntries(order.reservations.map((r: any) => [r.lot_id, r.qty]));
    expect(picked).toEqual({ [lots.EARLY.id]: 3, [lots.MID.id]: 2 });
    expect(lots.EARLY.reserved).toBe(3);
    expect(lots.MID.reserved).toBe(2);
    expect(lots.LATE.reserved).toBe(0);
    await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
    const released = await lotsOf('CREAM-A');
    expect(released.EARLY.reserved + released.MID.reserved).toBe(0);
  });

  it('never reserves an expired lot', async () => {
    await h.fixtures.product('CREAM-OLD', { lot_tracked: true });
    await h.fixtures.receive('CREAM-OLD', 'MAIN', 4, { lot_code: 'SOON', expires_on: dayFrom(h.clock, 2) });
    await h.fixtures.receive('CREAM-OLD', 'MAIN', 1, { lot_code: 'LATER', expires_on: dayFrom(h.clock, 200) });
    h.clock.advance(3 * 86_400_000); // SOON is now expired
    try {
      const refused = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'CREAM-OLD', qty: 2 }] } });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('insufficient_stock');
      expect(refused.body.error.details.lines).toEqual([
        { sku: 'CREAM-OLD', location: 'MAIN', requested: 2, available: 1, line_skus: ['CREAM-OLD'] },
      ]);
      const one = await h.fixtures.order([{ sku: 'CREAM-OLD', qty: 1 }]);
      const lots = await lotsOf('CREAM-OLD');
      expect(one.reservations).toEqual([{ line_no: 1, sku: 'CREAM-OLD', lot_id: lots.LATER.id, qty: 1 }]);
      expect(lots.SOON.expired).toBe(true);
      expect((await stock('CREAM-OLD')).sellable).toBe(0);
    } finally {
      h.clock.advance(-3 * 86_400_000);
    }
  });

  it('expands a bundle into its components', async () => {
    const order = await h.fixtures.order([{ sku: 'BUNDLE-A', qty: 2 }]);
    const bySku = order.reservations.reduce((acc: Record<string, number>, r: any) => ({ ...acc, [r.sku]: (acc[r.sku] ?? 0) + r.qty }), {});
    expect(bySku).toEqual({ 'SHEET-A': 2, 'CREAM-A': 4 });
    await h.ok(200, 'POST', `/v1/orders/${order.id}/payment-failed`, { role: 'order-system' });
  });

  it('reserves nothing when any line is short, and lists every short line', async () => {
    const before = await stock('SHEET-A');
    const res = await h.call('POST', '/v1/orders', {
      role: 'order-system',
      body: { lines: [{ sku: 'SHEET-A', qty: 1 }, { sku: 'CREAM-B', qty: 1 }, { sku: 'BUNDLE-A', qty: 100 }] },
    });
    expect(res.status).toBe(409);
    expect(res.body.error.details.lines.map((l: any) => l.sku)).toEqual(['CREAM-A', 'CREAM-B', 'SHEET-A']);
    expect(await stock('SHEET-A')).toEqual(before);
  });

  it('releases the reservation when payment fails, and refuses to confirm afterwards', async () => {
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 2 }]);
    const reserved = (await stock('SHEET-A')).reserved;
    await h.ok(200, 'POST', `/v1/orders/${order.id}/payment-failed`, { role: 'order-system' });
    expect((await stock('SHEET-A')).reserved).toBe(reserved - 2);
    const confirm = await h.call('POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(confirm.status).toBe(409);
    expect(confirm.body.error.code).toBe('invalid_transition');
    const cancel = await h.call('POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
    expect(cancel.status).toBe(409);
  });

  it('treats a repeated transition as a harmless replay', async () => {
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 1 }]);
    await h.ok(200, 'POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    const onHand = (await stock('SHEET-A')).on_hand;
    const again = await h.ok(200, 'POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(again.status).toBe('confirmed');
    expect((await stock('SHEET-A')).on_hand).toBe(onHand);
    expect((await h.call('POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' })).status).toBe(409);
  });

  it('expires a reservation after its TTL and releases the stock', async () => {
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 4 }], { ttl_seconds: 60 });
    const reserved = (await stock('SHEET-A')).reserved;
    h.clock.advance(61_000);
    const confirm = await h.call('POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(confirm.status).toBe(409);
    expect(confirm.body.error.code).toBe('reservation_expired');
    expect(await expireDueOrders({ db: h.db, runCommand: h.runCommand, clock: h.clock.now, log: h.log })).toBeGreaterThanOrEqual(1);
    expect((await h.ok(200, 'GET', `/v1/orders/${order.id}`)).status).toBe('expired');
    expect((await stock('SHEET-A')).reserved).toBe(reserved - 4);
  });

  it('lets only one maintenance leader run the sweeper', async () => {
    const make = () => createMaintenance({ databaseUrl: h.url, db: h.db, runCommand: h.runCommand, log: h.log, clock: h.clock.now, intervalMs: 60_000 });
    const a = make();
    const b = make();
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 1 }], { ttl_seconds: 5 });
    h.clock.advance(6_000);
    await Promise.all([a.runOnce(), b.runOnce()]);
    const movements = await h.ok(200, 'GET', `/v1/movements?order_id=${order.id}`);
    expect(movements.movements.filter((m: any) => m.reason === 'release')).toHaveLength(1);
    await a.stop();
    await b.stop();
  });

  it('returns the first answer for a retried Idempotency-Key and 409 for a different body', async () => {
    const headers = { 'idempotency-key': 'order-retry-1' };
    const body = { lines: [{ sku: 'SHEET-A', qty: 1 }], external_ref: 'web-1001' };
    const first = await h.call('POST', '/v1/orders', { role: 'order-system', body, headers });
    const second = await h.call('POST', '/v1/orders', { role: 'order-system', body, headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const other = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'SHEET-A', qty: 2 }] }, headers });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('idempotency_key_reused');
  });

  it('books one order for concurrent requests with the same key', async () => {
    const headers = { 'idempotency-key': 'order-race-1' };
    const body = { lines: [{ sku: 'SHEET-A', qty: 1 }] };
    const results = await Promise.all(Array.from({ length: 8 }, () => h.call('POST', '/v1/orders', { role: 'order-system', body, headers })));
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
  });

  it('refuses a second order with the same external reference', async () => {
    await h.fixtures.order([{ sku: 'SHEET-A', qty: 1 }], { external_ref: 'web-dup' });
    const dup = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'SHEET-A', qty: 1 }], external_ref: 'web-dup' } });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('already_exists');
  });

  it('encrypts customer contact at rest and shows it only to roles that may read it', async () => {
    const order = await h.fixtures.order([{ sku: 'SHEET-A', qty: 1 }], { customer: { email: 'ada@example.com' } });
    const { rows } = await h.pool.query('SELECT customer_contact FROM orders WHERE id = $1', [order.id]);
    expect(rows[0].customer_contact).toMatch(/^v1\.t1\./);
    expect(rows[0].customer_contact).not.toContain('ada');
    expect((await h.ok(200, 'GET', `/v1/orders/${order.id}`, { role: 'manager' })).customer).toEqual({ email: 'ada@example.com' });
    expect((await h.ok(200, 'GET', `/v1/orders/${order.id}`, { role: 'viewer' })).customer).toBeUndefined();
  });

  it('answers 404 for an unknown order and 422 for an unknown sku', async () => {
    expect((await h.call('GET', '/v1/orders/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const res = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'NOPE', qty: 1 }] } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('unknown_sku');
  });
});

describe('the locking transaction path (fallback when optimistic attempts keep losing)', () => {
  it('reserves FEFO and refuses short orders exactly like the fast path', async () => {
    const { createOrder } = await import('../api/domain/order-placement.ts');
    await h.fixtures.product('CREAM-TX', { lot_tracked: true });
    await h.fixtures.receive('CREAM-TX', 'MAIN', 2, { lot_code: 'LATE', expires_on: dayFrom(h.clock, 200) });
    await h.fixtures.receive('CREAM-TX', 'MAIN', 2, { lot_code: 'EARLY', expires_on: dayFrom(h.clock, 20) });
    const meta = { actor: 'test-tx', requestId: 'tx-path-1' };
    const input = { location: 'MAIN', lines: [{ sku: 'CREAM-TX', qty: 3 }], ttlSeconds: 60 };
    const result = await h.runCommand(meta, (trx) => createOrder({ trx, actor: 'test-tx', requestId: 'tx-path-1', now: h.clock.now() }, input));
    const lots = await lotsOf('CREAM-TX');
    expect(result.body.reservations).toEqual([
      { line_no: 1, sku: 'CREAM-TX', lot_id: lots.EARLY.id, qty: 2 },
      { line_no: 1, sku: 'CREAM-TX', lot_id: lots.LATE.id, qty: 1 },
    ]);
    await expect(h.runCommand(meta, (trx) => createOrder({ trx, actor: 'test-tx', requestId: 'tx-path-2', now: h.clock.now() }, input)))
      .rejects.toMatchObject({ code: 'insufficient_stock' });
    expect((await stock('CREAM-TX')).reserved).toBe(3);
  });
});

describe('metrics', () => {
  it('counts reservations by outcome and times requests by route pattern', async () => {
    await h.fixtures.order([{ sku: 'SHEET-A', qty: 1 }]);
    await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'SHEET-A', qty: 100_000 }] } });
    const res = await h.app.request('/metrics');
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(text).toMatch(/stockwire_reservations_total\{outcome="reserved"\} [1-9]/);
    expect(text).toMatch(/stockwire_reservations_total\{outcome="insufficient_stock"\} [1-9]/);
    expect(text).toMatch(/stockwire_http_request_duration_seconds_count\{method="POST",route="\/v1\/orders",status="201"\} [1-9]/);
    expect(text).toMatch(/route="\/v1\/orders\/:id\/confirm"/);
    expect(text).not.toMatch(/route="\/v1\/orders\/[0-9a-f]{8}-/); // ids never become labels
  });
});
