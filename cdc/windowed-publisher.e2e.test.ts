import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PublishFailed, WindowedPublisher } from './windowed-publisher.ts';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = randomBytes(4).toString('hex');
const STREAM = `WPUB_${run}`;
const SUBJECT = `wpub-${run}`;
const encoder = new TextEncoder();
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: [`${SUBJECT}.>`], duplicate_window: 60 * 1e9, max_msg_size: 1024 });
});
afterAll(async () => {
  await jsm.streams.delete(STREAM).catch(() => {});
  await nc.close();
});

/** Publishes `n` messages through the window as the reader does (wait for room, then publish); returns the most in flight. */
async function publishAll(publisher: WindowedPublisher, n: number, id: (i: number) => string, acked: string[]): Promise<number> {
  let maxPending = 0;
  for (let i = 0; i < n; i++) {
    const room = publisher.room();
    if (room) await room;
    publisher.publish(`${SUBJECT}.t.insert`, encoder.encode(JSON.stringify({ i })), id(i), () => acked.push(id(i)));
    maxPending = Math.max(maxPending, publisher.pending());
  }
  await publisher.flush();
  return maxPending;
}

describe('WindowedPublisher (real JetStream)', () => {
  it('stores every message in publish order with its Nats-Msg-Id, acknowledges each once, and never exceeds the window', async () => {
    const publisher = new WindowedPublisher({ nc, maxInFlight: 16 });
    const acked: string[] = [];
    const before = (await jsm.streams.info(STREAM)).state.last_seq;
    const maxPending = await publishAll(publisher, 500, (i) => `order-${i}`, acked);
    publisher.close();
    expect(acked).toHaveLength(500);
    expect(new Set(acked).size).toBe(500);
    expect(maxPending).toBe(16); // the window filled, and never overfilled
    for (const i of [0, 1, 250, 499]) {
      const m = await jsm.streams.getMessage(STREAM, { seq: before + 1 + i });
      expect(m?.header.get('Nats-Msg-Id')).toBe(`order-${i}`);
      expect(m?.json()).toEqual({ i });
    }
  });

  it('counts a re-sent message id as acknowledged without storing it twice (JetStream de-duplication)', async () => {
    const publisher = new WindowedPublisher({ nc, maxInFlight: 8 });
    const before = (await jsm.streams.info(STREAM)).state.messages;
    const acked: string[] = [];
    await publishAll(publisher, 10, (i) => `dup-${i % 5}`, acked);
    publisher.close();
    expect(acked).toHaveLength(10);
    expect((await jsm.streams.info(STREAM)).state.messages - before).toBe(5);
  });

  it('fails, once, on an error acknowledgement and acknowledges nothing it did not store', async () => {
    const failures: Error[] = [];
    const publisher = new WindowedPublisher({ nc, maxInFlight: 8, onFailure: (err) => failures.push(err) });
    let acked = 0;
    publisher.publish(`${SUBJECT}.t.insert`, new Uint8Array(2048), 'too-big', () => (acked += 1)); // over max_msg_size
    await expect(publisher.flush()).rejects.toThrow(PublishFailed);
    expect(publisher.error()?.message).toMatch(/too-big/);
    expect(() => publisher.publish(`${SUBJECT}.t.insert`, new Uint8Array(1), 'after', () => {})).toThrow(PublishFailed);
    expect(acked).toBe(0);
    expect(failures).toHaveLength(1);
    publisher.close();
  });

  it('fails when no stream listens on the subject (no responders)', async () => {
    const publisher = new WindowedPublisher({ nc, maxInFlight: 8 });
    publisher.publish(`nostream-${run}.t.insert`, new Uint8Array(1), 'x', () => {});
    await expect(publisher.flush()).rejects.toThrow(/no stream listens/);
    publisher.close();
  });

  it('fails when an acknowledgement does not come within the timeout, and room() then stops waiting', async () => {
    // a plain subscriber takes the message and never answers: no 503, no PubAck
    const silent = nc.subscribe(`silent-${run}.>`);
    const publisher = new WindowedPublisher({ nc, maxInFlight: 1, timeoutMs: 300 });
    const started = Date.now();
    publisher.publish(`silent-${run}.t.insert`, new Uint8Array(1), 'lost', () => {});
    await publisher.room(); // the window of one is full until the failure
    expect(publisher.error()).toBeInstanceOf(PublishFailed);
    expect(publisher.error()?.message).toMatch(/lost.*within 300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(2000);
    publisher.close();
    silent.unsubscribe();
  });
});
