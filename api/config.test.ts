import { describe, expect, it } from 'vitest';
import { parseEnv } from '../lib/env-config.ts';
import { productionGuard } from './config.ts';

const base = { DATABASE_URL: 'postgres://u@127.0.0.1/db', JWT_SECRET: 'x'.repeat(32), PII_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}` };

describe('API configuration', () => {
  it('parses a minimal environment with documented defaults', () => {
    const c = parseEnv(productionGuard, base);
    expect(c).toMatchObject({ PORT: 8080, HOST: '127.0.0.1', RESERVATION_TTL_SECONDS: 900, DEFAULT_LOCATION: 'MAIN' });
    expect(c.PII_KEYS[0]!.kid).toBe('k1');
  });

  it('names every bad variable in one message', () => {
    expect(() => parseEnv(productionGuard, { ...base, PORT: 'eighty', JWT_SECRET: 'short', PII_KEYS: 'k1:tooshort' }))
      .toThrow(/PORT[\s\S]*JWT_SECRET[\s\S]*PII_KEYS|PORT[\s\S]*PII_KEYS[\s\S]*JWT_SECRET/);
  });

  it('refuses HS256 shared-secret tokens when NODE_ENV=production', () => {
    expect(() => parseEnv(productionGuard, { ...base, NODE_ENV: 'production' })).toThrow(/JWT_SECRET: NODE_ENV=production refuses HS256/);
  });
});

describe('API configuration in production', () => {
  it('accepts shared-secret tokens only when explicitly allowed', () => {
    expect(parseEnv(productionGuard, { ...base, NODE_ENV: 'production', ALLOW_HS256_IN_PRODUCTION: 'true' }).NODE_ENV).toBe('production');
  });
});
