/**
 * The system on more than one node: a three-node NATS cluster (R3 CDC stream), two API processes and two
 * cdc readers (one active, one standby), all real child processes. Orders (with confirms and cancels)
 * alternate between the two APIs over HTTP while the nats-server leading the CDC stream and then the
 * active cdc reader are SIGKILLed. Afterwards every committed ledger row has reached a counting
 * projector exactly once, the stream holds no duplicate Nats-Msg-Id, and the ledger invariants hold.
 * The recovery times (new stream leader, publishing again, the projector applying again, standby
 * streaming) are measured and printed; only a generous bound is asserted.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../api/auth/tokens.ts';
import type { StreamMessage } from '../cdc/envelope.ts';
import { freePort } from './free-port.ts';
import { createHarness, type Harness } from './harness.ts';
import { ledgerViolations } from './invariants.ts';
import { startNatsCluster, type NatsCluster } from './nats-cluster.ts';
import {
  cdcEnv, cleanUp, killAll, maxMovementId, movementIdsAfter, startCountingProjector, startNodeProcess, uniqueNames, until, type ManagedProcess,
} from './pipeline-harness.ts';

const SKUS = Array.from({ length: 12 }, (_, i) => `MN-${String(i).padStart(2, '0')}`);
const TOKEN_SETTINGS = { secret: randomBytes(24).toString('hex'), issuer: 'stockwire', audience: 'stockwire-api' };
const PII_KEYS = `k1:${randomBytes(32).toString('base64')}`;
const LOAD_MS = 20_000;
const LOAD_MAX_ORDERS = 5_000;
const WORKERS = 8;
const RECOVERY_BOUND_MS = 60_000;

let h: Harness;
let cluster: NatsCluster | undefined;
let monitor: NatsConnection | undefined;
let counting: Awaited<ReturnType<typeof startCountingProjector>> | undefined;
const names = uniqueNames('multinode');

beforeAll(async () => {
  h = await createHarness({ poolMax: 8 });
  await h.fixtures.location('MAIN');
  for (const sku of SKUS) {
    await h.fixtures.product(sku);
    await h.fixtures.receive(sku, 'MAIN', 1_000_000);
  }
  cluster = await startNatsCluster({ tag: 'mn' });
});

afterAll(async () => {
  await counting?.stop().catch(() => {});
  await monitor?.close().catch(() => {});
  await killAll(); // SIGKILL by PID: APIs and cdc readers
  // cleanUp connects to the one URL it is given; give it a node that is still running
  if (cluster) await cleanUp({ databaseUrl: h.url, names, natsUrl: cluster.aliveUrls()[0] });
  else await cleanUp({ databaseUrl: h.url, names, natsUrl: 'nats://127.0.0.1:1' });
  await cluster?.destroy();
  await h.close();
}, 60_000);

/** The last log lines of each process, appended to a failure so it explains itself. */
function withLogs(processes: Record<string, ManagedProcess>) {
  return (err: Error): never => {
    const logs = Object.entries(processes).map(([name, p]) => `--- ${name}\n${p.output().split('\n').slice(-12).join('\n')}`).join('\n');
    err.message = `${err.message}\n${logs}`;
    throw err;
  };
}

/** The probe port a cdc process logged ("cdc probes listening"). */
function probePort(p: ManagedProcess): number | undefined {
  const m = /"probePort":(\d+)/.exec(p.output());
  return m ? Number(m[1]) : undefined;
}

/** Whether a cdc process reports itself active and streaming (/readyz 200). */
async function ready(p: ManagedProcess): Promise<boolean> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return false;
  const port = probePort(p);
  if (!port) return false;
  return fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);
}

async function startApi(url: string, natsUrls: string) {
  const port = await freePort();
  const proc = startNodeProcess('api/server.ts', {
    DATABASE_URL: url, JWT_SECRET: TOKEN_SETTINGS.secret, PII_KEYS, PORT: String(port), HOST: '127.0.0.1',
    NATS_URL: natsUrls, REDIS_URL: '', DB_POOL_MAX: '8', CDC_SLOT: names.slot, CDC_STREAM: names.stream,
  });
  const base = `http://127.0.0.1:${port}`;
  await until(`the API on ${port} to answer`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`API exited:\n${proc.output()}`);
    return fetch(`${base}/healthz`).then((r) => (r.ok ? true : undefined), () => undefined);
  }, 30_000, 100);
  return { proc, base };
}

