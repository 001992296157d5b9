/**
 * The API process: parse configuration, wire dependencies, serve HTTP, run the maintenance leader, and
 * shut down cleanly on SIGTERM/SIGINT. It writes only to Postgres, plus the rate-limit budgets it shares
 * with the other replicas in Redis; Redis (stock projection) and NATS (projector positions; the dashboard's
 * live feed, an ephemeral ordered consumer) are otherwise only read, and their absence only slows reads down
 * (rate limits then count per process; dashboards poll instead of streaming).
 */
import { stopWhenParentDies } from '../lib/parent-watch.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pino from 'pino';
import { openDatabase } from '../db/connection.ts';
import { createApp } from './app.ts';
import { bearerSettingsFromConfig, createBearerVerifier } from './auth/tokens.ts';
import { configOrExit } from '../lib/env-config.ts';
import { productionGuard } from './config.ts';
import { createCommandRunner } from './domain/command-runner.ts';
import { createPiiCipher } from './domain/pii-cipher.ts';
import { logRedaction } from './log-redaction.ts';
import { natsAnchorStore } from './domain/audit-anchor.ts';
import { createMaintenance } from './maintenance.ts';
import { createApiMetrics } from './metrics.ts';
import { createRateLimiter } from './middleware/rate-limit.ts';
import { createRedirectServer, loadTlsOptions } from './tls.ts';
import { createStockCacheReader, type StockCacheReader } from './read-models/stock-cache-reader.ts';
import { createSyncStatusReader } from './read-models/sync-status.ts';
import { createLiveFeed } from './read-models/live-feed.ts';

const config = configOrExit('api', productionGuard);
let tls: ReturnType<typeof loadTlsOptions>;
try {
  tls = loadTlsOptions(config);
} catch (err) {
  process.stderr.write(`stockwire api: ${(err as Error).message}\n`);
  process.exit(2);
}

const log = pino({ level: config.LOG_LEVEL, base: { service: 'api' }, redact: logRedaction });
const { db, pool, close } = openDatabase({ url: config.DATABASE_URL, max: config.DB_POOL_MAX, applicationName: 'stockwire-api' });
const clock = () => new Date();

let cache: StockCacheReader | undefined;
let redis: Redis | undefined;
if (config.REDIS_URL) {
  // fail fast while Redis is away (reads fall back to Postgres), reconnect in the background
  redis = new Redis(config.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  redis.on('error', () => {});
  redis.connect().then(
    () => log.info('Redis reachable: single-row stock reads use the cache'),
    () => log.warn('Redis not reachable: stock reads use Postgres until it is'),
  );
  cache = createStockCacheReader({ redis, prefix: config.REDIS_PREFIX });
}

let nats: NatsConnection | undefined;
if (config.NATS_URL) {
  connect({ servers: config.NATS_URL.split(','), name: `stockwire-api-${process.pid}`, maxReconnectAttempts: -1, waitOnFirstConnect: true })
    .then((nc) => (nats = nc))
    .catch((err: Error) => log.warn({ err: { message: err.message } }, 'NATS not reachable: /v1/sync/status will not list projectors'));
}

// the dashboard's live updates: one ordered consumer on the CDC stream, shared by every open page
const liveFeed = config.NATS_URL
  ? createLiveFeed({ nats: () => nats, stream: config.CDC_STREAM, subjectPrefix: config.CDC_SUBJECT_PREFIX, log: log.child({ component: 'live-feed' }) })
  : undefined;

const metrics = createApiMetrics();
const app = createApp({
  transport: { hsts: tls !== undefined, corsOrigins: config.CORS_ORIGINS },
  metrics,
  db,
  pool,
  log,
  clock,
  verifyToken: createBearerVerifier(bearerSettingsFromConfig(config, log)),
  cipher: createPiiCipher(config.PII_KEYS),
  settings: { reservationTtlSeconds: config.RESERVATION_TTL_SECONDS, defaultLocation: config.DEFAULT_LOCATION, readWaitMs: config.READ_WAIT_MS },
  cache,
  network: { trustedProxies: config.TRUST_PROXY_CIDRS, adminAllowed: config.ADMIN_ALLOWED_CIDRS, apiAllowed: config.API_ALLOWED_CIDRS },
  rateLimit: config.RATE_LIMIT_ENABLED === 'true' ? {
    limiter: createRateLimiter({ redis, prefix: config.REDIS_PREFIX, log }),
    perIp: { limit: config.RATE_LIMIT_IP_PER_MINUTE, periodMs: 60_000 },
    perSubject: { limit: config.RATE_LIMIT_PER_MINUTE, periodMs: 60_000 },
  } : undefined,
  syncStatus: createSyncStatusReader({ db, slot: config.CDC_SLOT, stream: config.CDC_STREAM, nats: () => nats }),
  liveFeed,
});
const maintenance = createMaintenance({
  databaseUrl: config.DATABASE_URL, db, runCommand: createCommandRunner({ db }), log, clock, intervalMs: config.SWEEP_INTERVAL_MS, metrics,
  // the audit chain's head, recorded in NATS after each seal, so audit:verify notices a truncated tail
  anchor: natsAnchorStore({ nats: () => nats, key: new URL(config.DATABASE_URL).pathname.slice(1) || 'stockwire' }),
});

let stopping = false;
// requests whose handler is still running (a client that hung up does not stop its handler)
let handling = 0;
const fetch: typeof app.fetch = async (...args) => {
  handling += 1;
  try {
    return await app.fetch(...args);
  } finally {
    handling -= 1;
  }
};
const listen = { fetch, hostname: config.HOST, port: config.PORT };
let redirect: ReturnType<typeof createRedirectServer> | undefined;
const server = serve(tls ? { ...listen, createServer: https.createServer, serverOptions: tls } : listen, (info) => {
  log.info({ url: `${tls ? 'https' : 'http'}://${config.HOST}:${info.port}` }, 'api listening');
  if (!tls || !config.HTTP_REDIRECT_PORT) return;
  redirect = createRedirectServer({ httpsPort: (info as AddressInfo).port });
  redirect.on('error', (err) => {
    log.fatal({ err: { message: err.message }, port: config.HTTP_REDIRECT_PORT }, 'HTTP_REDIRECT_PORT: cannot listen');
    process.exit(1);
  });
  redirect.listen(config.HTTP_REDIRECT_PORT, config.HOST, () => log.info({ port: config.HTTP_REDIRECT_PORT }, 'plain HTTP redirects to https'));
});
maintenance.start();

// open connections, so shutdown closes the pool only after the last answer went out
const sockets = new Set<Socket>();
server.on('connection', (socket: Socket) => {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
});
server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
  if (stopping) res.setHeader('connection', 'close'); // keep-alive clients reconnect elsewhere
});

async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'api stopping');
  const http = server as unknown as { close(): void; closeIdleConnections(): void; closeAllConnections(): void };
  http.close();
  // open dashboard streams end now (their pages reconnect elsewhere), so their sockets do not hold up the drain
  await liveFeed?.stop();
  redirect?.close();
  redirect?.closeAllConnections();
  const deadline = Date.now() + 10_000;
  while ((sockets.size > 0 || handling > 0) && Date.now() < deadline) {
    http.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 20));
  }
  http.closeAllConnections();
  await maintenance.stop();
  await cache?.close();
  await nats?.close().catch(() => {});
  await close();
  log.info('api stopped');
  process.exit(0);
}
stopWhenParentDies((reason) => void shutdown(reason));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
