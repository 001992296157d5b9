/**
 * The API process: parse configuration, wire dependencies, serve HTTP, run the maintenance leader, and
 * shut down cleanly on SIGTERM/SIGINT. It writes only to Postgres.
 */
import { serve } from '@hono/node-server';
import pino from 'pino';
import { openDatabase } from '../db/connection.ts';
import { createApp } from './app.ts';
import { createTokenVerifier } from './auth/tokens.ts';
import { loadApiConfig } from './config.ts';
import { createCommandRunner } from './domain/command-runner.ts';
import { createPiiCipher } from './domain/pii-cipher.ts';
import { createMaintenance } from './maintenance.ts';
import { logRedaction } from './log-redaction.ts';

let config;
try {
  config = loadApiConfig();
} catch (err) {
  process.stderr.write(`stockwire api: ${(err as Error).message}\n`);
  process.exit(2);
}

const log = pino({ level: config.LOG_LEVEL, base: { service: 'api' }, redact: logRedaction });
const { db, pool, close } = openDatabase({ url: config.DATABASE_URL, max: config.DB_POOL_MAX, applicationName: 'stockwire-api' });
const clock = () => new Date();
const app = createApp({
  db,
  pool,
  log,
  clock,
  verifyToken: createTokenVerifier({ secret: config.JWT_SECRET, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE }),
  cipher: createPiiCipher(config.PII_KEYS),
  settings: { reservationTtlSeconds: config.RESERVATION_TTL_SECONDS, defaultLocation: config.DEFAULT_LOCATION },
});
const maintenance = createMaintenance({
  databaseUrl: config.DATABASE_URL, db, runCommand: createCommandRunner({ db }), log, clock, intervalMs: config.SWEEP_INTERVAL_MS,
});

const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
  log.info({ url: `http://${config.HOST}:${info.port}` }, 'api listening');
});
maintenance.start();

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'api stopping');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await maintenance.stop();
  await close();
  log.info('api stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
