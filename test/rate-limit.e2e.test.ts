/**
 * Rate limits, allowlists and trusted proxies as deployed: API processes (child processes) sharing one
 * Redis, so two replicas enforce one budget; X-Forwarded-For believed only from TRUST_PROXY_CIDRS; the
 * limiter falling back to memory when Redis is away; and the GCRA step itself, in memory and in Redis.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../api/auth/tokens.ts';
import type { Role } from '../api/auth/permissions.ts';
import { addressBucket, createMemoryLimiter, createRateLimiter, gcraStep, type RateLimitRule } from '../api/middleware/rate-limit.ts';
import { freePort } from './free-port.ts';
import { createHarness, TEST_PII_KEYS, TEST_TOKEN_SETTINGS, type Harness } from './harness.ts';
import { SHARED_REDIS, startNodeProcess, until, type ManagedProcess } from './pipeline-harness.ts';

const PII_KEYS = TEST_PII_KEYS.map((k) => `${k.kid}:${k.key.toString('base64')}`).join(',');
const RUN = `rl${process.pid}${Math.random().toString(36).slice(2, 7)}`;
const PREFIXES = { shared: `t:${RUN}a:`, untrusted: `t:${RUN}b:`, inProcess: `t:${RUN}c:` };
const SUBJECT_LIMIT = 30; // per minute: one request every 2 s once the burst is spent
const IP_LIMIT = 60;

let h: Harness;
const started: ManagedProcess[] = [];
let redis: Redis;

interface Api {
  base: string;
  proc: ManagedProcess;
}

async function startApi(env: Record<string, string>): Promise<Api> {
  const port = await freePort();
  const proc = startNodeProcess('api/server.ts', {
    DATABASE_URL: h.url, JWT_SECRET: TEST_TOKEN_SETTINGS.secret, PII_KEYS, PORT: String(port), HOST: '127.0.0.1',
    NATS_URL: '', REDIS_URL: SHARED_REDIS, DB_POOL_MAX: '4', SWEEP_INTERVAL_MS: '600000',
    RATE_LIMIT_PER_MINUTE: String(SUBJECT_LIMIT), RATE_LIMIT_IP_PER_MINUTE: String(IP_LIMIT), ...env,
  });
  started.push(proc);
  const base = `http://127.0.0.1:${port}`;
  await until(`the API on ${port} to be ready`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`API exited:\n${proc.output()}`);
    return fetch(`${base}/readyz`).then((r) => (r.ok ? true : undefined), () => undefined);
  }, 30_000, 100);
  return { base, proc };
}

const token = (subject: string, role: Role = 'viewer') => issueToken(TEST_TOKEN_SETTINGS, { subject: `${RUN}-${subject}`, roles: [role] });

async function get(api: Api, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${api.base}${path}`, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function post(api: Api, path: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(`${api.base}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/**
 * Checks a sequence of answers against one budget of `limit` per minute: the first `limit` pass, and of the
 * rest only those the elapsed time earned back (one per 60/limit s) — two budgets would pass twice as many.
 */
function expectOneBudget(statuses: number[], passed: number, limit: number, elapsedMs: number) {
  const earned = Math.floor(elapsedMs / (60_000 / limit));
  expect(statuses.slice(0, limit)).toEqual(Array(limit).fill(passed));
  const later = statuses.slice(limit);
  expect(later.filter((s) => s !== 429).length).toBeLessThanOrEqual(earned);
  expect(later.every((s) => s === 429 || s === passed)).toBe(true);
  expect(later).toContain(429);
}

async function timed(fn: () => Promise<number[]>): Promise<[number[], number]> {
  const startedAt = Date.now();
  const statuses = await fn();
  return [statuses, Date.now() - startedAt];
}

const bearer = (t: string, forwardedFor?: string) => ({ authorization: `Bearer ${t}`, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) });

