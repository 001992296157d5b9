/**
 * The API process's configuration: environment variables only, validated at start-up. A bad value stops
 * the process with a message naming the variable.
 */
import { z } from 'zod';

export const piiKeys = z
  .string()
  .describe('comma-separated "kid:base64key" AES-256 keys for personal data; the first encrypts, all decrypt')
  .transform((value, ctx) => {
    const keys = value.split(',').map((entry) => {
      const [kid, b64] = entry.trim().split(':');
      const key = Buffer.from(b64 ?? '', 'base64');
      if (!kid || !/^[a-zA-Z0-9_-]{1,32}$/.test(kid) || key.length !== 32) {
        ctx.addIssue({ code: 'custom', message: 'each entry must be kid:base64 of 32 bytes' });
      }
      return { kid: kid ?? '', key };
    });
    return keys;
  });

export const apiConfigSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().default('127.0.0.1').describe('interface the API listens on'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('HTTP port'),
  DATABASE_URL: z.string().url().describe('Postgres URL (the launcher sets it for the embedded cluster)'),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(500).default(20).describe('connections in the API pool'),
  JWT_SECRET: z.string().min(32).describe('HS256 secret for bearer tokens (embedded default: generated into .data/)'),
  JWT_ISSUER: z.string().default('stockwire'),
  ALLOW_HS256_IN_PRODUCTION: z.enum(['true', 'false']).default('false').describe('accept the shared-secret tokens under NODE_ENV=production anyway'),
  JWT_AUDIENCE: z.string().default('stockwire-api'),
  PII_KEYS: piiKeys,
  RESERVATION_TTL_SECONDS: z.coerce.number().int().min(5).max(7 * 24 * 3600).default(900)
    .describe('how long an order holds its reservation before the sweeper releases it'),
  SWEEP_INTERVAL_MS: z.coerce.number().int().min(50).max(600_000).default(5000)
    .describe('how often the expiry sweeper and audit sealer run'),
  DEFAULT_LOCATION: z.string().default('MAIN').describe('location used when an order names none'),
  REDIS_URL: z.string().default('redis://127.0.0.1:6379').describe('Redis holding the stock projection; "" disables cache reads'),
  REDIS_PREFIX: z.string().max(64).default(''),
  NATS_URL: z.string().default('nats://127.0.0.1:4222').describe('read only: projector positions for /v1/sync/status; "" disables'),
  CDC_SLOT: z.string().default('stockwire'),
  CDC_STREAM: z.string().default('CDC'),
  READ_WAIT_MS: z.coerce.number().int().min(0).max(30_000).default(2000).describe('how long a read with min_lsn waits for the cache'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type ApiConfig = z.infer<typeof apiConfigSchema>;

/** The HS256 shared secret is the embedded default's mechanism; production needs an identity provider (issue 6). */
export const productionGuard = apiConfigSchema.refine((c) => c.NODE_ENV !== 'production' || c.ALLOW_HS256_IN_PRODUCTION === 'true', {
  message: 'NODE_ENV=production refuses HS256 shared-secret tokens (JWT_SECRET); configure an identity provider, or set ALLOW_HS256_IN_PRODUCTION=true knowingly',
  path: ['JWT_SECRET'],
});

