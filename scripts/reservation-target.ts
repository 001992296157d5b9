/**
 * What the reservation measurements run against: a private Postgres in a temporary directory, prepared
 * like every bench (scripts/bench-fixtures.ts), and the API as a separate process (as npm start runs it)
 * with auth on and rate limiting off. `orderLoad` drives POST /v1/orders with random SKUs (1–3 lines)
 * through autocannon. Used by npm run loadcheck and scripts/bench-reservation.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { issueToken } from '../api/auth/tokens.ts';
import { ensureDatabase, startEmbeddedCluster, type EmbeddedCluster } from '../db/cluster.ts';
import { openDatabase } from '../db/connection.ts';
import { waitForHttpOk } from '../lib/wait-http.ts';
import { freePort } from '../test/free-port.ts';
import { BENCH_SKUS, prepareBenchDatabase } from './bench-fixtures.ts';

const JWT_SECRET = 'load-check-secret-load-check-secret!';

export interface ReservationTarget {
  /** the bench database */
  url: string;
  /** the cluster's data directory */
  dataDir: string;
  /** the SKUs orders pick from */
  skus: string[];
  /** the running API's process id */
  apiPid(): number | undefined;
  startApi(env?: Record<string, string>): Promise<void>;
  stopApi(): Promise<void>;
  orderLoad(props: { connections: number; seconds: number }): Promise<OrderLoadResult>;
  stop(): Promise<void>;
}

export interface OrderLoadResult {
  connections: number;
  seconds: number;
  requests_per_s: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number };
  responses: { '2xx': number; non2xx: number; errors: number; timeouts: number };
}

export async function startReservationTarget(props: {
  /** API pool size (DB_POOL_MAX) */
  pool: number;
  /** when set, orders name only the first N SKUs, each stocked with `hotStock` units */
  hot?: number;
  hotStock?: number;
  /** extra Postgres settings (pg_stat_statements, server log format, …) */
  settings?: Record<string, string>;
  beforeSeed?: (pool: import('pg').Pool) => Promise<void>;
  /** the server's raw output (a statement-log capture records it) */
  onServerOutput?: (chunk: string) => void;
}): Promise<ReservationTarget> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-load-'));
  await chmod(dir, 0o755);
  const dataDir = path.join(dir, 'pg');
  let cluster: EmbeddedCluster | undefined;
  let api: ChildProcess | undefined;
  let base = '';
  const stopApi = async () => {
    const child = api;
    api = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  const stop = async () => {
    await stopApi();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    cluster = await startEmbeddedCluster({ dataDir, port: await freePort(), password: 'load', settings: props.settings ?? {}, onOutput: props.onServerOutput });
    const url = await ensureDatabase(cluster.adminUrl, 'stockwire');
    await prepareBenchDatabase({ url, location: 'BENCH', actor: 'loadcheck', beforeSeed: props.beforeSeed });
    const hot = props.hot ? Math.max(1, Math.min(BENCH_SKUS.length, props.hot)) : 0;
    const skus = hot ? BENCH_SKUS.slice(0, hot) : BENCH_SKUS;
    if (hot) {
      // the hot SKUs hold a limited stock at BENCH: one counting ledger row each brings them to hotStock
      const { pool, close } = openDatabase({ url, max: 1 });
      await pool.query(
        `INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor, note)
         SELECT sku, location, $2::int - on_hand, 0, 'count', 'correction', 'loadcheck', 'hot-SKU stock'
           FROM stock_levels WHERE location = 'BENCH' AND sku = ANY($1)`, [skus, props.hotStock ?? 1000]);
      await close();
    }
    const token = await issueToken({ secret: JWT_SECRET, issuer: 'stockwire', audience: 'stockwire-api' }, { subject: 'loadcheck', roles: ['order-system'] });
    const randomOrder = () => {
      const n = 1 + Math.floor(Math.random() * 3);
      const picked = new Set<string>();
      while (picked.size < n) picked.add(skus[Math.floor(Math.random() * skus.length)]!);
      return JSON.stringify({ location: 'BENCH', lines: [...picked].map((sku) => ({ sku, qty: 1 + Math.floor(Math.random() * 2) })) });
    };
    return {
      url, dataDir, skus, stopApi, stop,
      apiPid: () => api?.pid,
      async startApi(env = {}) {
        await stopApi();
        const port = await freePort();
        // BENCH_API_NODE_ARGS: extra node flags for the API, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it
        const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean);
        api = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'api/server.ts'], {
          cwd: path.resolve(import.meta.dirname, '..'),
          env: {
            ...process.env, DATABASE_URL: url, JWT_SECRET, PII_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`,
            RATE_LIMIT_ENABLED: process.env.RATE_LIMIT_ENABLED ?? 'false', PORT: String(port), LOG_LEVEL: 'warn', DB_POOL_MAX: String(props.pool), ...env,
          },
          stdio: ['ignore', 'inherit', 'inherit'],
        });
        base = `http://127.0.0.1:${port}`;
        if (!(await waitForHttpOk(`${base}/readyz`, 20_000))) throw new Error('the API did not become ready within 20 s');
      },
      async orderLoad({ connections, seconds }) {
        if (!api) throw new Error('start the API first');
        const result = await autocannon({
          url: `${base}/v1/orders`,
          connections,
          duration: seconds,
          requests: [{ method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, setupRequest: (req) => ({ ...req, body: randomOrder() }) }],
        });
        return {
          connections, seconds, requests_per_s: result.requests.average,
          latency_ms: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
          responses: { '2xx': result['2xx'], non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts },
        };
      },
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
