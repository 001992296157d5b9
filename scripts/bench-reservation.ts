/**
 * tsx scripts/bench-reservation.ts [--connections 1,16,64] [--seconds 15] [--json FILE]: the reservation
 * path against its database ceiling, measured in one run on this machine. A measurement, not a test.
 *
 * 1. Capture (scripts/reservation-sql-capture.ts): the API runs with one pooled connection while one
 *    client places orders for 2 s with Postgres' statement log on; the log gives the exact statements and
 *    parameters of each request. They become one pgbench script and a table of captured parameters.
 * 2. For each concurrency C, back to back on the same database:
 *    - api: autocannon POST /v1/orders with C connections (random SKUs, 1–3 lines, JWT auth on, rate
 *      limiting off, API pool DB_POOL_MAX=--pool) → api_tps, p50/p99;
 *    - pgbench: the captured statements as prepared statements (-M prepared, like the API's named
 *      prepared statements), C clients, each transaction with the parameters of a random captured
 *      request → pgbench_tps, mean latency.
 *    ratio = api_tps / pgbench_tps: what the API keeps of what the database can do with the same SQL.
 *    Beside it, CPU ms per request from /proc (scripts/process-cpu.ts): the API process, Postgres (all
 *    backends) and the load generator (autocannon runs in this process) during the api phase; Postgres
 *    and pgbench during the pgbench phase. On a 2-core machine every process shares the same cores, so
 *    these explain the ratio: the API phase pays for the API's and autocannon's CPU on top of Postgres'.
 * Differences, both small: pgbench reads each transaction's parameters with one primary-key SELECT the
 * API does not issue (errs for the API); the API's background work (audit sealing of the rows its
 * orders wrote, order expiry) runs during its phase and is not in the script (errs against the API).
 * Output: a table, and JSON (default bench/results/reservation-latest.json); --keep-scripts DIR keeps the
 * generated pgbench script for reading.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runCli } from '../lib/cli.ts';
import { CAPTURE_SETTINGS, createOutputRecorder, mostCommonShape, parseStatementLog, pgbenchWorkload, setStatementLogging, splitRequests, storeWorkload, writeWorkloadScript } from './reservation-sql-capture.ts';
import { postmasterPid, processCpuMs, processTreeCpuMs, reapedChildrenCpuMs } from './process-cpu.ts';
import { startReservationTarget } from './reservation-target.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1,16,64' }, seconds: { type: 'string', default: '15' }, pool: { type: 'string', default: '20' },
    json: { type: 'string', default: path.resolve(import.meta.dirname, '..', 'bench', 'results', 'reservation-latest.json') },
    'keep-scripts': { type: 'string' }, // a directory to keep the generated pgbench script in, for reading
  },
});
const levels = values.connections.split(',').map(Number);
const seconds = Number(values.seconds);

function runPgbench(url: string, script: string, clients: number): { tps: number; latency_ms: number; failed: number; transactions: number } {
  const args = ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)), '-T', String(seconds), '-f', script, url];
  const r = spawnSync('pgbench', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  if (r.status !== 0 || !tps) throw new Error(`pgbench failed (${r.status}):\n${r.stderr.slice(-2000)}\n${r.stdout.slice(-2000)}`);
  const latency = /latency average = ([\d.]+) ms/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  const transactions = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  return { tps: Number(tps[1]), latency_ms: Number(latency?.[1] ?? NaN), failed: Number(failed?.[1] ?? 0), transactions: Number(transactions?.[1] ?? 0) };
}

/** Waits (≤ 5 s) until no session named `application` is left on the server. */
async function backendsGone(url: string, application: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
      const { rows } = await client.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [application]);
      if (rows[0].n === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await client.end();
  }
}

