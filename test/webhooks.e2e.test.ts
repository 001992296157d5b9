/**
 * Outbound webhooks end to end: API writes → cdc reader (child process) → JetStream → the webhooks
 * fan-out projection (in-process, on this file's stream) → webhook_deliveries → delivery workers
 * (in-process) → a receiver HTTP server in this file that verifies every Standard Webhooks signature
 * with its own HMAC code (not the sender's) and checks the timestamp is recent.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.ts';
import { PERMISSIONS, ROLES } from '../api/auth/permissions.ts';
import { createTokenVerifier } from '../api/auth/tokens.ts';
import { createPiiCipher } from '../api/domain/pii-cipher.ts';
import { compareLsn } from '../cdc/lsn.ts';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import { DeliveryWorker, type DeliveryWorkerSettings } from '../projectors/webhooks/delivery-worker.ts';
import { createWebhookFanOut } from '../projectors/webhooks/fan-out.ts';
import { createHttpSender } from '../projectors/webhooks/http-sender.ts';
import { createHarness, TEST_PII_KEYS, TEST_TOKEN_SETTINGS, type Harness } from './harness.ts';
import { cdcEnv, cleanUp, keepRunning, killAll, SHARED_NATS, startNodeProcess, uniqueNames, until, type PipelineNames } from './pipeline-harness.ts';

const SKUS = ['WH-0', 'WH-1', 'WH-2', 'WH-3'];
const LOAD_SKUS = Array.from({ length: 10 }, (_, i) => `WH-L${i}`);
const silent = pino({ level: process.env.WEBHOOK_TEST_LOG ?? 'silent' });

let h: Harness;
let names: PipelineNames;
let nc: NatsConnection;
let fanOut: { stop(): Promise<void> };
let fanOutRuntime: ProjectorRuntime;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const workers = new Set<DeliveryWorker>();
const pools: pg.Pool[] = [];
const previousAllowHttp = process.env.WEBHOOKS_ALLOW_HTTP;

// ---------------------------------------------------------------------------------------------------
// the receiver: independent Standard Webhooks verification
// ---------------------------------------------------------------------------------------------------

type Mode = { kind: 'up'; delayMs?: number } | { kind: 'down'; status: number; retryAfter?: string };

interface Received {
  id: string;
  timestamp: number;
  body: any;
  at: number;
}

/** The HMAC of "<id>.<timestamp>.<body>" under the key a whsec_ secret stands for, computed here. */
function expectedSignature(secret: string, id: string, timestamp: string, body: string): Buffer {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
}

