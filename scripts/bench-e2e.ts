/**
 * tsx scripts/bench-e2e.ts [--rates 50,200,500] [--seconds 30] [--json FILE]: commit → applied latency of
 * every projector at fixed order rates, the sheet providers' write calls per 1,000 changes, and the memory
 * of every process, measured in one run on this machine. Prints a table and writes
 * bench/results/e2e-latest.json (or --json FILE). A measurement, not a test: it asserts nothing.
 *
 * Set-up: a private Postgres (embedded, temp dir) prepared like the other benches (demo catalog, a BENCH
 * location holding 1,000,000 units of each BENCH_SKUS product) plus ten alert SKUs (reorder point 20,
 * 25 units at BENCH); a private nats-server; Redis at --redis-url under a per-run key prefix. Child
 * processes, each the real entry point: the API, the cdc reader, and every projector — redis-cache,
 * xlsx-local (a workbook in the temp dir), google-sheets (against the Sheets fake), excel-graph (against
 * the Graph fake), alerts (Slack channel → the Slack fake), webhooks (delivering to a receiver registered
 * through the API). The three provider fakes run in this process; the webhook receiver and the workbook
 * reader run in children of their own (scripts/bench-e2e-sinks.ts, one each), so their timestamps are
 * not held back by this process' load generator, nor a webhook's answer by exceljs parsing a workbook.
 * google-sheets signs in with OAuth refresh-token credentials against a local token endpoint
 * (GOOGLE_TOKEN_URL) in this process.
 *
 * Load, per rate: orders sent open-loop through the API (node:http keep-alive; one line, qty 1, a random
 * BENCH_SKUS product; --confirm of the accepted ones are confirmed at once), and beside them an alert
 * driver making --alert-rate threshold crossings a second: on the alert SKUs in turn, an order of 10
 * (25 → 15 available: below the reorder point) and then its cancel (15 → 25: recovered, ≥ 20 + margin 2).
 * Each op waits for that SKU's previous one (a slot is skipped when it has not answered), so every change
 * of an alert SKU is a crossing and raises exactly one Slack message. An order slot is not sent (and
 * counted) while --max-in-flight orders await their answer: past that the API is saturated and an
 * open-loop sender would only grow its queue. Whether the API kept the rate shows in the commit span (first
 * to last commit of the phase's changes) and the answer times. A warm-up phase (--warmup-seconds at
 * 50/s) runs first and is not reported. --via sql writes the same stock changes straight into the
 * ledger instead (one row taking a unit per order slot, ±10 on the alert SKUs; no order rows, no
 * confirms), for the projectors' figures at a rate the API cannot carry on the machine.
 *
 * Method. After the load the bench waits until the reader confirmed the WAL flushed at its end, then
 * reads the phase's changes back from the CDC stream: every stock_levels change at BENCH (sku, version,
 * Postgres commit time from the envelope, same host clock, ms resolution) is one sample per projector,
 * and "applied" means the first moment the projection was seen holding that row at that version or a
 * later one (versions only grow, and a later version includes the earlier change):
 * - redis-cache: the `version` field of the BENCH hashes, read for all keys with one Lua call every
 *   --poll-ms (10: a tighter poll takes CPU from the processes measured); the reply time, so an upper
 *   bound, resolution one poll period (the achieved period is reported);
 * - google-sheets / excel-graph: the fakes' onWrite hook reads the BENCH tab's hidden version column right
 *   after each write call that changed the sheet (the moment the provider would have it);
 * - xlsx-local: the workbook reader watches the file's directory (fs.watch, plus a 100 ms stat poll) and
 *   copies the file into memory after each save; the copy's time is the observation (an upper bound: the
 *   content was on disk by then, late by the notification delay and the read), the copies are parsed
 *   with exceljs afterwards, so a slow parse does not delay the next observation;
 * - alerts: the Slack fake's receipt time of the n-th message about an alert SKU − commit time of that
 *   SKU's n-th crossing change (one message per crossing, in order per subject);
 * - webhooks: one endpoint subscribed to stock.changed; receipt time at the receiver (which checks each
 *   Standard Webhooks signature itself, and counts duplicates and out-of-order ids) − commit time of the
 *   change named by the payload's event_id; the outbox rows split it into commit → queued (fan-out) and
 *   queued → delivered (worker).
 * Sheets / Graph write calls: the fakes' counters of write calls that changed the sheet, from the phase's
 * start until every projector showed the phase's last change, per 1,000 stock_levels changes at BENCH
 * (what the sheets display). RSS: VmRSS of each child from /proc/PID/status every --rss-ms (max and mean
 * over the phase, MB); Postgres is many processes sharing memory, so its figure is the sum of their PSS
 * (/proc/PID/smaps_rollup) instead. CPU: utime + stime from /proc/PID/stat over the load, as % of one
 * core (where the machine's time goes). After the rate phases a webhook drain: --drain deliveries are put
 * in the outbox in one statement and the worker's sustained rate to the one endpoint is taken from the
 * receiver's first and last receipt.
 *
 * JSON: per rate under rates.<rate>: latency.<projector>.{p50_ms,p99_ms,max_ms,samples,missing},
 * sheets.calls_per_1000.{google,graph}, rss_mb.<process>.{max,mean}, cpu_pct.<process>,
 * orders.{offered,sent,accepted,failed}, changes.commit_span_s; webhook_drain.per_s; load_avg_1m.
 *
 * Caveats: the providers are local fakes answering in microseconds (Google's figures are its quota
 * pacing, 55 writes/min, and the engine's 800 ms flush interval, not Google's round trips); every process
 * shares this machine's cores (2 here) with Postgres, NATS, Redis and the load generator, and the
 * machine may be shared with other work: the 1-minute load average is recorded beside each phase, and
 * figures at a rate the machine cannot carry measure queueing, not the projectors. With every process
 * here, 2 cores carry about 100 orders/s through the API (its commit span says so); --via sql takes the
 * API out. Webhooks keep per-endpoint order with one request in flight, so one endpoint gets one round
 * trip per delivery; on an oversubscribed machine each round trip waits for the worker and the receiver
 * to be scheduled (measured here at 200 changes/s: ≈10 ms median from an answer to the next request),
 * and the queue grows at rates the same worker sustains on an idle machine (the drain). Commit
 * timestamps are whole milliseconds.
 *
 * Clean-up (also on SIGINT/SIGTERM): children stopped by PID (SIGTERM, then SIGKILL), the fakes closed,
 * Redis keys with our prefix deleted, nats-server stopped and its store removed, Postgres stopped, temp dir
 * removed. Children also stop by themselves when this process dies (STOCKWIRE_PARENT_PID).
 */
import { runAndReport } from './bench-run.ts';
import { preciseNow } from './bench-clock.ts';
import { onShutdownSignal } from '../lib/shutdown-signals.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { issueToken } from '../api/auth/tokens.ts';
import { messageIdFor, positionSubject, type ChangeEvent, type StreamMessage } from '../cdc/envelope.ts';
import { ensureDatabase, startEmbeddedCluster } from '../db/cluster.ts';
import { waitForHttpOk } from '../lib/wait-http.ts';
import { stockKey } from '../projectors/redis-cache/stock-cache.ts';
import { STOCK } from '../projectors/sheet-sync/layout.ts';
import { startGraphFake } from '../test/fakes/graph-fake.ts';
import { startSheetsFake } from '../test/fakes/sheets-fake.ts';
import { startSlackFake } from '../test/fakes/slack-fake.ts';
import { freePort } from '../test/free-port.ts';
import { killAll, startNodeProcess, startPrivateNats, stopProcess, type ManagedProcess } from '../test/pipeline-harness.ts';
import { BENCH_SKUS, prepareBenchDatabase } from './bench-fixtures.ts';
import type { FromSinks, Receipt, SinkStats, ToSinks } from './bench-e2e-sinks.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const LOCATION = 'BENCH';
const ALERT_SKUS = Array.from({ length: 10 }, (_, i) => `E2E-ALERT-${String(i).padStart(2, '0')}`);
const ALERT_REORDER_POINT = 20;
const ALERT_STOCK = 25;
const ALERT_QTY = 10; // 25 → 15 crosses below 20; 15 → 25 is back above 20 + the default margin of 2
const PROJECTORS = ['redis-cache', 'xlsx-local', 'google-sheets', 'excel-graph', 'alerts', 'webhooks'] as const;
type ProjectorName = (typeof PROJECTORS)[number];
const DRAIN_PREFIX = 'drain-';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, digits = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : null);

