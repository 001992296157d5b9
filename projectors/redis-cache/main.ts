/** The redis-cache projector process: stock levels from the CDC stream into Redis. */
import { Redis } from 'ioredis';
import { z } from 'zod';
import { runProjectorProcess } from '../runtime/projector-process.ts';
import { createStockCache } from './stock-cache.ts';

await runProjectorProcess({
  name: 'redis-cache',
  config: z.object({
    REDIS_URL: z.string().default('redis://127.0.0.1:6379'),
    REDIS_PREFIX: z.string().max(64).default('').describe('key prefix (tests use their own)'),
  }),
  async create(config) {
    const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, enableAutoPipelining: false });
    await redis.ping();
    return { projection: createStockCache({ redis, prefix: config.REDIS_PREFIX }), close: async () => void redis.disconnect() };
  },
});
