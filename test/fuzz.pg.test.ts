/**
 * Hostile input against every operation of the OpenAPI document (fast-check): random JSON bodies and
 * near-valid ones with wrong types, random path parameters, query strings and headers, malformed JSON,
 * and oversized bodies. Every answer must be a clean error or a success — never a 5xx, never a stack
 * trace — and a refused request must leave nothing behind: no audit row with its request id, and the
 * ledger invariants hold afterwards.
 */
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';

let h: Harness;
let operations: { method: string; path: string; hasBody: boolean }[] = [];

beforeAll(async () => {
  h = await createHarness();
  await h.fixtures.location('MAIN');
  await h.fixtures.product('FUZZ-1', { reorder_point: 2 });
  await h.fixtures.product('FUZZ-LOT', { lot_tracked: true });
  await h.fixtures.receive('FUZZ-1', 'MAIN', 100);
  const doc: any = await (await h.app.request('/openapi.json')).json();
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (['get', 'post', 'put', 'patch', 'delete'].includes(method) && path.startsWith('/v1/')) {
        operations.push({ method: method.toUpperCase(), path, hasBody: op.requestBody !== undefined });
      }
    }
  }
});

afterAll(() => h.close());

function expectClean(label: string, status: number, text: string) {
  expect(status, `${label} → ${status}: ${text.slice(0, 300)}`).toBeLessThan(500);
  expect(text, label).not.toMatch(/"stack"|\n\s+at |node_modules|node:internal|\.[cm]?[jt]s:\d+:\d+/);
  if (status >= 400) {
    const body = JSON.parse(text);
    expect(Object.keys(body), label).toEqual(['error']);
    expect(body.error, label).toMatchObject({ code: expect.any(String), message: expect.any(String) });
  }
}

/** Values that look like the fields the API takes, with the wrong types, sizes and characters. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', ' ', 'MAIN', 'FUZZ-1', 'FUZZ-LOT', '../../etc/passwd', "'; DROP TABLE orders; --", '=HYPERLINK("x")', '\u0000', '😀', 'NaN', '-0'),
  fc.integer(), fc.double(), fc.constantFrom(0, -1, 1, 2 ** 31, -(2 ** 53), 1e308, Number.MAX_SAFE_INTEGER),
  fc.boolean(), fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
);
const fieldNames = fc.constantFrom(
  'sku', 'location', 'qty', 'lines', 'delta', 'counted', 'reason', 'note', 'expected_version', 'lot_code', 'expires_on', 'from', 'to',
  'name', 'category', 'components', 'reorder_point', 'customer', 'external_ref', 'code', 'roles', '__proto__', 'constructor',
);
const nearValid = fc.dictionary(fieldNames, fc.oneof(nasty, fc.record({ sku: nasty, qty: nasty }), fc.array(fc.record({ sku: nasty, qty: nasty }), { maxLength: 3 })), { maxKeys: 6 });
const body = fc.oneof(nearValid, fc.jsonValue({ maxDepth: 3 }));
const pathParam = fc.oneof(fc.constantFrom('FUZZ-1', randomUUID(), 'NOPE', '%00', '..', 'a'.repeat(300), '%F0%9F%98%80'), fc.string({ minLength: 1, maxLength: 30 }).map(encodeURIComponent));
const query = fc.dictionary(fc.constantFrom('sku', 'location', 'limit', 'before_id', 'status', 'category', 'min_lsn', 'active', 'dry_run', 'entity', 'actor'), fc.string({ maxLength: 30 }), { maxKeys: 4 });
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });
const headers = fc.record({
  'idempotency-key': fc.option(headerText, { nil: undefined }),
  'content-type': fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml'),
  'x-request-id': fc.option(headerText, { nil: undefined }),
}, { requiredKeys: ['content-type'] });

describe('hostile input on every endpoint', () => {
  it('never answers 5xx or a stack trace, and refused requests leave nothing behind', async () => {
    expect(operations.length).toBeGreaterThanOrEqual(25);
    const refusedIds: string[] = [];
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(body, pathParam, pathParam, query, headers, async (b, p1, p2, q, hdrs) => {
          const path = op.path.replace(/\{(sku|location|id)\}/g, (_, name) => (name === 'location' ? p2 : p1));
          const qs = new URLSearchParams(q).toString();
          const requestId = `fuzz-${randomUUID()}`;
          const sent: Record<string, string> = { authorization: `Bearer ${h.tokens.admin}`, 'x-request-id': requestId, 'content-type': hdrs['content-type'] };
          if (hdrs['idempotency-key'] !== undefined) sent['idempotency-key'] = hdrs['idempotency-key'];
          const res = await h.app.request(`${path}${qs ? `?${qs}` : ''}`, {
            method: op.method, headers: sent, body: op.hasBody && op.method !== 'GET' ? JSON.stringify(b) : undefined,
          });
          const text = await res.text();
          if (!(res.headers.get('content-type') ?? '').includes('json') && res.status < 400) return; // the CSV export
          expectClean(`${op.method} ${path}`, res.status, text);
          if (res.status >= 400) refusedIds.push(requestId);
        }),
        { numRuns: 60 },
      );
    }
    const leftovers = await h.pool.query('SELECT request_id, action FROM audit_log WHERE request_id = ANY($1)', [refusedIds]);
    expect(leftovers.rows).toEqual([]);
    expect(await ledgerViolations(h.db)).toEqual([]);
  }, 240_000);

  it('answers malformed JSON with 400 and oversized bodies with 413 on every operation that takes a body', async () => {
    for (const op of operations.filter((o) => o.hasBody && !o.path.includes('imports'))) {
      const path = op.path.replace(/\{(sku|location|id)\}/g, 'FUZZ-1');
      const headers = { authorization: `Bearer ${h.tokens.admin}`, 'content-type': 'application/json' };
      for (const broken of ['{"sku": ', '{sku: 1}', '[1,2', '\u0000', '{"a":1}}']) {
        const res = await h.app.request(path, { method: op.method, headers, body: broken });
        const text = await res.text();
        expectClean(`${op.method} ${path} ${JSON.stringify(broken)}`, res.status, text);
        expect(res.status, `${op.method} ${path}`).toBe(400);
      }
      const huge = JSON.stringify({ note: 'x'.repeat(2 * 1024 * 1024) });
      const res = await h.app.request(path, { method: op.method, headers: { ...headers, 'content-length': String(huge.length) }, body: huge });
      const text = await res.text();
      expectClean(`${op.method} ${path} (2 MB)`, res.status, text);
      expect(res.status, `${op.method} ${path} (2 MB)`).toBe(413);
    }
  }, 60_000);
});
