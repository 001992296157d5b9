/**
 * Personal data stays in Postgres, encrypted: a customer's contact put on orders (accepted, refused,
 * cancelled, read back by an allowed role) never appears in the JetStream stream — the only input of
 * every projector (sheets, cache, alerts, webhooks); the sheets' start-up picture reads no order
 * columns at all — nor in the API's logs at trace level, nor in the cdc reader's output, nor in the
 * audit log, nor in answers to roles that may not read it; in the database it is ciphertext.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logRedaction } from '../api/log-redaction.ts';
import { loadModelSnapshot } from '../projectors/sheet-sync/model-loader.ts';
import { createHarness, type Harness } from './harness.ts';
import { cdcEnv, cleanUp, killAll, SHARED_NATS, startNodeProcess, uniqueNames, until, type ManagedProcess, type PipelineNames } from './pipeline-harness.ts';

const CANARY_EMAIL = `pii-canary-${process.pid}-${Date.now().toString(36)}@example.com`;
const CANARY_PHONE = '+44 20 7946 0999';
let logged = '';
let h: Harness;
let names: PipelineNames;
let cdc: ManagedProcess;

beforeAll(async () => {
  const sink = new Writable({ write(chunk, _enc, done) { logged += chunk; done(); } });
  h = await createHarness({ log: pino({ level: 'trace', redact: logRedaction }, sink) });
  await h.fixtures.location('MAIN');
  await h.fixtures.product('PII-ITEM');
  await h.fixtures.receive('PII-ITEM', 'MAIN', 50);
  names = uniqueNames('pii');
  cdc = startNodeProcess('cdc/main.ts', { ...cdcEnv(h.url, names), LOG_LEVEL: 'trace' });
  // changes before the slot exists are not streamed: start once the reader is streaming
  await until('the reader to stream', async () => {
    const { rows } = await h.pool.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [names.slot]);
    return rows[0]?.active ? true : undefined;
  }, 30_000, 100);
}, 60_000);

afterAll(async () => {
  await killAll();
  await cleanUp({ databaseUrl: h.url, names });
  await h.close();
});

function contains(text: string): boolean {
  return text.includes(CANARY_EMAIL) || text.includes(CANARY_PHONE);
}

describe('personal data', () => {
  it('never reaches the stream, the logs, the audit log or roles without orders:read-contact', async () => {
    const customer = { email: CANARY_EMAIL, phone: CANARY_PHONE };
    const placed = await h.ok(201, 'POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'PII-ITEM', qty: 1 }], customer } });
    const refused = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'PII-ITEM', qty: 10_000 }], customer } });
    expect(refused.status).toBe(409);
    const invalid = await h.call('POST', '/v1/orders', { role: 'order-system', body: { lines: [{ sku: 'PII-ITEM', qty: -1 }], customer } });
    expect(invalid.status).toBe(400);
    expect(contains(JSON.stringify(invalid.body))).toBe(false);
    await h.ok(200, 'POST', `/v1/orders/${placed.id}/cancel`, { body: {} });

    // allowed roles read it back; others get the order without it
    const asManager = await h.ok(200, 'GET', `/v1/orders/${placed.id}`, { role: 'manager' });
    expect(asManager.customer.email).toBe(CANARY_EMAIL);
    const asClerk = await h.ok(200, 'GET', `/v1/orders/${placed.id}`, { role: 'clerk' });
    expect(contains(JSON.stringify(asClerk))).toBe(false);

    // at rest: ciphertext only
    const { rows } = await h.pool.query('SELECT customer_contact FROM orders WHERE id = $1', [placed.id]);
    expect(rows[0].customer_contact).toMatch(/^v1\./);
    expect(contains(rows[0].customer_contact)).toBe(false);
    const audit = await h.pool.query('SELECT before, after FROM audit_log');
    expect(contains(JSON.stringify(audit.rows))).toBe(false);

    // the stream: wait for the cancellation's events, then look at every message byte
    const nc = await connect({ servers: SHARED_NATS });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await until('the cancellation in the stream', async () => {
        const i = await jsm.streams.info(names.stream).catch(() => undefined);
        if (!i) return undefined;
        for (let seq = i.state.first_seq; seq <= i.state.last_seq; seq++) {
          const m = await jsm.streams.getMessage(names.stream, { seq }).catch(() => undefined);
          if (m?.subject.startsWith(`${names.prefix}.orders.`) && new TextDecoder().decode(m.data).includes('"cancelled"')) return i;
        }
        return undefined;
      }, 30_000, 200);
      let orderEvents = 0;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(names.stream, { seq });
        if (!m) continue;
        const text = new TextDecoder().decode(m.data);
        expect(contains(text), `stream message ${seq}`).toBe(false);
        if (m.subject.startsWith(`${names.prefix}.orders.`)) {
          orderEvents += 1;
          expect(text).not.toContain('customer_contact');
        }
      }
      expect(orderEvents).toBeGreaterThanOrEqual(2);
    } finally {
      await nc.close();
    }

    // the sheets' other input: the start-up picture from Postgres holds no order data
    expect(contains(JSON.stringify(await loadModelSnapshot(h.pool)))).toBe(false);

    // logs of the API (trace level, redaction on) and of the cdc reader
    expect(logged.length).toBeGreaterThan(0);
    expect(contains(logged)).toBe(false);
    expect(contains(cdc.output())).toBe(false);
  }, 60_000);
});
