/**
 * tsx scripts/bench-sheets.ts [--rates 50,200] [--seconds 20] [--json FILE]: commit → sheet latency and
 * provider write calls of the three spreadsheet mirrors (xlsx-local, google-sheets, excel-graph), measured
 * in one run on this machine. Prints a table and writes bench/results/sheets-latest.json (or --json FILE).
 * A measurement, not a test: it asserts nothing.
 *
 * Set-up: a private Postgres (embedded, temp dir) prepared like the other benches (demo catalog, BENCH
 * location holding 1,000,000 units of each BENCH_SKUS product), a private nats-server, the API and the
 * cdc reader as child processes, and the three mirrors in this process, each the real engine
 * (createSheetSync, default SHEET_FLUSH_INTERVAL_MS / SHEET_POLL_INTERVAL_MS, Google within the quotas its
 * main.ts sets) on its real adapter, against the test fakes (Google Sheets and Graph as local servers
 * speaking their protocol, the local workbook a real .xlsx file), fed by a ProjectorRuntime under its own
 * durable name. The engine's inbound client talks to the API with a sheet-sync token.
 *
 * Method: each mirror's projection is wrapped; after engine.stage(events) resolved — it resolves only once
 * the rows are written to the sheet — every stock_levels change at BENCH in the batch gets the sample
 * Date.now() − its Postgres commit time (envelope commitTime, same host clock, ms resolution). For each
 * rate, adjustments (one transaction changing one stock row each) are sent open-loop to the API for
 * --seconds; then the bench waits until every mirror has applied one change per accepted adjustment, and
 * reads the write counters (Google / Graph fake: write calls that reached the provider; xlsx: write()
 * calls on the adapter) and the engine's own counters before/after the phase.
 *
 * Caveats: the providers are local fakes answering in microseconds, so the figures are the engine's
 * coalescing and quota pacing, not provider round trips; the three mirrors, the fakes and the load
 * generator share this process' event loop (an .xlsx read + save blocks it for a while).
 *
 * Clean-up (also on SIGINT/SIGTERM): mirrors and fakes stopped, API and cdc stopped by PID (SIGTERM, then
 * SIGKILL), nats-server stopped (its store is in its own temp dir, removed), Postgres stopped, temp dir removed.
 */
import { runAndReport } from './bench-run.ts';
import { onShutdownSignal } from '../lib/shutdown-signals.ts';
import { OAuth2Client } from 'google-auth-library';
import http from 'node:http';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import pino from 'pino';
import { issueToken } from '../api/auth/tokens.ts';
import { messageIdFor, type ChangeEvent } from '../cdc/envelope.ts';
import { ensureDatabase, startEmbeddedCluster } from '../db/cluster.ts';
import { waitForHttpOk } from '../lib/wait-http.ts';
import { createClientCredentialsAuth } from '../projectors/excel-graph/graph-auth.ts';
import { createExcelGraphTarget } from '../projectors/excel-graph/graph-target.ts';
import { createGoogleSheetsTarget } from '../projectors/google-sheets/google-target.ts';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import { createSheetSync, sheetSyncConfig, type Quotas } from '../projectors/sheet-sync/sheet-projector.ts';
import type { SheetTarget } from '../projectors/sheet-sync/sheet-target.ts';
import type { SheetSyncCounters, SheetSyncEngine } from '../projectors/sheet-sync/sync-engine.ts';
import { createXlsxTarget } from '../projectors/xlsx-local/xlsx-target.ts';
import { startGraphFake } from '../test/fakes/graph-fake.ts';
import { startSheetsFake } from '../test/fakes/sheets-fake.ts';
import { freePort } from '../test/free-port.ts';
import { killAll, startNodeProcess, startPrivateNats, stopProcess, until, type ManagedProcess } from '../test/pipeline-harness.ts';
import { BENCH_SKUS, prepareBenchDatabase } from './bench-fixtures.ts';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '50,200' },
    seconds: { type: 'string', default: '20' },
    json: { type: 'string' },
    warmup: { type: 'string', default: '40' },
  },
});
const RATES = values.rates.split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
if (!RATES.length || !(SECONDS > 0)) throw new Error('usage: tsx scripts/bench-sheets.ts [--rates 50,200] [--seconds 20] [--json FILE]');
const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = values.json ? path.resolve(values.json) : path.join(ROOT, 'bench', 'results', 'sheets-latest.json');
const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const LOCATION = 'BENCH';
const MIRRORS = ['xlsx-local', 'google-sheets', 'excel-graph'] as const;
type MirrorKind = (typeof MIRRORS)[number];
// the engine defaults (what a mirror runs with when SHEET_* is unset), and Google's budget from its main.ts
const ENGINE_DEFAULTS = sheetSyncConfig.pick({ SHEET_FLUSH_INTERVAL_MS: true, SHEET_POLL_INTERVAL_MS: true }).parse({});
const GOOGLE_QUOTAS: Quotas = { writesPerMinute: 55, readsPerMinute: 55 };

