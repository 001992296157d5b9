/**
 * The Redis stock projection against a real Redis: version compare-and-set, tombstones, a forward-only
 * position, and the API-side reader's rules (min_lsn wait, staleness fallback).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStockCacheReader } from '../../api/read-models/stock-cache-reader.ts';
import type { ChangeEvent } from '../../cdc/envelope.ts';
import { createStockCache, lsnHex, positionKey, stockKey } from './stock-cache.ts';

const prefix = `t:cache${process.pid}${Date.now().toString(36)}:`;
let redis: Redis;

beforeAll(() => {
  redis = new Redis('redis://127.0.0.1:6379');
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

function level(op: ChangeEvent['op'], version: number, onHand: number, reserved: number, commitLsn = '0/100'): ChangeEvent {
  const row = { sku: 'SKU-1', location: 'MAIN', on_hand: onHand, reserved, version: String(version) };
  const source = { lsn: commitLsn, commitLsn, txId: 1, commitTime: new Date().toISOString(), index: 0, last: true };
  if (op === 'delete') return { op, table: 'stock_levels', before: row, after: null, source };
  return { op, table: 'stock_levels', before: null, after: row, source } as ChangeEvent;
}

describe('stock cache projection', () => {
  it('writes a row only when its version is newer', async () => {
    const cache = createStockCache({ redis, prefix });
    await cache.apply([level('update', 5, 10, 2)]);
    await cache.apply([level('update', 4, 99, 99), level('snapshot', 5, 98, 98)]);
    expect(await redis.hgetall(stockKey(prefix, 'SKU-1', 'MAIN'))).toEqual({ version: '5', on_hand: '10', reserved: '2', available: '8' });
    await cache.apply([level('update', 6, 10, 3)]);
    expect(await redis.hget(stockKey(prefix, 'SKU-1', 'MAIN'), 'available')).toBe('7');
  });

  it('leaves a tombstone on delete so a late older update cannot resurrect the row', async () => {
    const cache = createStockCache({ redis, prefix });
    await cache.apply([level('delete', 7, 10, 3)]);
    await cache.apply([level('update', 6, 10, 3)]);
    expect(await redis.hgetall(stockKey(prefix, 'SKU-1', 'MAIN'))).toEqual({ version: '7', deleted: '1' });
  });

  it('moves the applied position forward only, comparing LSNs numerically', async () => {
    const cache = createStockCache({ redis, prefix });
    await cache.recordPosition!({ lsn: 'A/0', streamSeq: 2 });
    await cache.recordPosition!({ lsn: '9/FFFFFFFF', streamSeq: 3 });
    expect(await redis.hget(positionKey(prefix), 'lsn')).toBe('A/0');
    expect(lsnHex('A/0') > lsnHex('9/FFFFFFFF')).toBe(true);
  });
});

describe('stock cache reader', () => {
  it('serves a live cache, and falls back when the projector has not reported for a while', async () => {
    const p = `${prefix}reader:`;
    const cache = createStockCache({ redis, prefix: p });
    await cache.apply([level('update', 3, 5, 1)]);
    await cache.recordPosition!({ lsn: '0/200', streamSeq: 1 });
    let clock = Date.now();
    const reader = createStockCacheReader({ redis, prefix: p, now: () => clock, maxStalenessMs: 5000 });
    expect(await reader.read('SKU-1', 'MAIN', undefined, 0)).toEqual({ sku: 'SKU-1', location: 'MAIN', on_hand: 5, reserved: 1, available: 4, version: 3 });
    clock += 6000;
    expect(await reader.read('SKU-1', 'MAIN', undefined, 0)).toBeUndefined();
  });

  it('waits for min_lsn, up to the given time, then gives up', async () => {
    const p = `${prefix}wait:`;
    const cache = createStockCache({ redis, prefix: p });
    await cache.apply([level('update', 3, 5, 1)]);
    await cache.recordPosition!({ lsn: '0/200', streamSeq: 1 });
    const reader = createStockCacheReader({ redis, prefix: p });
    expect(await reader.read('SKU-1', 'MAIN', '0/300', 50)).toBeUndefined();
    const pending = reader.read('SKU-1', 'MAIN', '0/300', 5000);
    await cache.recordPosition!({ lsn: '0/300', streamSeq: 2 });
    expect(await pending).toMatchObject({ version: 3 });
  });
});
