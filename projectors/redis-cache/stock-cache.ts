/**
 * The Redis projection of stock levels: one hash per (sku, location) at `<prefix>stock:<sku>:<location>`
 * holding on_hand, reserved, available and version. A write lands only when its version is newer than
 * the stored one (compare-and-set in Lua), so redelivered or reordered events change nothing. The applied
 * position (commit LSN, as fixed-width hex so Lua can compare it) moves forward only; applied_at is
 * refreshed by every batch, including the reader's once-a-second position markers, so readers can tell
 * a live cache from one whose projector stopped.
 */
import type { Redis, Result } from 'ioredis';
import { rowOf, type ChangeEvent } from '../../cdc/envelope.ts';
import { parseLsn } from '../../cdc/lsn.ts';
import type { AppliedPosition, Projection } from '../runtime/projector-runtime.ts';

const SET_IF_NEWER = `
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'deleted', '1')
else
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'on_hand', ARGV[2], 'reserved', ARGV[3], 'available', ARGV[4])
  redis.call('HDEL', KEYS[1], 'deleted')
end
return 1`;

// applied_at always moves (it is the cache's heartbeat); the position only forward
const ADVANCE_POSITION = `
redis.call('HSET', KEYS[1], 'applied_at', ARGV[4])
local current = redis.call('HGET', KEYS[1], 'lsn_hex')
if current and current >= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lsn_hex', ARGV[1], 'lsn', ARGV[2], 'commit_time', ARGV[3])
return 1`;

/** Fixed-width hex of an LSN: compares as a string the way the LSN compares as a number. */
export function lsnHex(lsn: string): string {
  return parseLsn(lsn).toString(16).padStart(16, '0');
}

export function stockKey(prefix: string, sku: string, location: string): string {
  return `${prefix}stock:${sku}:${location}`;
}

export function positionKey(prefix: string, projector = 'redis-cache'): string {
  return `${prefix}applied:${projector}`;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    stockSetIfNewer(key: string, version: string, onHand: string, reserved: string, available: string, deleted: string): Result<number, Context>;
    stockAdvancePosition(key: string, hex: string, lsn: string, commitTime: string, appliedAt: string): Result<number, Context>;
  }
}

export function createStockCache(props: { redis: Redis; prefix: string }): Projection {
  const { redis, prefix } = props;
  redis.defineCommand('stockSetIfNewer', { numberOfKeys: 1, lua: SET_IF_NEWER });
  redis.defineCommand('stockAdvancePosition', { numberOfKeys: 1, lua: ADVANCE_POSITION });

  return {
    async apply(events: ChangeEvent[]) {
      const pipeline = redis.pipeline();
      let writes = 0;
      for (const e of events) {
        if (e.table !== 'stock_levels') continue;
        const row = rowOf(e) as { sku: string; location: string; on_hand: number; reserved: number; version: string | number };
        const onHand = Number(row.on_hand);
        const reserved = Number(row.reserved);
        pipeline.stockSetIfNewer(stockKey(prefix, row.sku, row.location), String(row.version), String(onHand), String(reserved), String(onHand - reserved), e.op === 'delete' ? '1' : '0');
        writes += 1;
      }
      if (writes === 0) return;
      const results = await pipeline.exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw failed[0];
    },
    async recordPosition(position: AppliedPosition) {
      await redis.stockAdvancePosition(positionKey(prefix), lsnHex(position.lsn), position.lsn, position.commitTime ?? '', new Date().toISOString());
    },
  };
}