const say = (line: string) => process.stderr.write(`[bench-sheets] ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- clean-up of everything we start
const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
let cleaning: Promise<void> | undefined;
const onCleanup = (name: string, run: () => Promise<unknown>) => cleanups.push({ name, run });
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.splice(0).reverse()) {
      await c.run().catch((err: Error) => say(`clean-up ${c.name}: ${err.message}`));
    }
  })();
  return cleaning;
}
// a crash must not orphan children (child.kill runs synchronously inside killAll)
process.on('exit', () => void killAll());
onShutdownSignal((sig) => {
  say(`${sig}: cleaning up`);
  void cleanup().finally(() => process.exit(130));
});


// ---------------------------------------------------------------- statistics
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

// ---------------------------------------------------------------- the mirrors
interface Phase {
  name: string;
  startedAt: number;
}

interface BenchMirror {
  kind: MirrorKind;
  engine: SheetSyncEngine;
  runtime: ProjectorRuntime;
  /** write calls that reached the provider (fake counter; adapter write() calls for the workbook) */
  writeCalls(): number;
  calls: CallStats;
  /** commit → in the sheet (ms) of each BENCH stock_levels change applied, by phase */
  samples: Map<string, number[]>;
  stop(): Promise<void>;
}

let phase: Phase | undefined;

/** Starts one mirror on `target` with its own durable, recording a latency sample per applied stock change. */
async function startBenchMirror(props: {
  kind: MirrorKind; target: SheetTarget; writeCalls?: () => number; quotas?: Quotas;
  databaseUrl: string; apiUrl: string; token: string; nc: NatsConnection; stream: string; prefix: string;
}): Promise<BenchMirror> {
  const name = `bench_sheets_${props.kind.replace('-', '_')}_${RUN}`;
  const log = pino({ level: 'warn', base: { mirror: props.kind } }, pino.destination(2));
  const calls = instrument(props.target);
  const pool = new pg.Pool({ connectionString: props.databaseUrl, max: 1 });
  const engine = await createSheetSync({
    name, target: props.target, pool, quotas: props.quotas, log,
    config: { DATABASE_URL: props.databaseUrl, STOCKWIRE_API_URL: props.apiUrl, SHEET_SYNC_TOKEN: props.token, ...ENGINE_DEFAULTS },
  }).finally(() => pool.end());
  const samples = new Map<string, number[]>();
  const seen = new Set<string>(); // message ids: a redelivered change is not a second sample
  const runtime = new ProjectorRuntime({
    nc: props.nc, stream: props.stream, subjectPrefix: props.prefix, name, log,
    // the pipelined form, as in production (the runtime stages the next batch while one is written)
    projection: {
      apply: (events: ChangeEvent[]) => record(events, engine.apply(events)),
      stage: (events: ChangeEvent[]) => record(events, engine.stage(events)),
    },
  });
  async function record(events: ChangeEvent[], written: Promise<void>) {
    await written;
    const now = Date.now();
    const p = phase;
    if (!p) return;
    for (const e of events) {
      if (e.table !== 'stock_levels' || (e.after ?? e.before)?.location !== LOCATION) continue;
      const commit = Date.parse(e.source.commitTime);
      const id = messageIdFor(e.source);
      if (commit < p.startedAt - 1 || seen.has(id)) continue; // (commit times are whole ms)
      seen.add(id);
      const list = samples.get(p.name) ?? [];
      list.push(now - commit);
      samples.set(p.name, list);
    }
  }
  let stopped = false;
  // the runtime's owner restarts it with a pause, as projector-process does
  const running = (async () => {
    while (!stopped) {
      await runtime.run().catch((err: Error) => { if (!stopped) say(`${props.kind} runtime ended: ${err.message}; restarting`); });
      if (!stopped) await sleep(200);
    }
  })();
  return {
    kind: props.kind, engine, runtime, writeCalls: props.writeCalls ?? (() => calls.writes), calls, samples,
    async stop() {
      stopped = true;
      await engine.stop();
      await runtime.stop();
      await running;
      await props.target.close();
    },
  };
}

/** Adapter calls as the engine sees them: how many write() calls, and the slowest read() and write(). */
interface CallStats { writes: number; slowestWriteMs: number; slowestReadMs: number }

/** Wraps `target` so its write() calls are counted and its read() and write() calls timed. */
function instrument(target: SheetTarget): CallStats {
  const stats: CallStats = { writes: 0, slowestWriteMs: 0, slowestReadMs: 0 };
  const write = target.write.bind(target);
  const read = target.read.bind(target);
  target.write = async (ranges, notes) => {
    const t = performance.now();
    await write(ranges, notes);
    stats.writes += 1;
    stats.slowestWriteMs = Math.max(stats.slowestWriteMs, performance.now() - t);
  };
  target.read = async (tabs) => {
    const t = performance.now();
    const grid = await read(tabs);
    stats.slowestReadMs = Math.max(stats.slowestReadMs, performance.now() - t);
    return grid;
  };
  return stats;
}

// ---------------------------------------------------------------- load
interface SendResult { offered_rate: number; sent: number; ok: number; failed: Record<string, number>; achieved_rate: number; send_lateness_p99_ms: number }

/** Sends adjustments open-loop at `rate`/s for `seconds` (or `count` of them), returns when all answered. */
async function sendAdjustments(props: { base: string; token: string; agent: http.Agent; rate: number; seconds: number; count?: number }): Promise<SendResult> {
  const total = props.count ?? Math.round(props.rate * props.seconds);
  const headers = { authorization: `Bearer ${props.token}`, 'content-type': 'application/json' };
  const post = (body: string) => new Promise<number>((resolve) => {
    const req = http.request(`${props.base}/v1/adjustments`, { method: 'POST', agent: props.agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
  const statuses: Promise<number>[] = [];
  const lateness: number[] = [];
  const t0 = performance.now() + 5;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / props.rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait - 0.5);
    lateness.push(Math.max(0, performance.now() - due));
    const sku = BENCH_SKUS[Math.floor(Math.random() * BENCH_SKUS.length)]!;
    statuses.push(post(JSON.stringify({ sku, location: LOCATION, delta: Math.random() < 0.5 ? -1 : 1, reason: 'correction' })));
  }
  const sendMs = performance.now() - t0;
  const codes = await Promise.all(statuses);
  const failed: Record<string, number> = {};
  for (const c of codes) if (c !== 200) failed[c] = (failed[c] ?? 0) + 1;
  return {
    offered_rate: props.rate, sent: total, ok: codes.filter((c) => c === 200).length, failed,
    achieved_rate: Math.round((total / sendMs) * 1000 * 10) / 10, send_lateness_p99_ms: Math.round(summary(lateness).p99 * 10) / 10,
  };
}

// ================================================================= main
const results: Record<string, Record<string, Record<string, unknown>>> = {};
const sends: Record<string, SendResult> = {};
const loadAvg: Record<string, number> = {};
const noteLoad = (at: string) => { loadAvg[at] = Math.round(os.loadavg()[0]! * 100) / 100; };
let machine: Record<string, unknown> = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', memory_gb: Math.round(os.totalmem() / 2 ** 30), node: process.version };
const params = { rates: RATES, seconds: SECONDS, warmup: WARMUP, flush_interval_ms: ENGINE_DEFAULTS.SHEET_FLUSH_INTERVAL_MS, poll_interval_ms: ENGINE_DEFAULTS.SHEET_POLL_INTERVAL_MS, google_quotas: GOOGLE_QUOTAS, run: RUN };

async function main() {
  noteLoad('start');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-bench-sheets-'));
  await chmod(dir, 0o755);
  onCleanup('temp dir', () => rm(dir, { recursive: true, force: true }));
  say(`run ${RUN}; temp dir ${dir}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'})`);

  // ---------------------------------------------------------------- Postgres, NATS
  const cluster = await startEmbeddedCluster({ dataDir: path.join(dir, 'pg'), port: await freePort(), password: 'bench' });
  onCleanup('postgres', () => cluster.stop());
  const url = await ensureDatabase(cluster.adminUrl, 'stockwire');
  await prepareBenchDatabase({ url, location: LOCATION, actor: 'bench-sheets' });
  const nats = await startPrivateNats();
  onCleanup('nats-server', () => nats.destroy());
  process.on('exit', () => void nats.stop());
  const nc = await connect({ servers: nats.url, name: `stockwire-bench-sheets-${process.pid}`, maxReconnectAttempts: -1 });
  onCleanup('nats connection', () => nc.close());
  const sqlPool = new pg.Pool({ connectionString: url, max: 1 });
  onCleanup('sql pool', () => sqlPool.end());
  machine = { ...machine, postgres: (await sqlPool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v, nats: nc.info?.version ?? 'unknown' };

  // ---------------------------------------------------------------- cdc reader and API (children)
  const stream = `BENCH_SHEETS_${RUN}`.toUpperCase();
  const prefix = `bsh${RUN}`;
  const slot = `bench_sheets_${RUN}`;
  const cdc = startNodeProcess('cdc/main.ts', {
    DATABASE_URL: url, NATS_URL: nats.url, CDC_SLOT: slot, CDC_PUBLICATION: 'stockwire', CDC_STREAM: stream, CDC_SUBJECT_PREFIX: prefix, CDC_PROBE_PORT: '0', LOG_LEVEL: 'warn',
  });
  onCleanup('cdc', () => stopProcess(cdc));
  const secret = `bench-sheets-secret-${RUN}-${'x'.repeat(16)}`;
  const apiPort = await freePort();
  const api = startNodeProcess('api/server.ts', {
    DATABASE_URL: url, JWT_SECRET: secret, PII_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`, RATE_LIMIT_ENABLED: process.env.RATE_LIMIT_ENABLED ?? 'false', PORT: String(apiPort), LOG_LEVEL: 'warn',
    REDIS_URL: '', NATS_URL: nats.url, CDC_SLOT: slot, CDC_STREAM: stream,
  });
  onCleanup('api', () => stopProcess(api));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  if (!(await waitForHttpOk(`${apiUrl}/readyz`, 30_000))) throw new Error(`the API did not become ready within 30 s:\n${api.output().slice(-2000)}`);
  const tokenSettings = { secret, issuer: 'stockwire', audience: 'stockwire-api' };
  const adminToken = await issueToken(tokenSettings, { subject: 'bench-sheets', roles: ['admin'] });
  const sheetToken = await issueToken(tokenSettings, { subject: 'bench-sheets-sync', roles: ['sheet-sync'] });
  const jsm = await jetstreamManager(nc);
  await until('the cdc stream', async () => {
    if (cdc.child.exitCode !== null) throw new Error(`cdc exited:\n${cdc.output().slice(-2000)}`);
    return (await jsm.streams.info(stream).catch(() => undefined)) ? true : undefined;
  }, 30_000, 100);

  // ---------------------------------------------------------------- the three mirrors, in this process
  // (the fakes are closed after the mirrors: clean-up runs in reverse)
  const sheetsFake = await startSheetsFake();
  onCleanup('sheets fake', () => sheetsFake.close());
  const graphFake = await startGraphFake();
  onCleanup('graph fake', () => graphFake.close());
  const common = { databaseUrl: url, apiUrl, token: sheetToken, nc, stream, prefix };
  const mirrors: BenchMirror[] = [];
  onCleanup('mirrors', () => Promise.all(mirrors.map((m) => m.stop())));
  {
    const xlsxDir = path.join(dir, 'xlsx');
    await mkdir(xlsxDir);
    mirrors.push(await startBenchMirror({ ...common, kind: 'xlsx-local', target: createXlsxTarget({ path: path.join(xlsxDir, 'inventory.xlsx') }) }));
  }
  {
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: 'bench-token', expiry_date: Date.now() + 12 * 3600_000 });
    const target = createGoogleSheetsTarget({ spreadsheetId: sheetsFake.spreadsheetId, auth, rootUrl: sheetsFake.url });
    mirrors.push(await startBenchMirror({ ...common, kind: 'google-sheets', target, writeCalls: () => sheetsFake.writeCalls, quotas: GOOGLE_QUOTAS }));
  }
  {
    const auth = createClientCredentialsAuth({ tenantId: 'tenant-1', clientId: 'client-1', clientSecret: 'secret-1', authorityHost: graphFake.authorityHost });
    const target = createExcelGraphTarget({ driveId: 'drive-1', itemId: 'item-1', auth, baseUrl: graphFake.baseUrl });
    mirrors.push(await startBenchMirror({ ...common, kind: 'excel-graph', target, writeCalls: () => graphFake.writeCalls }));
  }
  say(`mirrors started: ${mirrors.map((m) => m.kind).join(', ')} (flush ${ENGINE_DEFAULTS.SHEET_FLUSH_INTERVAL_MS} ms, poll ${ENGINE_DEFAULTS.SHEET_POLL_INTERVAL_MS} ms)`);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  onCleanup('http agent', async () => agent.destroy());
  const guard = () => {
    if (cdc.child.exitCode !== null) throw new Error(`cdc exited:\n${cdc.output().slice(-2000)}`);
    if (api.child.exitCode !== null) throw new Error(`api exited:\n${api.output().slice(-2000)}`);
  };
  /** Runs one phase: load, then waits until every mirror applied one change per accepted adjustment. */
  async function runPhase(name: string, load: () => Promise<SendResult>) {
    const before = mirrors.map((m) => ({ calls: m.writeCalls(), counters: { ...m.engine.counters } }));
    for (const m of mirrors) Object.assign(m.calls, { slowestWriteMs: 0, slowestReadMs: 0 });
    phase = { name, startedAt: Date.now() };
    const sent = await load();
    const loadEnded = Date.now();
    await until(`every mirror to apply the ${sent.ok} changes of ${name}`, async () => {
      guard();
      return mirrors.every((m) => (m.samples.get(name)?.length ?? 0) >= sent.ok) ? true : undefined;
    }, 120_000, 20).catch((err: Error) => {
      say(`${err.message}: ${mirrors.map((m) => `${m.kind} ${m.samples.get(name)?.length ?? 0}`).join(', ')}`);
    });
    const drainMs = Date.now() - loadEnded;
    phase = undefined;
    return { sent, drainMs, before };
  }

  // warm-up: connections, prepared statements, JIT and the first layout writes out of the way
  say(`warm-up: ${WARMUP} adjustments`);
  await runPhase('warmup', () => sendAdjustments({ base: apiUrl, token: adminToken, agent, rate: 20, seconds: WARMUP / 20 }));

  for (const rate of RATES) {
    noteLoad(`before_${rate}`);
    say(`${rate} changes/s for ${SECONDS} s`);
    const { sent, drainMs, before } = await runPhase(String(rate), () => sendAdjustments({ base: apiUrl, token: adminToken, agent, rate, seconds: SECONDS }));
    sends[rate] = sent;
    say(`sent ${sent.sent} (${sent.ok} ok, ${sent.achieved_rate}/s achieved); all mirrors done ${drainMs} ms after the last answer`);
    mirrors.forEach((m, i) => {
      const s = summary(m.samples.get(String(rate)) ?? []);
      const calls = m.writeCalls() - before[i]!.calls;
      const counters = Object.fromEntries(Object.entries(m.engine.counters).map(([k, v]) => [k, v - before[i]!.counters[k as keyof SheetSyncCounters]]));
      (results[m.kind] ??= {})[String(rate)] = {
        p50_ms: s.p50, p99_ms: s.p99, max_ms: s.max, samples: s.n, write_calls: calls,
        calls_per_1000: sent.ok ? Math.round((calls / sent.ok) * 1000 * 10) / 10 : null,
        changes: sent.ok, engine: counters,
        slowest_write_ms: Math.round(m.calls.slowestWriteMs), slowest_read_ms: Math.round(m.calls.slowestReadMs),
      };
      say(`  ${m.kind}: n=${s.n} p50 ${s.p50} p99 ${s.p99} max ${s.max} ms; ${calls} write calls`);
    });
  }
  noteLoad('end');
}

function printTable() {
  const header = ['mirror', 'rate/s', 'sent', 'samples', 'p50 ms', 'p99 ms', 'max ms', 'write calls', 'calls/1000', 'engine writes', 'rows written', 'reads', 'retries', 'slowest write/read ms'];
  const rows: string[][] = [];
  for (const kind of MIRRORS) {
    for (const [rate, r] of Object.entries(results[kind] ?? {})) {
      const e = r.engine as SheetSyncCounters;
      const s = sends[rate];
      rows.push([kind, rate, s ? `${s.ok} (${s.achieved_rate}/s)` : '', ...[r.samples, r.p50_ms, r.p99_ms, r.max_ms, r.write_calls, r.calls_per_1000, e.writeCalls, e.rowsWritten, e.readCalls, e.providerRetries].map(String), `${r.slowest_write_ms} / ${r.slowest_read_ms}`]);
    }
  }
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  const m = machine as { cpus: number; cpu: string; postgres?: string; nats?: string; node: string };
  process.stdout.write(`\nSheet mirrors bench: ${m.cpus} cores (${m.cpu}), Postgres ${m.postgres ?? '?'}, nats-server ${m.nats ?? '?'}, Node ${m.node}\n`);
  process.stdout.write(`commit → in the sheet; flush ${params.flush_interval_ms} ms, poll ${params.poll_interval_ms} ms, Google ${GOOGLE_QUOTAS.writesPerMinute} writes/min; providers are local fakes\n`);
  process.stdout.write(`1-min load average: ${Object.entries(loadAvg).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
  process.stdout.write(`${line(header)}\n${line(w.map((n) => '-'.repeat(n)))}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
  const lateness = Object.entries(sends).map(([rate, s]) => `${rate}/s p99 ${s.send_lateness_p99_ms} ms${Object.keys(s.failed).length ? `, failed ${JSON.stringify(s.failed)}` : ''}`);
  if (lateness.length) process.stdout.write(`send lateness (open-loop schedule): ${lateness.join('; ')}\n`);
}

await runAndReport({
  main, say, printTable, out: OUT,
  result: () => ({ machine, params, results, sends, load_avg_1m: loadAvg }),
  cleanup: async () => {
    await cleanup();
    await killAll(); // anything left (should be none)
  },
});