// ================================================================= the bench
async function runBench(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rates: { type: 'string', default: '50,200,500' },
      seconds: { type: 'string', default: '30' },
      json: { type: 'string' },
      confirm: { type: 'string', default: '0.2' },
      'alert-rate': { type: 'string', default: '10' },
      'poll-ms': { type: 'string', default: '10' },
      'rss-ms': { type: 'string', default: '500' },
      drain: { type: 'string', default: '5000' },
      'warmup-seconds': { type: 'string', default: '5' },
      'webhook-types': { type: 'string', default: 'stock.changed' },
      'max-in-flight': { type: 'string', default: '2000' },
      via: { type: 'string', default: 'api' },
      'redis-url': { type: 'string', default: process.env.REDIS_URL || 'redis://127.0.0.1:6379' },
    },
  });
  const RATES = values.rates.split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0);
  const SECONDS = Number(values.seconds);
  const CONFIRM = Number(values.confirm);
  const ALERT_RATE = Number(values['alert-rate']);
  const POLL_MS = Number(values['poll-ms']);
  const RSS_MS = Number(values['rss-ms']);
  const DRAIN = Number(values.drain);
  const WARMUP_SECONDS = Number(values['warmup-seconds']);
  const MAX_IN_FLIGHT = Number(values['max-in-flight']);
  const VIA = values.via;
  const WEBHOOK_TYPES = values['webhook-types'].split(',').map((s) => s.trim()).filter(Boolean);
  if (!RATES.length || !(SECONDS > 0) || !(CONFIRM >= 0 && CONFIRM <= 1) || !(ALERT_RATE >= 0) || !['api', 'sql'].includes(VIA)) {
    throw new Error('usage: tsx scripts/bench-e2e.ts [--rates 50,200,500] [--seconds 30] [--json FILE] [--confirm 0.2] [--alert-rate 10] [--drain 5000] [--via api|sql]');
  }
  const OUT = values.json ? path.resolve(values.json) : path.join(ROOT, 'bench', 'results', 'e2e-latest.json');
  const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const REDIS_PREFIX = `bench-e2e:${RUN}:`;
  const began = Date.now();
  const say = (line: string) => process.stderr.write(`[bench-e2e ${((Date.now() - began) / 1000).toFixed(1)}s] ${line}\n`);
  const now = preciseNow; // epoch ms, sub-ms resolution, aligned with the wall clock

  // -------------------------------------------------------------- clean-up of everything we start
  const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
  let cleaning: Promise<void> | undefined;
  const onCleanup = (name: string, run: () => Promise<unknown>) => cleanups.push({ name, run });
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const c of cleanups.splice(0).reverse()) await c.run().catch((err: Error) => say(`clean-up ${c.name}: ${err.message}`));
    })();
    return cleaning;
  };
  const extraChildren = new Set<ChildProcess>();
  process.on('exit', () => {
    void killAll();
    for (const c of extraChildren) c.kill('SIGKILL');
  });
  process.on('unhandledRejection', (err) => { if (!cleaning) say(`unhandled rejection: ${(err as Error)?.stack ?? err}`); });
  onShutdownSignal((sig) => {
    say(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
  async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false> | T | undefined | false, everyMs = 50): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (cleaning) throw new Error(`interrupted while waiting for ${what}`);
      guard();
      const v = await Promise.resolve().then(probe).catch(() => undefined);
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(everyMs);
    }
  }

  // -------------------------------------------------------------- results
  const loadAvg: Record<string, number> = {};
  const noteLoad = (at: string) => { loadAvg[at] = round(os.loadavg()[0]!, 2)!; };
  let machine: Record<string, unknown> = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', memory_gb: Math.round(os.totalmem() / 2 ** 30), node: process.version };
  const params = {
    rates: RATES, seconds: SECONDS, confirm_share: CONFIRM, alert_crossings_per_s: ALERT_RATE, alert_skus: ALERT_SKUS.length, redis_poll_ms: POLL_MS,
    rss_sample_ms: RSS_MS, max_orders_in_flight: MAX_IN_FLIGHT, via: VIA, webhook_event_types: WEBHOOK_TYPES, webhook_drain_deliveries: DRAIN, warmup_seconds: WARMUP_SECONDS, run: RUN,
  };
  const rateResults: Record<string, RateResult> = {};
  let drainResult: Record<string, unknown> | undefined;
  const children = new Map<string, ManagedProcess>();
  let guard: () => void = () => {};

  interface LatencyFigures { p50_ms: number | null; p99_ms: number | null; max_ms: number | null; samples: number; missing: number; caught_up_after_load_ms: number | null }
  interface RateResult {
    orders: {
      offered_rate: number; offered: number; sent: number; not_sent_in_flight_cap: number; accepted: number; failed: Record<string, number>; achieved_rate: number | null; send_lateness_p99_ms: number | null;
      answer_ms: { p50: number | null; p99: number | null; max: number | null };
    };
    confirms: { sent: number; accepted: number };
    alert_driver: { ops_sent: number; accepted: number; skipped_slots: number; answer_ms: { p50: number | null; p99: number | null } };
    /** commit_span_s: first to last commit of the phase's stock changes (≈ seconds when the API kept up) */
    changes: { cdc_total: number; stock_levels_at_bench: number; alert_crossings: number; commit_span_s: number | null; stock_changes_per_s: number | null };
    latency: Record<ProjectorName, LatencyFigures>;
    sheets: {
      calls_per_1000: { google: number | null; graph: number | null };
      write_calls: { google: number; graph: number; xlsx_saves_observed: number };
      changes: number;
      google_writes_per_min: number | null;
    };
    webhooks: {
      delivered: number; duplicates: number; out_of_order: number; bad_signatures: number;
      /** from the outbox: commit → row queued by the fan-out (created_at), queued → marked delivered */
      stages_ms: { commit_to_queued: { p50: number | null; p99: number | null }; queued_to_delivered: { p50: number | null; p99: number | null } } | null;
    };
    alerts: { messages: number; unmatched: number; wrong_action: number };
    rss_mb: Record<string, { max: number | null; mean: number | null }>;
    /** CPU time of each process during the load, as % of one core */
    cpu_pct: Record<string, number | null>;
    drain_ms: number;
    redis_poll_period_ms: number | null;
    bench_event_loop_delay_ms: { p99: number | null; max: number | null };
    xlsx_parse_ms_max: number;
    load_avg_1m: { before: number; after: number };
  }

  // ================================================================ main
  async function main() {
    noteLoad('start');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'stockwire-bench-e2e-'));
    await chmod(dir, 0o755);
    onCleanup('temp dir', () => rm(dir, { recursive: true, force: true }));
    say(`run ${RUN}; temp dir ${dir}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'})`);

    // ------------------------------------------------------------ Postgres, NATS, Redis
    const pgDir = path.join(dir, 'pg');
    const cluster = await startEmbeddedCluster({ dataDir: pgDir, port: await freePort(), password: 'bench' });
    onCleanup('postgres', () => cluster.stop());
    const url = await ensureDatabase(cluster.adminUrl, 'stockwire');
    await prepareBenchDatabase({ url, location: LOCATION, actor: 'bench-e2e' });
    say('database ready');
    const nats = await startPrivateNats();
    onCleanup('nats-server', () => nats.destroy());
    process.on('exit', () => void nats.stop());
    const nc = await connect({ servers: nats.url, name: `stockwire-bench-e2e-${process.pid}`, maxReconnectAttempts: -1 });
    onCleanup('nats connection', () => nc.close());
    const jsm = await jetstreamManager(nc);
    const sql = new pg.Pool({ connectionString: url, max: 2, application_name: 'bench-e2e' });
    sql.on('error', (err) => { if (!cleaning) say(`sql pool: ${err.message}`); });
    onCleanup('sql pool', () => sql.end());
    machine = { ...machine, postgres: (await sql.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v, nats: nc.info?.version ?? 'unknown' };
    const redis = new Redis(values['redis-url'], { maxRetriesPerRequest: 2 });
    await redis.ping();
    onCleanup('redis keys', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${REDIS_PREFIX}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    });

    // ------------------------------------------------------------ API and cdc
    const stream = `BENCH_E2E_${RUN}`.toUpperCase();
    const prefix = `be2e${RUN}`;
    const slot = `bench_e2e_${RUN}`;
    const piiKeys = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
    const parent = { STOCKWIRE_PARENT_PID: String(process.pid), LOG_LEVEL: 'warn' };
    /** Starts a child; stopped at clean-up on its own, or with the other projectors (in parallel). */
    const start = (name: string, entry: string, env: Record<string, string>, group?: ManagedProcess[]) => {
      if (cleaning) throw new Error(`not starting ${name}: cleaning up`);
      const p = startNodeProcess(entry, { ...parent, ...env });
      children.set(name, p);
      if (group) group.push(p);
      else onCleanup(name, () => stopProcess(p));
      return p;
    };
    guard = () => {
      for (const [name, p] of children) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output().slice(-3000)}`);
      }
    };
    start('cdc', 'cdc/main.ts', {
      DATABASE_URL: url, NATS_URL: nats.url, CDC_SLOT: slot, CDC_PUBLICATION: 'stockwire', CDC_STREAM: stream, CDC_SUBJECT_PREFIX: prefix, CDC_PROBE_PORT: '0',
    });
    const secret = `bench-e2e-secret-${RUN}-${'x'.repeat(16)}`;
    const apiPort = await freePort();
    start('api', 'api/server.ts', {
      DATABASE_URL: url, JWT_SECRET: secret, PII_KEYS: piiKeys, RATE_LIMIT_ENABLED: process.env.RATE_LIMIT_ENABLED ?? 'false', PORT: String(apiPort),
      REDIS_URL: '', NATS_URL: nats.url, CDC_SLOT: slot, CDC_STREAM: stream, CDC_SUBJECT_PREFIX: prefix, WEBHOOKS_ALLOW_HTTP: 'true',
    });
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const tokenSettings = { secret, issuer: 'stockwire', audience: 'stockwire-api' };
    const adminToken = await issueToken(tokenSettings, { subject: 'bench-e2e', roles: ['admin'] });
    const orderToken = await issueToken(tokenSettings, { subject: 'bench-e2e-orders', roles: ['order-system'] });
    const sheetToken = await issueToken(tokenSettings, { subject: 'bench-e2e-sheets', roles: ['sheet-sync'] });
    await waitFor('the cdc stream', 30_000, async () => (await jsm.streams.info(stream)) && true, 100);

    // a fresh agent per phase: sockets idle between phases are closed by the server (keep-alive timeout)
    let agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
    onCleanup('http agent', async () => agent.destroy());
    /** One API call over the keep-alive agent; status 0 (and the error code) when the connection failed. */
    const call = (method: string, route: string, token: string, body?: unknown) => new Promise<{ status: number; body: any; error?: string }>((resolve) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      const req = http.request(`${apiUrl}${route}`, {
        method, agent, headers: { authorization: `Bearer ${token}`, ...(text ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } : {}) },
      }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          let parsed: unknown;
          try { parsed = JSON.parse(Buffer.concat(parts).toString('utf8')); } catch { /* not JSON */ }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: undefined, error: err.code ?? err.message }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: undefined, error: err.code ?? err.message }));
      req.end(text);
    });
    const mustCall = async (method: string, route: string, want: number, body?: unknown) => {
      const res = await call(method, route, adminToken, body);
      if (res.status !== want) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };

    // ------------------------------------------------------------ fakes (this process) and sinks (child)
    const benchTab = (grid: () => unknown[][]) => {
      try {
        return grid();
      } catch {
        return undefined; // the tab is not there yet
      }
    };
    const googleSeen = new Timeline();
    const graphSeen = new Timeline();
    const xlsxSeen = new Timeline();
    const redisSeen = new Timeline();
    const recordGrid = (timeline: Timeline, rows: unknown[][] | undefined, at: number) => {
      for (const row of (rows ?? []).slice(1)) timeline.add(String(row[STOCK.sku] ?? ''), Number(row[STOCK.version]), at);
    };
    // (the hooks only read the fakes' state, synchronously, right after the write that changed it)
    const sheetsFake = await startSheetsFake({ onWrite: ({ at }) => recordGrid(googleSeen, benchTab(() => sheetsFake.grid(LOCATION)), at) });
    onCleanup('sheets fake', () => sheetsFake.close());
    const graphFake = await startGraphFake({ onWrite: ({ at }) => recordGrid(graphSeen, benchTab(() => graphFake.grid(LOCATION)), at) });
    onCleanup('graph fake', () => graphFake.close());
    const slack = await startSlackFake();
    onCleanup('slack fake', () => slack.close());
    let tokenRequests = 0;
    const tokenServer = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        tokenRequests += 1;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `bench-e2e-token-${tokenRequests}`, expires_in: 3600, token_type: 'Bearer' }));
      });
    });
    await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', () => r()));
    onCleanup('token server', () => new Promise<void>((r) => { tokenServer.closeAllConnections(); tokenServer.close(() => r()); }));
    const tokenUrl = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;

    const xlsxPath = path.join(dir, 'xlsx', 'inventory.xlsx');
    /** A measuring child (scripts/bench-e2e-sinks.ts): the webhook receiver or the workbook reader. */
    const startSink = async (role: 'receiver' | 'workbook', env: Record<string, string> = {}) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'bench-e2e-sinks.ts')], {
        cwd: ROOT, env: { ...process.env, ...env, BENCH_SINK: role }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      extraChildren.add(child);
      onCleanup(`${role} sink`, async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
      });
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the ${role} sink did not start within 60 s`)), 60_000);
        const ready = (m: FromSinks) => {
          if (m.type !== 'ready') return;
          clearTimeout(timer);
          child.off('message', ready);
          resolve(m.port);
        };
        child.on('message', ready);
      });
      return { role, child, port };
    };
    // (two processes: a workbook parse blocks its event loop for up to a second, which must not hold up a webhook's answer)
    const receiver = await startSink('receiver');
    const workbook = await startSink('workbook', { BENCH_XLSX_PATH: xlsxPath, BENCH_XLSX_TAB: LOCATION });
    const sinks = [receiver, workbook];
    const sinksGuard = () => {
      for (const { role, child } of sinks) if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the ${role} sink exited (${child.exitCode ?? child.signalCode})`);
    };
    const receipts = new Map<string, Receipt>(); // event id → first receipt
    const statsBy = new Map<string, SinkStats>();
    let sinkStats: SinkStats | undefined; // both sinks' counters added up
    let takeSeq = 0;
    const takeFrom = ({ role, child }: (typeof sinks)[number]) => new Promise<void>((resolve, reject) => {
      const seq = ++takeSeq;
      const timer = setTimeout(() => reject(new Error(`the ${role} sink did not answer within 10 s`)), 10_000);
      const onMessage = (m: FromSinks) => {
        if (m.type !== 'taken' || m.seq !== seq) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        for (const r of m.receipts) if (!receipts.has(r.eventId)) receipts.set(r.eventId, r);
        for (const x of m.xlsx) xlsxSeen.add(x.sku, x.version, x.at);
        statsBy.set(role, m.stats);
        resolve();
      };
      child.on('message', onMessage);
      child.send({ type: 'take', seq } satisfies ToSinks);
    });
    /** Fetches what the sinks collected since the last call. */
    const take = async () => {
      await Promise.all(sinks.map(takeFrom));
      const all = [...statsBy.values()];
      sinkStats = Object.fromEntries(Object.keys(all[0]!).map((k) => [k, all.reduce((n, x) => n + x[k as keyof SinkStats], 0)])) as unknown as SinkStats;
    };

    // ------------------------------------------------------------ every projector, each its own process
    const projectorEnv = { NATS_URL: nats.url, CDC_STREAM: stream, CDC_SUBJECT_PREFIX: prefix, PROJECTOR_PROBE_PORT: '0' };
    const projectors: ManagedProcess[] = [];
    onCleanup('projectors', () => Promise.all(projectors.map((p) => stopProcess(p))));
    const sheetEnv = { ...projectorEnv, DATABASE_URL: url, STOCKWIRE_API_URL: apiUrl, SHEET_SYNC_TOKEN: sheetToken };
    start('redis-cache', 'projectors/redis-cache/main.ts', { ...projectorEnv, REDIS_URL: values['redis-url'], REDIS_PREFIX }, projectors);
    start('xlsx-local', 'projectors/xlsx-local/main.ts', { ...sheetEnv, XLSX_PATH: xlsxPath }, projectors);
    start('google-sheets', 'projectors/google-sheets/main.ts', {
      ...sheetEnv, GOOGLE_SPREADSHEET_ID: sheetsFake.spreadsheetId, GOOGLE_SHEETS_ROOT_URL: sheetsFake.url,
      GOOGLE_OAUTH_CLIENT_ID: 'bench-e2e', GOOGLE_OAUTH_CLIENT_SECRET: 'bench-e2e', GOOGLE_OAUTH_REFRESH_TOKEN: 'bench-e2e', GOOGLE_TOKEN_URL: tokenUrl,
    }, projectors);
    start('excel-graph', 'projectors/excel-graph/main.ts', {
      ...sheetEnv, GRAPH_TENANT_ID: graphFake.tenantId, GRAPH_CLIENT_ID: graphFake.clientId, GRAPH_CLIENT_SECRET: graphFake.clientSecret,
      GRAPH_DRIVE_ID: graphFake.driveId, GRAPH_ITEM_ID: graphFake.itemId, GRAPH_BASE_URL: graphFake.baseUrl, GRAPH_AUTHORITY_HOST: graphFake.authorityHost,
    }, projectors);
    start('alerts', 'projectors/alerts/main.ts', { ...projectorEnv, DATABASE_URL: url, SLACK_WEBHOOK_URL: slack.url }, projectors);
    start('webhooks', 'projectors/webhooks/main.ts', { ...projectorEnv, DATABASE_URL: url, PII_KEYS: piiKeys }, projectors);
    const baseGuard = guard;
    guard = () => { baseGuard(); sinksGuard(); };

    // (the projectors start while the API does; they learn the alert SKUs from the stream)
    if (!(await waitForHttpOk(`${apiUrl}/readyz`, 60_000))) throw new Error(`the API did not become ready within 60 s:\n${children.get('api')!.output().slice(-2000)}`);
    say('API ready');
    for (const sku of ALERT_SKUS) {
      await mustCall('POST', '/v1/products', 201, { sku, name: `Alert bench ${sku}`, category: 'linens', reorder_point: ALERT_REORDER_POINT, reorder_qty: 40 });
      await mustCall('POST', '/v1/receipts', 201, { sku, location: LOCATION, qty: ALERT_STOCK });
    }

    /** Waits until every projector's durable consumer has acknowledged everything in the stream. */
    const allCaughtUp = (timeoutMs: number) => waitFor('every projector to catch up', timeoutMs, async () => {
      const infos = await Promise.all(PROJECTORS.map((p) => jsm.consumers.info(stream, p)));
      return infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0) ? true : undefined;
    }, 200);
    await allCaughtUp(120_000);
    await take();
    await waitFor('the mirrors\' first layout (BENCH tab in Google, Graph and the workbook)', 60_000, async () => {
      await take();
      return benchTab(() => sheetsFake.grid(LOCATION)) && benchTab(() => graphFake.grid(LOCATION)) && xlsxSeen.size() > 0 ? true : undefined;
    }, 200).catch((err: Error) => {
      const tails = ['xlsx-local', 'google-sheets', 'excel-graph'].map((n) => `--- ${n}:\n${children.get(n)!.output().slice(-1500)}`).join('\n');
      throw new Error(`${err.message} (google token requests: ${tokenRequests})\n${tails}`);
    });
    say(`projectors up: ${PROJECTORS.join(', ')} (google token requests so far: ${tokenRequests})`);

    // the webhook endpoint, registered once the fan-out has passed the set-up changes
    const hook = await mustCall('POST', '/v1/webhooks', 201, { url: `http://127.0.0.1:${receiver.port}/hooks/e2e`, event_types: WEBHOOK_TYPES }) as { secret: string; webhook: { id: string } };
    receiver.child.send({ type: 'secret', secret: hook.secret } satisfies ToSinks);

    // ------------------------------------------------------------ Redis poller (continuous)
    const redisKeys = [...BENCH_SKUS, ...ALERT_SKUS].map((sku) => ({ sku, key: stockKey(REDIS_PREFIX, sku, LOCATION) }));
    const poller = new Redis(values['redis-url'], { maxRetriesPerRequest: 2 });
    poller.defineCommand('benchVersions', { lua: "local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('HGET', k, 'version') or '0' end return r" });
    const readVersions = () => (poller as unknown as { benchVersions(n: number, ...keys: string[]): Promise<string[]> })
      .benchVersions(redisKeys.length, ...redisKeys.map((k) => k.key));
    let polling = true;
    let polls = 0;
    const pollLoop = (async () => {
      while (polling && !cleaning) {
        const res = await readVersions().catch(() => undefined);
        if (!res) {
          await sleep(50);
          continue;
        }
        const t = now();
        polls += 1;
        res.forEach((v, i) => redisSeen.add(redisKeys[i]!.sku, Number(v), t));
        if (POLL_MS > 0) await sleep(POLL_MS);
      }
    })();
    onCleanup('redis poller', async () => {
      polling = false;
      await pollLoop;
      poller.disconnect();
    });

    // ------------------------------------------------------------ RSS sampler (continuous)
    const tracked = new Map<string, () => Promise<number | undefined>>();
    const vmRss = (pid: number | undefined) => async () => {
      if (!pid) return undefined;
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      return kb ? Number(kb) / 1024 : undefined;
    };
    for (const [name, p] of children) tracked.set(name, vmRss(p.child.pid));
    tracked.set('receiver (bench)', vmRss(receiver.child.pid));
    tracked.set('workbook reader (bench)', vmRss(workbook.child.pid));
    tracked.set('bench (load, fakes)', vmRss(process.pid));
    const natsPid = await findPid((args) => args[0]?.endsWith('nats-server') === true && args.includes(new URL(nats.url).port));
    tracked.set('nats-server', vmRss(natsPid));
    const postmaster = Number((await readFile(path.join(pgDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    // (the sampler's own cost matters on 2 cores: Postgres' process list is refreshed every 5 s, and its
    // PSS, which makes the kernel walk every mapping, read every 4th sample)
    let pgPids: number[] = [];
    let pgPidsAt = 0;
    const postgresPids = async () => {
      if (Date.now() - pgPidsAt > 5000) {
        pgPids = [postmaster, ...(await childPids(postmaster))];
        pgPidsAt = Date.now();
      }
      return pgPids;
    };
    let pssSamples = 0;
    tracked.set('postgres (PSS, all)', async () => {
      if (pssSamples++ % 4 !== 0) return undefined;
      let kb = 0;
      for (const pid of await postgresPids()) {
        const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
        kb += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
      }
      return kb ? kb / 1024 : undefined;
    });
    // CPU: utime + stime (clock ticks, 100 Hz on Linux) of each process
    const ticksOf = async (pid: number) => {
      const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return st ? Number(f[11]) + Number(f[12]) : undefined;
    };
    const cpuReaders = new Map<string, () => Promise<number | undefined>>();
    for (const [name, p] of children) cpuReaders.set(name, () => ticksOf(p.child.pid!));
    cpuReaders.set('receiver (bench)', () => ticksOf(receiver.child.pid!));
    cpuReaders.set('workbook reader (bench)', () => ticksOf(workbook.child.pid!));
    cpuReaders.set('bench (load, fakes)', () => ticksOf(process.pid));
    if (natsPid) cpuReaders.set('nats-server', () => ticksOf(natsPid));
    const readCpu = async () => {
      const ticks = new Map(await Promise.all([...cpuReaders].map(async ([n, r]) => [n, await r()] as const)));
      // Postgres by process: a backend started during the phase counts whole, one that ended is lost
      pgPidsAt = 0; // a fresh list at the phase's start and end
      for (const pid of await postgresPids()) ticks.set(`postgres:${pid}`, await ticksOf(pid));
      return ticks;
    };
    let rss = new Map<string, number[]>();
    const rssTimer = setInterval(() => {
      void Promise.all([...tracked].map(async ([name, read]) => {
        const mb = await read();
        if (mb === undefined) return;
        const list = rss.get(name);
        if (list) list.push(mb);
        else rss.set(name, [mb]);
      }));
    }, RSS_MS);
    onCleanup('rss sampler', async () => clearInterval(rssTimer));
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();

    // ------------------------------------------------------------ load
    interface Load { orders: RateResult['orders']; confirms: RateResult['confirms']; alert_driver: RateResult['alert_driver'] }
    const alertState = ALERT_SKUS.map(() => ({ open: undefined as string | undefined, low: false, busy: false }));
    // --via sql: the same changes straight into the ledger (the trigger moves stock_levels), without the
    // API — to measure the projectors at a rate the API cannot carry on this machine
    const ledger = VIA === 'sql' ? new pg.Pool({ connectionString: url, max: 16, application_name: 'bench-e2e-load' }) : undefined;
    if (ledger) {
      ledger.on('error', () => {});
      onCleanup('ledger pool', () => ledger.end());
    }
    const move = async (sku: string, delta: number): Promise<string> => {
      try {
        await ledger!.query(
          `INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor, note)
           VALUES ($1, $2, $3, 0, 'adjustment', 'correction', 'bench-e2e', 'bench-e2e --via sql')`, [sku, LOCATION, delta]);
        return 'ok';
      } catch (err) {
        return `error ${(err as { code?: string }).code ?? (err as Error).message}`;
      }
    };
    /** One order (or, --via sql, one ledger row taking a unit); 'ok' or what went wrong. */
    const placeOrder = async (sku: string, onAccepted: (id: string) => void): Promise<string> => {
      if (ledger) return move(sku, -1);
      const r = await call('POST', '/v1/orders', orderToken, { location: LOCATION, lines: [{ sku, qty: 1 }], ttl_seconds: 3600 });
      if (r.status === 201) onAccepted(String(r.body.id));
      return r.status === 201 ? 'ok' : r.status === 0 ? `0 ${r.error}` : String(r.status);
    };
    /** The alert SKU's next crossing: its order of 10, else that order's cancel (--via sql: −10, else +10); true when done. */
    const crossing = async (i: number): Promise<boolean> => {
      const state = alertState[i]!;
      if (ledger) {
        const done = (await move(ALERT_SKUS[i]!, state.low ? ALERT_QTY : -ALERT_QTY)) === 'ok';
        if (done) state.low = !state.low;
        return done;
      }
      if (state.open) {
        const r = await call('POST', `/v1/orders/${state.open}/cancel`, orderToken);
        if (r.status === 200) state.open = undefined;
        return r.status === 200;
      }
      const r = await call('POST', '/v1/orders', orderToken, { location: LOCATION, lines: [{ sku: ALERT_SKUS[i], qty: ALERT_QTY }], ttl_seconds: 3600 });
      if (r.status === 201) state.open = String(r.body.id);
      return r.status === 201;
    };
    /** Orders open-loop at `rate`/s for `seconds`, with confirms and the alert driver beside them. */
    async function runLoad(rate: number, seconds: number): Promise<Load> {
      const total = Math.round(rate * seconds);
      agent.destroy();
      agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
      const statuses: Promise<string>[] = [];
      const answerMs: number[] = [];
      const opMs: number[] = [];
      let inFlight = 0;
      let notSent = 0;
      const confirms = { sent: 0, accepted: 0 };
      const confirmCalls: Promise<void>[] = [];
      const lateness: number[] = [];
      const driver = { ops_sent: 0, accepted: 0, skipped_slots: 0 };
      const driverCalls: Promise<void>[] = [];
      const t0 = performance.now() + 5;
      const end = t0 + seconds * 1000;
      const alertLoop = (async () => {
        if (!ALERT_RATE) return;
        for (let slot = 0; ; slot++) {
          const due = t0 + (slot * 1000) / ALERT_RATE;
          if (due >= end) break;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait - 0.5);
          const i = slot % ALERT_SKUS.length;
          const state = alertState[i]!;
          if (state.busy) {
            driver.skipped_slots += 1;
            continue;
          }
          state.busy = true;
          driver.ops_sent += 1;
          const sentAt = performance.now();
          driverCalls.push(crossing(i).then((done) => { if (done) driver.accepted += 1; }).finally(() => {
            state.busy = false;
            opMs.push(performance.now() - sentAt);
          }));
        }
      })();
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait - 0.5);
        lateness.push(Math.max(0, performance.now() - due));
        if (inFlight >= MAX_IN_FLIGHT) {
          notSent += 1; // the API is that far behind: an open-loop sender would only grow its queue
          continue;
        }
        const sku = BENCH_SKUS[Math.floor(Math.random() * BENCH_SKUS.length)]!;
        const sentAt = performance.now();
        inFlight += 1;
        statuses.push(placeOrder(sku, (id) => {
          if (Math.random() >= CONFIRM) return;
          confirms.sent += 1;
          confirmCalls.push(call('POST', `/v1/orders/${id}/confirm`, orderToken).then((c) => { if (c.status === 200) confirms.accepted += 1; }));
        }).then((outcome) => {
          inFlight -= 1;
          answerMs.push(performance.now() - sentAt);
          return outcome;
        }));
      }
      const sendMs = performance.now() - t0;
      const codes = await Promise.all(statuses);
      await alertLoop;
      await Promise.all([...confirmCalls, ...driverCalls]);
      const failed: Record<string, number> = {};
      for (const c of codes) if (c !== 'ok') failed[c] = (failed[c] ?? 0) + 1;
      const late = summary(lateness);
      const answers = summary(answerMs);
      const ops = summary(opMs);
      return {
        orders: {
          offered_rate: rate, offered: total, sent: total - notSent, not_sent_in_flight_cap: notSent, accepted: codes.filter((c) => c === 'ok').length, failed, achieved_rate: round(((total - notSent) / sendMs) * 1000), send_lateness_p99_ms: round(late.p99),
          answer_ms: { p50: round(answers.p50), p99: round(answers.p99), max: round(answers.max) },
        },
        confirms, alert_driver: { ...driver, answer_ms: { p50: round(ops.p50), p99: round(ops.p99) } },
      };
    }

    // ------------------------------------------------------------ one phase
    const streamLastSeq = async () => (await jsm.streams.info(stream)).state.last_seq;
    /** Waits until the reader has published (JetStream acked) every change committed so far. */
    const readerPastNow = async () => {
      const lsn = (await sql.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]!.lsn;
      await waitFor(`the reader to confirm ${lsn}`, 120_000, async () =>
        (await sql.query<{ ok: boolean }>('SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1', [slot, lsn])).rows[0]?.ok === true || undefined, 10);
    };

    interface Change { sku: string; version: number; commit: number; eventId: string; availableAfter: number }
    async function runPhase(name: string, rate: number, seconds: number): Promise<RateResult> {
      await allCaughtUp(120_000);
      await take();
      const startSeq = (await streamLastSeq()) + 1;
      const before = { google: sheetsFake.writeCalls, graph: graphFake.writeCalls, slack: slack.messages.length, xlsxSaves: sinkStats?.xlsxSaves ?? 0, polls, pollAt: now() };
      const loadBefore = round(os.loadavg()[0]!, 2)!;
      rss = new Map();
      loopDelay.reset();
      const cpuBefore = await readCpu();
      say(`${name}: ${rate} ${VIA === 'api' ? `orders/s (confirm ${CONFIRM})` : 'ledger rows/s (--via sql)'} for ${seconds} s, ${ALERT_RATE} alert crossings/s`);
      const load = await runLoad(rate, seconds);
      const loadEnded = now();
      const cpuAfter = await readCpu();
      const cpuPct: Record<string, number | null> = {};
      const pct = (ticks: number) => round((ticks / 100 / ((loadEnded - before.pollAt) / 1000)) * 100, 0);
      let pgTicks = 0;
      for (const [n, t] of cpuAfter) {
        const t0 = cpuBefore.get(n);
        if (n.startsWith('postgres:')) pgTicks += (t ?? 0) - (t0 ?? 0);
        else cpuPct[n] = t !== undefined && t0 !== undefined ? pct(t - t0) : null;
      }
      cpuPct['postgres (PSS, all)'] = pct(pgTicks);
      say(`${name}: sent ${load.orders.sent} of ${load.orders.offered} orders (${load.orders.accepted} accepted, ${load.orders.achieved_rate}/s), ${load.confirms.accepted} confirms, ${load.alert_driver.accepted} alert ops`);
      await readerPastNow();
      const endSeq = await streamLastSeq();
      // the phase's changes, from the stream
      const changes: Change[] = [];
      let cdcTotal = 0;
      await readStream(nc, stream, startSeq, endSeq, (subject, data) => {
        if (subject === positionSubject(prefix)) return;
        cdcTotal += 1;
        if (subject !== `${prefix}.stock_levels.update`) return;
        const e = JSON.parse(new TextDecoder().decode(data)) as StreamMessage;
        if (e.op === 'position') return;
        const row = (e as ChangeEvent).after as Record<string, unknown>;
        if (row.location !== LOCATION) return;
        changes.push({
          sku: String(row.sku), version: Number(row.version), commit: Date.parse(e.source.commitTime), eventId: messageIdFor(e.source),
          availableAfter: Number(row.on_hand) - Number(row.reserved),
        });
      });
      const crossings = new Map<string, Change[]>(ALERT_SKUS.map((s) => [s, []]));
      for (const c of changes) crossings.get(c.sku)?.push(c);
      const crossingCount = [...crossings.values()].reduce((n, l) => n + l.length, 0);
      const finalVersion = new Map<string, number>();
      for (const c of changes) finalVersion.set(c.sku, Math.max(finalVersion.get(c.sku) ?? 0, c.version));
      const caughtUp: Partial<Record<ProjectorName, number>> = {};
      const shows = (t: Timeline) => [...finalVersion].every(([sku, v]) => t.has(sku, v));
      const isAlertMessage = (text: string | undefined) => ALERT_SKUS.some((sku) => text?.includes(`: ${sku} (`));
      const alertMessages = () => slack.messages.slice(before.slack).filter((m) => isAlertMessage(m.body.text));
      const phaseReceipts = () => changes.filter((c) => receipts.has(c.eventId)).length;
      const wantsWebhooks = WEBHOOK_TYPES.includes('stock.changed') || WEBHOOK_TYPES.includes('*');
      const checks: Record<ProjectorName, () => boolean> = {
        'redis-cache': () => shows(redisSeen),
        'xlsx-local': () => shows(xlsxSeen),
        'google-sheets': () => shows(googleSeen),
        'excel-graph': () => shows(graphSeen),
        alerts: () => alertMessages().length >= crossingCount,
        webhooks: () => !wantsWebhooks || phaseReceipts() >= changes.length,
      };
      await waitFor(`every projector to show the ${changes.length} changes of ${name}`, 180_000, async () => {
        await take();
        for (const p of PROJECTORS) if (caughtUp[p] === undefined && checks[p]()) caughtUp[p] = now() - loadEnded;
        return PROJECTORS.every((p) => caughtUp[p] !== undefined) ? true : undefined;
      }, 50).catch((err: Error) => say(`${name}: ${err.message}; missing: ${PROJECTORS.filter((p) => caughtUp[p] === undefined).join(', ')}`));
      const drainMs = Math.round(now() - loadEnded);
      const after = { google: sheetsFake.writeCalls, graph: graphFake.writeCalls, polls, pollAt: now() };
      const delay = { p99: round(loopDelay.percentile(99) / 1e6), max: round(loopDelay.max / 1e6) };

      // samples
      const latency = {} as Record<ProjectorName, LatencyFigures>;
      let alerts: RateResult['alerts'] = { messages: 0, unmatched: 0, wrong_action: 0 };
      let webhooks: RateResult['webhooks'] = { delivered: 0, duplicates: 0, out_of_order: 0, bad_signatures: 0, stages_ms: null };
      const figures = (samples: number[], missing: number, p: ProjectorName): LatencyFigures => {
        const s = summary(samples);
        return { p50_ms: round(s.p50), p99_ms: round(s.p99), max_ms: round(s.max), samples: s.n, missing, caught_up_after_load_ms: caughtUp[p] === undefined ? null : Math.round(caughtUp[p]!) };
      };
      for (const [p, timeline] of [['redis-cache', redisSeen], ['xlsx-local', xlsxSeen], ['google-sheets', googleSeen], ['excel-graph', graphSeen]] as const) {
        const samples: number[] = [];
        let missing = 0;
        for (const c of changes) {
          const t = timeline.firstAt(c.sku, c.version);
          if (t === undefined) missing += 1;
          else samples.push(t - c.commit);
        }
        latency[p] = figures(samples, missing, p);
      }
      {
        // alerts: the n-th message about a SKU answers that SKU's n-th crossing of the phase
        const messages = alertMessages();
        const samples: number[] = [];
        let unmatched = 0;
        let wrongAction = 0;
        for (const [sku, list] of crossings) {
          const about = messages.filter((m) => m.body.text?.includes(`: ${sku} (`));
          list.forEach((c, n) => {
            const m = about[n];
            if (!m) {
              unmatched += 1;
              return;
            }
            const low = c.availableAfter < ALERT_REORDER_POINT;
            if (low !== m.body.text!.startsWith('Low stock')) wrongAction += 1;
            samples.push(m.at - c.commit);
          });
        }
        latency.alerts = figures(samples, unmatched, 'alerts');
        alerts = { messages: messages.length, unmatched, wrong_action: wrongAction };
      }
      {
        const samples: number[] = [];
        let missing = 0;
        for (const c of changes) {
          const r = receipts.get(c.eventId);
          if (r) samples.push(r.at - c.commit);
          else missing += 1;
        }
        latency.webhooks = figures(samples, wantsWebhooks ? missing : 0, 'webhooks');
        const stages = (await sql.query<{ queued: number[] | null; sent: number[] | null }>(
          `SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - (payload->>'timestamp')::timestamptz) * 1000) AS queued,
                  percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at) * 1000) AS sent
             FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = ANY ($2::text[])`, [hook.webhook.id, changes.map((c) => c.eventId)])).rows[0];
        const pair = (v: number[] | null | undefined) => ({ p50: v ? round(Number(v[0])) : null, p99: v ? round(Number(v[1])) : null });
        // (the receiver's counters are totals since the start: they must stay 0)
        webhooks = {
          delivered: samples.length, duplicates: sinkStats?.duplicates ?? 0, out_of_order: sinkStats?.outOfOrder ?? 0, bad_signatures: sinkStats?.badSignatures ?? 0,
          stages_ms: stages ? { commit_to_queued: pair(stages.queued), queued_to_delivered: pair(stages.sent) } : null,
        };
      }
      const google = after.google - before.google;
      const graph = after.graph - before.graph;
      const per1000 = (n: number) => (changes.length ? round((n / changes.length) * 1000) : null);
      const rssFigures: RateResult['rss_mb'] = {};
      for (const name of tracked.keys()) {
        const list = rss.get(name) ?? [];
        rssFigures[name] = { max: list.length ? round(Math.max(...list)) : null, mean: list.length ? round(list.reduce((a, b) => a + b, 0) / list.length) : null };
      }
      const commits = changes.map((c) => c.commit);
      const commitSpan = commits.length > 1 ? (Math.max(...commits) - Math.min(...commits)) / 1000 : null;
      return {
        ...load,
        changes: {
          cdc_total: cdcTotal, stock_levels_at_bench: changes.length, alert_crossings: crossingCount,
          commit_span_s: commitSpan === null ? null : round(commitSpan, 2), stock_changes_per_s: commitSpan ? round(changes.length / commitSpan) : null,
        },
        latency,
        sheets: {
          calls_per_1000: { google: per1000(google), graph: per1000(graph) },
          write_calls: { google, graph, xlsx_saves_observed: (sinkStats?.xlsxSaves ?? 0) - before.xlsxSaves },
          changes: changes.length,
          google_writes_per_min: round(google / ((after.pollAt - before.pollAt) / 60_000)),
        },
        webhooks,
        alerts,
        rss_mb: rssFigures,
        cpu_pct: cpuPct,
        drain_ms: drainMs,
        redis_poll_period_ms: after.polls > before.polls ? round((after.pollAt - before.pollAt) / (after.polls - before.polls), 2) : null,
        bench_event_loop_delay_ms: delay,
        xlsx_parse_ms_max: sinkStats?.xlsxParseMsMax ?? 0,
        load_avg_1m: { before: loadBefore, after: round(os.loadavg()[0]!, 2)! },
      };
    }

    // warm-up: connections, prepared statements, JIT, the first sheet writes and deliveries out of the way
    if (WARMUP_SECONDS > 0) await runPhase('warm-up', 50, WARMUP_SECONDS);
    for (const rate of RATES) {
      noteLoad(`before_${rate}`);
      const r = await runPhase(`${rate}/s`, rate, SECONDS);
      rateResults[String(rate)] = r;
      say(`${rate}/s: ${PROJECTORS.map((p) => `${p} p50 ${r.latency[p].p50_ms} p99 ${r.latency[p].p99_ms} (n=${r.latency[p].samples}${r.latency[p].missing ? `, missing ${r.latency[p].missing}` : ''})`).join('; ')}`);
    }
    noteLoad('after_rates');

    // ------------------------------------------------------------ webhook drain: the worker's sustained rate to one endpoint
    if (DRAIN > 0) {
      await allCaughtUp(120_000);
      await waitFor('the webhook outbox to empty', 300_000, async () =>
        (await sql.query<{ n: string }>("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'")).rows[0]!.n === '0' || undefined, 200);
      await take();
      const inserted = now();
      await sql.query(
        `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload)
         SELECT $1::uuid, $2::text || g, 'stock.changed',
                jsonb_build_object('type', 'stock.changed', 'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'event_id', $2::text || g,
                                   'data', jsonb_build_object('sku', 'DRAIN', 'location', $3::text, 'on_hand', g, 'reserved', 0, 'available', g, 'version', g))
           FROM generate_series(1, $4::int) AS g ORDER BY g`, [hook.webhook.id, `${DRAIN_PREFIX}${RUN}-`, LOCATION, DRAIN]);
      const drained = () => [...receipts.values()].filter((r) => r.eventId.startsWith(DRAIN_PREFIX));
      noteLoad('before_drain');
      await waitFor(`${DRAIN} drained deliveries at the receiver`, 600_000, async () => {
        await take();
        return drained().length >= DRAIN || undefined;
      }, 100).catch((err: Error) => say(`drain: ${err.message}`));
      const got = drained().map((r) => r.at).sort((a, b) => a - b);
      const span = got.length > 1 ? (got[got.length - 1]! - got[0]!) / 1000 : 0;
      drainResult = {
        deliveries: DRAIN, received: got.length, seconds: round(span, 2), per_s: span > 0 ? round(got.length / span) : null,
        first_receipt_after_insert_ms: got.length ? Math.round(got[0]! - inserted) : null,
        duplicates: sinkStats?.duplicates ?? 0, out_of_order: sinkStats?.outOfOrder ?? 0, bad_signatures: sinkStats?.badSignatures ?? 0,
        load_avg_1m: round(os.loadavg()[0]!, 2),
        method: 'N pending rows put in the outbox in one statement (the fan-out bypassed); rate = N / (last − first receipt at the receiver); the worker finds them at its next poll (WEBHOOK_POLL_MS)',
      };
      say(`webhook drain: ${got.length} of ${DRAIN} in ${span.toFixed(2)} s → ${drainResult.per_s}/s`);
    }
    noteLoad('end');
    machine = { ...machine, google_token_requests: tokenRequests };
  }

  // ================================================================ output
  function printTable() {
    const out = (line = '') => process.stdout.write(`${line}\n`);
    const m = machine as { cpus: number; cpu: string; postgres?: string; nats?: string; node: string };
    const table = (header: string[], rows: string[][]) => {
      const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
      const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
      out(line(header));
      out(line(w.map((n) => '-'.repeat(n))));
      for (const r of rows) out(line(r));
    };
    const fmt = (v: unknown) => (v === null || v === undefined ? '–' : String(v));
    out();
    out(`End-to-end bench: ${m.cpus} cores (${m.cpu}), Postgres ${m.postgres ?? '?'}, nats-server ${m.nats ?? '?'}, Node ${m.node}`);
    out(`1-min load average: ${Object.entries(loadAvg).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    const rates = Object.keys(rateResults);
    if (!rates.length) return;
    out();
    out('load (orders open-loop; confirms of a share; alert ops = order/cancel crossings on the alert SKUs)');
    table(['rate/s', 'orders sent', 'not sent (cap)', 'accepted', 'achieved/s', 'lateness p99 ms', 'answer p50/p99 ms', 'failed', 'confirms', 'alert ops', 'cdc changes', 'stock changes', 'commit span s', 'load avg before/after'], rates.map((rate) => {
      const r = rateResults[rate]!;
      return [rate, String(r.orders.sent), String(r.orders.not_sent_in_flight_cap), String(r.orders.accepted), fmt(r.orders.achieved_rate), fmt(r.orders.send_lateness_p99_ms), `${fmt(r.orders.answer_ms.p50)} / ${fmt(r.orders.answer_ms.p99)}`,
        Object.keys(r.orders.failed).length ? JSON.stringify(r.orders.failed) : '0',
        `${r.confirms.accepted}/${r.confirms.sent}`, `${r.alert_driver.accepted}/${r.alert_driver.ops_sent} (skip ${r.alert_driver.skipped_slots})`, String(r.changes.cdc_total), String(r.changes.stock_levels_at_bench), fmt(r.changes.commit_span_s),
        `${r.load_avg_1m.before} / ${r.load_avg_1m.after}`];
    }));
    out();
    out('commit → applied (ms): Redis poll, sheet write received by the fake, workbook read back, Slack message received, webhook received');
    table(['projector', 'rate/s', 'samples', 'p50', 'p99', 'max', 'missing', 'caught up after load ms'], PROJECTORS.flatMap((p) => rates.map((rate) => {
      const l = rateResults[rate]!.latency[p];
      return [p, rate, String(l.samples), fmt(l.p50_ms), fmt(l.p99_ms), fmt(l.max_ms), String(l.missing), fmt(l.caught_up_after_load_ms)];
    })));
    out();
    out('sheet write calls per 1,000 stock changes (changes = stock_levels updates at BENCH in the phase)');
    table(['rate/s', 'changes', 'google calls', 'google /1000', 'google /min', 'graph calls', 'graph /1000', 'xlsx saves seen'], rates.map((rate) => {
      const s = rateResults[rate]!.sheets;
      return [rate, String(s.changes), String(s.write_calls.google), fmt(s.calls_per_1000.google), fmt(s.google_writes_per_min), String(s.write_calls.graph), fmt(s.calls_per_1000.graph), String(s.write_calls.xlsx_saves_observed)];
    }));
    out();
    out('webhooks and alerts (integrity)');
    table(['rate/s', 'webhooks delivered', 'commit→queued p50/p99', 'queued→delivered p50/p99', 'duplicates', 'out of order', 'bad signatures', 'alert messages', 'unmatched', 'wrong action'], rates.map((rate) => {
      const r = rateResults[rate]!;
      const st = r.webhooks.stages_ms;
      return [rate, String(r.webhooks.delivered), st ? `${fmt(st.commit_to_queued.p50)} / ${fmt(st.commit_to_queued.p99)}` : '–', st ? `${fmt(st.queued_to_delivered.p50)} / ${fmt(st.queued_to_delivered.p99)}` : '–', String(r.webhooks.duplicates), String(r.webhooks.out_of_order), String(r.webhooks.bad_signatures),
        String(r.alerts.messages), String(r.alerts.unmatched), String(r.alerts.wrong_action)];
    }));
    out();
    out('RSS MB, max / mean over the phase (postgres: sum of PSS over its processes); CPU % of one core during the load');
    const names = Object.keys(rateResults[rates[0]!]!.rss_mb);
    table(['process', ...rates.map((r) => `${r}/s RSS`), ...rates.map((r) => `${r}/s CPU`)], names.map((n) => [n, ...rates.map((rate) => {
      const x = rateResults[rate]!.rss_mb[n];
      return `${fmt(x?.max)} / ${fmt(x?.mean)}`;
    }), ...rates.map((rate) => fmt(rateResults[rate]!.cpu_pct[n]))]));
    out();
    out(`measurement: redis poll period ${rates.map((r) => `${r}/s ${fmt(rateResults[r]!.redis_poll_period_ms)} ms`).join(', ')}; bench event-loop delay p99/max ${rates.map((r) => `${r}/s ${fmt(rateResults[r]!.bench_event_loop_delay_ms.p99)}/${fmt(rateResults[r]!.bench_event_loop_delay_ms.max)} ms`).join(', ')}; workbook parse ≤ ${fmt(rateResults[rates.at(-1)!]!.xlsx_parse_ms_max)} ms`);
    if (drainResult) out(`webhook drain (one endpoint): ${drainResult.received} of ${drainResult.deliveries} in ${drainResult.seconds} s → ${fmt(drainResult.per_s)} deliveries/s (first ${fmt(drainResult.first_receipt_after_insert_ms)} ms after the insert; load avg ${drainResult.load_avg_1m})`);
  }

  await runAndReport({
    main, say, printTable, out: OUT,
    result: () => ({ machine, params, load_avg_1m: loadAvg, rates: rateResults, webhook_drain: drainResult ?? null }),
    cleanup: async () => {
      await cleanup();
      await killAll(); // anything left (should be none)
      say('cleaned up');
      for (const c of extraChildren) c.kill('SIGKILL');
    },
  });
}

// ================================================================= helpers
/** Per row (sku), the versions a projection was seen holding and when each was first seen. */
class Timeline {
  private readonly rows = new Map<string, { v: number[]; t: number[] }>();
  add(sku: string, version: number, at: number) {
    if (!sku || !Number.isFinite(version)) return;
    let row = this.rows.get(sku);
    if (!row) this.rows.set(sku, (row = { v: [], t: [] }));
    if (row.v.length && row.v[row.v.length - 1]! >= version) return;
    row.v.push(version);
    row.t.push(at);
  }
  /** When the row was first seen at `version` or later. */
  firstAt(sku: string, version: number): number | undefined {
    const row = this.rows.get(sku);
    if (!row) return undefined;
    let lo = 0;
    let hi = row.v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (row.v[mid]! >= version) hi = mid;
      else lo = mid + 1;
    }
    return row.t[lo];
  }
  has(sku: string, version: number) {
    return this.firstAt(sku, version) !== undefined;
  }
  size() {
    return this.rows.size;
  }
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1] ?? NaN };
}

/** Every message of the stream from `startSeq` to `endSeq` (ordered consumer, filtered here). */
async function readStream(nc: NatsConnection, stream: string, startSeq: number, endSeq: number, onMessage: (subject: string, data: Uint8Array) => void) {
  if (endSeq < startSeq) return;
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq });
  const messages = await consumer.consume({ max_messages: 5000 });
  const stop = setTimeout(() => void messages.close(), 120_000);
  try {
    for await (const m of messages) {
      if (m.seq > endSeq) break;
      onMessage(m.subject, m.data);
      if (m.seq >= endSeq) break;
    }
  } finally {
    clearTimeout(stop);
    await messages.close().catch(() => {});
  }
}

/** The first process whose argv matches. */
async function findPid(match: (args: string[]) => boolean): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline && match(cmdline.split('\0'))) return Number(entry);
  }
  return undefined;
}

/** Pids of the direct children of `pid` (Postgres' backends and helpers). */
async function childPids(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const st = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …; comm may hold spaces and parentheses, so read after the last ")"
    const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out;
}

// last, so that every declaration above is initialised before it runs
await runBench();
