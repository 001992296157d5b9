import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.ts';
import { PERMISSIONS, ROLES, type Action, type Role } from '../api/auth/permissions.ts';
import { createTokenVerifier, issueToken } from '../api/auth/tokens.ts';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import { openDatabase } from '../db/connection.ts';
import { createHarness, TEST_PII_KEYS, TEST_TOKEN_SETTINGS, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.product('AUTH-ITEM');
  await h.fixtures.receive('AUTH-ITEM', 'MAIN', 5);
});

afterAll(async () => {
  expect(await ledgerViolations(h.db)).toEqual([]);
  await h.close();
});

/** An error body is { error: { code, message, details? } } and never leaks a stack trace or source path. */
function expectCleanError(body: any) {
  expect(body).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  expect(Object.keys(body)).toEqual(['error']);
  const text = JSON.stringify(body);
  expect(text).not.toMatch(/"stack"/);
  expect(text).not.toMatch(/\\n\s+at /); // a serialised stack: "Error: …\n    at fn (file:1:2)"
  expect(text).not.toMatch(/\.[cm]?[jt]s:\d+:\d+|node_modules|node:internal/);
}

async function raw(path: string, init: RequestInit = {}) {
  const res = await h.app.request(path, init);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

describe('authentication', () => {
  it('answers 401 unauthenticated without a token, before validating the request', async () => {
    const get = await h.call('GET', '/v1/products', { token: null });
    expect(get.status).toBe(401);
    expect(get.body.error.code).toBe('unauthenticated');
    expect(get.headers.get('www-authenticate')).toBe('Bearer');
    expectCleanError(get.body);
    const post = await h.call('POST', '/v1/orders', { token: null, body: { nonsense: true } });
    expect(post.status).toBe(401);
    const basic = await h.call('GET', '/v1/products', { token: null, headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    expect(basic.status).toBe(401);
    expect(basic.body.error.code).toBe('unauthenticated');
  });

  it('answers 401 invalid_token for a garbage token', async () => {
    for (const token of ['garbage', 'a.b.c', `${h.tokens.admin}x`]) {
      const res = await h.call('GET', '/v1/products', { token });
      expect(res.status, token).toBe(401);
      expect(res.body.error.code).toBe('invalid_token');
      expect(res.headers.get('www-authenticate')).toContain('invalid_token');
      expectCleanError(res.body);
    }
  });

  it('answers 401 invalid_token for an expired token', async () => {
    const expired = await issueToken(TEST_TOKEN_SETTINGS, { subject: 'late', roles: ['admin'], ttlSeconds: -60 });
    const res = await h.call('GET', '/v1/products', { token: expired });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_token');
    expect(res.body.error.message).toMatch(/expired/);
  });

  it('answers 401 for a token signed with another secret, or for another issuer or audience', async () => {
    const others = [
      { ...TEST_TOKEN_SETTINGS, secret: 'another-secret-another-secret-another!' },
      { ...TEST_TOKEN_SETTINGS, issuer: 'someone-else' },
      { ...TEST_TOKEN_SETTINGS, audience: 'another-api' },
    ];
    for (const settings of others) {
      const token = await issueToken(settings, { subject: 'mallory', roles: ['admin'] });
      const res = await h.call('GET', '/v1/products', { token });
      expect(res.status, JSON.stringify(settings)).toBe(401);
      expect(res.body.error.code).toBe('invalid_token');
    }
  });

  it('accepts a valid token and records its subject as the actor', async () => {
    const token = await issueToken(TEST_TOKEN_SETTINGS, { subject: 'alice@warehouse', roles: ['clerk'] });
    const res = await h.call('POST', '/v1/adjustments', { token, body: { sku: 'AUTH-ITEM', location: 'MAIN', delta: 1, reason: 'found' } });
    expect(res.status).toBe(200);
    const [m] = (await h.ok(200, 'GET', '/v1/movements?sku=AUTH-ITEM&limit=1')).movements;
    expect(m.actor).toBe('alice@warehouse');
  });

  it('grants nothing to a token whose roles are unknown or missing, and the union to several roles', async () => {
    const none = await issueToken(TEST_TOKEN_SETTINGS, { subject: 'nobody', roles: [] });
    const bogus = await issueToken(TEST_TOKEN_SETTINGS, { subject: 'bogus', roles: ['superuser' as Role] });
    for (const token of [none, bogus]) {
      const res = await h.call('GET', '/v1/products', { token });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    }
    const both = await issueToken(TEST_TOKEN_SETTINGS, { subject: 'both', roles: ['viewer', 'sheet-sync'] });
    expect((await h.call('GET', '/v1/movements', { token: both })).status).toBe(200); // viewer may
    const adj = await h.call('POST', '/v1/adjustments', { token: both, body: { sku: 'AUTH-ITEM', location: 'MAIN', delta: 1, reason: 'found' } });
    expect(adj.status).toBe(200); // sheet-sync may
    expect((await h.call('POST', '/v1/receipts', { token: both, body: { sku: 'AUTH-ITEM', location: 'MAIN', qty: 1 } })).status).toBe(403);
  });
});

describe('authorization', () => {
  it('answers 403 forbidden to a viewer placing an order, and books nothing', async () => {
    const count = async () => (await h.pool.query('SELECT count(*)::int AS n FROM orders')).rows[0].n;
    const before = await count();
    const res = await h.call('POST', '/v1/orders', { role: 'viewer', body: { lines: [{ sku: 'AUTH-ITEM', qty: 1 }] } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    expect(res.body.error.details).toEqual({ action: 'orders:write', roles: ['viewer'] });
    expectCleanError(res.body);
    expect(await count()).toBe(before);
    const { rows } = await h.pool.query("SELECT reserved FROM stock_levels WHERE sku = 'AUTH-ITEM'");
    expect(rows[0].reserved).toBe(0);
  });

  it('enforces PERMISSIONS on every operation of the OpenAPI document, for every role', async () => {
    const docRes = await h.app.request('/openapi.json');
    expect(docRes.status).toBe(200);
    const doc: any = await docRes.json();
    const operations: { method: string; path: string; action: Action; hasBody: boolean }[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        if (!path.startsWith('/v1/')) continue;
        const action = op['x-stockwire-action'];
        expect(action, `${method.toUpperCase()} ${path} names no x-stockwire-action`).toBeTypeOf('string');
        expect(Object.keys(PERMISSIONS), `${method.toUpperCase()} ${path}`).toContain(action);
        expect(op.security, `${method.toUpperCase()} ${path}`).toEqual([{ bearerAuth: [] }]);
        operations.push({ method: method.toUpperCase(), path, action, hasBody: op.requestBody !== undefined });
      }
    }
    // the document lists every route module's operations
    expect(operations.length).toBeGreaterThanOrEqual(19);
    for (const expected of ['POST /v1/orders', 'POST /v1/adjustments', 'PATCH /v1/products/{sku}', 'POST /v1/locations', 'GET /v1/movements']) {
      expect(operations.map((o) => `${o.method} ${o.path}`)).toContain(expected);
    }

    const failures: string[] = [];
    for (const op of operations) {
      const url = op.path.replace('{sku}', 'AUTH-MATRIX-NONE').replace('{id}', randomUUID());
      for (const role of ROLES) {
        const res = await h.call(op.method, url, { role, body: op.hasBody ? {} : undefined });
        const allowed = (PERMISSIONS[op.action] as readonly Role[]).includes(role);
        const label = `${op.method} ${op.path} as ${role} (${op.action}) → ${res.status}`;
        if (allowed) {
          if (res.status === 401 || res.status === 403 || res.status >= 500) failures.push(`${label}: allowed role refused or failed ${JSON.stringify(res.body)}`);
        } else if (res.status !== 403 || res.body?.error?.code !== 'forbidden' || res.body.error.details?.action !== op.action) {
          failures.push(`${label}: expected 403 forbidden ${JSON.stringify(res.body)}`);
        }
        if (res.status >= 400) expectCleanError(res.body);
      }
    }
    expect(failures).toEqual([]);
  });
});

describe('probes, unknown routes and malformed requests', () => {
  it('answers /healthz and /readyz without a token', async () => {
    const health = await raw('/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    const ready = await raw('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
  });

  it('answers 404 not_found for unknown routes and methods', async () => {
    for (const [method, path] of [['GET', '/nope'], ['GET', '/v1/nope'], ['PUT', '/v1/products'], ['DELETE', '/v1/locations']]) {
      const res = await h.call(method!, path!);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      expectCleanError(res.body);
    }
  });

  it('answers 400 malformed_request for a body that is not JSON', async () => {
    for (const body of ['{"lines": [', 'not json', '']) {
      const res = await raw('/v1/orders', {
        method: 'POST',
        headers: { authorization: `Bearer ${h.tokens['order-system']}`, 'content-type': 'application/json' },
        body,
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('malformed_request');
      expectCleanError(res.body);
    }
    const patch = await raw('/v1/products/AUTH-ITEM', {
      method: 'PATCH',
      headers: { authorization: `Bearer ${h.tokens.admin}`, 'content-type': 'application/json' },
      body: '{name:',
    });
    expect(patch.status).toBe(400);
    expect(patch.body.error.code).toBe('malformed_request');
  });

  it('answers 400 validation_failed with the issues for a well-formed but invalid body', async () => {
    const res = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [] } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.target).toBe('json');
    expect(res.body.error.details.issues[0].path).toBe('lines');
    expectCleanError(res.body);
  });

  it('refuses a non-JSON content type (415) and an oversized body (413)', async () => {
    const text = await raw('/v1/orders', {
      method: 'POST',
      headers: { authorization: `Bearer ${h.tokens['order-system']}`, 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(text.status).toBe(415);
    expectCleanError(text.body);
    const big = await raw('/v1/orders', {
      method: 'POST',
      headers: { authorization: `Bearer ${h.tokens['order-system']}`, 'content-type': 'application/json' },
      body: JSON.stringify({ external_ref: 'x'.repeat(1024 * 1024 + 1), lines: [] }),
    });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('body_too_large');
  });

  it('refuses a malformed Idempotency-Key (400)', async () => {
    const res = await h.call('POST', '/v1/orders', {
      role: 'order-system',
      body: { lines: [{ sku: 'AUTH-ITEM', qty: 1 }] },
      headers: { 'idempotency-key': 'has spaces in it' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_idempotency_key');
  });

  it('sends secure headers on every response', async () => {
    const res = await h.call('GET', '/v1/products');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });

  it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
    const sane = await h.call('GET', '/v1/products', { headers: { 'x-request-id': 'req-123.abc' } });
    expect(sane.headers.get('x-request-id')).toBe('req-123.abc');
    const unsafe = await h.call('GET', '/v1/products', { headers: { 'x-request-id': 'bad id <script>' } });
    expect(unsafe.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  /** An app wired to `url`: every query fails with that database's driver error. */
  const appOn = (url: string) => {
    const broken = openDatabase({ url, max: 1 });
    const app = createApp({
      db: broken.db,
      pool: broken.pool,
      log: pino({ level: 'silent' }),
      clock: h.clock.now,
      verifyToken: createTokenVerifier(TEST_TOKEN_SETTINGS),
      cipher: createPiiCipher(TEST_PII_KEYS),
      settings: { reservationTtlSeconds: 900, defaultLocation: 'MAIN' },
    });
    return { app, close: () => broken.close() };
  };

  it('renders an unexpected failure as 500 internal with a request id and no stack trace', async () => {
    // a server that is up, but the database is not there: 3D000, not something a retry fixes
    const missing = new URL(h.url);
    missing.pathname = `/missing_${randomUUID().replaceAll('-', '')}`;
    const { app, close } = appOn(missing.toString());
    try {
      const res = await app.request('/v1/products', { headers: { authorization: `Bearer ${h.tokens.viewer}`, 'x-request-id': 'broken-1' } });
      expect(res.status).toBe(500);
      const body = await res.json();
      expect(body.error.code).toBe('internal');
      expect(body.error.details).toEqual({ request_id: 'broken-1' });
      expect(JSON.stringify(body)).not.toMatch(/missing_|3D000|127\.0\.0\.1/);
      expectCleanError(body);
    } finally {
      await close();
    }
  });

  it('answers 503 database_unavailable with Retry-After while Postgres is unreachable; /readyz reports 503', async () => {
    const { app, close } = appOn('postgres://nobody:nothing@127.0.0.1:1/none');
    try {
      const res = await app.request('/v1/products', { headers: { authorization: `Bearer ${h.tokens.viewer}`, 'x-request-id': 'broken-2' } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      const body = await res.json();
      expect(body.error.code).toBe('database_unavailable');
      expect(body.error.details).toEqual({ request_id: 'broken-2' });
      expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      expectCleanError(body);
      const ready = await app.request('/readyz');
      expect(ready.status).toBe(503);
      expect((await ready.json()).status).toBe('unavailable');
    } finally {
      await close();
    }
  });
});
