/**
 * The API process: parse configuration, wire dependencies, serve HTTP, run the maintenance leader, and
 * shut down cleanly on SIGTERM/SIGINT. It writes only to Postgres; Redis (stock projection) and NATS
 * (projector positions) are only read, and their absence only slows reads down.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pino from 'pino';
import { openDatabase } from '../db/connection.ts';
import { createApp } from './app.ts';
import { createTokenVerifier } from './auth/tokens.ts';
import { configOrExit } from '../lib/env-config.ts';
import { productionGuard } from './config.ts';
import { createCommandRunner } from './domain/command-runner.ts';
import { createPiiCipher } from './domain/pii-cipher.ts';
import { logRedaction } from './log-redaction.ts';
import { createMaintenance } from './maintenance.ts';
import { createApiMetrics } from './metrics.ts';
import { createStockCacheReader, type StockCacheReader } from './read-models/stock-cache-reader.ts';
import { createSyncStatusReader } from './read-models/sync-status.ts';

const config = configOrExit('api', productionGuard);

const log = pino({ level: config.LOG_LEVEL, base: { service: 'api' }, redact: logRedaction });
const { db, pool, close } = openDatabase({ url: config.DATABASE_URL, max: config.DB_POOL_MAX, applicationName: 'stockwire-api' });
const clock = () => new Date();

let cache: StockCacheReader | undefined;
if (config.REDIS_URL) {
  // fail fast while Redis is away (reads fall back to Postgres), reconnect in the background
  const redis = new Redis(config.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
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

const metrics = createApiMetrics();
const app = createApp({
  metrics,
  db,
  pool,
  log,
  clock,
  verifyToken: createTokenVerifier({ secret: config.JWT_SECRET, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE }),
  cipher: createPiiCipher(config.PII_KEYS),
  settings: { reservationTtlSeconds: config.RESERVATION_TTL_SECONDS, defaultLocation: config.DEFAULT_LOCATION, readWaitMs: config.READ_WAIT_MS },
  cache,
  syncStatus: createSyncStatusReader({ db, slot: config.CDC_SLOT, stream: config.CDC_STREAM, nats: () => nats }),
});
const maintenance = createMaintenance({
  databaseUrl: config.DATABASE_URL, db, runCommand: createCommandRunner({ db }), log, clock, intervalMs: config.SWEEP_INTERVAL_MS, metrics,
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
const server = serve({ fetch, hostname: config.HOST, port: config.PORT }, (info) => {
  log.info({ url: `http://${config.HOST}:${info.port}` }, 'api listening');
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
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
