/**
 * npm run loadcheck [-- --connections 64 --seconds 20] [--hot 5 --hot-stock 1000]: a quick load check of
 * the reservation path. With --hot N every order names only N SKUs, each stocked with --hot-stock units, so
 * the load runs into the stock boundary: refusals (409 insufficient_stock) are expected, and afterwards
 * `oversold` — units reserved beyond what is on hand, summed over the hot SKUs — must be 0, as must the
 * ledger's own checks (on hand never negative, reserved never above on hand).
 * Starts a private Postgres in a temporary directory and the API as a separate process (as npm start
 * does), stocks a BENCH location generously, then drives POST /v1/orders with random SKUs (1–3 lines,
 * auth on) through autocannon and prints requests/s, latency percentiles and status counts.
 * A measurement, not a test: it asserts nothing.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { issueToken } from '../api/auth/tokens.ts';
import { ensureDatabase, startEmbeddedCluster } from '../db/cluster.ts';
import { openDatabase } from '../db/connection.ts';
import { waitForHttpOk } from '../lib/wait-http.ts';
import { freePort } from '../test/free-port.ts';
import { BENCH_SKUS, prepareBenchDatabase } from './bench-fixtures.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '64' }, seconds: { type: 'string', default: '20' }, pool: { type: 'string', default: '20' }, json: { type: 'string' },
    hot: { type: 'string' }, 'hot-stock': { type: 'string', default: '1000' },
  },
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);

const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-load-'));
await chmod(dir, 0o755);
const statements = process.env.LOADCHECK_STATEMENTS === '1'; // print the top statements by time (pg_stat_statements)
const cluster = await startEmbeddedCluster({
  dataDir: path.join(dir, 'pg'), port: await freePort(), password: 'load',
  settings: statements ? { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } : {},
});
const url = await ensureDatabase(cluster.adminUrl, 'stockwire');
await prepareBenchDatabase({
  url, location: 'BENCH', actor: 'loadcheck',
  beforeSeed: statements ? async (pool) => void (await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')) : undefined,
});
const hot = values.hot ? Math.max(1, Math.min(BENCH_SKUS.length, Number(values.hot))) : 0;
const skus = hot ? BENCH_SKUS.slice(0, hot) : BENCH_SKUS;
if (hot) {
  // the hot SKUs hold a limited stock at BENCH: one counting ledger row each brings them to --hot-stock
  const { pool, close } = openDatabase({ url, max: 1 });
  await pool.query(
    `INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor, note)
     SELECT sku, location, $2::int - on_hand, 0, 'count', 'correction', 'loadcheck', 'hot-SKU stock'
       FROM stock_levels WHERE location = 'BENCH' AND sku = ANY($1)`, [skus, Number(values['hot-stock'])]);
  await close();
}

const secret = 'load-check-secret-load-check-secret!';
const port = await freePort();
const api = spawn(process.execPath, ['--import', 'tsx', 'api/server.ts'], {
  env: { ...process.env, DATABASE_URL: url, JWT_SECRET: secret, PII_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`, RATE_LIMIT_ENABLED: process.env.RATE_LIMIT_ENABLED ?? 'false', PORT: String(port), LOG_LEVEL: 'warn', DB_POOL_MAX: values.pool },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const base = `http://127.0.0.1:${port}`;
if (!(await waitForHttpOk(`${base}/readyz`, 20_000))) throw new Error('the API did not become ready within 20 s');
const token = await issueToken({ secret, issuer: 'stockwire', audience: 'stockwire-api' }, { subject: 'loadcheck', roles: ['order-system'] });

function randomOrder(): string {
  const n = 1 + Math.floor(Math.random() * 3);
  const picked = new Set<string>();
  while (picked.size < n) picked.add(skus[Math.floor(Math.random() * skus.length)]!);
  return JSON.stringify({ location: 'BENCH', lines: [...picked].map((sku) => ({ sku, qty: 1 + Math.floor(Math.random() * 2) })) });
}

const result = await autocannon({
  url: `${base}/v1/orders`,
  connections,
  duration: seconds,
  requests: [{ method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: randomOrder() }) }],
});

const statuses = { '2xx': result['2xx'], non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts };
let oversold: number | undefined;
if (hot) {
  const { pool, close } = openDatabase({ url, max: 1 });
  const { rows: [check] } = await pool.query<{ oversold: number; negative: number }>(
    `SELECT coalesce(sum(greatest(reserved - on_hand, 0)), 0)::int AS oversold, count(*) FILTER (WHERE on_hand < 0)::int AS negative
       FROM stock_levels WHERE location = 'BENCH' AND sku = ANY($1)`, [skus]);
  oversold = check!.oversold + check!.negative;
  await close();
}
process.stdout.write(`\nPOST /v1/orders, ${connections} connections, ${seconds} s, API pool ${values.pool}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'})\n`);
process.stdout.write(`requests/s: mean ${result.requests.average.toFixed(0)}, p50 ${result.requests.p50}\n`);
process.stdout.write(`latency ms: p50 ${result.latency.p50}, p90 ${result.latency.p90}, p99 ${result.latency.p99}, max ${result.latency.max}\n`);
process.stdout.write(`responses: ${JSON.stringify(statuses)}\n`);
if (hot) process.stdout.write(`hot: ${hot} SKUs × ${values['hot-stock']} units; oversold ${oversold}\n`);
if (values.json) {
  await writeFile(values.json, JSON.stringify({
    connections, seconds, pool: Number(values.pool), requests_per_s: result.requests.average,
    latency_ms: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max }, responses: statuses,
    ...(hot ? { hot: { skus: hot, stock: Number(values['hot-stock']), oversold } } : {}),
  }, null, 2));
}

if (statements) {
  const stats = openDatabase({ url, max: 1 });
  const { rows } = await stats.pool.query(`SELECT calls, round(total_exec_time)::int AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15`).catch(async () => {
    await stats.pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return { rows: [] };
  });
  console.table(rows);
  await stats.close();
}

api.kill('SIGTERM');
await new Promise((r) => api.once('exit', r));
await cluster.stop();
await rm(dir, { recursive: true, force: true });
