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
import { runCli } from '../lib/cli.ts';
import { CAPTURE_SETTINGS, createOutputRecorder, mostCommonShape, parseStatementLog, pgbenchWorkload, setStatementLogging, splitRequests, storeWorkload, writeWorkloadScript } from './reservation-sql-capture.ts';
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

function runPgbench(url: string, script: string, clients: number): { tps: number; latency_ms: number; failed: number } {
  const args = ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)), '-T', String(seconds), '-f', script, url];
  const r = spawnSync('pgbench', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  if (r.status !== 0 || !tps) throw new Error(`pgbench failed (${r.status}):\n${r.stderr.slice(-2000)}\n${r.stdout.slice(-2000)}`);
  const latency = /latency average = ([\d.]+) ms/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  return { tps: Number(tps[1]), latency_ms: Number(latency?.[1] ?? NaN), failed: Number(failed?.[1] ?? 0) };
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
    for (const c of levels) {
      process.stderr.write(`api, ${c} connections, ${seconds} s …\n`);
      const api = await target.orderLoad({ connections: c, seconds });
      process.stderr.write(`pgbench, ${c} clients, ${seconds} s …\n`);
      const base = runPgbench(target.url, script, c);
      byConnections[c] = {
        api_tps: Math.round(api.requests_per_s), api_p50_ms: api.latency_ms.p50, api_p99_ms: api.latency_ms.p99, api_responses: api.responses,
        pgbench_tps: Math.round(base.tps), pgbench_latency_ms: base.latency_ms, pgbench_failed: base.failed,
        ratio: Math.round((api.requests_per_s / base.tps) * 100) / 100,
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
      const { api_responses: _, ...row } = v as Record<string, unknown>;
      return [`${c} conn`, row];
    })));
    process.stdout.write(`written to ${values.json}\n`);
  } finally {
    if (!values['keep-scripts']) await rm(scriptDir, { recursive: true, force: true });
    await target.stop();
  }
});
