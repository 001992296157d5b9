/**
 * npm start: the embedded default in one command. Resolves the database (DATABASE_URL, or a private
 * Postgres with wal_level=logical under .data/), migrates, seeds the demo catalog, then runs each
 * service as its own child process, restarting one that dies (with backoff). Prints the URL and a demo
 * admin token. Ctrl-C (or SIGTERM) stops the children, then the database, and exits.
 * On the embedded cluster the API and projectors connect as stockwire_app and the cdc reader as
 * stockwire_replication (migration 0004), never as the owner. TLS_CERT/TLS_KEY (or TLS_SELF_SIGNED=true,
 * `npm start -- --tls`: a development certificate in .data/tls) make the API serve HTTPS.
 */
import { onShutdownSignal } from '../lib/shutdown-signals.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { z } from 'zod';
import { issueToken } from '../api/auth/tokens.ts';
import { configOrExit } from '../lib/env-config.ts';
import { waitForHttpOk } from '../lib/wait-http.ts';
import { createCommandRunner } from '../api/domain/command-runner.ts';
import { openDatabase } from '../db/connection.ts';
import { migrateUp } from '../db/migrator.ts';
import { prepareServiceRoles, resolveDatabase } from './database.ts';
import { ensureDevCertificate, extraCaFile, type DevCertificate } from './dev-cert.ts';
import { seedDemoCatalog } from './demo-catalog.ts';
import { dataDirFromEnv, loadDevSecrets } from './dev-secrets.ts';
import { portOpen, resolveNats } from './nats-server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const launcherConfig = z.object({
  PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  SEED_DEMO: z.enum(['true', 'false']).default('true').describe('load the demo catalog on start'),
  NODE_ENV: z.string().default('development'),
  TLS_SELF_SIGNED: z.enum(['true', 'false']).default('false')
    .describe('serve HTTPS with a self-signed development certificate made once into DATA_DIR/tls (same as --tls); TLS_CERT/TLS_KEY win'),
  API_DATABASE_URL: z.string().optional().transform((v) => v || undefined)
    .describe('with DATABASE_URL: the URL the API and projectors connect with (the stockwire_app role); default DATABASE_URL itself'),
  CDC_DATABASE_URL: z.string().optional().transform((v) => v || undefined)
    .describe('with DATABASE_URL: the URL the cdc reader connects with (the stockwire_replication role); default DATABASE_URL itself'),
});

interface Service {
  name: string;
  entry: string;
  /** variables this service gets on top of the shared child environment */
  env?: Record<string, string>;
  child?: ChildProcess;
  restarts: number;
}

const log = pino({ base: { service: 'launcher' } });
const config = configOrExit('launcher', launcherConfig);
const dataDir = dataDirFromEnv();
const secrets = await loadDevSecrets(dataDir);
if (config.NODE_ENV === 'production' && ((!process.env.JWT_SECRET && !process.env.JWKS_URL) || !process.env.PII_KEYS)) {
  process.stderr.write('stockwire: NODE_ENV=production needs JWKS_URL (or JWT_SECRET) and PII_KEYS from the environment\n');
  process.exit(2);
}

// before the database starts: a failure here leaves nothing running
let tlsFiles: (Pick<DevCertificate, 'certPath' | 'keyPath'> & { extraCa?: string }) | undefined =
  process.env.TLS_CERT && process.env.TLS_KEY ? { certPath: process.env.TLS_CERT, keyPath: process.env.TLS_KEY } : undefined;
