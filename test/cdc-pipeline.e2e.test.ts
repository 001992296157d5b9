/**
 * The CDC pipeline with real processes: Postgres (logical decoding) → cdc reader (child process) →
 * JetStream → projectors (redis-cache as a child process, a counting projector in-process). Faults are
 * real: SIGKILL of the reader and of a projector, a NATS restart (on a private nats-server), a standby
 * taking over. Each test has its own slot, stream, subjects and Redis keys, and removes them afterwards.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { StreamMessage } from '../cdc/envelope.ts';
import { compareLsn } from '../cdc/lsn.ts';
import { publishSnapshot } from '../cdc/snapshot.ts';
import { replayProjector } from '../projectors/runtime/replay.ts';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import pino from 'pino';
import { ensureDatabase } from '../db/cluster.ts';
import { createHarness, type Harness } from './harness.ts';
import {
  cacheDifferences, cdcEnv, cleanUp, killAll, maxMovementId, movementIdsAfter, projectorEnv, SHARED_NATS, startCountingProjector, startNodeProcess, startPrivateNats,
  uniqueNames, until, type PipelineNames,
} from './pipeline-harness.ts';

let h: Harness;
const SKUS = Array.from({ length: 12 }, (_, i) => `CDC-${String(i).padStart(2, '0')}`);

beforeAll(async () => {
  h = await createHarness({ poolMax: 16 });
  await h.fixtures.location('MAIN');
  for (const sku of SKUS) {
    await h.fixtures.product(sku);
    await h.fixtures.receive(sku, 'MAIN', 1_000_000);
  }
});

afterAll(async () => {
  await killAll();
  await h.close();
});

async function slotActive(slot: string): Promise<boolean> {
  const { rows } = await h.pool.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return Boolean(rows[0]?.active);
}

async function streamMessages(stream: string, natsUrl = SHARED_NATS) {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const out: { seq: number; subject: string; msgId: string | undefined; body: StreamMessage }[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (m) out.push({ seq, subject: m.subject, msgId: m.header?.get('Nats-Msg-Id') || undefined, body: m.json<StreamMessage>() });
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Places `count` orders from `workers` concurrent callers, confirming or cancelling some; calls `at(n)` as it goes. */
async function orderLoad(count: number, workers: number, at?: (done: number) => Promise<void> | void) {
  let next = 0;
  let done = 0;
  async function worker() {
    while (next < count) {
      const n = next++;
      const lines = [{ sku: SKUS[n % SKUS.length]!, qty: 1 + (n % 3) }, ...(n % 4 === 0 ? [{ sku: SKUS[(n + 5) % SKUS.length]!, qty: 1 }] : [])];
      const order = await h.ok(201, 'POST', '/v1/orders', { role: 'order-system', body: { lines } });
      if (n % 3 === 0) await h.ok(200, 'POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
      else if (n % 3 === 1) await h.ok(200, 'POST', `/v1/orders/${order.id}/cancel`, { role: 'order-system' });
      done += 1;
      await at?.(done);
    }
  }
  await Promise.all(Array.from({ length: workers }, worker));
}

/** Waits until the counting projector has applied an insert event for every movement id in `ids`. */
async function untilAllMovementsSeen(counting: Awaited<ReturnType<typeof startCountingProjector>>, ids: string[], timeoutMs = 90_000) {
  const want = new Set(ids);
  return until(`${ids.length} movement inserts at the counting projector`, () => {
    const seen = new Set(counting.seen.filter((e) => e.table === 'stock_movements' && e.op === 'insert').map((e) => String(e.after!.id)));
    for (const id of want) if (!seen.has(id)) return undefined;
    return seen;
  }, timeoutMs, 100);
}

function expectNoDuplicates(messages: Awaited<ReturnType<typeof streamMessages>>) {
  const ids = messages.filter((m) => m.body.op !== 'position').map((m) => m.msgId);
  expect(ids.every(Boolean)).toBe(true);
  expect(new Set(ids).size).toBe(ids.length);
}

describe('cdc reader → JetStream', () => {
  let names: PipelineNames;
  afterAll(async () => cleanUp({ databaseUrl: h.url, names }));

  it("publishes an order's changes in commit order, with the transaction's final change marked last", async () => {
    names = uniqueNames('order');
    const cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
    await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
    const order = await h.fixtures.order([{ sku: SKUS[0]!, qty: 2 }, { sku: SKUS[1]!, qty: 1 }], { customer: { email: 'x@example.com' } });
    const confirmed = await h.call('POST', `/v1/orders/${order.id}/confirm`, { role: 'order-system' });
    expect(confirmed.headers.get('x-stockwire-lsn')).toMatch(/\//);

    const messages = await until('both transactions in the stream', async () => {
      const all = await streamMessages(names.stream);
      const changes = all.filter((m) => m.body.op !== 'position');
      return changes.filter((m) => m.body.op !== 'position' && m.body.source.last).length >= 2 ? all : undefined;
    });
    const changes = messages.flatMap((m) => (m.body.op === 'position' ? [] : [{ ...m, event: m.body }]));
    const create = changes.filter((c) => c.event.source.commitLsn === changes[0]!.event.source.commitLsn);
    expect(create.map((c) => `${c.event.table}.${c.event.op}`).sort()).toEqual([
      'orders.insert', 'stock_levels.update', 'stock_levels.update', 'stock_movements.insert', 'stock_movements.insert',
    ]);
    expect(create.map((c) => c.event.source.index)).toEqual([0, 1, 2, 3, 4]);
    expect(create.map((c) => c.event.source.last)).toEqual([false, false, false, false, true]);
    for (const c of create) {
      expect(c.subject).toBe(`${names.prefix}.${c.event.table}.${c.event.op}`);
      expect(c.msgId).toBe(`${c.event.source.commitLsn}:${c.event.source.index}`);
    }
    const orderRow = create.find((c) => c.event.table === 'orders')!.event.after!;
    expect(orderRow.id).toBe(order.id);
    expect(orderRow).not.toHaveProperty('customer_contact'); // personal data never leaves Postgres
    const levels = create.filter((c) => c.event.table === 'stock_levels').map((c) => c.event);
    for (const e of levels) expect(Number(e.after!.reserved) - Number(e.before!.reserved)).toBeGreaterThan(0);
    // commit order: transactions appear in increasing commit LSN
    const commits = [...new Set(changes.map((c) => c.event.source.commitLsn))];
    expect([...commits].sort(compareLsn)).toEqual(commits);
    const confirmTx = changes.filter((c) => c.event.source.commitLsn === commits[1]);
    expect(confirmTx.find((c) => c.event.table === 'orders')!.event.after!.status).toBe('confirmed');
    expectNoDuplicates(messages);
    await cdc.kill();
  });

  it("advances the slot's confirmed position when only another database is written", async () => {
    const cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
    await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
    const confirmed = async () => (await h.pool.query('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [names.slot])).rows[0].lsn as string;
    const before = await until('a confirmed position', async () => (await confirmed()) ?? undefined);
    const otherUrl = await ensureDatabase(inject('pgAdminUrl'), `other_${names.prefix}`);
    const other = new pg.Client({ connectionString: otherUrl });
    await other.connect();
    await other.query('CREATE TABLE IF NOT EXISTS noise (id serial PRIMARY KEY, payload text)');
    await other.query("INSERT INTO noise (payload) SELECT repeat('x', 200) FROM generate_series(1, 2000)");
    const otherLsn = (await other.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn as string;
    await other.end();
    const after = await until('the slot to pass the unrelated writes', async () => {
      const now = await confirmed();
      return compareLsn(now, otherLsn) >= 0 ? now : undefined;
    }, 20_000);
    expect(compareLsn(after, before)).toBeGreaterThan(0);
    await cdc.kill();
  });
});

describe('faults', () => {
  it('loses and doubles nothing across 10,000+ changes while the reader is SIGKILLed twice and the redis projector once', async () => {
    const names = uniqueNames('kill');
    try {
      const baseline = await maxMovementId(h.pool);
      let cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
      await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
      let projector = startNodeProcess('projectors/redis-cache/main.ts', projectorEnv(names));
      const counting = await startCountingProjector({ names });
      const kills: string[] = [];
      const ORDERS = 2400; // ≈ 4.5 changes each (order, movements, stock rows, then confirm/cancel)
      await orderLoad(ORDERS, 12, async (done) => {
        if ((done === 600 || done === 1500) && !kills.includes(`cdc@${done}`)) {
          kills.push(`cdc@${done}`);
          await cdc.kill('SIGKILL');
          cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
        }
        if (done === 1000 && !kills.includes('projector@1000')) {
          kills.push('projector@1000');
          await projector.kill('SIGKILL');
          projector = startNodeProcess('projectors/redis-cache/main.ts', projectorEnv(names));
        }
      });
      expect(kills).toEqual(['cdc@600', 'projector@1000', 'cdc@1500']);
      const ids = await movementIdsAfter(h.pool, baseline);
      await untilAllMovementsSeen(counting, ids);
      const messages = await streamMessages(names.stream);
      const changes = messages.filter((m) => m.body.op !== 'position');
      expect(changes.length).toBeGreaterThanOrEqual(10_000);
      expectNoDuplicates(messages);
      // every ledger row reached the projector exactly once, and nothing it saw is unknown to Postgres
      const seenMovements = counting.seen.filter((e) => e.table === 'stock_movements' && e.op === 'insert').map((e) => String(e.after!.id));
      expect(seenMovements.sort()).toEqual([...ids].sort());
      expect([...counting.effects.values()].every((n) => n === 1)).toBe(true);
      const diffs = await until('Redis to equal Postgres', async () => {
        const d = await cacheDifferences(h.url, names.redisPrefix);
        return d.length === 0 ? d : undefined;
      }, 60_000, 200);
      expect(diffs).toEqual([]);
      await counting.stop();
      await projector.kill();
      await cdc.kill();
    } finally {
      await cleanUp({ databaseUrl: h.url, names });
    }
  });

  it('hands over to a standby reader when the active one is killed', async () => {
    const names = uniqueNames('standby');
    try {
      const active = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
      await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
      const standby = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
      await until('the second reader to wait as standby', () => (standby.output().includes('standby') ? true : undefined), 20_000);
      const counting = await startCountingProjector({ names });
      const baseline = await maxMovementId(h.pool);
      await orderLoad(50, 4);
      const killedAt = Date.now();
      await active.kill('SIGKILL');
      await until('the standby to take over', () => (standby.output().includes('streaming changes') ? true : undefined), 20_000, 20);
      const takeoverMs = Date.now() - killedAt;
      await orderLoad(50, 4);
      const ids = await movementIdsAfter(h.pool, baseline);
      await untilAllMovementsSeen(counting, ids);
      expectNoDuplicates(await streamMessages(names.stream));
      console.info(`standby took over ${takeoverMs} ms after SIGKILL of the active reader`);
      expect(takeoverMs).toBeLessThan(20_000);
      await counting.stop();
      await standby.kill();
    } finally {
      await cleanUp({ databaseUrl: h.url, names });
    }
  });

  it('loses and doubles nothing when NATS restarts mid-stream', async () => {
    const names = uniqueNames('natsrestart');
    const nats = await startPrivateNats();
    try {
      const cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names, nats.url));
      await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
      const counting = await startCountingProjector({ names, natsUrl: nats.url });
      const baseline = await maxMovementId(h.pool);
      let restarted = false;
      await orderLoad(800, 8, async (done) => {
        if (done === 300 && !restarted) {
          restarted = true;
          await nats.restart();
        }
      });
      expect(restarted).toBe(true);
      const ids = await movementIdsAfter(h.pool, baseline);
      await untilAllMovementsSeen(counting, ids);
      const messages = await streamMessages(names.stream, nats.url);
      expectNoDuplicates(messages);
      const seenMovements = counting.seen.filter((e) => e.table === 'stock_movements' && e.op === 'insert').map((e) => String(e.after!.id));
      expect(seenMovements.sort()).toEqual([...ids].sort());
      await counting.stop();
      await cdc.kill();
    } finally {
      await cleanUp({ databaseUrl: h.url, names, natsUrl: nats.url });
      await nats.destroy();
    }
  });
});

describe('rebuilding projections', () => {
  it('rebuilds a new redis projection from resync snapshot events, and replays a projector from sequence 1', async () => {
    const names = uniqueNames('resync');
    try {
      const cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
      await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
      // every stock row was written before this stream existed: only the snapshot can bring them
      const nc = await connect({ servers: SHARED_NATS });
      const snapshot = await publishSnapshot({ databaseUrl: h.url, nc, subjectPrefix: names.prefix, publication: 'stockwire' });
      expect(snapshot.byTable.stock_levels).toBe((await h.pool.query('SELECT count(*)::int AS n FROM stock_levels')).rows[0].n);
      const projector = startNodeProcess('projectors/redis-cache/main.ts', projectorEnv(names));
      await until('Redis to equal Postgres', async () => ((await cacheDifferences(h.url, names.redisPrefix)).length === 0 ? true : undefined), 60_000, 200);

      const counting = await startCountingProjector({ names });
      const total = snapshot.events;
      await until('the counting projector to see the snapshot', () => (counting.seen.length >= total ? true : undefined));
      const deliveredBefore = counting.counters.deliveries;
      await replayProjector({ nc, stream: names.stream, projector: 'counting', fromSeq: 1 });
      await until('the replayed events to arrive', () => (counting.counters.deliveries >= deliveredBefore + total ? true : undefined));
      expect(counting.seen.length).toBe(total); // re-delivered, applied once in effect
      expect([...counting.effects.values()].every((n) => n === 1)).toBe(true);
      await counting.stop();
      await nc.close();
      await projector.kill();
      await cdc.kill();
    } finally {
      await cleanUp({ databaseUrl: h.url, names });
    }
  });
});

describe('projector runtime', () => {
  it('dead-letters a change that can never apply, and one that keeps failing, with its error; the rest apply', async () => {
    const names = uniqueNames('dlq');
    const nc = await connect({ servers: SHARED_NATS });
    try {
      const cdc = startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
      await until('the reader to stream', async () => ((await slotActive(names.slot)) ? true : undefined));
      const applied: string[] = [];
      const attempts = new Map<string, number>();
      const runtime = new ProjectorRuntime({
        nc, stream: names.stream, subjectPrefix: names.prefix, name: 'picky', log: pino({ level: 'silent' }), maxDeliver: 3,
        projection: {
          async apply(events) {
            for (const e of events) {
              const sku = String((e.after ?? e.before)!.sku ?? '');
              attempts.set(sku, (attempts.get(sku) ?? 0) + 1);
              if (e.table === 'stock_movements' && sku === SKUS[2]) throw Object.assign(new Error('bad row'), { permanent: true });
              if (e.table === 'stock_movements' && sku === SKUS[3]) throw new Error('remote keeps failing');
            }
            for (const e of events) if (e.table === 'stock_movements') applied.push(String(e.after!.sku));
          },
        },
      });
      const running = runtime.run();
      for (const sku of [SKUS[2]!, SKUS[3]!, SKUS[4]!]) {
        await h.ok(200, 'POST', '/v1/adjustments', { body: { sku, location: 'MAIN', delta: 1, reason: 'found' } });
      }
      const jsm = await jetstreamManager(nc);
      await until('two dead letters', async () => ((await jsm.streams.info(`${names.stream}_DLQ`)).state.messages >= 2 ? true : undefined), 30_000, 100);
      const letters = (await Promise.all([1, 2].map((seq) => jsm.streams.getMessage(`${names.stream}_DLQ`, { seq })))).map((m) => m!);
      const errors = letters.map((m) => m.header?.get('Stockwire-Error')).sort();
      expect(errors).toEqual(['bad row', 'remote keeps failing']);
      expect(letters.every((m) => m.subject === `dlq.${names.prefix}.picky`)).toBe(true);
      expect(letters.map((m) => m.json<{ after: { sku: string } }>().after.sku).sort()).toEqual([SKUS[2], SKUS[3]]);
      await until('the healthy change to apply', () => (applied.includes(SKUS[4]!) ? true : undefined));
      expect(applied).not.toContain(SKUS[2]);
      expect(attempts.get(SKUS[3]!)).toBeGreaterThanOrEqual(3); // retried with backoff before giving up
      await runtime.stop();
      await running;
      await cdc.kill();
    } finally {
      await nc.close();
      await cleanUp({ databaseUrl: h.url, names });
    }
  });
});
