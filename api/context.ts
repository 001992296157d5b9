/**
 * What the API's handlers share: the dependencies wired by the entry point (AppDeps) and the per-request
 * values Hono carries on the context (AppEnv).
 */
import type { Hook } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { SqlRunner } from '../db/sql-runner.ts';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.ts';
import type { Principal, TokenVerifier } from './auth/tokens.ts';
import type { RunCommand } from './domain/command-runner.ts';
import type { PiiCipher } from './domain/pii-cipher.ts';
import type { ApiMetrics } from './metrics.ts';
import type { RateDecision, RateLimiter, RateLimitRule } from './middleware/rate-limit.ts';
import type { CidrList } from './net/cidr.ts';
import type { StockCacheReader } from './read-models/stock-cache-reader.ts';
import type { SyncStatusReader } from './read-models/sync-status.ts';
import type { LiveFeed } from './read-models/live-feed.ts';

export interface AppDeps {
  db: Kysely<Database>;
  /** the same pool kysely uses; the hot path runs named prepared statements on it */
  pool: pg.Pool;
  log: Logger;
  verifyToken: TokenVerifier;
  cipher: PiiCipher;
  clock: () => Date;
  settings: { reservationTtlSeconds: number; defaultLocation: string; readWaitMs?: number };
  /** the Redis stock projection, when configured and reachable */
  cache?: StockCacheReader | undefined;
  /** slot and projector positions, for GET /v1/sync/status */
  syncStatus?: SyncStatusReader | undefined;
  /** the CDC stream's live changes, for the dashboard's SSE feed (absent: GET /v1/dashboard/events answers 503) */
  liveFeed?: LiveFeed | undefined;
  /** Prometheus metrics (created by createApp when absent) */
  metrics?: ApiMetrics | undefined;
  /** client addresses: proxies whose X-Forwarded-For is believed, and the allowlists (absent: none) */
  network?: {
    trustedProxies?: CidrList | undefined;
    adminAllowed?: CidrList | undefined;
    apiAllowed?: CidrList | undefined;
  } | undefined;
  /** request budgets per client address and per principal (absent: no rate limiting) */
  rateLimit?: { limiter: RateLimiter; perIp: RateLimitRule; perSubject: RateLimitRule } | undefined;
}

export interface RouteDeps extends AppDeps {
  metrics: ApiMetrics;
  runCommand: RunCommand;
  /** runs hot-path SQL as named prepared statements */
  prepared: SqlRunner;
  /** renders request-validation failures as 400 validation_failed */
  validationHook: Hook<unknown, AppEnv, string, undefined>;
}

/** What an API key adds to a principal: the scope it is limited to (absent = unlimited; JWTs have none). */
export interface PrincipalScope {
  /** the API key the caller authenticated with */
  apiKeyId?: string | undefined;
  /** locations the caller may act on */
  locations?: readonly string[] | undefined;
  /** addresses the caller may call from (checked at authentication) */
  allowedCidrs?: CidrList | undefined;
}

export type RequestPrincipal = Principal & PrincipalScope;

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: RequestPrincipal;
    idempotencyKey: string | undefined;
    /** the caller's address: the socket peer, or behind trusted proxies the right-most untrusted hop */
    clientIp: string | null;
    /** ADMIN_ALLOWED_CIDRS, for the per-route check of admin-only actions */
    adminCidrs: CidrList | undefined;
    /** the tightest rate-limit budget applied so far (its headers are on the answer) */
    rateLimit: RateDecision | undefined;
  };
}
