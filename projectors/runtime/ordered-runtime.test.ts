/**
 * The runtime's ordered mode (Projection.ordered) on real JetStream: while a change keeps failing (its
 * target is down), it is retried in place and nothing after it takes effect, so effects happen in stream
 * order once the target is back — where the default mode would let later changes overtake it.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../cdc/envelope.ts';
import { ProjectorRuntime } from './projector-runtime.ts';

const id = `ord${process.pid}${Math.random().toString(36).slice(2, 7)}`;
const STREAM = id.toUpperCase();
const PREFIX = id;
let nc: NatsConnection;

function change(n: number): ChangeEvent {
  const lsn = `0/${(0x1000 + n).toString(16).toUpperCase()}`;
  return {
    op: 'update', table: 'stock_levels', before: null, after: { sku: 'S-1', location: 'MAIN', on_hand: n, version: n },
    source: { lsn, commitLsn: lsn, txId: n, commitTime: new Date().toISOString(), index: 0, last: true },
  };
}

beforeAll(async () => {
  nc = await connect({ servers: 'nats://127.0.0.1:4222' });
  await (await jetstreamManager(nc)).streams.add({ name: STREAM, subjects: [`${PREFIX}.>`] });
});

afterAll(async () => {
  const jsm = await jetstreamManager(nc);
  for (const s of [STREAM, `${STREAM}_DLQ`]) await jsm.streams.delete(s).catch(() => {});
  await nc.close();
});

async function until(check: () => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('ordered projections', () => {
  it('retries a failing change in place, holding back later ones, so effects stay in stream order', async () => {
    const js = jetstream(nc);
    const effects: number[] = [];
    let targetDown = false;
    let refusals = 0;
    const runtime = new ProjectorRuntime({
      nc, stream: STREAM, subjectPrefix: PREFIX, name: 'ordered', log: pino({ level: 'silent' }), batchSize: 5,
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
    for (let n = 1; n <= 20; n++) await js.publish(`${PREFIX}.stock_levels`, JSON.stringify(change(n)));
    await until(() => effects.length >= 20);
    await runtime.stop();
    await running;
    expect(refusals).toBeGreaterThanOrEqual(4);
    expect(effects).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(runtime.applied()?.streamSeq).toBe(20);
  });
});
