/**
 * npm run bench [-- --quick]: runs the measurements in one go and writes bench/results/latest.json with
 * the keys issue 7 names, so results compare across commits:
 *   reservation.{api_tps,pgbench_tps,ratio,p50_ms,p99_ms} (64 connections; by_connections: 1, 16, 64)
 *                                         scripts/bench-reservation.ts
 *   hot.{tps,p99_ms,oversold}             npm run loadcheck -- --hot 5 (64 connections on 5 SKUs of 1,000 units)
 *   cdc.{reader_eps,recvlogical_eps,js_publish_eps,ratio}, latency.redis-cache.{p50_ms,p99_ms,max_ms},
 *   cdc.slot_lag_bytes_at_peak            npm run bench:cdc
 *   latency.<xlsx-local, google-sheets, excel-graph>.{p50_ms,p99_ms,max_ms} (highest rate ≤ 200/s),
 *   sheets.calls_per_1000 (Google at that rate; per_mirror beside it)  scripts/bench-sheets.ts
 * Not measured yet (null, with the reason in `missing`): the alert and webhook projectors' latencies, RSS per process.
 * --quick (< 3 min): shorter load check, a smaller CDC run and shorter sheet phases.
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

const SHEET_MIRRORS = ['xlsx-local', 'google-sheets', 'excel-graph'] as const;
type SheetRate = { p50_ms: number; p99_ms: number; max_ms: number; calls_per_1000: number | null };

/** bench-sheets.ts' results at its highest rate ≤ 200/s: latency per mirror, write calls per 1,000 changes. */
function sheetSummary(report: { results: Record<string, Record<string, SheetRate>> }) {
  const rates = [...new Set(Object.values(report.results).flatMap((r) => Object.keys(r).map(Number)))];
  const rate = Math.max(...rates.filter((r) => r <= 200));
  const latency: Partial<Record<(typeof SHEET_MIRRORS)[number], { p50_ms: number; p99_ms: number; max_ms: number; rate_per_s: number }>> = {};
  const perMirror: Record<string, number | null> = {};
  for (const m of SHEET_MIRRORS) {
    const r = report.results[m]?.[String(rate)];
    if (!r) continue;
    latency[m] = { p50_ms: r.p50_ms, p99_ms: r.p99_ms, max_ms: r.max_ms, rate_per_s: rate };
    perMirror[m] = r.calls_per_1000;
  }
  return { latency, calls: { calls_per_1000: perMirror['google-sheets'] ?? null, rate_per_s: rate, per_mirror: perMirror } };
}

await runCli('bench', async () => {
  const out = path.join(ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  const reservationFile = path.join(out, 'reservation-latest.json');
  run('bench-reservation.ts', ['--connections', '1,16,64', '--seconds', values.quick ? '5' : '15', '--json', reservationFile]);
  const hotFile = path.join(out, 'loadcheck-hot-latest.json');
  run('load-check.ts', ['--connections', '64', '--seconds', values.quick ? '10' : '20', '--hot', '5', '--hot-stock', '1000', '--json', hotFile]);
  run('bench-cdc.ts', values.quick ? ['--changes', '100000', '--seconds', '10', '--max-seconds', '8'] : []);
  const sheetsFile = path.join(out, 'sheets-latest.json');
  run('bench-sheets.ts', [...(values.quick ? ['--seconds', '10', '--rates', '50,200'] : ['--seconds', '30', '--rates', '50,200,500']), '--json', sheetsFile]);
  const reservation = JSON.parse(await readFile(reservationFile, 'utf8'));
  const at64 = reservation.connections['64'];
  const hotRun = JSON.parse(await readFile(hotFile, 'utf8'));
  const cdc = JSON.parse(await readFile(path.join(out, 'cdc-latest.json'), 'utf8'));
  const sheets = sheetSummary(JSON.parse(await readFile(sheetsFile, 'utf8')));
  const results = {
    at: new Date().toISOString(),
    quick: values.quick,
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memory_gb: Math.round(os.totalmem() / 1024 ** 3) },
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
    },
    latency: {
      'redis-cache': { p50_ms: cdc.e2e.commit_to_visible_ms.p50, p99_ms: cdc.e2e.commit_to_visible_ms.p99, max_ms: cdc.e2e.commit_to_visible_ms.max, rate_per_s: cdc.params.rate },
      ...sheets.latency,
    },
    sheets: sheets.calls,
    missing: {
      'latency.<alerts, webhooks>': 'those projectors do not exist yet (issue 5)',
      'rss_mb.<process>': 'not sampled yet',
    },
  };
  await writeFile(path.join(out, 'latest.json'), JSON.stringify(results, null, 2));
  const rows: [string, unknown][] = [
    ...Object.entries(reservation.connections as Record<string, { api_tps: number; pgbench_tps: number; ratio: number }>).map(([c, r]): [string, unknown] =>
      [`reservation @${c} conn: api_tps / pgbench_tps = ratio`, `${r.api_tps} / ${r.pgbench_tps} = ${r.ratio}`]),
    ['reservation.api_tps', results.reservation.api_tps], ['reservation.pgbench_tps', results.reservation.pgbench_tps], ['reservation.ratio', results.reservation.ratio],
    ['reservation.p99_ms', results.reservation.p99_ms],
    ['reservation.cpu_ms_per_request api/postgres/load', `${at64.cpu_ms_per_request.api_process} / ${at64.cpu_ms_per_request.postgres} / ${at64.cpu_ms_per_request.load_generator}`],
    ['reservation.cpu_ms_per_pgbench_tx postgres/pgbench', `${at64.cpu_ms_per_pgbench_tx.postgres} / ${at64.cpu_ms_per_pgbench_tx.pgbench}`],
    ['hot.tps', results.hot.tps], ['hot.p99_ms', results.hot.p99_ms], ['hot.oversold', results.hot.oversold],
    ['cdc.reader_eps', results.cdc.reader_eps], ['cdc.recvlogical_eps', results.cdc.recvlogical_eps], ['cdc.js_publish_eps', results.cdc.js_publish_eps],
    ['cdc.ratio', results.cdc.ratio], ['cdc.lag_at_peak_ms', results.cdc.lag_at_peak_ms], ['cdc.slot_lag_bytes_at_peak', results.cdc.slot_lag_bytes_at_peak],
    ['latency.redis-cache.p50_ms', results.latency['redis-cache'].p50_ms], ['latency.redis-cache.p99_ms', results.latency['redis-cache'].p99_ms],
    ['latency.redis-cache.max_ms', results.latency['redis-cache'].max_ms],
    ...SHEET_MIRRORS.flatMap((m) => (['p50_ms', 'p99_ms', 'max_ms'] as const).map((k): [string, unknown] => [`latency.${m}.${k}`, sheets.latency[m]?.[k] ?? null])),
    [`sheets.calls_per_1000 (${sheets.calls.rate_per_s}/s)`, results.sheets.calls_per_1000],
    ...SHEET_MIRRORS.map((m): [string, unknown] => [`sheets.calls_per_1000.${m}`, sheets.calls.per_mirror[m]]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\n\nwritten to bench/results/latest.json\n`);
});