await runCli('bench-reservation', async () => {
  const recorder = createOutputRecorder();
  const target = await startReservationTarget({ pool: Number(values.pool), settings: CAPTURE_SETTINGS, onServerOutput: recorder.onOutput });
  const scriptDir = values['keep-scripts'] ? path.resolve(values['keep-scripts']) : await mkdtemp(path.join(os.tmpdir(), 'stockwire-pgbench-'));
  await mkdir(scriptDir, { recursive: true });
  try {
    const adminUrl = target.url.replace(/\/stockwire$/, '/postgres');
    process.stderr.write('capturing the SQL of POST /v1/orders from the statement log …\n');
    await target.startApi({ DB_POOL_MAX: '1' });
    recorder.start();
    await setStatementLogging(adminUrl, true);
    await target.orderLoad({ connections: 1, seconds: 2 });
    await setStatementLogging(adminUrl, false);
    const sessions = parseStatementLog(recorder.stop(), 'stockwire');
    const captured = [...sessions.values()].flatMap(splitRequests);
    const requests = mostCommonShape(captured);
    if (requests.length < 10) throw new Error(`captured only ${requests.length} complete order requests of one shape`);
    const workload = pgbenchWorkload(requests);
    await storeWorkload(target.url, workload);
    const script = await writeWorkloadScript(scriptDir, workload);
    const statementsPerRequest = requests[0]!.length;
    process.stderr.write(`captured ${captured.length} requests, ${requests.length} of the common shape (${statementsPerRequest} statements, ${workload.columns.length} parameters)\n`);

    await target.startApi();
    const byConnections: Record<string, unknown> = {};
    const postgres = postmasterPid(target.dataDir);
    const perTx = (ms: number, n: number) => Math.round((ms / Math.max(1, n)) * 100) / 100;
    for (const c of levels) {
      process.stderr.write(`api, ${c} connections, ${seconds} s …\n`);
      const apiPid = target.apiPid()!;
      const before = { api: processCpuMs(apiPid), pg: processTreeCpuMs(postgres), load: process.cpuUsage() };
      const api = await target.orderLoad({ connections: c, seconds });
      const answered = api.responses['2xx'] + api.responses.non2xx;
      const loadUsage = process.cpuUsage(before.load);
      const apiCpu = {
        api_process: perTx(processCpuMs(apiPid) - before.api, answered),
        postgres: perTx(processTreeCpuMs(postgres) - before.pg, answered),
        load_generator: perTx((loadUsage.user + loadUsage.system) / 1000, answered),
      };
      process.stderr.write(`pgbench, ${c} clients, ${seconds} s …\n`);
      const pgBefore = { pg: processTreeCpuMs(postgres), client: reapedChildrenCpuMs(process.pid) };
      const base = runPgbench(target.url, script, c);
      await backendsGone(target.url, 'pgbench'); // their CPU is counted once the postmaster reaped them
      const pgbenchCpu = {
        postgres: perTx(processTreeCpuMs(postgres) - pgBefore.pg, base.transactions),
        pgbench: perTx(reapedChildrenCpuMs(process.pid) - pgBefore.client, base.transactions),
      };
      byConnections[c] = {
        api_tps: Math.round(api.requests_per_s), api_p50_ms: api.latency_ms.p50, api_p99_ms: api.latency_ms.p99, api_responses: api.responses,
        pgbench_tps: Math.round(base.tps), pgbench_latency_ms: base.latency_ms, pgbench_failed: base.failed,
        ratio: Math.round((api.requests_per_s / base.tps) * 100) / 100,
        // where the CPU went, ms per request / transaction: explains the ratio on a small machine
        cpu_ms_per_request: apiCpu, cpu_ms_per_pgbench_tx: pgbenchCpu,
      };
    }
    const result = {
      at: new Date().toISOString(), seconds, pool: Number(values.pool), cpus: os.cpus().length,
      captured: { requests: captured.length, common_shape: requests.length, statements_per_request: statementsPerRequest, parameters: workload.columns.length },
      connections: byConnections,
    };
    await mkdir(path.dirname(values.json), { recursive: true });
    await writeFile(values.json, JSON.stringify(result, null, 2));
    console.table(Object.fromEntries(Object.entries(byConnections).map(([c, v]) => {
      const { api_responses: _, cpu_ms_per_request: a, cpu_ms_per_pgbench_tx: b, ...row } = v as Record<string, any>;
      return [`${c} conn`, { ...row, 'cpu api/pg/load': `${a.api_process}/${a.postgres}/${a.load_generator}`, 'cpu pg/pgbench': `${b.postgres}/${b.pgbench}` }];
    })));
    process.stdout.write(`written to ${values.json}\n`);
  } finally {
    if (!values['keep-scripts']) await rm(scriptDir, { recursive: true, force: true });
    await target.stop();
  }
});
