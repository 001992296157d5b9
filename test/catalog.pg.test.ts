import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, dayFrom, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP');
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

function create(body: Record<string, unknown>, role: 'admin' | 'manager' = 'manager') {
  return h.call('POST', '/v1/products', { role, body });
}

describe('products', () => {
  it('creates a simple product with defaults and reads it back', async () => {
    const res = await create({ sku: 'CAT-SHEET-1', name: '  Queen sheet, white  ', category: 'sheets', reorder_point: 5, reorder_qty: 20 });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      sku: 'CAT-SHEET-1', name: 'Queen sheet, white', category: 'sheets', kind: 'simple', lot_tracked: false,
      reorder_point: 5, reorder_qty: 20, active: true, version: 1,
    });
    expect(res.body.components).toBeUndefined();
    expect(new Date(res.body.updated_at).toISOString()).toBe(res.body.updated_at);
    const read = await h.ok(200, 'GET', '/v1/products/CAT-SHEET-1', { role: 'viewer' });
    expect(read).toEqual(res.body);
    const list = await h.ok(200, 'GET', '/v1/products?category=sheets', { role: 'viewer' });
    expect(list.products.map((p: any) => p.sku)).toContain('CAT-SHEET-1');
    expect(list.products.every((p: any) => p.category === 'sheets')).toBe(true);
  });

  it('creates a lot-tracked product', async () => {
    const res = await create({ sku: 'CAT-CREAM-1', name: 'Night cream', category: 'beauty', lot_tracked: true });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ kind: 'simple', lot_tracked: true, reorder_point: 0, reorder_qty: 0 });
  });

  it('refuses a duplicate sku with 409 already_exists and leaves the original untouched', async () => {
    await create({ sku: 'CAT-DUP', name: 'Original', category: 'linens' });
    const dup = await create({ sku: 'CAT-DUP', name: 'Impostor', category: 'beauty' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('already_exists');
    expect(dup.body.error.details).toEqual({ sku: 'CAT-DUP' });
    expect(await h.ok(200, 'GET', '/v1/products/CAT-DUP')).toMatchObject({ name: 'Original', category: 'linens', version: 1 });
  });

  it('validates the create body (400)', async () => {
    for (const body of [
      { sku: 'lower-case', name: 'x', category: 'sheets' },
      { sku: 'CAT-V1', category: 'sheets' },
      { sku: 'CAT-V2', name: '   ', category: 'sheets' },
      { sku: 'CAT-V3', name: 'x', category: 'toys' },
      { sku: 'CAT-V4', name: 'x', category: 'sheets', reorder_point: -1 },
      { sku: 'CAT-V5', name: 'x', category: 'bundle', components: [] },
      { sku: 'CAT-V6', name: 'x', category: 'bundle', components: [{ sku: 'CAT-SHEET-1', qty: 0 }] },
    ]) {
      const res = await create(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect((await h.call('GET', '/v1/products/CAT-V1')).status).toBe(404);
  });

  it('answers 404 not_found for an unknown sku', async () => {
    for (const [method, body] of [['GET', undefined], ['PATCH', { name: 'x' }], ['DELETE', undefined]] as const) {
      const res = await h.call(method, '/v1/products/CAT-NOPE', { body });
      expect(res.status, method).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
  });

  it('patches editable fields, bumping the version', async () => {
    const created = await h.fixtures.product('CAT-PATCH');
    const res = await h.call('PATCH', '/v1/products/CAT-PATCH', { role: 'manager', body: { name: 'Renamed', reorder_point: 3, reorder_qty: 12 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ sku: 'CAT-PATCH', name: 'Renamed', reorder_point: 3, reorder_qty: 12, version: created.version + 1 });
    expect(await h.ok(200, 'GET', '/v1/products/CAT-PATCH')).toEqual(res.body);
  });

  it('refuses a PATCH with a stale expected_version (409 version_conflict with the current product)', async () => {
    const created = await h.fixtures.product('CAT-VER');
    const v2 = await h.ok(200, 'PATCH', '/v1/products/CAT-VER', { body: { name: 'Second', expected_version: created.version } });
    expect(v2.version).toBe(created.version + 1);
    const stale = await h.call('PATCH', '/v1/products/CAT-VER', { body: { name: 'Lost update', expected_version: created.version } });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('version_conflict');
    expect(stale.body.error.details.current).toEqual(v2);
    expect(await h.ok(200, 'GET', '/v1/products/CAT-VER')).toEqual(v2);
  });

  it('refuses a PATCH that changes nothing (400) or names components of a simple product (422 not_a_bundle)', async () => {
    await h.fixtures.product('CAT-EMPTY');
    for (const body of [{}, { expected_version: 1 }]) {
      const res = await h.call('PATCH', '/v1/products/CAT-EMPTY', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    const notBundle = await h.call('PATCH', '/v1/products/CAT-EMPTY', { body: { components: [{ sku: 'CAT-SHEET-1', qty: 1 }] } });
    expect(notBundle.status).toBe(422);
    expect(notBundle.body.error.code).toBe('not_a_bundle');
    expect((await h.ok(200, 'GET', '/v1/products/CAT-EMPTY')).version).toBe(1);
  });

  it('deactivates on DELETE, keeps the product readable, and refuses new orders (422 product_inactive)', async () => {
    await h.fixtures.product('CAT-GONE');
    await h.fixtures.receive('CAT-GONE', 'MAIN', 5);
    const removed = await h.call('DELETE', '/v1/products/CAT-GONE', { role: 'manager' });
    expect(removed.status).toBe(200);
    expect(removed.body).toMatchObject({ sku: 'CAT-GONE', active: false, version: 2 });
    expect((await h.ok(200, 'GET', '/v1/products/CAT-GONE')).active).toBe(false);
    const inactive = (await h.ok(200, 'GET', '/v1/products?active=false')).products.map((p: any) => p.sku);
    const active = (await h.ok(200, 'GET', '/v1/products?active=true')).products.map((p: any) => p.sku);
    expect(inactive).toContain('CAT-GONE');
    expect(active).not.toContain('CAT-GONE');

    const order = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'CAT-GONE', qty: 1 }] } });
    expect(order.status).toBe(422);
    expect(order.body.error.code).toBe('product_inactive');
    expect(order.body.error.details).toEqual({ skus: ['CAT-GONE'] });
    const { rows } = await h.pool.query("SELECT reserved FROM stock_levels WHERE sku = 'CAT-GONE'");
    expect(rows[0].reserved).toBe(0);

    // an inactive product cannot become a bundle component either
    const bundle = await create({ sku: 'CAT-GONE-SET', name: 'x', category: 'bundle', components: [{ sku: 'CAT-GONE', qty: 1 }] });
    expect(bundle.status).toBe(422);
    expect(bundle.body.error.code).toBe('invalid_component');

    // reactivating makes it orderable again
    await h.ok(200, 'PATCH', '/v1/products/CAT-GONE', { body: { active: true } });
    const again = await h.fixtures.order([{ sku: 'CAT-GONE', qty: 1 }]);
    expect(again.status).toBe('reserved');
    await h.ok(200, 'POST', `/v1/orders/${again.id}/cancel`, { role: 'order-system' });
  });
});

describe('bundles', () => {
  beforeAll(async () => {
    await h.fixtures.product('BND-A');
    await h.fixtures.product('BND-B');
    await h.fixtures.product('BND-C', { lot_tracked: true });
  });

  it('creates a bundle with its components', async () => {
    const res = await create({ sku: 'BND-SET', name: 'Set', category: 'bundle', components: [{ sku: 'BND-B', qty: 2 }, { sku: 'BND-A', qty: 1 }] });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ sku: 'BND-SET', kind: 'bundle', lot_tracked: false, active: true });
    expect(res.body.components).toEqual([{ sku: 'BND-A', qty: 1 }, { sku: 'BND-B', qty: 2 }]);
    expect((await h.ok(200, 'GET', '/v1/products/BND-SET')).components).toEqual(res.body.components);
    const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM stock_levels WHERE sku = 'BND-SET'");
    expect(rows[0].n).toBe(0);
  });

  it('refuses invalid components with 422 invalid_component and creates nothing', async () => {
    await h.fixtures.product('BND-OFF');
    await h.ok(200, 'DELETE', '/v1/products/BND-OFF');
    const cases: [string, { sku: string; qty: number }[], string[]][] = [
      ['unknown', [{ sku: 'BND-A', qty: 1 }, { sku: 'BND-NOPE', qty: 1 }], ['BND-NOPE']],
      ['a bundle', [{ sku: 'BND-SET', qty: 1 }], ['BND-SET']],
      ['inactive', [{ sku: 'BND-OFF', qty: 1 }], ['BND-OFF']],
      ['itself', [{ sku: 'BND-SELF', qty: 1 }], ['BND-SELF']],
    ];
    for (const [label, components, bad] of cases) {
      const res = await create({ sku: 'BND-SELF', name: 'x', category: 'bundle', components });
      expect(res.status, label).toBe(422);
      expect(res.body.error.code, label).toBe('invalid_component');
      expect(res.body.error.details.skus, label).toEqual(bad);
    }
    expect((await h.call('GET', '/v1/products/BND-SELF')).status).toBe(404);
  });

  it('refuses a component named twice (422 duplicate_component) and a bundle without components (422 bundle_empty)', async () => {
    const dup = await create({ sku: 'BND-DUP', name: 'x', category: 'bundle', components: [{ sku: 'BND-A', qty: 1 }, { sku: 'BND-A', qty: 2 }] });
    expect(dup.status).toBe(422);
    expect(dup.body.error.code).toBe('duplicate_component');
    const empty = await create({ sku: 'BND-EMPTY', name: 'x', category: 'bundle' });
    expect(empty.status).toBe(422);
    expect(empty.body.error.code).toBe('bundle_empty');
    expect((await h.call('GET', '/v1/products/BND-DUP')).status).toBe(404);
    expect((await h.call('GET', '/v1/products/BND-EMPTY')).status).toBe(404);
  });

  it('refuses a lot-tracked bundle (422 bundle_lot_tracked)', async () => {
    const res = await create({ sku: 'BND-LOT', name: 'x', category: 'bundle', lot_tracked: true, components: [{ sku: 'BND-C', qty: 1 }] });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('bundle_lot_tracked');
    expect((await h.call('GET', '/v1/products/BND-LOT')).status).toBe(404);
  });

  it('replaces components on PATCH and bumps the bundle version', async () => {
    const before = await h.ok(201, 'POST', '/v1/products', { body: { sku: 'BND-SWAP', name: 'Swap', category: 'bundle', components: [{ sku: 'BND-A', qty: 1 }] } });
    const res = await h.call('PATCH', '/v1/products/BND-SWAP', { body: { components: [{ sku: 'BND-B', qty: 3 }, { sku: 'BND-C', qty: 1 }] } });
    expect(res.status).toBe(200);
    expect(res.body.components).toEqual([{ sku: 'BND-B', qty: 3 }, { sku: 'BND-C', qty: 1 }]);
    expect(res.body.version).toBe(before.version + 1);
    const invalid = await h.call('PATCH', '/v1/products/BND-SWAP', { body: { components: [{ sku: 'BND-SET', qty: 1 }] } });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.code).toBe('invalid_component');
    expect((await h.ok(200, 'GET', '/v1/products/BND-SWAP')).components).toEqual(res.body.components);
  });

  it('reports bundle_availability per location as the minimum over components of floor(sellable / qty)', async () => {
    // BND-AV = 1 × BND-A + 2 × BND-B + 3 × BND-C (lot-tracked)
    await h.ok(201, 'POST', '/v1/products', {
      body: { sku: 'BND-AV', name: 'Availability', category: 'bundle', components: [{ sku: 'BND-A', qty: 1 }, { sku: 'BND-B', qty: 2 }, { sku: 'BND-C', qty: 3 }] },
    });
    await h.fixtures.receive('BND-A', 'MAIN', 10);
    await h.fixtures.receive('BND-B', 'MAIN', 9); // floor(9/2) = 4
    await h.fixtures.receive('BND-C', 'MAIN', 14, { lot_code: 'C-LATE', expires_on: dayFrom(h.clock, 200) }); // floor(14/3) = 4
    await h.fixtures.receive('BND-A', 'SHOP', 5); // SHOP has no B or C: 0
    const availability = async () => {
      const res = await h.ok(200, 'GET', '/v1/stock/BND-AV', { role: 'viewer' });
      expect(res).toMatchObject({ sku: 'BND-AV', kind: 'bundle', levels: [], lots: [] });
      return Object.fromEntries(res.bundle_availability.map((b: any) => [b.location, b.available]));
    };
    expect(await availability()).toEqual({ MAIN: 4, SHOP: 0 });

    // reservations reduce what components allow: reserve 2 × B → floor(7/2) = 3
    const order = await h.fixtures.order([{ sku: 'BND-B', qty: 2 }]);
    expect(await availability()).toEqual({ MAIN: 3, SHOP: 0 });

    // A becomes the bottleneck
    await h.ok(200, 'POST', '/v1/adjustments', { body: { sku: 'BND-A', location: 'MAIN', counted: 2, reason: 'count' } });
    expect(await availability()).toEqual({ MAIN: 2, SHOP: 0 });
    await h.ok(200, 'POST', '/v1/adjustments', { body: { sku: 'BND-A', location: 'MAIN', counted: 10, reason: 'count' } });

    // expired lots do not count: the 7 units of C-SOON count only while the lot is sellable
    await h.fixtures.receive('BND-C', 'MAIN', 7, { lot_code: 'C-SOON', expires_on: dayFrom(h.clock, 2) }); // C = 21 → 7; B still 3
    await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' }); // B back to 9 → 4
    expect(await availability()).toEqual({ MAIN: 4, SHOP: 0 });
    await h.fixtures.receive('BND-B', 'MAIN', 11); // B = 20 → 10; C = 21 → 7
    expect(await availability()).toEqual({ MAIN: 7, SHOP: 0 });
    h.clock.advance(1 * 86_400_000); // C-SOON expires tomorrow: still sellable
    try {
      expect(await availability()).toEqual({ MAIN: 7, SHOP: 0 });
      h.clock.advance(1 * 86_400_000); // C-SOON expires today: no longer sold, C sellable 14 → 4
      expect(await availability()).toEqual({ MAIN: 4, SHOP: 0 });
    } finally {
      h.clock.advance(-2 * 86_400_000);
    }
  });

  it('answers 404 for the stock of an unknown sku', async () => {
    const res = await h.call('GET', '/v1/stock/NO-SUCH-SKU');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });
});

