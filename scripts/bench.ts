/**
 * npm run bench [-- --quick]: runs the measurements in one go and writes bench/results/latest.json with
 * the keys issue 7 names, so results compare across commits (methods: docs/benchmarks.md):
 *   reservation.{api_tps,pgbench_tps,ratio,p50_ms,p99_ms} at 64 connections (by_connections: 1, 16, 64),
 *     cpu_ms_per_request / cpu_ms_per_pgbench_tx                      scripts/bench-reservation.ts
 *   hot.{tps,p99_ms,oversold}   64 connections on 5 SKUs of 1,000 units  scripts/load-check.ts --hot 5
 *   cdc.{reader_eps,recvlogical_eps,js_publish_eps,ratio,lag_at_peak_ms}  scripts/bench-cdc.ts
 *   latency.<projector>.{p50_ms,p99_ms,max_ms}, sheets.calls_per_1000, rss_mb.<process>
 *     at 200 orders/s (every rate under e2e.rates)                      scripts/bench-e2e.ts
 * --quick (< 3 min): shorter phases, a smaller CDC run, end to end at 50 and 200/s only.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCli } from '../lib/cli.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });

function run(script: string, args: string[]) {
  process.stderr.write(`\n== ${script} ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', script), ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`${script} exited with ${result.status}`);
}

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8'));
const PROJECTORS = ['redis-cache', 'xlsx-local', 'google-sheets', 'excel-graph', 'alerts', 'webhooks'] as const;
const HEADLINE_RATE = '200';

interface E2eRate {
  latency: Record<string, { p50_ms: number | null; p99_ms: number | null; max_ms: number | null; samples: number }>;
  sheets: { calls_per_1000: { google: number | null; graph: number | null } };
  rss_mb: Record<string, { max: number | null; mean: number | null }>;
  orders: { offered_rate: number; achieved_rate: number; accepted: number };
}

await runCli('bench', async () => {
  const out = path.join(ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  const files = { reservation: 'reservation-latest.json', hot: 'loadcheck-hot-latest.json', cdc: 'cdc-latest.json', e2e: 'e2e-latest.json' };
  const file = (k: keyof typeof files) => path.join(out, files[k]);
  run('bench-reservation.ts', ['--connections', '1,16,64', '--seconds', values.quick ? '4' : '15', '--json', file('reservation')]);
  run('load-check.ts', ['--connections', '64', '--seconds', values.quick ? '5' : '20', '--hot', '5', '--hot-stock', '1000', '--json', file('hot')]);
  run('bench-cdc.ts', values.quick ? ['--changes', '60000', '--seconds', '8', '--max-seconds', '6'] : ['--changes', '200000']);
  run('bench-e2e.ts', [...(values.quick ? ['--rates', '50,200', '--seconds', '8', '--drain', '2000'] : ['--rates', '50,200,500', '--seconds', '30']), '--json', file('e2e')]);

  const reservation = await readJson(file('reservation'));
  const at64 = reservation.connections['64'];
  const hotRun = await readJson(file('hot'));
  const cdc = await readJson(file('cdc'));
  const e2e = await readJson(file('e2e'));
  const headline: E2eRate = e2e.rates[HEADLINE_RATE];
  const results = {
    at: new Date().toISOString(),
    quick: values.quick,
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memory_gb: Math.round(os.totalmem() / 1024 ** 3), load_avg_1m_at_end: os.loadavg()[0] },
    reservation: {
      api_tps: at64.api_tps, pgbench_tps: at64.pgbench_tps, ratio: at64.ratio, p50_ms: at64.api_p50_ms, p99_ms: at64.api_p99_ms,
      cpu_ms_per_request: at64.cpu_ms_per_request, cpu_ms_per_pgbench_tx: at64.cpu_ms_per_pgbench_tx, by_connections: reservation.connections,
    },
    // 64 connections on 5 SKUs of 1,000 units: reservations per second until the stock runs out, then refusals
    hot: {
      tps: Math.round(hotRun.responses['2xx'] / hotRun.seconds), requests_per_s: Math.round(hotRun.requests_per_s), refused: hotRun.responses.non2xx,
      p99_ms: hotRun.latency_ms.p99, oversold: hotRun.hot.oversold,
    },
    cdc: {
      reader_eps: cdc.reader.eps, recvlogical_eps: cdc.recvlogical.eps, js_publish_eps: cdc.js_publish.eps, ratio: cdc.cdc.ratio,
      lag_at_peak_ms: cdc.max_rate.projector_lag_ms_max_sampled, slot_lag_bytes_at_peak: cdc.max_rate.slot_lag_bytes_max, keeps_up: cdc.max_rate.keeps_up,
      reader_cpu_us_per_change: cdc.reader.cpu_s_first_to_last_change?.reader != null ? Math.round((cdc.reader.cpu_s_first_to_last_change.reader * 1e6) / cdc.reader.changes) : null,
    },
    latency: Object.fromEntries(PROJECTORS.map((p) => [p, { ...headline.latency[p], rate_per_s: Number(HEADLINE_RATE) }])),
    sheets: { calls_per_1000: headline.sheets.calls_per_1000.google, per_provider: headline.sheets.calls_per_1000, rate_per_s: Number(HEADLINE_RATE) },
    rss_mb: Object.fromEntries(Object.entries(headline.rss_mb).map(([k, v]) => [k, v.max])),
    e2e: { orders_at_headline: headline.orders, rates: e2e.rates, webhook_drain: e2e.webhook_drain, load_avg_1m: e2e.load_avg_1m },
  };
  await writeFile(path.join(out, 'latest.json'), JSON.stringify(results, null, 2));

  const rows: [string, unknown][] = [
    ...Object.entries(reservation.connections as Record<string, { api_tps: number; pgbench_tps: number; ratio: number }>).map(([c, r]): [string, unknown] =>
      [`reservation @${c} conn: api_tps / pgbench_tps = ratio`, `${r.api_tps} / ${r.pgbench_tps} = ${r.ratio}`]),
    ['reservation.p50_ms / p99_ms', `${results.reservation.p50_ms} / ${results.reservation.p99_ms}`],
    ['reservation cpu ms/request api / postgres / load', `${at64.cpu_ms_per_request.api_process} / ${at64.cpu_ms_per_request.postgres} / ${at64.cpu_ms_per_request.load_generator}`],
    ['reservation cpu ms/pgbench tx postgres / pgbench', `${at64.cpu_ms_per_pgbench_tx.postgres} / ${at64.cpu_ms_per_pgbench_tx.pgbench}`],
    ['hot.tps', results.hot.tps], ['hot.p99_ms', results.hot.p99_ms], ['hot.oversold', results.hot.oversold],
    ['cdc.reader_eps', results.cdc.reader_eps], ['cdc.recvlogical_eps', results.cdc.recvlogical_eps], ['cdc.js_publish_eps', results.cdc.js_publish_eps],
    ['cdc.ratio', results.cdc.ratio], ['cdc.lag_at_peak_ms', results.cdc.lag_at_peak_ms], ['cdc.reader_cpu_us_per_change', results.cdc.reader_cpu_us_per_change],
    ...Object.entries(e2e.rates as Record<string, E2eRate>).flatMap(([rate, r]) => [
      [`e2e @${rate}/s offered: achieved orders/s`, r.orders.achieved_rate] as [string, unknown],
      ...PROJECTORS.map((p): [string, unknown] => [`latency.${p} @${rate}/s p50 / p99 / max ms`, `${r.latency[p]?.p50_ms} / ${r.latency[p]?.p99_ms} / ${r.latency[p]?.max_ms}`]),
      [`sheets.calls_per_1000 @${rate}/s google / graph`, `${r.sheets.calls_per_1000.google} / ${r.sheets.calls_per_1000.graph}`] as [string, unknown],
    ]),
    ['webhook drain deliveries/s (one endpoint)', e2e.webhook_drain?.per_s],
    ...Object.entries(results.rss_mb).map(([k, v]): [string, unknown] => [`rss_mb.${k} (max @${HEADLINE_RATE}/s)`, v]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\n\nwritten to bench/results/latest.json\n`);
});
