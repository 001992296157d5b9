/**
 * The runtime's pipelined mode (Projection.stage) on real JetStream: batches are staged while earlier
 * ones are still settling, acknowledged in order, and a failed batch is redelivered together with every
 * later batch that had not settled, so the applied position never passes a change that failed.
 * And its ordered mode (Projection.ordered): while a change keeps failing it is retried in place and
 * nothing after it takes effect, so effects happen in stream order once the target is back — where the
 * default mode lets later changes overtake it.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../cdc/envelope.ts';
import { ProjectorRuntime, type AppliedPosition } from './projector-runtime.ts';

const id = `pipe${process.pid}${Math.random().toString(36).slice(2, 7)}`;
const STREAM = id.toUpperCase();
const PREFIX = id;
const ORDERED_STREAM = `${STREAM}_ORDERED`;
let nc: NatsConnection;

function change(n: number): ChangeEvent {
  const lsn = `0/${(0x1000 + n).toString(16).toUpperCase()}`;
  return {
    op: 'update', table: 'stock_levels', before: null, after: { sku: `S-${n}`, location: 'MAIN', on_hand: n, version: n },
    source: { lsn, commitLsn: lsn, txId: n, commitTime: new Date().toISOString(), index: 0, last: true },
  };
}

beforeAll(async () => {
  nc = await connect({ servers: 'nats://127.0.0.1:4222' });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: [`${PREFIX}.>`] });
  await jsm.streams.add({ name: ORDERED_STREAM, subjects: [`${PREFIX}o.>`] });
});

afterAll(async () => {
  const jsm = await jetstreamManager(nc);
  for (const s of [STREAM, `${STREAM}_DLQ`, ORDERED_STREAM, `${ORDERED_STREAM}_DLQ`]) await jsm.streams.delete(s).catch(() => {});
  await nc.close();
});

async function until(check: () => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('pipelined projections', () => {
  it('stages ahead, acknowledges in order, and redelivers a failed batch with the ones after it', async () => {
    const js = jetstream(nc);
    const staged: number[] = [];
    const settledOnce = new Set<number>();
    const positions: (AppliedPosition & { tenSettled: boolean })[] = [];
    let failedOnce = false;
    let inFlightMax = 0;
    let inFlight = 0;
    const runtime = new ProjectorRuntime({
      nc, stream: STREAM, subjectPrefix: PREFIX, name: 'pipelined', log: pino({ level: 'silent' }), batchSize: 3,
      projection: {
        apply: () => Promise.reject(new Error('the runtime must use stage()')),
        stage(events) {
          const ns = events.map((e) => Number(e.after!.on_hand));
          staged.push(...ns);
          inFlight += 1;
          inFlightMax = Math.max(inFlightMax, inFlight);
          const fail = !failedOnce && ns.includes(10);
          if (fail) failedOnce = true;
          // a paced target: the effect becomes durable a little later
          return new Promise<void>((resolve, reject) => setTimeout(() => {
            inFlight -= 1;
            if (fail) reject(Object.assign(new Error('provider refused'), { retryAfterMs: 50 }));
            else {
              for (const n of ns) settledOnce.add(n);
              resolve();
            }
          }, 100));
        },
        async recordPosition(position) {
          positions.push({ ...position, tenSettled: settledOnce.has(10) });
        },
      },
    });
    const running = runtime.run();
    for (let n = 1; n <= 30; n++) await js.publish(`${PREFIX}.stock_levels.update`, JSON.stringify(change(n)));
    await until(() => settledOnce.size === 30 && runtime.applied()?.streamSeq === 30);
    await runtime.stop();
    await running;

    expect(inFlightMax).toBeGreaterThan(1); // batches were staged while earlier ones were settling
    expect(failedOnce).toBe(true);
    expect(staged.filter((n) => n === 10).length).toBeGreaterThanOrEqual(2); // the failed change came back
    expect([...settledOnce].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // the applied position only moves forward, and it passed stream sequence 10 only after 10 settled
    for (let i = 1; i < positions.length; i++) expect(positions[i]!.streamSeq).toBeGreaterThanOrEqual(positions[i - 1]!.streamSeq);
    const past10 = positions.filter((p) => p.streamSeq >= 10);
    expect(past10.length).toBeGreaterThan(0);
    expect(past10.every((p) => p.tenSettled)).toBe(true);
    const consumer = await (await jetstreamManager(nc)).consumers.info(STREAM, 'pipelined');
    expect(consumer.num_ack_pending).toBe(0);
    expect(consumer.ack_floor.stream_seq).toBe(30);
  }, 60_000);
});

describe('ordered projections', () => {
  it('retries a failing change in place, holding back later ones, so effects stay in stream order', async () => {
    const js = jetstream(nc);
    const effects: number[] = [];
    let targetDown = false;
    let refusals = 0;
    const runtime = new ProjectorRuntime({
      nc, stream: ORDERED_STREAM, subjectPrefix: `${PREFIX}o`, name: 'ordered', log: pino({ level: 'silent' }), batchSize: 5,
      projection: {
        ordered: true,
        async apply(events) {
          const ns = events.map((e) => Number(e.after!.on_hand));
          if (ns.includes(7) && refusals === 0) targetDown = true; // the target goes down at change 7…
          if (targetDown) {
            refusals += 1;
            if (refusals >= 4) targetDown = false; // …and is back after a few attempts
            throw Object.assign(new Error('target unavailable'), { retryAfterMs: 30 });
          }
          effects.push(...ns);
        },
      },
    });
    const running = runtime.run();
    for (let n = 1; n <= 20; n++) await js.publish(`${PREFIX}o.stock_levels.update`, JSON.stringify(change(n)));
    await until(() => effects.length >= 20);
    await runtime.stop();
    await running;
    expect(refusals).toBeGreaterThanOrEqual(4);
    expect(effects).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(runtime.applied()?.streamSeq).toBe(20);
  });
});