async function startReceiver() {
  const paths = new Map<string, { secret?: string; mode: Mode; accepted: Received[]; acceptedIds: Map<string, number>; refused: number; badSignatures: string[] }>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      const target = paths.get(req.url ?? '');
      if (!target) {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const timestamp = String(req.headers['webhook-timestamp'] ?? '');
      const signatures = String(req.headers['webhook-signature'] ?? '').split(' ');
      const want = target.secret ? expectedSignature(target.secret, id, timestamp, body) : undefined;
      const signed = want !== undefined && signatures.some((s) => {
        const [version, value] = s.split(',');
        const got = Buffer.from(value ?? '', 'base64');
        return version === 'v1' && got.length === want.length && timingSafeEqual(got, want);
      });
      const recent = /^\d+$/.test(timestamp) && Math.abs(at / 1000 - Number(timestamp)) <= 300;
      if (!id || !signed || !recent || req.method !== 'POST' || req.headers['content-type'] !== 'application/json') {
        target.badSignatures.push(`${id} ${timestamp} signed=${signed} recent=${recent}`);
        res.writeHead(401).end();
        return;
      }
      const mode = target.mode;
      if (mode.kind === 'down') {
        target.refused += 1;
        res.writeHead(mode.status, mode.retryAfter ? { 'retry-after': mode.retryAfter } : {}).end('unavailable');
        return;
      }
      const answer = () => {
        target.accepted.push({ id, timestamp: Number(timestamp), body: JSON.parse(body), at });
        target.acceptedIds.set(id, (target.acceptedIds.get(id) ?? 0) + 1);
        res.writeHead(204).end();
      };
      if (mode.delayMs) setTimeout(answer, mode.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    /** a fresh path on the receiver, starting in `mode` */
    path(name: string, mode: Mode = { kind: 'up' }) {
      const state = { mode, accepted: [] as Received[], acceptedIds: new Map<string, number>(), refused: 0, badSignatures: [] as string[], secret: undefined as string | undefined };
      paths.set(`/hooks/${name}`, state);
      return { url: `http://127.0.0.1:${port}/hooks/${name}`, state };
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

// ---------------------------------------------------------------------------------------------------
// the pipeline
// ---------------------------------------------------------------------------------------------------

const NORMAL: DeliveryWorkerSettings = {
  timeoutMs: 2000, pollMs: 100, concurrency: 4, baseDelayMs: 50, maxDelayMs: 400, retryWindowMs: 60_000, disableAfterMs: 120_000,
};

function startWorker(settings: Partial<DeliveryWorkerSettings> = {}) {
  const full = { ...NORMAL, ...settings };
  const pool = new pg.Pool({ connectionString: h.url, max: full.concurrency + 2 });
  pool.on('error', () => {}); // the database is dropped with FORCE at the end
  pools.push(pool);
  const sent = { count: 0 };
  const base = createHttpSender(); // counted: two workers must not send one delivery twice
  const worker = new DeliveryWorker({
    pool, cipher: createPiiCipher(TEST_PII_KEYS), log: silent, settings: full,
    sender: {
      post: (request) => {
        sent.count += 1;
        return base.post(request);
      },
      close: () => base.close(),
    },
  });
  worker.start();
  workers.add(worker);
  return {
    worker, sent,
    async stop() {
      workers.delete(worker);
      await worker.stop();
    },
  };
}

/** Waits until the fan-out has applied everything committed so far (so a new endpoint sees only later changes). */
async function fanOutCaughtUp() {
  const { rows } = await h.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await until('the fan-out to catch up', () => {
    const applied = fanOutRuntime.applied();
    return applied && compareLsn(applied.lsn, rows[0]!.lsn) >= 0 ? true : undefined;
  }, 30_000);
}

async function register(url: string, eventTypes: string[]) {
  const created = await h.ok(201, 'POST', '/v1/webhooks', { body: { url, event_types: eventTypes } });
  return created as { secret: string; webhook: { id: string; status: string } };
}

async function adjust(sku: string, delta = 1): Promise<number> {
  const res = await h.ok(200, 'POST', '/v1/adjustments', { body: { sku, location: 'MAIN', delta, reason: 'found' } });
  return Number(res.stock.version);
}

const webhookIdOrder = (r: Received[]) => r.map((x) => BigInt(x.id));
const isIncreasing = (xs: bigint[]) => xs.every((x, i) => i === 0 || xs[i - 1]! < x);

beforeAll(async () => {
  process.env.WEBHOOKS_ALLOW_HTTP = 'true'; // the receiver is plain http on loopback
  h = await createHarness({ poolMax: 20 });
  await h.fixtures.location('MAIN');
  for (const sku of [...SKUS, ...LOAD_SKUS]) {
    await h.fixtures.product(sku);
    await h.fixtures.receive(sku, 'MAIN', 100_000);
  }
  receiver = await startReceiver();
  names = uniqueNames('webhooks');
  startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
  nc = await connect({ servers: SHARED_NATS, maxReconnectAttempts: -1 });
  const fanPool = new pg.Pool({ connectionString: h.url, max: 2 });
  fanPool.on('error', () => {});
  pools.push(fanPool);
  fanOutRuntime = new ProjectorRuntime({
    nc, stream: names.stream, subjectPrefix: names.prefix, name: 'webhooks', log: silent,
    projection: createWebhookFanOut({ pool: fanPool, log: silent, onQueued: () => workers.forEach((w) => w.wake()) }),
  });
  await until('the CDC stream to exist', async () => {
    const { jetstreamManager } = await import('@nats-io/jetstream');
    return (await jetstreamManager(nc)).streams.info(names.stream).then(() => true, () => undefined);
  });
  fanOut = keepRunning(fanOutRuntime);
  await fanOutCaughtUp();
}, 120_000);

afterAll(async () => {
  await Promise.all([...workers].map((w) => w.stop()));
  await fanOut?.stop();
  await nc?.close();
  await killAll();
  if (names) await cleanUp({ databaseUrl: h.url, names });
  await receiver?.close();
  for (const pool of pools) await pool.end();
  await h?.close();
  if (previousAllowHttp === undefined) delete process.env.WEBHOOKS_ALLOW_HTTP;
  else process.env.WEBHOOKS_ALLOW_HTTP = previousAllowHttp;
});

describe('webhook endpoints through the API', () => {
  it('shows the signing secret once, at registration, and never again (list, database, audit)', async () => {
    const target = receiver.path('secret-check');
    const { secret, webhook } = await register(target.url, ['stock.changed', 'order.created']);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    expect(webhook).toMatchObject({ url: target.url, event_types: ['stock.changed', 'order.created'], status: 'active', disabled_reason: null });

    const listed = await h.ok(200, 'GET', '/v1/webhooks');
    const mine = listed.webhooks.find((w: any) => w.id === webhook.id);
    expect(mine).toMatchObject({ id: webhook.id, pending: 0, dead: 0 });
    expect(JSON.stringify(listed)).not.toContain(secret.slice(6));
    expect(Object.keys(mine)).not.toContain('secret');

    const stored = (await h.pool.query('SELECT secret FROM webhook_endpoints WHERE id = $1', [webhook.id])).rows[0].secret;
    expect(stored).toMatch(/^v1\.t1\./);
    expect(stored).not.toContain(secret.slice(6));
    expect(createPiiCipher(TEST_PII_KEYS).decrypt(stored)).toBe(secret);
    const audit = await h.pool.query("SELECT action, after FROM audit_log WHERE entity = 'webhook_endpoint' AND entity_id = $1", [webhook.id]);
    expect(audit.rows.map((r) => r.action)).toEqual(['webhook.create']);
    expect(JSON.stringify(audit.rows)).not.toContain(secret.slice(6));

    // a stored answer would hold the secret in clear, so an idempotent create is refused
    const keyed = await h.call('POST', '/v1/webhooks', { body: { url: target.url, event_types: ['*'] }, headers: { 'idempotency-key': 'wh-create-1' } });
    expect(keyed.status).toBe(400);
    expect(keyed.body.error.code).toBe('idempotency_not_supported');

    await h.ok(200, 'DELETE', `/v1/webhooks/${webhook.id}`);
    expect((await h.ok(200, 'GET', '/v1/webhooks')).webhooks.some((w: any) => w.id === webhook.id)).toBe(false);
    expect((await h.call('DELETE', `/v1/webhooks/${webhook.id}`)).status).toBe(404);
  });

  it('refuses an http:// URL unless WEBHOOKS_ALLOW_HTTP=true, and URLs carrying credentials', async () => {
    process.env.WEBHOOKS_ALLOW_HTTP = 'false';
    const strict = createApp({
      db: h.db, pool: h.pool, log: silent, clock: h.clock.now, verifyToken: createTokenVerifier(TEST_TOKEN_SETTINGS),
      cipher: createPiiCipher(TEST_PII_KEYS), settings: { reservationTtlSeconds: 900, defaultLocation: 'MAIN' },
    });
    process.env.WEBHOOKS_ALLOW_HTTP = 'true';
    const post = (url: string) => strict.request('/v1/webhooks', {
      method: 'POST', headers: { authorization: `Bearer ${h.tokens.admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ url, event_types: ['*'] }),
    });
    const refused = await post('http://127.0.0.1:9/hooks');
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.code).toBe('insecure_url');
    const https = await post('https://hooks.example/stockwire');
    expect(https.status).toBe(201);
    await h.ok(200, 'DELETE', `/v1/webhooks/${(await https.json()).webhook.id}`);
    // the permissive app (this file's harness) takes http, but never credentials in the URL or unknown types
    expect((await h.call('POST', '/v1/webhooks', { body: { url: 'https://user:pw@hooks.example/x', event_types: ['*'] } })).status).toBe(400);
    expect((await h.call('POST', '/v1/webhooks', { body: { url: 'ftp://hooks.example/x', event_types: ['*'] } })).body.error.code).toBe('insecure_url');
    expect((await h.call('POST', '/v1/webhooks', { body: { url: 'https://hooks.example/x', event_types: ['stock.exploded'] } })).status).toBe(400);
  });

  it('answers 403 to every role but admin on every webhook route', async () => {
    const allowed = PERMISSIONS['webhooks:manage'] as readonly string[];
    const id = '00000000-0000-4000-8000-000000000000';
    const calls: [string, string, unknown?][] = [
      ['POST', '/v1/webhooks', { url: 'https://hooks.example/x', event_types: ['*'] }], ['GET', '/v1/webhooks'], ['DELETE', `/v1/webhooks/${id}`],
      ['POST', `/v1/webhooks/${id}/enable`], ['GET', `/v1/webhooks/${id}/dead-letters`], ['POST', `/v1/webhooks/${id}/dead-letters/1/replay`],
    ];
    for (const role of ROLES.filter((r) => !allowed.includes(r))) {
      for (const [method, path, body] of calls) {
        const res = await h.call(method, path, { role, body });
        expect(res.status, `${method} ${path} as ${role}`).toBe(403);
        expect(res.body.error.details.action).toBe('webhooks:manage');
      }
    }
  });
});

describe('delivery', () => {
  it('delivers every event in order and none twice after the receiver was down (503) during 100 stock changes', async () => {
    const worker = startWorker();
    try {
      const target = receiver.path('outage', { kind: 'down', status: 503, retryAfter: '1' });
      await fanOutCaughtUp();
      const { secret, webhook } = await register(target.url, ['stock.changed']);
      target.state.secret = secret;
      const versions: number[] = [];
      for (let i = 0; i < 100; i++) versions.push(await adjust('WH-0'));
      await until('the receiver to refuse a few attempts', () => (target.state.refused >= 3 ? true : undefined), 30_000);
      await until('all 100 queued', async () => {
        const backlog = (await h.ok(200, 'GET', '/v1/webhooks')).webhooks.find((w: any) => w.id === webhook.id);
        return backlog.pending === 100 ? true : undefined;
      }, 30_000);
      expect(target.state.accepted).toHaveLength(0);

      target.state.mode = { kind: 'up' };
      await until('all 100 events', () => (target.state.accepted.length >= 100 ? true : undefined), 60_000);
      await new Promise((r) => setTimeout(r, 300)); // nothing more may arrive

      const got = target.state.accepted;
      expect(got).toHaveLength(100);
      expect([...target.state.acceptedIds.values()].every((n) => n === 1)).toBe(true);
      expect(isIncreasing(webhookIdOrder(got))).toBe(true);
      expect(got.map((r) => r.body.data.version)).toEqual(versions);
      expect(target.state.badSignatures).toEqual([]);
      const last = got[got.length - 1]!.body;
      expect(last).toMatchObject({ type: 'stock.changed', event_id: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+:\d+$/) });
      expect(last.data).toMatchObject({ sku: 'WH-0', location: 'MAIN', reserved: 0, version: versions[99] });
      expect(last.data.available).toBe(last.data.on_hand - last.data.reserved);
      expect(Date.parse(last.timestamp)).toBeGreaterThan(0);
      const after = (await h.ok(200, 'GET', '/v1/webhooks')).webhooks.find((w: any) => w.id === webhook.id);
      expect(after).toMatchObject({ pending: 0, dead: 0, status: 'active', failing_since: null });
      await h.ok(200, 'DELETE', `/v1/webhooks/${webhook.id}`);
    } finally {
      await worker.stop();
    }
  }, 120_000);

  it('dead-letters what a permanently failing endpoint refuses, disables the endpoint, and delivers a replay once fixed', async () => {
    const worker = startWorker({ retryWindowMs: 1000, disableAfterMs: 2500, baseDelayMs: 50, maxDelayMs: 200 });
    try {
      const target = receiver.path('broken', { kind: 'down', status: 500 });
      await fanOutCaughtUp();
      const { secret, webhook } = await register(target.url, ['*']);
      target.state.secret = secret;
      await h.ok(200, 'PATCH', '/v1/products/WH-1', { body: { name: 'Renamed for webhooks' } });
      const versions = [await adjust('WH-1'), await adjust('WH-1')];

      const disabled = await until('the endpoint to be disabled', async () => {
        const w = (await h.ok(200, 'GET', '/v1/webhooks')).webhooks.find((x: any) => x.id === webhook.id);
        return w.status === 'disabled' ? w : undefined;
      }, 30_000);
      expect(disabled.disabled_reason).toMatch(/no successful delivery since .*HTTP 500/);
      const dead = (await h.ok(200, 'GET', `/v1/webhooks/${webhook.id}/dead-letters`)).dead_letters;
      expect(dead.length).toBeGreaterThanOrEqual(1);
      const oldest = dead[dead.length - 1];
      expect(oldest).toMatchObject({ status: 'dead', event_type: 'product.changed', last_error: 'HTTP 500' });
      expect(oldest.attempts).toBeGreaterThan(1);
      expect(oldest.payload.data).toMatchObject({ sku: 'WH-1', name: 'Renamed for webhooks' });
      expect(target.state.accepted).toHaveLength(0);

      // fixed: replay the dead letters while the endpoint is still disabled, then enable it — order is kept
      target.state.mode = { kind: 'up' };
      for (const d of dead) {
        const replayed = await h.ok(200, 'POST', `/v1/webhooks/${webhook.id}/dead-letters/${d.id}/replay`);
        expect(replayed).toMatchObject({ status: 'pending', attempts: 0, last_error: null });
      }
      const again = await h.call('POST', `/v1/webhooks/${webhook.id}/dead-letters/${dead[0].id}/replay`);
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe('not_dead');
      expect((await h.ok(200, 'POST', `/v1/webhooks/${webhook.id}/enable`))).toMatchObject({ status: 'active', disabled_reason: null, failing_since: null });

      await until('the three events', () => (target.state.accepted.length >= 3 ? true : undefined), 30_000);
      const got = target.state.accepted;
      expect(got.map((r) => r.body.type)).toEqual(['product.changed', 'stock.changed', 'stock.changed']);
      expect(got.slice(1).map((r) => r.body.data.version)).toEqual(versions);
      expect(isIncreasing(webhookIdOrder(got))).toBe(true);
      expect(target.state.badSignatures).toEqual([]);
      expect((await h.ok(200, 'GET', `/v1/webhooks/${webhook.id}/dead-letters`)).dead_letters).toEqual([]);
      const audit = await h.pool.query("SELECT action FROM audit_log WHERE entity IN ('webhook_endpoint', 'webhook_delivery') AND (entity_id = $1 OR entity_id = ANY($2)) ORDER BY id",
        [webhook.id, dead.map((d: any) => d.id)]);
      expect(audit.rows.map((r) => r.action)).toEqual(['webhook.create', ...dead.map(() => 'webhook.replay'), 'webhook.enable']);
      await h.ok(200, 'DELETE', `/v1/webhooks/${webhook.id}`);
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('sends each event exactly once, in order per endpoint, with two workers running at once', async () => {
    const a = startWorker();
    const b = startWorker();
    try {
      await fanOutCaughtUp();
      const targets = await Promise.all(['twin-1', 'twin-2', 'twin-3'].map(async (name) => {
        const target = receiver.path(name, { kind: 'up', delayMs: 2 });
        const { secret, webhook } = await register(target.url, ['stock.changed']);
        target.state.secret = secret;
        return { ...target, id: webhook.id };
      }));
      const versions = new Map<string, number[]>([['WH-2', []], ['WH-3', []]]);
      for (let i = 0; i < 75; i++) {
        const [v2, v3] = await Promise.all([adjust('WH-2'), adjust('WH-3')]);
        versions.get('WH-2')!.push(v2);
        versions.get('WH-3')!.push(v3);
      }
      for (const t of targets) await until(`${t.url} to get 150 events`, () => (t.state.accepted.length >= 150 ? true : undefined), 60_000);
      await new Promise((r) => setTimeout(r, 500));
      for (const t of targets) {
        expect(t.state.accepted).toHaveLength(150);
        expect([...t.state.acceptedIds.values()].every((n) => n === 1)).toBe(true);
        expect(isIncreasing(webhookIdOrder(t.state.accepted))).toBe(true);
        for (const [sku, want] of versions) {
          expect(t.state.accepted.filter((r) => r.body.data.sku === sku).map((r) => r.body.data.version)).toEqual(want);
        }
        expect(t.state.badSignatures).toEqual([]);
      }
      // requests made = deliveries accepted: no send was duplicated by the other worker
      expect(a.sent.count + b.sent.count).toBe(450);
      console.log(`two workers: ${a.sent.count} + ${b.sent.count} sends for 450 deliveries`);
      for (const t of targets) await h.ok(200, 'DELETE', `/v1/webhooks/${t.id}`);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 120_000);
});

describe('latency', () => {
  it('measures commit → receiver at 200 changes/s for 20 s through the webhooks process (reported, not asserted)', async () => {
    // the real entry point in its own process: in-process, the worker would share this file's event loop
    // with the API and the load generator, and measure them
    const suffix = `-lat${process.pid}`;
    const child = startNodeProcess('projectors/webhooks/main.ts', {
      DATABASE_URL: h.url, PII_KEYS: TEST_PII_KEYS.map((k) => `${k.kid}:${k.key.toString('base64')}`).join(','), NATS_URL: SHARED_NATS,
      CDC_STREAM: names.stream, CDC_SUBJECT_PREFIX: names.prefix, PROJECTOR_NAME_SUFFIX: suffix, PROJECTOR_PROBE_PORT: '0',
      WEBHOOK_POLL_MS: '100', LOG_LEVEL: 'warn',
    });
    try {
      await fanOutCaughtUp();
      // the process's own fan-out replays the stream from its start: let it pass everything so far first
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const jsm = await jetstreamManager(nc);
      await until('the webhooks process to catch up', async () => {
        const info = await jsm.consumers.info(names.stream, `webhooks${suffix}`).catch(() => undefined);
        return info && info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
      }, 60_000, 200);
      const target = receiver.path('latency');
      const { secret, webhook } = await register(target.url, ['stock.changed']);
      target.state.secret = secret;
      const perTick = 10; // every 50 ms: 10 changes on 10 rows → 200/s
      const ticks = 400;
      const started = Date.now();
      const inFlight: Promise<unknown>[] = [];
      for (let t = 0; t < ticks; t++) {
        const due = started + t * 50;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        for (let i = 0; i < perTick; i++) inFlight.push(adjust(LOAD_SKUS[i]!));
        if (inFlight.length > 200) await Promise.all(inFlight.splice(0, inFlight.length - 50));
      }
      await Promise.all(inFlight);
      const offered = ((ticks * perTick) / ((Date.now() - started) / 1000)).toFixed(0);
      await until('every load event at the receiver', () => (target.state.accepted.length >= ticks * perTick ? true : undefined), 90_000);
      const lat = target.state.accepted.map((r) => r.at - Date.parse(r.body.timestamp)).sort((x, y) => x - y);
      const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;
      console.log(`webhook latency commit → receiver at ${offered} changes/s over ${lat.length} events: p50 ${pct(50)} ms, p90 ${pct(90)} ms, p99 ${pct(99)} ms, max ${lat[lat.length - 1]} ms`);
      const stages = await h.pool.query(`
        SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - (payload->>'timestamp')::timestamptz) * 1000) AS queued,
               percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at) * 1000) AS sent,
               count(*) / greatest(extract(epoch FROM max(delivered_at) - min(delivered_at)), 0.001) AS rate
          FROM webhook_deliveries WHERE endpoint_id = $1`, [webhook.id]);
      const [q, d] = [stages.rows[0].queued.map(Number), stages.rows[0].sent.map(Number)];
      console.log(`  of which commit → queued p50 ${q[0].toFixed(0)} ms p99 ${q[1].toFixed(0)} ms; queued → delivered p50 ${d[0].toFixed(0)} ms p99 ${d[1].toFixed(0)} ms; sent ${Number(stages.rows[0].rate).toFixed(0)}/s to the one endpoint (load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)} on ${(await import('node:os')).cpus().length} cores)`);
      expect(target.state.badSignatures).toEqual([]);
      expect([...target.state.acceptedIds.values()].every((n) => n === 1)).toBe(true);
      await h.ok(200, 'DELETE', `/v1/webhooks/${webhook.id}`);
    } catch (err) {
      console.log(child.output().slice(-3000));
      throw err;
    } finally {
      await child.kill();
    }
  }, 180_000);
});
