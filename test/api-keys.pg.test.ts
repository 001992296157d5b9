import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, parseApiKey, secretMatches } from '../api/auth/api-key-format.ts';
import { parseCidrList } from '../api/net/cidr.ts';
import { createHarness, type CallOptions, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.location('SHOP2');
  await h.fixtures.product('KEY-ITEM');
  await h.fixtures.receive('KEY-ITEM', 'MAIN', 100);
  await h.fixtures.receive('KEY-ITEM', 'SHOP2', 100);
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

let serial = 0;
/** Creates a key as admin; a unique name unless one is given. */
async function createKey(body: Record<string, unknown>): Promise<{ key: string; api_key: any }> {
  return h.ok(201, 'POST', '/v1/api-keys', { body: { name: `key-${++serial}`, ...body } });
}

/** Calls in-process with `key` as Bearer (default) or as X-API-Key. */
function withKey(key: string, method: string, path: string, options: CallOptions & { via?: 'bearer' | 'x-api-key' } = {}) {
  const { via = 'bearer', ...rest } = options;
  return via === 'bearer'
    ? h.call(method, path, { ...rest, token: key })
    : h.call(method, path, { ...rest, token: null, headers: { ...rest.headers, 'x-api-key': key } });
}

const order = (location?: string) => ({ lines: [{ sku: 'KEY-ITEM', qty: 1 }], ...(location ? { location } : {}) });

/** Polls `probe` until it returns a truthy value or the deadline passes. */
async function eventually<T>(probe: () => Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function listen(hostname: string): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const s = serve({ fetch: h.app.fetch, port: 0, hostname }, () => resolve(s));
    s.once('error', reject);
  });
}

async function overSocket(server: ServerType, key: string, path: string, headers: Record<string, string> = {}) {
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const res = await fetch(`http://${host}:${port}${path}`, { headers: { authorization: `Bearer ${key}`, ...headers } });
  return { status: res.status, body: await res.json() as any };
}

function close(server: ServerType) {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('key format (pure)', () => {
  it('makes sw_<12 base62>_<43 base64url> keys, distinct each time, hashing the secret with SHA-256', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a.key).toMatch(/^sw_[0-9A-Za-z]{12}_[A-Za-z0-9_-]{43}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.prefix).not.toBe(b.prefix);
    const parts = parseApiKey(a.key)!;
    expect(parts.prefix).toBe(a.prefix);
    expect(Buffer.from(parts.secret, 'base64url')).toHaveLength(32);
    expect(a.secretHash.equals(createHash('sha256').update(parts.secret).digest())).toBe(true);
  });

  it('compares in constant time and never throws, for a wrong secret of any length or a missing hash', () => {
    const { key, secretHash } = generateApiKey();
    const { secret } = parseApiKey(key)!;
    expect(secretMatches(secretHash, secret)).toBe(true);
    for (const wrong of ['', 'x', `${secret}x`, secret.slice(0, -1), 'y'.repeat(10_000), `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`]) {
      expect(() => secretMatches(secretHash, wrong)).not.toThrow();
      expect(secretMatches(secretHash, wrong)).toBe(false);
    }
    expect(secretMatches(undefined, secret)).toBe(false);
    expect(secretMatches(Buffer.alloc(3), secret)).toBe(false); // a truncated stored hash
  });

  it('refuses strings that are not shaped like a key', () => {
    for (const text of ['sw_', 'sw_short_secret', `sw_${'a'.repeat(12)}_${'b'.repeat(42)}`, `sw_${'a'.repeat(12)}_${'b'.repeat(44)}`, `sw_${'a_'.repeat(6)}_${'b'.repeat(43)}`, ` sw_${'a'.repeat(12)}_${'b'.repeat(43)}`]) {
      expect(parseApiKey(text), text).toBeUndefined();
    }
  });
});