/** Time a stored message says it was made: the commit time of a change, or a marker's `at`. */
function madeAt(body: StreamMessage): number {
  return Date.parse(body.op === 'position' ? body.at : body.source.commitTime);
}

/** The stream's leader (server_name) and the time of its newest message, or undefined if it has no leader now. */
async function streamState(jsm: JetStreamManager): Promise<{ leader: string; lastSeq: number; lastMadeAt: number | undefined } | undefined> {
  try {
    const info = await jsm.streams.info(names.stream);
    const leader = info.cluster?.leader;
    if (!leader) return undefined;
    let lastMadeAt: number | undefined;
    if (info.state.messages > 0) {
      const m = await jsm.streams.getMessage(names.stream, { seq: info.state.last_seq }).catch(() => null);
      if (m) lastMadeAt = madeAt(m.json<StreamMessage>());
    }
    return { leader, lastSeq: info.state.last_seq, lastMadeAt };
  } catch {
    return undefined; // no leader yet, or the request went to the node that just died
  }
}

/**
 * Every message of the stream in one pass. Read through a durable consumer (deleted afterwards), not an
 * ordered one: nats-server before 2.12 may place an ephemeral consumer of an R3 stream on the offline
 * peer (nats-io/nats-server#7165), and its creation then times out while a node is down.
 */
async function streamMessages(nc: NatsConnection) {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(names.stream);
  const out: { seq: number; msgId: string | undefined; body: StreamMessage }[] = [];
  if (info.state.messages === 0) return out;
  const reader = 'multi-node-audit';
  await jsm.consumers.add(names.stream, { durable_name: reader, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All });
  try {
    // a pull sent before the consumer has a leader is lost and only re-sent after missed heartbeats
    await until('the reading consumer to have a leader', async () => ((await jsm.consumers.info(names.stream, reader)).cluster?.leader ? true : undefined), 20_000, 50);
    const consumer = await jetstream(nc).consumers.get(names.stream, reader);
    const messages = await consumer.consume({ max_messages: 2000, expires: 5_000 });
    for await (const m of messages) {
      out.push({ seq: m.seq, msgId: m.headers?.get('Nats-Msg-Id') || undefined, body: m.json<StreamMessage>() });
      if (m.seq >= info.state.last_seq) break;
    }
    await messages.close().catch(() => {});
  } finally {
    await jsm.consumers.delete(names.stream, reader).catch(() => {});
  }
  return out;
}