if (!tlsFiles && (config.TLS_SELF_SIGNED === 'true' || process.argv.includes('--tls'))) {
  try {
    const dev = await ensureDevCertificate({ dir: path.join(dataDir, 'tls') });
    if (dev.created) log.info({ cert: dev.certPath }, 'self-signed development certificate created (localhost, 127.0.0.1)');
    tlsFiles = { ...dev, extraCa: await extraCaFile({ cert: dev, existing: process.env.NODE_EXTRA_CA_CERTS }) };
  } catch (err) {
    process.stderr.write(`stockwire: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

let database: Awaited<ReturnType<typeof resolveDatabase>>;
try {
  database = await resolveDatabase({ dataDir });
} catch (err) {
  process.stderr.write(`stockwire: ${(err as Error).message}\n`);
  process.exit(1);
}
log.info({ embedded: database.embedded }, database.embedded ? `embedded Postgres running (data in ${path.join(dataDir, 'pg')})` : 'using DATABASE_URL');

const { db, pool, close } = openDatabase({ url: database.url, max: 4, applicationName: 'stockwire-launcher' });
await migrateUp({ pool, log });
if (config.SEED_DEMO === 'true') log.info(await seedDemoCatalog({ db, runCommand: createCommandRunner({ db }) }), 'demo catalog ready');
const roles = database.embedded
  ? await prepareServiceRoles({ pool, ownerUrl: database.url, passwords: { app: secrets.PG_APP_PASSWORD, replication: secrets.PG_REPLICATION_PASSWORD } })
  : undefined;
await close();
const serviceUrls = { app: config.API_DATABASE_URL ?? roles?.app ?? database.url, replication: config.CDC_DATABASE_URL ?? roles?.replication ?? database.url };
if (!roles && (!config.API_DATABASE_URL || !config.CDC_DATABASE_URL)) {
  log.warn('services connect with DATABASE_URL itself: set API_DATABASE_URL (stockwire_app) and CDC_DATABASE_URL (stockwire_replication) for least privilege');
}

const childEnv: Record<string, string | undefined> & { JWT_SECRET: string } = {
  ...process.env,
  DATABASE_URL: serviceUrls.app,
  JWT_SECRET: process.env.JWT_SECRET ?? secrets.JWT_SECRET,
  PII_KEYS: process.env.PII_KEYS ?? secrets.PII_KEYS,
  PORT: String(config.PORT),
  // children stop themselves if the launcher dies without stopping them (lib/parent-watch.ts)
  STOCKWIRE_PARENT_PID: String(process.pid),
  HOST: config.HOST,
};
if (tlsFiles) {
  Object.assign(childEnv, { TLS_CERT: tlsFiles.certPath, TLS_KEY: tlsFiles.keyPath });
  // the workbook mirror calls the API over https: children trust the development certificate
  if (tlsFiles.extraCa) childEnv.NODE_EXTRA_CA_CERTS = tlsFiles.extraCa;
}

const nats = await resolveNats({ dataDir, log });
const redisReachable = await portOpen(process.env.REDIS_URL ? new URL(process.env.REDIS_URL) : new URL('redis://127.0.0.1:6379'));
Object.assign(childEnv, { NATS_URL: nats?.url ?? '', REDIS_URL: redisReachable ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379') : '' });

const tokenSettings = { secret: childEnv.JWT_SECRET, issuer: process.env.JWT_ISSUER ?? 'stockwire', audience: process.env.JWT_AUDIENCE ?? 'stockwire-api' };
const apiBase = `${tlsFiles ? 'https' : 'http'}://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
// the local workbook mirror sends sheet edits to the API as the sheet-sync role (a 30-day dev token,
// issued on every start; deployments give SHEET_SYNC_TOKEN from their IdP or an API key)
Object.assign(childEnv, {
  STOCKWIRE_API_URL: process.env.STOCKWIRE_API_URL ?? apiBase,
  SHEET_SYNC_TOKEN: process.env.SHEET_SYNC_TOKEN ?? (await issueToken(tokenSettings, { subject: 'sheet-sync-local', roles: ['sheet-sync'], ttlSeconds: 30 * 86_400 })),
  XLSX_PATH: process.env.XLSX_PATH ?? path.join(dataDir, 'inventory.xlsx'),
});

const services: Service[] = [{ name: 'api', entry: 'api/server.ts', restarts: 0 }];
if (nats) {
  services.push({ name: 'cdc', entry: 'cdc/main.ts', env: { DATABASE_URL: serviceUrls.replication }, restarts: 0 });
  services.push({ name: 'xlsx-local', entry: 'projectors/xlsx-local/main.ts', restarts: 0 });
  // no alert channel configured: low-stock and expiry alerts appear in this log (SLACK_WEBHOOK_URL etc. add channels)
  services.push({ name: 'alerts', entry: 'projectors/alerts/main.ts', restarts: 0 });
  services.push({ name: 'webhooks', entry: 'projectors/webhooks/main.ts', restarts: 0 });
  if (redisReachable) services.push({ name: 'redis-cache', entry: 'projectors/redis-cache/main.ts', restarts: 0 });
  else log.warn('Redis not reachable (REDIS_URL or 127.0.0.1:6379): the redis-cache projector is disabled and stock reads use Postgres');
} else {
  log.warn('no NATS: the cdc reader and projectors are not started (the API works on its own)');
}
let stopping = false;

function startService(service: Service) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, service.entry)], { cwd: ROOT, env: { ...childEnv, ...service.env }, stdio: ['ignore', 'inherit', 'inherit'] });
  service.child = child;
  log.info({ child: service.name, pid: child.pid }, 'service started');
  child.on('exit', (code, signal) => {
    service.child = undefined;
    if (stopping) return;
    service.restarts += 1;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(service.restarts, 6));
    log.error({ service: service.name, code, signal, restartInMs: delay }, 'service exited; restarting');
    setTimeout(() => !stopping && startService(service), delay);
  });
}

async function stopAll(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'stopping stockwire');
  await Promise.all(services.map((s) => new Promise<void>((resolve) => {
    if (!s.child) return resolve();
    const timer = setTimeout(() => s.child?.kill('SIGKILL'), 10_000);
    s.child.once('exit', () => { clearTimeout(timer); resolve(); });
    s.child.kill('SIGTERM');
  })));
  await nats?.stop();
  await database.stop();
  log.info('stopped');
  process.exit(0);
}
onShutdownSignal((signal) => void stopAll(signal));

for (const service of services) startService(service);
const base = apiBase;
if (await (tlsFiles ? waitForHttpsOk(`${base}/readyz`, 30_000) : waitForHttpOk(`${base}/readyz`, 30_000))) {
  const token = await issueToken(tokenSettings, { subject: 'demo-admin', roles: ['admin'] });
  // the dashboard only reads, so its link carries a viewer token (in the fragment: never sent to a server or logged)
  const viewerToken = await issueToken(tokenSettings, { subject: 'demo-dashboard', roles: ['viewer'] });
  process.stdout.write(`\nstockwire is running: ${base}  (OpenAPI: ${base}/openapi.json)\n`);
  process.stdout.write(`live dashboard (viewer, 12 h): ${base}/dashboard#token=${viewerToken}\n`);
  if (nats) process.stdout.write(`local workbook mirror: ${childEnv.XLSX_PATH} (edit On hand / Reorder point and save)\n`);
  process.stdout.write(`demo admin token (12 h):\n${token}\n\ntry: curl${tlsFiles?.extraCa ? ` --cacert ${tlsFiles.certPath}` : ''} -H "Authorization: Bearer $TOKEN" ${base}/v1/stock\nCtrl-C stops everything.\n\n`);
} else {
  log.error('the api did not become ready within 30 s; see its log lines above');
}

/** waitForHttpOk over https: a loopback readiness probe of our own child, so it checks liveness, not the certificate. */
async function waitForHttpsOk(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = https.get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
