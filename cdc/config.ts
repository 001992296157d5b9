/** Configuration of the cdc process: environment variables only, validated at start-up. */
import { z } from 'zod';
import { parseEnv } from '../lib/env-config.ts';

export const cdcConfigSchema = z.object({
  DATABASE_URL: z.string().url().describe('Postgres with wal_level=logical'),
  NATS_URL: z.string().default('nats://127.0.0.1:4222').describe('NATS server(s), comma-separated'),
  CDC_SLOT: z.string().regex(/^[a-z0-9_]{1,63}$/).default('stockwire').describe('logical replication slot'),
  CDC_PUBLICATION: z.string().regex(/^[a-z0-9_]{1,63}$/).default('stockwire').describe('publication (created by the migrations)'),
  CDC_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('CDC').describe('JetStream stream name'),
  CDC_SUBJECT_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('cdc').describe('subjects are <prefix>.<table>.<op>'),
  CDC_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(65_536).default(4096).describe('publish acknowledgements in flight'),
  CDC_PUBLISH_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000).describe('a publish not acknowledged by then restarts the reader (re-sends are de-duplicated)'),
  CDC_STATUS_INTERVAL_MS: z.coerce.number().int().min(10).max(10_000).default(100).describe('how often progress is confirmed to Postgres'),
  CDC_STREAM_MAX_AGE_HOURS: z.coerce.number().positive().default(168),
  CDC_STREAM_MAX_BYTES: z.coerce.number().int().positive().default(2 * 1024 ** 3),
  CDC_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1).describe('stream replicas (3 on a 3-node NATS cluster)'),
  CDC_DUPLICATE_WINDOW_SECONDS: z.coerce.number().int().min(1).default(600).describe('JetStream de-duplication window'),
  CDC_LEADER_POLL_MS: z.coerce.number().int().min(50).default(500).describe('how often a standby tries to become active'),
  PROBE_HOST: z.string().default('127.0.0.1').describe('interface of /healthz /readyz /metrics (0.0.0.0 in containers)'),
  CDC_PROBE_PORT: z.coerce.number().int().min(0).max(65535).default(9464).describe('/healthz, /readyz, /metrics (0 = any free port)'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type CdcConfig = z.infer<typeof cdcConfigSchema>;

/** Parses the cdc configuration from `env`. */
export function loadCdcConfig(env: NodeJS.ProcessEnv = process.env): CdcConfig {
  return parseEnv(cdcConfigSchema, env);
}
