/**
 * npm run loadcheck [-- --connections 64 --seconds 20] [--hot 5 --hot-stock 1000]: a quick load check of
 * the reservation path. With --hot N every order names only N SKUs, each stocked with --hot-stock units, so
 * the load runs into the stock boundary: refusals (409 insufficient_stock) are expected, and afterwards
 * `oversold` — units reserved beyond what is on hand, summed over the hot SKUs — must be 0, as must the
 * ledger's own checks (on hand never negative, reserved never above on hand).
 * Runs against scripts/reservation-target.ts (a private Postgres and the API as a separate process) and
 * prints requests/s, latency percentiles and status counts. A measurement, not a test: it asserts nothing.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { openDatabase } from '../db/connection.ts';
import { startReservationTarget } from './reservation-target.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '64' }, seconds: { type: 'string', default: '20' }, pool: { type: 'string', default: '20' }, json: { type: 'string' },
    hot: { type: 'string' }, 'hot-stock': { type: 'string', default: '1000' },
  },
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const statements = process.env.LOADCHECK_STATEMENTS === '1'; // print the top statements by time (pg_stat_statements)

const target = await startReservationTarget({
  pool: Number(values.pool), hot: values.hot ? Number(values.hot) : undefined, hotStock: Number(values['hot-stock']),
  settings: statements ? { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } : {},
  beforeSeed: statements ? async (pool) => void (await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')) : undefined,
});
try {
  await target.startApi();
  const result = await target.orderLoad({ connections, seconds });
  let oversold: number | undefined;
  if (values.hot) {
    const { pool, close } = openDatabase({ url: target.url, max: 1 });
    const { rows: [check] } = await pool.query<{ oversold: number; negative: number }>(
      `SELECT coalesce(sum(greatest(reserved - on_hand, 0)), 0)::int AS oversold, count(*) FILTER (WHERE on_hand < 0)::int AS negative
         FROM stock_levels WHERE location = 'BENCH' AND sku = ANY($1)`, [target.skus]);
    oversold = check!.oversold + check!.negative;
    await close();
  }
  const l = result.latency_ms;
  process.stdout.write(`\nPOST /v1/orders, ${connections} connections, ${seconds} s, API pool ${values.pool}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'})\n`);
  process.stdout.write(`requests/s: mean ${result.requests_per_s.toFixed(0)}\n`);
  process.stdout.write(`latency ms: p50 ${l.p50}, p90 ${l.p90}, p99 ${l.p99}, max ${l.max}\n`);
  process.stdout.write(`responses: ${JSON.stringify(result.responses)}\n`);
  if (values.hot) process.stdout.write(`hot: ${target.skus.length} SKUs × ${values['hot-stock']} units; oversold ${oversold}\n`);
  if (values.json) {
    await writeFile(values.json, JSON.stringify({
      ...result, pool: Number(values.pool),
      ...(values.hot ? { hot: { skus: target.skus.length, stock: Number(values['hot-stock']), oversold } } : {}),
    }, null, 2));
  }
  if (statements) {
    const stats = openDatabase({ url: target.url, max: 1 });
    const { rows } = await stats.pool.query(`SELECT calls, round(total_exec_time)::int AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15`);
    console.table(rows);
    await stats.close();
  }
} finally {
  await target.stop();
}