async function deleteKeys(prefix: string) {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

// A, B: two replicas behind a trusted proxy on 127.0.0.1; C: no proxy trusted; D: Redis unreachable
let a: Api;
let b: Api;
let c: Api;
let d: Api;
const ADMIN_CIDRS = '10.0.0.0/8';
const API_CIDRS = '127.0.0.0/8, 10.0.0.0/8, 198.51.100.0/24, 192.0.2.0/24, 2001:db8::/32';

beforeAll(async () => {
  redis = new Redis(SHARED_REDIS);
  h = await createHarness();
  const closedPort = await freePort();
  const trusted = { REDIS_PREFIX: PREFIXES.shared, TRUST_PROXY_CIDRS: '127.0.0.1/32', ADMIN_ALLOWED_CIDRS: ADMIN_CIDRS, API_ALLOWED_CIDRS: API_CIDRS };
  [a, b, c, d] = await Promise.all([
    startApi(trusted),
    startApi(trusted),
    startApi({ REDIS_PREFIX: PREFIXES.untrusted, ADMIN_ALLOWED_CIDRS: ADMIN_CIDRS }),
    startApi({ REDIS_URL: `redis://127.0.0.1:${closedPort}`, REDIS_PREFIX: `t:${RUN}d:` }),
  ]);
}, 90_000);

afterAll(async () => {
  await Promise.all(started.map((p) => p.kill('SIGKILL')));
  for (const prefix of Object.values(PREFIXES)) await deleteKeys(prefix);
  redis?.disconnect();
  await h?.close();
});

describe('per-token budget across replicas', () => {
  it('gives one token exactly one budget across two API processes, then 429 with Retry-After', async () => {
    const t = await token('one');
    const statuses: number[] = [];
    const remaining: string[] = [];
    let refused: Awaited<ReturnType<typeof get>> | undefined;
    const startedAt = Date.now();
    for (let i = 0; i < SUBJECT_LIMIT + 6; i++) {
      const res = await get(i % 2 === 0 ? a : b, '/v1/products', bearer(t, '198.51.100.1'));
      statuses.push(res.status);
      if (res.status === 200) remaining.push(res.headers.get('ratelimit-remaining')!);
      if (res.status === 429) refused ??= res;
    }
    const elapsed = Date.now() - startedAt;
    expectOneBudget(statuses, 200, SUBJECT_LIMIT, elapsed);
    // the countdown runs across both processes (two budgets would read 29, 29, 28, 28, …); time may
    // have earned a unit back (one per 2 s)
    const earned = Math.floor(elapsed / 2000);
    remaining.slice(0, SUBJECT_LIMIT).forEach((r, i) => {
      expect(Number(r)).toBeGreaterThanOrEqual(SUBJECT_LIMIT - 1 - i);
      expect(Number(r)).toBeLessThanOrEqual(SUBJECT_LIMIT - 1 - i + earned);
    });
    expect(refused!.body.error).toMatchObject({ code: 'rate_limited', details: { scope: 'subject', limit: SUBJECT_LIMIT } });
    const retryAfter = Number(refused!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(refused!.headers.get('ratelimit-limit')).toBe(String(SUBJECT_LIMIT));
    expect(refused!.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(refused!.headers.get('ratelimit-reset'))).toBeGreaterThan(50);
  });

  it('gives a different token its own budget', async () => {
    const t = await token('two');
    const [statuses, elapsed] = await timed(async () => {
      const out: number[] = [];
      for (let i = 0; i < SUBJECT_LIMIT + 4; i++) out.push((await get(i % 2 === 0 ? b : a, '/v1/products', bearer(t, '198.51.100.2'))).status);
      return out;
    });
    expectOneBudget(statuses, 200, SUBJECT_LIMIT, elapsed);
  });

  it('keeps health, readiness and metrics out of the budgets', async () => {
    for (let i = 0; i < IP_LIMIT + 5; i++) expect((await get(a, '/healthz', { 'x-forwarded-for': '198.51.100.9' })).status).toBe(200);
    expect((await fetch(`${a.base}/metrics`)).status).toBe(200);
    expect((await fetch(`${a.base}/readyz`)).status).toBe(200);
    expect((await get(a, '/v1/products', bearer(await token('health'), '198.51.100.9'))).status).toBe(200);
  });
});

describe('admin allowlist and trusted proxies', () => {
  it('refuses an admin token from 127.0.0.1 outside ADMIN_ALLOWED_CIDRS', async () => {
    const res = await get(a, '/v1/locations', bearer(await token('admin-a', 'admin')));
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'ip_not_allowed', details: { client_ip: '127.0.0.1' } });
    expect(res.body.error.message).toContain('ADMIN_ALLOWED_CIDRS');
  });

  it('believes X-Forwarded-For from a trusted proxy: the right-most untrusted hop is the client', async () => {
    const t = await token('admin-b', 'admin');
    expect((await get(a, '/v1/locations', bearer(t, '10.1.2.3'))).status).toBe(200);
    // the client wrote "10.1.2.3"; the proxy appended the address it saw
    const spoofed = await get(b, '/v1/locations', bearer(t, '10.1.2.3, 192.0.2.9'));
    expect(spoofed.status).toBe(403);
    expect(spoofed.body.error).toMatchObject({ code: 'ip_not_allowed', details: { client_ip: '192.0.2.9' } });
  });

  it('records the real client behind the proxy on the audit row', async () => {
    const requestId = `rl-audit-${randomUUID()}`;
    const created = await post(a, '/v1/locations', { code: `RL${RUN.slice(-5).toUpperCase()}`, name: 'rate-limit test' }, {
      ...bearer(await token('admin-c', 'admin'), '10.7.7.7'), 'x-request-id': requestId,
    });
    expect(created.status).toBe(201);
    const row = await h.db.selectFrom('audit_log').select(['ip', 'actor']).where('request_id', '=', requestId).executeTakeFirstOrThrow();
    expect(String(row.ip)).toBe('10.7.7.7');
  });

  it('guards admin-only actions by network whatever the role, and leaves other roles alone', async () => {
    const clerk = await token('clerk', 'clerk');
    const outside = await post(a, '/v1/locations', { code: 'RLX', name: 'x' }, bearer(clerk, '192.0.2.9'));
    expect(outside.body.error.code).toBe('ip_not_allowed');
    const inside = await post(a, '/v1/locations', { code: 'RLX', name: 'x' }, bearer(clerk, '10.1.2.3'));
    expect(inside.body.error.code).toBe('forbidden');
    expect((await get(a, '/v1/products', bearer(await token('viewer-out'), '192.0.2.9'))).status).toBe(200);
  });

  it('refuses every request from outside API_ALLOWED_CIDRS, probes excepted', async () => {
    const res = await get(a, '/v1/products', bearer(await token('viewer-far'), '203.0.113.7'));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('ip_not_allowed');
    expect(res.body.error.message).toContain('API_ALLOWED_CIDRS');
    expect((await get(a, '/v1/products', bearer(await token('viewer-v6'), '2001:db8::5'))).status).toBe(200);
    expect((await get(a, '/healthz', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
  });

  it('without TRUST_PROXY_CIDRS the header changes nothing', async () => {
    const t = await token('admin-d', 'admin');
    const plain = await get(c, '/v1/locations', bearer(t));
    const claimed = await get(c, '/v1/locations', bearer(t, '10.1.2.3'));
    expect(plain.status).toBe(403);
    expect(claimed.status).toBe(403);
    expect(claimed.body.error).toMatchObject({ code: 'ip_not_allowed', details: { client_ip: '127.0.0.1' } });
  });
});

describe('per-address budget before authentication', () => {
  it('limits a flood of bad tokens from one address across both replicas, without verifying them', async () => {
    const [statuses, elapsed] = await timed(async () => {
      const out: number[] = [];
      for (let i = 0; i < IP_LIMIT + 10; i++) {
        out.push((await get(i % 2 === 0 ? a : b, '/v1/products', { authorization: `Bearer bogus.${i}.token`, 'x-forwarded-for': '198.51.100.3' })).status);
      }
      return out;
    });
    expectOneBudget(statuses, 401, IP_LIMIT, elapsed);
    const refused = await get(a, '/v1/products', { 'x-forwarded-for': '198.51.100.3' });
    expect(refused.body.error).toMatchObject({ code: 'rate_limited', details: { scope: 'ip', limit: IP_LIMIT } });
    // a valid token from the flooded address waits too: the address budget comes first
    expect((await get(b, '/v1/products', bearer(await token('flooded'), '198.51.100.3'))).status).toBe(429);
  });

  it('counts IPv6 clients per /64, so rotating addresses inside one prefix buys nothing', async () => {
    const [statuses, elapsed] = await timed(async () => {
      const out: number[] = [];
      for (let i = 0; i < IP_LIMIT + 10; i++) out.push((await get(a, '/v1/products', { 'x-forwarded-for': `2001:db8:1:2::${(i + 1).toString(16)}` })).status);
      return out;
    });
    expectOneBudget(statuses, 401, IP_LIMIT, elapsed);
    expect((await get(a, '/v1/products', { 'x-forwarded-for': '2001:db8:1:3::1' })).status).toBe(401);
  });

  it('ignores a spoofed X-Forwarded-For when no proxy is trusted', async () => {
    // the admin tests above spent a few of 127.0.0.1's units on C: refill them first (one per second)
    const reset = Number((await get(c, '/v1/products')).headers.get('ratelimit-reset'));
    expect(reset).toBeLessThan(15);
    await new Promise((r) => setTimeout(r, reset * 1000 + 100));
    const [statuses, elapsed] = await timed(async () => {
      const out: number[] = [];
      for (let i = 0; i < IP_LIMIT + 10; i++) out.push((await get(c, '/v1/products', { 'x-forwarded-for': `203.0.113.${i % 250}, 10.0.${i}.1` })).status);
      return out;
    });
    // every request counted against 127.0.0.1, whatever the header claimed
    expectOneBudget(statuses, 401, IP_LIMIT, elapsed);
  });
});

describe('when Redis is away', () => {
  it('still answers, limiting per process in memory (fail open, logged)', async () => {
    const t = await token('no-redis');
    const [statuses, elapsed] = await timed(async () => {
      const out: number[] = [];
      for (let i = 0; i < SUBJECT_LIMIT + 4; i++) out.push((await get(d, '/v1/products', bearer(t))).status);
      return out;
    });
    expectOneBudget(statuses, 200, SUBJECT_LIMIT, elapsed);
    expect(d.proc.output()).toContain('limiting per process in memory');
  });

  it('refuses to start on a bad CIDR, naming the variable', async () => {
    const proc = startNodeProcess('api/server.ts', {
      DATABASE_URL: h.url, JWT_SECRET: TEST_TOKEN_SETTINGS.secret, PII_KEYS, PORT: '0', NATS_URL: '', REDIS_URL: '',
      TRUST_PROXY_CIDRS: '127.0.0.1/33', ADMIN_ALLOWED_CIDRS: '10.0.0.0/8, intranet',
    });
    started.push(proc);
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toMatch(/TRUST_PROXY_CIDRS: bad prefix length in "127\.0\.0\.1\/33"/);
    expect(proc.output()).toMatch(/ADMIN_ALLOWED_CIDRS: not an IP address or CIDR range: "intranet"/);
  });
});

describe('GCRA', () => {
  const rule: RateLimitRule = { limit: 3, periodMs: 60_000 };
  const s = 1_000_000; // µs

  it('lets the whole budget through at once, then one per period/limit', () => {
    let tat: number | undefined;
    const remaining: number[] = [];
    for (let i = 0; i < 3; i++) {
      const step = gcraStep(tat, 0, rule);
      expect(step.decision.allowed).toBe(true);
      remaining.push(step.decision.remaining);
      tat = step.tat;
    }
    expect(remaining).toEqual([2, 1, 0]);
    const refused = gcraStep(tat, 0, rule);
    expect(refused.decision).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 20_000, resetMs: 60_000 });
    expect(gcraStep(tat, 19.9 * s, rule).decision.allowed).toBe(false);
    expect(gcraStep(tat, 20 * s, rule).decision).toMatchObject({ allowed: true, remaining: 0 });
    // after a full period idle the whole burst is back
    expect(gcraStep(tat, 60 * s, rule).decision).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('keeps the in-memory map bounded and forgets full buckets', async () => {
    let now = 0;
    const memory = createMemoryLimiter({ nowUs: () => now, maxKeys: 100 });
    for (let i = 0; i < 500; i++) await memory.take(`k${i}`, rule);
    expect(memory.size()).toBeLessThanOrEqual(100);
    now = 61 * s;
    await memory.take('fresh', rule);
    // the sweep only runs when the map is full; a new key after expiry must still find room
    expect(memory.size()).toBeLessThanOrEqual(100);
  });

  it('spends exactly the budget in Redis under concurrent calls from two replicas', async () => {
    const log = pino({ level: 'silent' });
    const clients = [new Redis(SHARED_REDIS), new Redis(SHARED_REDIS)];
    try {
      const limiters = clients.map((r) => createRateLimiter({ redis: r, prefix: PREFIXES.inProcess, log, timeoutMs: 2000 }));
      await until('both clients ready', () => (clients.every((r) => r.status === 'ready') ? true : undefined), 5000);
      const decisions = await Promise.all(Array.from({ length: 200 }, (_, i) => limiters[i % 2]!.take('sub:concurrent', { limit: 50, periodMs: 60_000 })));
      expect(decisions.filter((x) => x.allowed)).toHaveLength(50);
      const ttl = await redis.pttl(`${PREFIXES.inProcess}rl:sub:concurrent`);
      expect(ttl).toBeGreaterThan(55_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    } finally {
      for (const r of clients) r.disconnect();
    }
  });

  it('falls back to EVAL when Redis does not know the script, and to memory when Redis hangs', async () => {
    const log = pino({ level: 'silent' });
    const real = new Redis(SHARED_REDIS);
    try {
      await until('redis ready', () => (real.status === 'ready' ? true : undefined), 5000);
      let evals = 0;
      const forgetful = {
        status: 'ready',
        evalsha: () => Promise.reject(new Error('NOSCRIPT No matching script. Please use EVAL.')),
        eval: (...args: Parameters<Redis['eval']>) => { evals += 1; return real.eval(...args); },
      } as unknown as Redis;
      const viaEval = createRateLimiter({ redis: forgetful, prefix: PREFIXES.inProcess, log });
      expect((await viaEval.take('sub:noscript', rule)).remaining).toBe(2);
      expect(evals).toBe(1);
      expect(await real.exists(`${PREFIXES.inProcess}rl:sub:noscript`)).toBe(1);

      const hanging = { status: 'ready', evalsha: () => new Promise(() => {}) } as unknown as Redis;
      const viaMemory = createRateLimiter({ redis: hanging, prefix: PREFIXES.inProcess, log, timeoutMs: 50 });
      const startedAt = Date.now();
      expect((await viaMemory.take('sub:hang', rule)).allowed).toBe(true);
      expect(Date.now() - startedAt).toBeLessThan(1000);
    } finally {
      real.disconnect();
    }
  });
});

describe('addressBucket', () => {
  it('keeps IPv4 addresses and groups IPv6 by /64', () => {
    expect(addressBucket('198.51.100.7')).toBe('198.51.100.7');
    expect(addressBucket('2001:db8:1:2::5')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('2001:0db8:0001:0002:ffff:0:0:1')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
    expect(addressBucket('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressBucket('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });
});