describe('three NATS nodes, two APIs, two cdc readers', () => {
  it('loses and doubles nothing while the stream-leading nats-server and then the active cdc reader are SIGKILLed under load', async () => {
    const testStarted = Date.now();
    const c = cluster!;
    const natsUrls = c.urls();
    // the stream reserves max_bytes on every replica: keep it within the nodes' 1 GB file store
    const env = { ...cdcEnv(h.url, names, natsUrls), CDC_STREAM_REPLICAS: '3', CDC_STREAM_MAX_BYTES: String(256 * 1024 ** 2) };

    // two readers: the first takes the leader lock, creates the R3 stream and the slot; the second waits
    const cdcs = [startNodeProcess('cdc/main.ts', env)];
    await until('the first reader to stream', async () => ((await ready(cdcs[0]!)) ? true : undefined), 45_000, 100)
      .catch(withLogs({ cdc0: cdcs[0]! }));
    cdcs.push(startNodeProcess('cdc/main.ts', env));
    const logs = withLogs({ cdc0: cdcs[0]!, cdc1: cdcs[1]! });
    await until('the second reader to wait as standby', () => (cdcs[1]!.output().includes('standby') ? true : undefined), 30_000, 50).catch(logs);

    monitor = await connect({ servers: c.nodes.map((n) => n.url), maxReconnectAttempts: -1, name: 'multi-node-monitor' });
    // short timeouts: while the stream has no leader its API does not answer, and each poll waits this long
    const jsm = await jetstreamManager(monitor, { timeout: 500 });
    const initial = await until('the R3 stream to have a leader and two current replicas', async () => {
      const info = await jsm.streams.info(names.stream).catch(() => undefined);
      const replicas = info?.cluster?.replicas ?? [];
      return info?.cluster?.leader && info.config.num_replicas === 3 && replicas.length === 2 && replicas.every((r) => r.current) ? info : undefined;
    }, 30_000, 100);
    expect(c.node(initial.cluster!.leader!)).toBeDefined();

    const apis = [await startApi(h.url, natsUrls), await startApi(h.url, natsUrls)];
    const token = await issueToken(TOKEN_SETTINGS, { subject: 'multi-node-load', roles: ['order-system'] });
    // the helper hands the comma-separated list to nats.js as one server string, which keeps only the last
    // URL for the first connect; the client then learns the other nodes from the cluster's INFO
    counting = await startCountingProjector({ names, natsUrl: natsUrls });
    const baseline = await maxMovementId(h.pool);

    // ---- load: orders alternate between the two API processes, a third confirmed, a third cancelled
    const stats = { orders: 0, confirms: 0, cancels: 0, byApi: [0, 0] };
    const loadStarted = Date.now();
    const setupMs = loadStarted - testStarted;
    let next = 0;
    async function post(base: string, path: string, body?: unknown) {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    }
    async function worker() {
      while (next < LOAD_MAX_ORDERS && Date.now() - loadStarted < LOAD_MS) {
        const n = next++;
        const api = apis[n % 2]!;
        const lines = [{ sku: SKUS[n % SKUS.length]!, qty: 1 + (n % 3) }, ...(n % 4 === 0 ? [{ sku: SKUS[(n + 5) % SKUS.length]!, qty: 1 }] : [])];
        const order = await post(api.base, '/v1/orders', { lines });
        if (order.status !== 201) throw new Error(`order ${n} → ${order.status}: ${JSON.stringify(order.body)}`);
        stats.orders += 1;
        stats.byApi[n % 2]! += 1;
        // settle on the other API process: both serve the same database
        const other = apis[(n + 1) % 2]!;
        if (n % 3 === 0) {
          const r = await post(other.base, `/v1/orders/${order.body.id}/confirm`);
          if (r.status !== 200) throw new Error(`confirm ${order.body.id} → ${r.status}: ${JSON.stringify(r.body)}`);
          stats.confirms += 1;
        } else if (n % 3 === 1) {
          const r = await post(other.base, `/v1/orders/${order.body.id}/cancel`);
          if (r.status !== 200) throw new Error(`cancel ${order.body.id} → ${r.status}: ${JSON.stringify(r.body)}`);
          stats.cancels += 1;
        }
      }
    }

    // ---- faults, while the load runs
    const recovery: Record<string, number> = {};
    let killedNats = '';
    let newLeader = '';
    let takeoverErrors: string[] = [];
    async function faults() {
      await new Promise((r) => setTimeout(r, 4_000));
      // 1. SIGKILL the nats-server that leads the CDC stream
      const before = await until('the stream leader', () => streamState(jsm), 10_000, 50);
      killedNats = before.leader;
      const natsKilledAt = Date.now();
      await c.kill(killedNats);
      // in the background: when the counting projector applies a change committed after the kill
      const projectorResumed = until('the counting projector to apply a change committed after the NATS kill', () => {
        const last = counting!.seen.at(-1);
        return last && Date.parse(last.source.commitTime) > natsKilledAt ? Date.now() - natsKilledAt : undefined;
      }, 90_000, 25).then((ms) => (recovery.projectorResumedMs = ms), () => {});
      const elected = await until('a new stream leader', async () => {
        const s = await streamState(jsm);
        return s && s.leader !== killedNats ? s : undefined;
      }, RECOVERY_BOUND_MS, 25);
      recovery.natsLeaderElectedMs = Date.now() - natsKilledAt;
      newLeader = elected.leader;
      // publishing has resumed once the stream holds a message made after the kill (the old leader is dead,
      // so only the new leader can have stored it)
      await until('publishing to resume on the new leader', async () => {
        const s = await streamState(jsm);
        return s && s.leader !== killedNats && s.lastMadeAt !== undefined && s.lastMadeAt > natsKilledAt ? s : undefined;
      }, RECOVERY_BOUND_MS, 25);
      recovery.natsPublishResumedMs = Date.now() - natsKilledAt;

      // 2. SIGKILL the active cdc reader (whichever holds the lock now: a restart may have swapped them)
      const wait = loadStarted + 11_000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const active = await until('exactly one active reader', async () => {
        const states = await Promise.all(cdcs.map(ready));
        return states.filter(Boolean).length === 1 ? cdcs[states.indexOf(true)]! : undefined;
      }, RECOVERY_BOUND_MS, 25);
      expect(active.output()).toContain('streaming changes');
      const standby = cdcs.find((p) => p !== active)!;
      const cdcKilledAt = Date.now();
      const standbyLogFrom = standby.output().length;
      await active.kill('SIGKILL');
      await until('the standby to stream', async () => ((await ready(standby)) ? true : undefined), RECOVERY_BOUND_MS, 25);
      recovery.cdcTakeoverMs = Date.now() - cdcKilledAt;
      await until('publishing to resume from the standby', async () => {
        const s = await streamState(jsm);
        return s && s.lastMadeAt !== undefined && s.lastMadeAt > cdcKilledAt ? s : undefined;
      }, RECOVERY_BOUND_MS, 25);
      recovery.cdcPublishResumedMs = Date.now() - cdcKilledAt;
      takeoverErrors = [...standby.output().slice(standbyLogFrom).matchAll(/"message":"([^"]*)"[^\n]*cdc run ended/g)].map((m) => m[1]!);
      return { projectorResumed }; // boxed: the caller awaits the load and the faults first
    }

    const everything = withLogs({ cdc0: cdcs[0]!, cdc1: cdcs[1]!, api0: apis[0]!.proc, api1: apis[1]!.proc });
    const [{ projectorResumed }] = await Promise.all([faults(), ...Array.from({ length: WORKERS }, worker)]).catch(everything);
    const loadMs = Date.now() - loadStarted;
    expect(killedNats).not.toBe('');
    expect(recovery.cdcTakeoverMs).toBeDefined();

    // ---- every committed ledger row reached the projector exactly once
    const ids = await movementIdsAfter(h.pool, baseline);
    expect(ids.length).toBeGreaterThan(0);
    const want = new Set(ids);
    const caughtUpAt = Date.now();
    await until(`${ids.length} movement inserts at the counting projector`, () => {
      const seen = new Set(counting!.seen.filter((e) => e.table === 'stock_movements' && e.op === 'insert').map((e) => String(e.after!.id)));
      for (const id of want) if (!seen.has(id)) return undefined;
      return true;
    }, 60_000, 100).catch(everything);
    const catchUpMs = Date.now() - caughtUpAt;
    await projectorResumed; // settled by now: the catch-up above includes changes committed after the kill
    const seenMovements = counting.seen.filter((e) => e.table === 'stock_movements' && e.op === 'insert').map((e) => String(e.after!.id));
    expect(seenMovements.sort()).toEqual([...ids].sort());
    expect([...counting.effects.values()].every((n) => n === 1)).toBe(true);

    // ---- the stream holds each change once
    const readStarted = Date.now();
    const messages = await until('the stream to be read', () => streamMessages(monitor!).catch(() => undefined), 30_000, 500);
    const readMs = Date.now() - readStarted;
    const changes = messages.filter((m) => m.body.op !== 'position');
    const msgIds = changes.map((m) => m.msgId);
    expect(msgIds.every(Boolean)).toBe(true);
    const duplicates = msgIds.filter((id, i) => msgIds.indexOf(id) !== i);
    expect(new Set(msgIds).size, `duplicate Nats-Msg-Id: ${duplicates.slice(0, 5).join(', ')}`).toBe(msgIds.length);
    const streamedMovements = changes.filter((m) => m.body.op === 'insert' && m.body.table === 'stock_movements').length;
    expect(streamedMovements).toBe(ids.length);

    // ---- the ledger is consistent
    expect(await ledgerViolations(h.db)).toEqual([]);

    console.info(
      `multi-node: processes up in ${setupMs} ms; ${stats.orders} orders (${stats.byApi[0]}/${stats.byApi[1]} per API), ${stats.confirms} confirms, ${stats.cancels} cancels in ${loadMs} ms; ` +
      `${ids.length} movements, ${changes.length} changes in the stream; projector caught up ${catchUpMs} ms after the load; stream read in ${readMs} ms\n` +
      `  NATS stream leader ${killedNats} SIGKILLed: new leader ${newLeader} after ${recovery.natsLeaderElectedMs} ms, publishing resumed after ${recovery.natsPublishResumedMs} ms\n` +
      `  NATS node kill → counting projector applying new changes again after ${recovery.projectorResumedMs} ms\n` +
      `  active cdc SIGKILLed: standby streaming after ${recovery.cdcTakeoverMs} ms, publishing resumed after ${recovery.cdcPublishResumedMs} ms` +
      (takeoverErrors.length ? ` (standby runs that failed first: ${takeoverErrors.join(' | ')})` : ''),
    );
    for (const key of ['natsLeaderElectedMs', 'natsPublishResumedMs', 'cdcTakeoverMs', 'cdcPublishResumedMs']) {
      expect(recovery[key], key).toBeLessThan(RECOVERY_BOUND_MS);
    }
    await counting.stop();
    counting = undefined;
  }, 150_000);
});
