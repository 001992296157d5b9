/**
 * Request budgets per client address (before authentication, so a flood of bad tokens is refused
 * cheaply) and per principal (the token subject, after authentication). Over budget: 429 rate_limited
 * with Retry-After, plus the IETF draft RateLimit-Limit/-Remaining/-Reset headers on every answer.
 *
 * Algorithm: GCRA (the generic cell rate algorithm, a token bucket kept as one number). Each key stores its
 * "theoretical arrival time"; a budget of L per period P lets L requests through back to back and then one
 * every P/L. One key per client, O(1) work, no window edges that let 2·L through around a boundary.
 *
 * Invariant: API replicas share ONE budget per key. The step runs as one Lua script in Redis (EVALSHA,
 * EVAL on NOSCRIPT), on Redis's clock, so concurrent replicas cannot both spend the last unit and clock
 * skew between replicas does not matter. Keys live under `<REDIS_PREFIX>rl:` and expire when the bucket
 * is full again.
 *
 * When Redis is not configured or not answering, each process limits in memory (fail open to a per-process
 * budget, with a warning): Redis here is a shared counter, not the source of truth, and refusing every
 * request because a counter is away would turn a Redis outage into an API outage. A process still bounds
 * what any one client can do to it.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';

export interface RateLimitRule {
  /** requests allowed per period (also the largest burst) */
  limit: number;
  periodMs: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** requests still allowed right now */
  remaining: number;
  /** when refused: how long until one more is allowed */
  retryAfterMs: number;
  /** how long until the whole budget is available again */
  resetMs: number;
}

export interface RateLimiter {
  /** Spends one unit of `key`'s budget under `rule`, or says when to come back. */
  take(key: string, rule: RateLimitRule): Promise<RateDecision>;
}

/** GCRA in integer microseconds: emission interval T = P/L, burst tolerance τ = T·(L−1). */
function gcraParams(rule: RateLimitRule) {
  const interval = Math.max(1, Math.round((rule.periodMs * 1000) / rule.limit));
  return { interval, tolerance: interval * (rule.limit - 1) };
}

/** One GCRA step (pure): the decision and the new stored arrival time (undefined when refused). */
export function gcraStep(stored: number | undefined, nowUs: number, rule: RateLimitRule): { decision: RateDecision; tat: number | undefined } {
  const { interval, tolerance } = gcraParams(rule);
  const tat = stored === undefined || stored < nowUs ? nowUs : stored;
  const wait = tat - tolerance - nowUs;
  if (wait > 0) {
    return { decision: { allowed: false, limit: rule.limit, remaining: 0, retryAfterMs: wait / 1000, resetMs: (tat - nowUs) / 1000 }, tat: undefined };
  }
  const next = tat + interval;
  const remaining = Math.floor((tolerance - (next - nowUs)) / interval) + 1;
  return { decision: { allowed: true, limit: rule.limit, remaining, retryAfterMs: 0, resetMs: (next - nowUs) / 1000 }, tat: next };
}

