/**
 * The API's read side of the Redis stock projection. Reads are served from the cache when it has
 * applied at least the caller's `min_lsn` (waiting a bounded time for it) — or, without min_lsn, when
 * the cache is live (its projector reported within maxStalenessMs) — otherwise the caller falls back to
 * Postgres. Any Redis error also means "fall back": the cache is an accelerator, never the truth.
 */
import type { Redis } from 'ioredis';
import { compareLsn } from '../../cdc/lsn.ts';
import type { StockRowView } from '../domain/stock-rows.ts';
import { positionKey, stockKey } from '../../projectors/redis-cache/stock-cache.ts';

/** A stock row as the cache holds it (no updated_at). */
export type CachedStock = Omit<StockRowView, 'updated_at'>;

export interface StockCacheReader {
  /** Applied position of the cache, or undefined when unknown/unreachable. */
  appliedLsn(): Promise<string | undefined>;
  /** The cached row if the cache has passed `minLsn` within `waitMs`; undefined means "read Postgres". */
  read(sku: string, location: string, minLsn: string | undefined, waitMs: number): Promise<CachedStock | undefined>;
  close(): Promise<void>;
}

export function createStockCacheReader(props: { redis: Redis; prefix: string; pollMs?: number; maxStalenessMs?: number; now?: () => number }): StockCacheReader {
  const { redis, prefix } = props;
  const pollMs = props.pollMs ?? 5;
  const maxStalenessMs = props.maxStalenessMs ?? 5000;
  const now = props.now ?? Date.now;

  /** The projector refreshes applied_at at least once a second while the pipeline runs. */
  async function live(): Promise<boolean> {
    const appliedAt = await redis.hget(positionKey(prefix), 'applied_at');
    return appliedAt !== null && now() - Date.parse(appliedAt) <= maxStalenessMs;
  }

  async function appliedLsn(): Promise<string | undefined> {
    try {
      return (await redis.hget(positionKey(prefix), 'lsn')) ?? undefined;
    } catch {
      return undefined;
    }
  }

  async function caughtUp(minLsn: string, waitMs: number): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const applied = await appliedLsn();
      if (applied && compareLsn(applied, minLsn) >= 0) return true;
      if (applied === undefined && redis.status !== 'ready') return false;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  return {
    appliedLsn,
    async read(sku, location, minLsn, waitMs) {
      try {
        if (minLsn ? !(await caughtUp(minLsn, waitMs)) : !(await live())) return undefined;
        const h = await redis.hgetall(stockKey(prefix, sku, location));
        if (!h.version || h.deleted === '1') return undefined;
        return { sku, location, on_hand: Number(h.on_hand), reserved: Number(h.reserved), available: Number(h.available), version: Number(h.version) };
      } catch {
        return undefined;
      }
    },
    close: async () => void redis.disconnect(),
  };
}
