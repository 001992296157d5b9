import { describe, expect, it } from 'vitest';
import { hashRequest } from './command-runner.ts';

describe('hashRequest', () => {
  const body = { sku: 'SHEET-A', location: 'MAIN', qty: 3, lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }] };

  it('is a stable sha256 hex digest', () => {
    const a = hashRequest('POST', '/v1/receipts', body);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(hashRequest('POST', '/v1/receipts', structuredClone(body))).toBe(a);
  });

  it('ignores key order, at every depth', () => {
    const reordered = { lines: [{ qty: 1, sku: 'A' }, { qty: 2, sku: 'B' }], qty: 3, location: 'MAIN', sku: 'SHEET-A' };
    expect(hashRequest('POST', '/v1/orders', reordered)).toBe(hashRequest('POST', '/v1/orders', body));
  });

  it('ignores keys whose value is undefined (what an omitted optional field looks like)', () => {
    expect(hashRequest('POST', '/v1/orders', { ...body, note: undefined })).toBe(hashRequest('POST', '/v1/orders', body));
  });

  it('differs when the body differs', () => {
    const base = hashRequest('POST', '/v1/orders', body);
    expect(hashRequest('POST', '/v1/orders', { ...body, qty: 4 })).not.toBe(base);
    expect(hashRequest('POST', '/v1/orders', { ...body, note: 'x' })).not.toBe(base);
    expect(hashRequest('POST', '/v1/orders', { ...body, note: null })).not.toBe(base);
    expect(hashRequest('POST', '/v1/orders', { ...body, qty: '3' })).not.toBe(base);
    // array order is meaningful (line numbers follow it)
    expect(hashRequest('POST', '/v1/orders', { ...body, lines: [...body.lines].reverse() })).not.toBe(base);
    expect(hashRequest('POST', '/v1/orders', { ...body, lines: [{ sku: 'A', qty: 1 }] })).not.toBe(base);
  });

  it('differs when the method or path differs', () => {
    const base = hashRequest('POST', '/v1/orders/1/confirm', {});
    expect(hashRequest('POST', '/v1/orders/1/cancel', {})).not.toBe(base);
    expect(hashRequest('PATCH', '/v1/orders/1/confirm', {})).not.toBe(base);
  });

  it('keeps nesting apart from flattening: {a:{b:1}} differs from {"a.b":1} and {a:"{b:1}"}', () => {
    const nested = hashRequest('POST', '/p', { a: { b: 1 } });
    expect(hashRequest('POST', '/p', { 'a.b': 1 })).not.toBe(nested);
    expect(hashRequest('POST', '/p', { a: '{"b":1}' })).not.toBe(nested);
    expect(hashRequest('POST', '/p', { a: [1] })).not.toBe(hashRequest('POST', '/p', { a: '[1]' }));
  });
});