describe('locations', () => {
  it('lets only an admin create a location', async () => {
    for (const role of ['manager', 'clerk', 'viewer', 'order-system', 'sheet-sync'] as const) {
      const res = await h.call('POST', '/v1/locations', { role, body: { code: 'LOC-NOT', name: 'Not allowed' } });
      expect(res.status, role).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    }
    const created = await h.call('POST', '/v1/locations', { role: 'admin', body: { code: 'LOC-WEST', name: 'West warehouse' } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ code: 'LOC-WEST', name: 'West warehouse' });
    const list = await h.ok(200, 'GET', '/v1/locations', { role: 'viewer' });
    const codes = list.locations.map((l: any) => l.code);
    expect(codes).toContain('LOC-WEST');
    expect(codes).not.toContain('LOC-NOT');
    expect(codes).toEqual([...codes].sort());
    expect(list.locations.find((l: any) => l.code === 'LOC-WEST')).toEqual({ code: 'LOC-WEST', name: 'West warehouse' });
  });

  it('refuses a duplicate code (409) and a malformed one (400)', async () => {
    await h.fixtures.location('LOC-DUP', 'First');
    const dup = await h.call('POST', '/v1/locations', { body: { code: 'LOC-DUP', name: 'Second' } });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('already_exists');
    const list = await h.ok(200, 'GET', '/v1/locations');
    expect(list.locations.find((l: any) => l.code === 'LOC-DUP').name).toBe('First');
    for (const body of [{ code: 'lower', name: 'x' }, { code: 'LOC-X' }, { code: 'A'.repeat(33), name: 'x' }]) {
      const res = await h.call('POST', '/v1/locations', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it('makes a new location usable for stock at once', async () => {
    await h.fixtures.location('LOC-NEW');
    await h.fixtures.product('LOC-ITEM');
    const receipt = await h.fixtures.receive('LOC-ITEM', 'LOC-NEW', 3);
    expect(receipt.stock).toMatchObject({ location: 'LOC-NEW', on_hand: 3 });
  });
});

describe('catalog rules found by review', () => {
  it('refuses to order a bundle whose component was deactivated (422 product_inactive)', async () => {
    await h.fixtures.product('RULE-COMP');
    await h.fixtures.product('RULE-BUNDLE', { components: [{ sku: 'RULE-COMP', qty: 1 }] });
    await h.fixtures.receive('RULE-COMP', 'MAIN', 3);
    await h.ok(200, 'DELETE', '/v1/products/RULE-COMP');
    const res = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'RULE-BUNDLE', qty: 1 }] } });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: 'product_inactive', details: { skus: ['RULE-COMP'] } });
  });

  it('refuses components on a product whose category is not bundle (422 bundle_category)', async () => {
    await h.fixtures.product('RULE-PART');
    const res = await create({ sku: 'RULE-ODD', name: 'Odd', category: 'sheets', components: [{ sku: 'RULE-PART', qty: 1 }] });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('bundle_category');
    expect((await h.call('GET', '/v1/products/RULE-ODD')).status).toBe(404);
  });

  it('refuses an order at an unknown location (422 unknown_location)', async () => {
    await h.fixtures.product('RULE-LOC');
    const res = await h.call('POST', '/v1/orders', { role: 'order-system', body: { location: 'NOWHERE', lines: [{ sku: 'RULE-LOC', qty: 1 }] } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('unknown_location');
  });

  it('refuses an expiry date for a product that is not lot-tracked (422 not_lot_tracked)', async () => {
    await h.fixtures.product('RULE-PLAIN');
    const res = await h.call('POST', '/v1/receipts', { body: { sku: 'RULE-PLAIN', location: 'MAIN', qty: 1, expires_on: dayFrom(h.clock, 30) } });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('not_lot_tracked');
  });
});
