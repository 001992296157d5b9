/**
 * The webhooks projector process: the fan-out projection (change events → webhook_deliveries rows) on
 * the shared projector runtime, and the delivery worker sending those rows, in one process. The worker
 * starts with the projection and is woken by each batch that queued deliveries, for the endpoints it
 * queued them for; it also polls, so retries fall due and other replicas' rows get sent.
 *
 * Its database role needs SELECT, INSERT, UPDATE on webhook_endpoints and webhook_deliveries and nothing
 * else (stockwire_app has them); PII_KEYS must hold the key that sealed each endpoint secret.
 * Run the fan-out once per stream (see fan-out.ts); delivery is safe on any number of replicas.
 */
import { z } from 'zod';
import { piiKeys } from '../../api/config.ts';
import { createPiiCipher } from '../../api/domain/pii-cipher.ts';
import { openDatabase } from '../../db/connection.ts';
import { runProjectorProcess } from '../runtime/projector-process.ts';
import { DeliveryWorker } from './delivery-worker.ts';
import { createWebhookFanOut } from './fan-out.ts';

const HOUR_MS = 3_600_000;

const webhooksConfig = z.object({
  DATABASE_URL: z.string().url().describe('Postgres URL; the projector reads and writes webhook_endpoints and webhook_deliveries only'),
  PII_KEYS: piiKeys.describe('the API\'s "kid:base64key" list: endpoint secrets are sealed with it, and every key that sealed one must be present'),
  WEBHOOK_DB_POOL_MAX: z.coerce.number().int().min(2).max(200).optional().describe('connections (default: WEBHOOK_CONCURRENCY + 2)'),
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(500).default(16).describe('endpoints sent to in parallel (one request in flight per endpoint)'),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000).describe('a request unanswered this long is a failed attempt'),
  WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(1).max(HOUR_MS).default(5000).describe('first retry delay; doubles per attempt, with jitter'),
  WEBHOOK_RETRY_MAX_MS: z.coerce.number().int().min(1).max(24 * HOUR_MS).default(HOUR_MS).describe('longest retry delay (also caps a Retry-After)'),
  WEBHOOK_RETRY_HOURS: z.coerce.number().positive().max(24 * 30).default(24).describe('how long after its first attempt a delivery is retried before it is dead'),
  WEBHOOK_DISABLE_AFTER_HOURS: z.coerce.number().positive().max(24 * 30).default(24).describe('an endpoint without a successful delivery for this long is disabled'),
  WEBHOOK_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(1000).describe('how often due deliveries are looked for (batches from this process wake the worker at once)'),
});

type WebhooksConfig = z.infer<typeof webhooksConfig>;

/** The worker's settings from the process configuration. */
function deliverySettings(config: WebhooksConfig) {
  return {
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    pollMs: config.WEBHOOK_POLL_MS,
    concurrency: config.WEBHOOK_CONCURRENCY,
    baseDelayMs: config.WEBHOOK_RETRY_BASE_MS,
    maxDelayMs: config.WEBHOOK_RETRY_MAX_MS,
    retryWindowMs: Math.round(config.WEBHOOK_RETRY_HOURS * HOUR_MS),
    disableAfterMs: Math.round(config.WEBHOOK_DISABLE_AFTER_HOURS * HOUR_MS),
  };
}

await runProjectorProcess({
  name: 'webhooks',
  config: webhooksConfig,
  async create(config, log, registry) {
    const database = openDatabase({ url: config.DATABASE_URL, max: config.WEBHOOK_DB_POOL_MAX ?? config.WEBHOOK_CONCURRENCY + 2, applicationName: 'stockwire-webhooks' });
    const worker = new DeliveryWorker({
      pool: database.pool, cipher: createPiiCipher(config.PII_KEYS), log: log.child({ component: 'webhook-delivery' }), settings: deliverySettings(config), registry,
    });
    worker.start();
    const projection = createWebhookFanOut({ pool: database.pool, log: log.child({ component: 'webhook-fan-out' }), onQueued: (endpointIds) => worker.wake(endpointIds) });
    return {
      projection,
      async close() {
        await worker.stop();
        await database.close();
      },
    };
  },
});