// The same step as gcraStep, atomically in Redis. Returns {allowed, remaining, retry_after_us, reset_us}.
const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return {0, 0, wait, tat - now} end
local nxt = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, math.floor((tolerance - (nxt - now)) / interval) + 1, 0, nxt - now}
`;
const GCRA_SHA = createHash('sha1').update(GCRA_LUA).digest('hex');

/** A per-process limiter; entries are dropped once their bucket is full again, and the map is bounded. */
export function createMemoryLimiter(props: { nowUs?: () => number; maxKeys?: number } = {}): RateLimiter & { size(): number } {
  const nowUs = props.nowUs ?? (() => Math.round((performance.timeOrigin + performance.now()) * 1000));
  const maxKeys = props.maxKeys ?? 100_000;
  const tats = new Map<string, number>();
  function sweep(now: number) {
    for (const [key, tat] of tats) if (tat <= now) tats.delete(key);
    // still full of live buckets: forget the oldest tenth (a client needs maxKeys addresses to profit
    // from this; dropping a tenth at once keeps the sweep rare under such a flood)
    for (const key of tats.keys()) {
      if (tats.size < maxKeys * 0.9) break;
      tats.delete(key);
    }
  }
  return {
    async take(key, rule) {
      const now = nowUs();
      const { decision, tat } = gcraStep(tats.get(key), now, rule);
      if (tat !== undefined) {
        if (!tats.has(key) && tats.size >= maxKeys) sweep(now);
        tats.delete(key); // re-insert: the map's order stays oldest-written first
        tats.set(key, tat);
      }
      return decision;
    },
    size: () => tats.size,
  };
}

/**
 * The shared limiter: GCRA in Redis when it answers within `timeoutMs`, else the in-memory fallback.
 * Without a Redis client it is the in-memory limiter alone.
 */
export function createRateLimiter(props: { redis?: Redis | undefined; prefix: string; log: Logger; timeoutMs?: number; fallback?: RateLimiter }): RateLimiter {
  const log = props.log.child({ component: 'rate-limit' });
  const fallback = props.fallback ?? createMemoryLimiter();
  const { redis } = props;
  const timeoutMs = props.timeoutMs ?? 100;
  if (!redis) {
    log.warn('REDIS_URL is empty: rate limits are kept per process in memory, so each replica has its own budget');
    return fallback;
  }
  let degraded: string | undefined;

  async function evalGcra(key: string, rule: RateLimitRule): Promise<number[]> {
    const { interval, tolerance } = gcraParams(rule);
    try {
      return (await redis!.evalsha(GCRA_SHA, 1, key, interval, tolerance)) as number[];
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return (await redis!.eval(GCRA_LUA, 1, key, interval, tolerance)) as number[];
    }
  }

  function withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  function fellBack(reason: string) {
    if (degraded === undefined) log.warn({ reason }, 'Redis not usable for rate limits: limiting per process in memory until it is (fail open)');
    degraded = reason;
  }

  return {
    async take(key, rule) {
      const fullKey = `${props.prefix}rl:${key}`;
      if (redis.status !== 'ready') {
        fellBack(`connection ${redis.status}`);
        return fallback.take(fullKey, rule);
      }
      try {
        const [allowed, remaining, retryUs, resetUs] = await withTimeout(evalGcra(fullKey, rule));
        if (degraded !== undefined) {
          log.info('Redis answers again: rate limits are shared across replicas');
          degraded = undefined;
        }
        return { allowed: allowed === 1, limit: rule.limit, remaining: remaining!, retryAfterMs: retryUs! / 1000, resetMs: resetUs! / 1000 };
      } catch (err) {
        fellBack((err as Error).message);
        return fallback.take(fullKey, rule);
      }
    },
  };
}

/** The bucket of a client address: IPv4 as is, IPv6 by /64 (one subscriber usually holds a whole /64). */
export function addressBucket(address: string): string {
  if (isIP(address) !== 6) return address;
  let text = address.split('%')[0]!;
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export type RateLimitScope = 'ip' | 'subject';

function ipKey(address: string | null | undefined): string | undefined {
  return address ? `ip:${addressBucket(address)}` : undefined;
}

/** An API key has its own budget; a token's is its subject's. */
function principalKey(principal: { subject: string; apiKeyId?: string | undefined } | undefined): string | undefined {
  if (!principal) return undefined;
  return principal.apiKeyId ? `key:${principal.apiKeyId}` : `sub:${principal.subject}`;
}

/**
 * Spends one unit of the caller's budget for `scope` ('ip': the client address, before authentication;
 * 'subject': the principal, after it). Requests without a key (no address, no principal) pass.
 */
export function rateLimit(props: { limiter: RateLimiter; scope: RateLimitScope; rule: RateLimitRule }): MiddlewareHandler<AppEnv> {
  const { limiter, scope, rule } = props;
  return async function rateLimitMiddleware(c, next) {
    const key = scope === 'ip' ? ipKey(c.get('clientIp')) : principalKey(c.get('principal'));
    if (!key) return next();
    const decision = await limiter.take(key, rule);
    // the headers describe the tightest budget that applied to this request
    const prior = c.get('rateLimit');
    if (!decision.allowed || !prior || decision.remaining < prior.remaining) {
      c.set('rateLimit', decision);
      c.header('RateLimit-Limit', String(decision.limit));
      c.header('RateLimit-Remaining', String(decision.remaining));
      c.header('RateLimit-Reset', String(Math.ceil(decision.resetMs / 1000)));
    }
    if (!decision.allowed) {
      const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      c.header('Retry-After', String(retryAfter));
      const who = scope === 'ip' ? 'this client address' : 'this token';
      throw new ApiError(429, 'rate_limited', `too many requests from ${who} (${rule.limit} per ${rule.periodMs / 1000} s); retry after ${retryAfter} s`, {
        scope, limit: rule.limit, period_seconds: rule.periodMs / 1000, retry_after_seconds: retryAfter,
      });
    }
    await next();
  };
}
