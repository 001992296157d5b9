/**
 * The API process's configuration: environment variables only, validated at start-up. A bad value stops
 * the process with a message naming the variable.
 */
import { z } from 'zod';
import { ASYMMETRIC_ALGORITHMS } from './auth/jwks-verifier.ts';
import { parseCidrList } from './net/cidr.ts';

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

/** An empty variable counts as unset (compose files and .env templates leave optional ones blank). */
const unsetWhenEmpty = (value: unknown) => (value === '' ? undefined : value);

const jwksAlgorithms = z
  .string()
  .default('RS256,ES256')
  .describe(`comma-separated algorithms accepted from the identity provider; asymmetric only (${ASYMMETRIC_ALGORITHMS.join(', ')})`)
  .transform((value, ctx) => {
    const algorithms = [...new Set(value.split(',').map((a) => a.trim()).filter(Boolean))];
    const refused = algorithms.filter((a) => !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a));
    if (algorithms.length === 0 || refused.length > 0) {
      ctx.addIssue({ code: 'custom', message: `not an accepted identity-provider algorithm: ${refused.join(', ') || '(empty)'}; choose from ${ASYMMETRIC_ALGORITHMS.join(', ')}` });
    }
    return algorithms;
  });

const corsOrigins = z
  .string()
  .default('')
  .describe('comma-separated exact browser origins (https://shop.example) allowed to call the API; empty: CORS off')
  .transform((value, ctx) => {
    const origins = [...new Set(value.split(',').map((o) => o.trim()).filter(Boolean))];
    for (const origin of origins) {
      let exact = false;
      try {
        exact = new URL(origin).origin === origin;
      } catch { /* reported below */ }
      if (!exact) ctx.addIssue({ code: 'custom', message: `${origin} is not an exact origin (scheme://host[:port], no path, no wildcard)` });
    }
    return origins;
  });

/** A comma-separated CIDR list (IPv4 and IPv6); "" is no list. A bad entry is named in the message. */
const cidrList = (meaning: string) => z
  .string()
  .default('')
  .describe(`comma-separated CIDR ranges or addresses, IPv4 and IPv6; ${meaning}`)
  .transform((value, ctx) => {
    if (value.trim() === '') return undefined;
    try {
      return parseCidrList(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

export const apiConfigSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().default('127.0.0.1').describe('interface the API listens on'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('HTTP port'),
  DATABASE_URL: z.string().url().describe('Postgres URL (the launcher sets it for the embedded cluster)'),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(500).default(20).describe('connections in the API pool'),
  JWT_SECRET: z.preprocess(unsetWhenEmpty, z.string().min(32).optional())
    .describe('HS256 secret for the shared-secret tokens (embedded default: generated into .data/); optional when JWKS_URL is set'),
  JWT_ISSUER: z.string().default('stockwire'),
  JWKS_URL: z.preprocess(unsetWhenEmpty, z.string().url().optional())
    .describe("identity provider's JSON Web Key Set URL (RS256/ES256 tokens); https under NODE_ENV=production"),
  JWT_ALGORITHMS: jwksAlgorithms,
  JWT_ROLES_CLAIM: z.string().min(1).default('roles')
    .describe('claim holding the roles in identity-provider tokens: a name or dotted path (realm_access.roles); an array or a space-separated string'),
  JWT_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(300).default(30)
    .describe('leeway for exp/nbf against clock skew with the token issuer'),
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
  NATS_URL: z.string().default('nats://127.0.0.1:4222').describe('read only: projector positions for /v1/sync/status and the dashboard\'s live feed; "" disables'),
  CDC_SLOT: z.string().default('stockwire'),
  CDC_STREAM: z.string().default('CDC'),
  CDC_SUBJECT_PREFIX: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('cdc').describe('subjects of the CDC stream are <prefix>.<table>.<op> (the cdc reader\'s setting); the dashboard feed reads them'),
  READ_WAIT_MS: z.coerce.number().int().min(0).max(30_000).default(2000).describe('how long a read with min_lsn waits for the cache'),
  TLS_CERT: z.string().optional().transform((v) => v || undefined).describe('PEM certificate (chain) file: the API serves HTTPS when set with TLS_KEY'),
  TLS_KEY: z.string().optional().transform((v) => v || undefined).describe('PEM private key file for TLS_CERT (unencrypted)'),
  HTTP_REDIRECT_PORT: z.preprocess((v) => (v === '' ? undefined : v), z.coerce.number().int().min(1).max(65535).optional())
    .describe('with TLS: a plain-HTTP port that answers every request with 308 to the https URL'),
  CORS_ORIGINS: corsOrigins,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  RATE_LIMIT_ENABLED: z.enum(['true', 'false']).default('true').describe('"false" turns both request budgets off (benchmarks)'),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(100_000_000).default(6000)
    .describe('requests per minute per token subject or API key, shared by all replicas through Redis (bursts up to the whole budget)'),
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).max(100_000_000).default(12_000)
    .describe('requests per minute per client address (IPv6: per /64), counted before authentication'),
  TRUST_PROXY_CIDRS: cidrList('proxies whose X-Forwarded-For is believed (the right-most hop not in this list is the client); "" ignores the header'),
  ADMIN_ALLOWED_CIDRS: cidrList('where admin tokens and admin-only actions (api-keys:manage, locations:write, audit:read) may come from; "" = anywhere'),
  API_ALLOWED_CIDRS: cidrList('where any API request may come from (health and metrics probes exempt); "" = anywhere'),
});

export type ApiConfig = z.infer<typeof apiConfigSchema>;

/**
 * Some token source is configured; the HS256 shared secret is the embedded default's mechanism, so production
 * takes tokens from an identity provider (JWKS_URL, over https) unless ALLOW_HS256_IN_PRODUCTION says otherwise.
 */
export const productionGuard = apiConfigSchema.superRefine((c, ctx) => {
  if (!c.JWT_SECRET && !c.JWKS_URL) {
    ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'no token source: set JWKS_URL (identity provider) or JWT_SECRET (shared secret, 32+ characters)' });
  }
  const production = c.NODE_ENV === 'production';
  if (production && c.JWT_SECRET && c.ALLOW_HS256_IN_PRODUCTION !== 'true') {
    ctx.addIssue({
      code: 'custom',
      path: ['JWT_SECRET'],
      message: 'NODE_ENV=production refuses HS256 shared-secret tokens (JWT_SECRET); configure an identity provider (JWKS_URL) and unset JWT_SECRET, or set ALLOW_HS256_IN_PRODUCTION=true knowingly',
    });
  }
  if (production && c.JWKS_URL && new URL(c.JWKS_URL).protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', path: ['JWKS_URL'], message: 'NODE_ENV=production needs an https JWKS_URL (keys fetched over plain HTTP can be replaced in transit)' });
  }
});