describe('creating and using keys', () => {
  it('shows the key once; it works as Bearer and as X-API-Key with exactly its roles', async () => {
    const { key, api_key } = await createKey({ name: 'shop-orders', roles: ['order-system'] });
    expect(api_key).toMatchObject({ name: 'shop-orders', roles: ['order-system'], locations: null, allowed_cidrs: null, status: 'active', created_by: 'test-admin', replaces: null });
    expect(key.startsWith(`sw_${api_key.key_prefix}_`)).toBe(true);

    for (const via of ['bearer', 'x-api-key'] as const) {
      const placed = await withKey(key, 'POST', '/v1/orders', { via, body: order() });
      expect(placed.status, via).toBe(201);
      expect((await withKey(key, 'GET', `/v1/orders/${placed.body.id}`, { via })).status).toBe(200);
      // outside order-system: ledger reads, stock changes, key management
      for (const [method, path, body] of [['GET', '/v1/movements'], ['POST', '/v1/adjustments', { sku: 'KEY-ITEM', location: 'MAIN', delta: 1, reason: 'found' }], ['GET', '/v1/api-keys']] as const) {
        const res = await withKey(key, method, path, { via, body });
        expect(res.status, `${via} ${method} ${path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
        expect(res.body.error.details.roles).toEqual(['order-system']);
      }
    }
    const { rows } = await h.pool.query("SELECT created_by FROM orders WHERE created_by LIKE 'key:%'");
    expect(rows.map((r) => r.created_by)).toEqual(['key:shop-orders', 'key:shop-orders']);
  });

  it('stores only the prefix and SHA-256 of the secret: not in api_keys, the audit row or an idempotency record', async () => {
    const { key, api_key } = await createKey({ roles: ['viewer'] });
    const { secret } = parseApiKey(key)!;
    const stored = (await h.pool.query('SELECT * FROM api_keys WHERE id = $1', [api_key.id])).rows[0];
    expect(stored.secret_hash.equals(createHash('sha256').update(secret).digest())).toBe(true);
    expect(JSON.stringify({ ...stored, secret_hash: undefined })).not.toContain(secret);
    const audit = (await h.pool.query("SELECT * FROM audit_log WHERE action = 'api_key.create' AND entity_id = $1", [api_key.id])).rows;
    expect(audit).toHaveLength(1);
    expect(audit[0].actor).toBe('test-admin');
    const auditText = JSON.stringify(audit);
    expect(auditText).not.toContain(secret);
    expect(auditText).not.toContain(stored.secret_hash.toString('hex'));
    expect(auditText).not.toContain(stored.secret_hash.toString('base64'));
    const idem = await h.pool.query("SELECT response::text AS r FROM idempotency_keys WHERE response::text LIKE '%sw\\_%'");
    expect(idem.rows).toEqual([]);
    // an Idempotency-Key would have to store the key in clear to replay it: refused
    const replayable = await h.call('POST', '/v1/api-keys', { body: { name: 'idem', roles: ['viewer'] }, headers: { 'idempotency-key': 'k-1' } });
    expect(replayable.status).toBe(400);
    expect(replayable.body.error.code).toBe('idempotency_not_supported');
  });

  it('lists keys without secrets or hashes, to admins only', async () => {
    const { key } = await createKey({ roles: ['viewer'] });
    const res = await h.ok(200, 'GET', '/v1/api-keys');
    expect(res.api_keys.length).toBeGreaterThanOrEqual(2);
    const text = JSON.stringify(res);
    expect(text).not.toContain(parseApiKey(key)!.secret);
    expect(text).not.toMatch(/secret|hash|"key"/);
    for (const k of res.api_keys) expect(Object.keys(k).sort()).toEqual(['allowed_cidrs', 'created_at', 'created_by', 'expires_at', 'id', 'key_prefix', 'last_used_at', 'locations', 'name', 'replaces', 'revoked_at', 'roles', 'status']);
    expect((await h.call('GET', '/v1/api-keys', { role: 'manager' })).status).toBe(403);
    // nor can a key mint a stronger one
    expect((await withKey(key, 'POST', '/v1/api-keys', { body: { name: 'escalate', roles: ['admin'] } })).status).toBe(403);
  });

  it('validates roles, CIDRs, locations, expiry and names (400/422/409)', async () => {
    const bad: [Record<string, unknown>, number, string][] = [
      [{ roles: ['superuser'] }, 400, 'validation_failed'],
      [{ roles: [] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], allowed_cidrs: ['not-an-ip'] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], allowed_cidrs: ['10.0.0.0/33'] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], allowed_cidrs: ['10.0.0.0/8,1.2.3.4'] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], allowed_cidrs: ['::1/129'] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], allowed_cidrs: [] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], locations: [] }, 400, 'validation_failed'],
      [{ roles: ['viewer'], expires_at: new Date(h.clock.now().getTime() - 1000).toISOString() }, 400, 'validation_failed'],
      [{ roles: ['viewer'], name: 'has spaces' }, 400, 'validation_failed'],
      [{ roles: ['viewer'], locations: ['NOWHERE'] }, 422, 'unknown_location'],
      [{ roles: ['manager'], locations: ['SHOP2'] }, 400, 'scope_not_enforceable'], // imports have no location to check
      [{ roles: ['admin'], locations: ['SHOP2'] }, 400, 'scope_not_enforceable'], // could mint an unlimited key
    ];
    for (const [body, status, code] of bad) {
      const res = await h.call('POST', '/v1/api-keys', { body: { name: `bad-${++serial}`, ...body } });
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code, JSON.stringify(body)).toBe(code);
    }
    await createKey({ name: 'unique-name', roles: ['viewer'] });
    const twin = await h.call('POST', '/v1/api-keys', { body: { name: 'unique-name', roles: ['admin'] } });
    expect(twin.status).toBe(409);
    expect(twin.body.error.code).toBe('already_exists');
    const ok = await createKey({ roles: ['viewer'], allowed_cidrs: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7', '::1'] });
    expect(ok.api_key.allowed_cidrs).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.7', '::1']);
  });
});

describe('refusing keys', () => {
  it('answers 401 invalid_api_key, with one message, for unknown, tampered, revoked and expired keys', async () => {
    const { key, api_key } = await createKey({ roles: ['viewer'] });
    expect((await withKey(key, 'GET', '/v1/products')).status).toBe(200);
    const { prefix, secret } = parseApiKey(key)!;
    const flip = (s: string) => `${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`;
    const refused: Record<string, string> = {
      'tampered secret, same prefix': `sw_${prefix}_${flip(secret)}`,
      'unknown prefix, real secret': `sw_${flip(prefix)}_${secret}`,
      'secret too short': `sw_${prefix}_${secret.slice(1)}`,
      'secret too long': `sw_${prefix}_${secret}A`,
      'only the prefix': `sw_${prefix}_`,
      'prefix only, no secret part': `sw_${prefix}`,
    };
    const bodies = new Set<string>();
    for (const [label, candidate] of Object.entries(refused)) {
      for (const via of ['bearer', 'x-api-key'] as const) {
        const res = await withKey(candidate, 'GET', '/v1/products', { via });
        expect(res.status, `${label} via ${via}`).toBe(401);
        expect(res.body.error.code).toBe('invalid_api_key');
        bodies.add(JSON.stringify(res.body));
      }
    }
    // revoked and expired: the same answer, so the response tells a caller nothing about which it was
    const expiring = await createKey({ roles: ['viewer'], expires_at: new Date(h.clock.now().getTime() + 3600_000).toISOString() });
    expect((await withKey(expiring.key, 'GET', '/v1/products')).status).toBe(200);
    await h.pool.query("UPDATE api_keys SET expires_at = $2::timestamptz - interval '1 second' WHERE id = $1", [expiring.api_key.id, h.clock.now()]);
    const expired = await withKey(expiring.key, 'GET', '/v1/products');
    expect(expired.status).toBe(401);
    bodies.add(JSON.stringify(expired.body));
    await h.ok(200, 'DELETE', `/v1/api-keys/${api_key.id}`);
    const revoked = await withKey(key, 'GET', '/v1/products');
    expect(revoked.status).toBe(401);
    bodies.add(JSON.stringify(revoked.body));
    expect([...bodies]).toHaveLength(1);
    expect(revoked.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('revokes with immediate effect: the very next request fails, and a repeated revoke changes nothing', async () => {
    const { key, api_key } = await createKey({ roles: ['order-system'] });
    for (let i = 0; i < 3; i++) expect((await withKey(key, 'GET', '/v1/orders')).status).toBe(200);
    const revoked = await h.ok(200, 'DELETE', `/v1/api-keys/${api_key.id}`);
    expect(revoked.status).toBe('revoked');
    expect((await withKey(key, 'GET', '/v1/orders')).status).toBe(401);
    expect((await withKey(key, 'POST', '/v1/orders', { body: order() })).status).toBe(401);
    h.clock.advance(1000);
    const again = await h.ok(200, 'DELETE', `/v1/api-keys/${api_key.id}`);
    expect(again.revoked_at).toBe(revoked.revoked_at);
    const audit = await h.pool.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'api_key.revoke' AND entity_id = $1", [api_key.id]);
    expect(audit.rows[0].n).toBe(2);
    expect((await h.call('DELETE', '/v1/api-keys/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    // a revoked key cannot be rotated back to life
    const rotate = await h.call('POST', `/v1/api-keys/${api_key.id}/rotate`, { body: {} });
    expect(rotate.status).toBe(409);
    expect(rotate.body.error.code).toBe('api_key_inactive');
  });

  it('refuses two credentials at once', async () => {
    const { key } = await createKey({ roles: ['viewer'] });
    const res = await h.call('GET', '/v1/products', { role: 'admin', headers: { 'x-api-key': key } });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('ambiguous_credentials');
  });
});

describe('rotation', () => {
  it('keeps both keys valid during the grace period, then only the new one', async () => {
    const old = await createKey({ name: 'sheet-sync-svc', roles: ['sheet-sync'], locations: ['MAIN'], allowed_cidrs: ['127.0.0.0/8', '::1'] });
    const rotated = await h.ok(201, 'POST', `/v1/api-keys/${old.api_key.id}/rotate`, { body: { grace_seconds: 60 } });
    expect(rotated.key).not.toBe(old.key);
    expect(rotated.api_key).toMatchObject({ name: 'sheet-sync-svc', roles: ['sheet-sync'], locations: ['MAIN'], allowed_cidrs: ['127.0.0.0/8', '::1'], replaces: old.api_key.id, status: 'active' });
    expect(rotated.replaced.expires_at).toBe(new Date(h.clock.now().getTime() + 60_000).toISOString());
    expect((await h.call('POST', `/v1/api-keys/${old.api_key.id}/rotate`, { body: {} })).body.error.code).toBe('already_rotated');

    const plain = await createKey({ roles: ['order-system'] });
    const next = await h.ok(201, 'POST', `/v1/api-keys/${plain.api_key.id}/rotate`, { body: { grace_seconds: 60 } });
    expect((await withKey(plain.key, 'GET', '/v1/orders')).status).toBe(200);
    expect((await withKey(next.key, 'GET', '/v1/orders')).status).toBe(200);
    h.clock.advance(59_000);
    expect((await withKey(plain.key, 'GET', '/v1/orders')).status).toBe(200);
    h.clock.advance(1_000);
    expect((await withKey(plain.key, 'GET', '/v1/orders')).status).toBe(401);
    expect((await withKey(next.key, 'GET', '/v1/orders')).status).toBe(200);
    // both keys act as the same actor, so idempotency and the ledger see one caller across the rotation
    const list = (await h.ok(200, 'GET', '/v1/api-keys')).api_keys;
    expect(list.find((k: any) => k.id === plain.api_key.id).status).toBe('expired');
    const audit = (await h.pool.query("SELECT before, after FROM audit_log WHERE action = 'api_key.rotate' AND entity_id = $1", [plain.api_key.id])).rows;
    expect(audit).toHaveLength(1);
    expect(audit[0].after.successor.id).toBe(next.api_key.id);
    expect(JSON.stringify(audit)).not.toContain(parseApiKey(next.key)!.secret);
  });

  it('never lengthens the old key: a grace past its expiry keeps the expiry; grace 0 ends it now', async () => {
    const soon = new Date(h.clock.now().getTime() + 10_000).toISOString();
    const a = await createKey({ roles: ['viewer'], expires_at: soon });
    const ra = await h.ok(201, 'POST', `/v1/api-keys/${a.api_key.id}/rotate`, { body: { grace_seconds: 86_400 } });
    expect(ra.replaced.expires_at).toBe(soon);
    expect(ra.api_key.expires_at).toBe(soon); // inherits the lifetime unless told otherwise
    const b = await createKey({ roles: ['viewer'] });
    const rb = await h.ok(201, 'POST', `/v1/api-keys/${b.api_key.id}/rotate`, { body: { grace_seconds: 0 } });
    expect((await withKey(b.key, 'GET', '/v1/products')).status).toBe(401);
    expect((await withKey(rb.key, 'GET', '/v1/products')).status).toBe(200);
  });
});

describe('client address allowlist (real sockets)', () => {
  let v4: ServerType;
  beforeAll(async () => {
    v4 = await listen('127.0.0.1');
  });
  afterAll(async () => {
    await close(v4);
  });

  it('answers 403 ip_not_allowed outside allowed_cidrs and serves inside them; X-Forwarded-For is not believed', async () => {
    const outside = await createKey({ roles: ['viewer'], allowed_cidrs: ['10.0.0.0/8'] });
    const inside = await createKey({ roles: ['viewer'], allowed_cidrs: ['127.0.0.0/8'] });
    const refused = await overSocket(v4, outside.key, '/v1/products');
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'ip_not_allowed', details: { ip: '127.0.0.1' } });
    expect(JSON.stringify(refused.body)).not.toContain('10.0.0.0'); // the allowlist is not disclosed
    expect((await overSocket(v4, outside.key, '/v1/products', { 'x-forwarded-for': '10.1.2.3' })).status).toBe(403);
    expect((await overSocket(v4, outside.key, '/v1/products', { 'x-real-ip': '10.1.2.3', forwarded: 'for=10.1.2.3' })).status).toBe(403);
    expect((await overSocket(v4, inside.key, '/v1/products')).status).toBe(200);
    // a call without a socket address (in-process) cannot prove where it comes from: refused
    expect((await withKey(inside.key, 'GET', '/v1/products')).status).toBe(403);
    // an unknown key is refused as unknown before any address check (no allowlist oracle)
    const tampered = inside.key.slice(0, -1) + (inside.key.endsWith('A') ? 'B' : 'A');
    expect((await overSocket(v4, tampered, '/v1/products')).body.error.code).toBe('invalid_api_key');
  });

  it('matches ::1 for an IPv6 loopback server, and keeps IPv4 ranges from matching it', async () => {
    const v6key = await createKey({ roles: ['viewer'], allowed_cidrs: ['::1'] });
    const v4key = await createKey({ roles: ['viewer'], allowed_cidrs: ['127.0.0.0/8'] });
    let v6: ServerType | undefined;
    try {
      v6 = await listen('::1');
    } catch {
      v6 = undefined; // no IPv6 loopback on this machine: check the parsing at least
    }
    if (v6) {
      try {
        expect((await overSocket(v6, v6key.key, '/v1/products')).status).toBe(200);
        expect((await overSocket(v6, v4key.key, '/v1/products')).body.error.code).toBe('ip_not_allowed');
      } finally {
        await close(v6);
      }
    }
    const list = parseCidrList(['::1', '2001:db8::/32']);
    expect(list.has('::1')).toBe(true);
    expect(list.has('2001:db8:1::5')).toBe(true);
    expect(list.has('127.0.0.1')).toBe(false);
    expect((await overSocket(v4, v6key.key, '/v1/products')).body.error.code).toBe('ip_not_allowed');
  });
});

describe('location scope', () => {
  it('places orders only at its locations, and moves and reads only those orders', async () => {
    const { key } = await createKey({ name: 'shop2-orders', roles: ['order-system'], locations: ['SHOP2'] });
    const placed = await withKey(key, 'POST', '/v1/orders', { body: order('SHOP2') });
    expect(placed.status).toBe(201);
    for (const body of [order('MAIN'), order()]) { // order() has no location: the default, MAIN
      const res = await withKey(key, 'POST', '/v1/orders', { body });
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect(res.body.error).toMatchObject({ code: 'location_not_allowed', details: { location: 'MAIN', allowed: ['SHOP2'] } });
    }
    const elsewhere = await h.fixtures.order([{ sku: 'KEY-ITEM', qty: 1 }], { location: 'MAIN', customer: { email: 'someone@example.com' } });
    expect((await withKey(key, 'GET', `/v1/orders/${elsewhere.id}`)).body.error.code).toBe('location_not_allowed');
    expect((await withKey(key, 'POST', `/v1/orders/${elsewhere.id}/cancel`)).body.error.code).toBe('location_not_allowed');
    const listed = (await withKey(key, 'GET', '/v1/orders?limit=500')).body.orders;
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.every((o: any) => o.location === 'SHOP2')).toBe(true);
    expect((await withKey(key, 'POST', `/v1/orders/${placed.body.id}/confirm`)).status).toBe(200);
    const still = await h.ok(200, 'GET', `/v1/orders/${elsewhere.id}`);
    expect(still.status).toBe('reserved');
  });

  it('changes stock only at its locations: adjustments, receipts and both ends of a transfer', async () => {
    const { key } = await createKey({ roles: ['clerk'], locations: ['SHOP2'] });
    const movements = async () => (await h.pool.query('SELECT count(*)::int AS n FROM stock_movements')).rows[0].n;
    const before = await movements();
    const refused: [string, unknown][] = [
      ['/v1/adjustments', { sku: 'KEY-ITEM', location: 'MAIN', delta: -1, reason: 'lost' }],
      ['/v1/receipts', { sku: 'KEY-ITEM', location: 'MAIN', qty: 1 }],
      ['/v1/transfers', { sku: 'KEY-ITEM', from: 'SHOP2', to: 'MAIN', qty: 1 }],
      ['/v1/transfers', { sku: 'KEY-ITEM', from: 'MAIN', to: 'SHOP2', qty: 1 }],
    ];
    for (const [path, body] of refused) {
      const res = await withKey(key, 'POST', path, { body });
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(403);
      expect(res.body.error.code).toBe('location_not_allowed');
    }
    expect(await movements()).toBe(before);
    expect((await withKey(key, 'POST', '/v1/adjustments', { body: { sku: 'KEY-ITEM', location: 'SHOP2', delta: 1, reason: 'found' } })).status).toBe(200);
    expect((await withKey(key, 'POST', '/v1/receipts', { body: { sku: 'KEY-ITEM', location: 'SHOP2', qty: 1 } })).status).toBe(201);
    // stock reads are not limited (no personal data; sheet-sync reads every row)
    expect((await withKey(key, 'GET', '/v1/stock?location=MAIN')).status).toBe(200);
    const [m] = (await h.ok(200, 'GET', '/v1/movements?location=SHOP2&limit=1')).movements;
    expect(m.actor).toMatch(/^key:key-\d+$/);
  });
});

describe('per-request cost and bookkeeping', () => {
  it('looks a key up through the unique prefix index, and records last_used_at at most once a minute', async () => {
    const { key, api_key } = await createKey({ roles: ['viewer'] });
    const plan = (await h.pool.query('EXPLAIN SELECT id FROM api_keys WHERE key_prefix = $1', [api_key.key_prefix])).rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index Scan using api_keys_prefix_key|Index Only Scan using api_keys_prefix_key|Seq Scan/);
    await h.pool.query('SET enable_seqscan = off'); // a small table may seq-scan; the index must exist and be usable
    const forced = (await h.pool.query('EXPLAIN SELECT id FROM api_keys WHERE key_prefix = $1', [api_key.key_prefix])).rows.map((r) => r['QUERY PLAN']).join('\n');
    await h.pool.query('RESET enable_seqscan');
    expect(forced).toMatch(/api_keys_prefix_key/);

    const lastUsed = async () => (await h.pool.query('SELECT last_used_at FROM api_keys WHERE id = $1', [api_key.id])).rows[0].last_used_at as Date | null;
    expect(await lastUsed()).toBeNull();
    await withKey(key, 'GET', '/v1/products');
    const first = await eventually(lastUsed);
    expect(first?.toISOString()).toBe(h.clock.now().toISOString());
    h.clock.advance(30_000);
    await withKey(key, 'GET', '/v1/products');
    await new Promise((r) => setTimeout(r, 200));
    expect((await lastUsed())?.toISOString()).toBe(first!.toISOString());
    h.clock.advance(31_000);
    await withKey(key, 'GET', '/v1/products');
    const second = await eventually(async () => ((await lastUsed())?.getTime() !== first!.getTime() ? lastUsed() : null));
    expect(second?.toISOString()).toBe(h.clock.now().toISOString());
  });

  it('is not published to CDC', async () => {
    const { rows } = await h.pool.query("SELECT tablename FROM pg_publication_tables WHERE pubname = 'stockwire'");
    expect(rows.map((r) => r.tablename)).not.toContain('api_keys');
  });
});
