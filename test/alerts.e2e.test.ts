/**
 * The alerts projector end to end: Postgres → cdc reader (child process) → JetStream → the alerts
 * projection in-process on a ProjectorRuntime → real clients (@slack/webhook, fetch, nodemailer) against
 * local fakes speaking Slack's incoming-webhook, PagerDuty Events v2 and SMTP. Checks hysteresis (one
 * alert per crossing through a burst around the reorder point), recovery and a second crossing, one
 * delivery per channel when another channel is rate limited, no re-send after a restart, expiry alerts
 * from the periodic check, the log fallback, and commit → Slack latency under load.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlertState, openAlertBucket } from '../projectors/alerts/alert-state.ts';
import { createAlertsProjection, loadAlertModel, selectChannels, type AlertsProjection, type ChannelSettings } from '../projectors/alerts/alerts-projection.ts';
import { ProjectorRuntime } from '../projectors/runtime/projector-runtime.ts';
import { startPagerDutyFake, type PagerDutyFake } from './fakes/pagerduty-fake.ts';
import { startSlackFake, type SlackFake } from './fakes/slack-fake.ts';
import { startSmtpFake, type SmtpFake } from './fakes/smtp-fake.ts';
import { createHarness, dayFrom, type Harness } from './harness.ts';
import { cdcEnv, cleanUp, keepRunning, killAll, SHARED_NATS, startNodeProcess, uniqueNames, until, type PipelineNames } from './pipeline-harness.ts';

const LOC = 'MAIN';
const OSC = 'AL-OSC'; // reorder point 20: default recovery margin 2
const RL = 'AL-RL'; // reorder point 10
const CREAM = 'AL-CREAM'; // lot-tracked
const LOAD_SKUS = Array.from({ length: 100 }, (_, i) => `AL-L${String(i).padStart(3, '0')}`);
const ROUTING_KEY = 'R0123456789abcdef0123456789abcde';

let h: Harness;
let names: PipelineNames;
let slack: SlackFake;
let pd: PagerDutyFake;
let smtp: SmtpFake;
let admin: NatsConnection;
let clockNow: number;
const buckets: string[] = [];

interface RunningAlerts { projection: AlertsProjection; runtime: ProjectorRuntime; stop(): Promise<void> }

async function startAlerts(p: { durable: string; bucket: string; channels: ChannelSettings; log?: Logger }): Promise<RunningAlerts> {
  const log = p.log ?? pino({ level: process.env.ALERTS_TEST_LOG ?? 'silent' });
  const nc = await connect({ servers: SHARED_NATS, maxReconnectAttempts: -1 });
  if (!buckets.includes(p.bucket)) buckets.push(p.bucket);
  const projection = await createAlertsProjection({
    state: createAlertState({ kv: await openAlertBucket(nc, p.bucket) }),
    channels: selectChannels(p.channels, log),
    model: await loadAlertModel(h.pool),
    settings: { expiryDays: 30, checkIntervalMs: 300 },
    log,
    clock: () => new Date(clockNow),
  });
  projection.start();
  const runtime = new ProjectorRuntime({ nc, stream: names.stream, subjectPrefix: names.prefix, name: p.durable, projection, log, batchSize: 500 });
  const running = keepRunning(runtime);
  let stopped = false;
  return {
    projection,
    runtime,
    async stop() {
      if (stopped) return;
      stopped = true;
      await running.stop();
      await projection.stop();
      await nc.close();
    },
  };
}

const allChannels = (): ChannelSettings => ({
  SLACK_WEBHOOK_URL: slack.url, PAGERDUTY_ROUTING_KEY: ROUTING_KEY, PAGERDUTY_EVENTS_URL: pd.url,
  SMTP_URL: smtp.url, ALERT_EMAIL_FROM: 'stockwire@example.com', ALERT_EMAIL_TO: ['ops@example.com'],
});

/** One stock change straight to the ledger (what an adjustment writes); resolves once committed. */
async function move(sku: string, delta: number) {
  await h.pool.query(
    `INSERT INTO stock_movements (sku, location, delta_on_hand, delta_reserved, reason, cause, actor, note)
     VALUES ($1, $2, $3, 0, 'adjustment', 'correction', 'test-alerts', 'alerts test')`, [sku, LOC, delta]);
}

/** Waits until the runtime has applied everything in the stream so far. */
async function caughtUp(runtime: ProjectorRuntime, timeoutMs = 30_000) {
  const jsm = await jetstreamManager(admin);
  const last = (await jsm.streams.info(names.stream)).state.last_seq;
  await until('the projection to catch up', () => ((runtime.applied()?.streamSeq ?? 0) >= last ? true : undefined), timeoutMs, 50);
}

const slackAbout = (fake: SlackFake, text: string) => fake.about(text).map((m) => m.body.text!.split(' — ')[0]);
const mailsAbout = (sku: string) => smtp.mails.filter((m) => m.subject.includes(sku));

beforeAll(async () => {
  h = await createHarness({ poolMax: 8 });
  clockNow = h.clock.now().getTime();
  await h.fixtures.location(LOC);
  await h.fixtures.product(OSC, { reorder_point: 20 });
  await h.fixtures.receive(OSC, LOC, 40);
  await h.fixtures.product(RL, { reorder_point: 10 });
  await h.fixtures.receive(RL, LOC, 30);
  await h.pool.query('UPDATE products SET reorder_qty = 60 WHERE sku = $1', [RL]);
  await h.fixtures.product(CREAM, { lot_tracked: true });
  await h.fixtures.receive(CREAM, LOC, 12, { lot_code: 'L-EXP', expires_on: dayFrom(h.clock, 40) });
  await h.fixtures.receive(CREAM, LOC, 8, { lot_code: 'L-SOON', expires_on: dayFrom(h.clock, 100) });
  for (const sku of LOAD_SKUS) {
    await h.fixtures.product(sku, { reorder_point: 20 });
    await h.fixtures.receive(sku, LOC, 25);
  }
  [slack, pd, smtp] = await Promise.all([startSlackFake(), startPagerDutyFake(), startSmtpFake()]);
  admin = await connect({ servers: SHARED_NATS });
  names = uniqueNames('alerts');
  startNodeProcess('cdc/main.ts', cdcEnv(h.url, names));
  await until('the CDC stream to exist', async () => (await (await jetstreamManager(admin)).streams.info(names.stream).then(() => true, () => undefined)), 30_000);
}, 120_000);

afterAll(async () => {
  await killAll();
  await cleanUp({ databaseUrl: h.url, names });
  const kvm = new Kvm(admin);
  for (const b of buckets) await (await kvm.open(b).catch(() => undefined))?.destroy().catch(() => {});
  await admin?.close();
  await Promise.all([slack?.close(), pd?.close(), smtp?.close()]);
  await h.close();
});

describe('alerts projector', () => {
  const bucket = `alerts_test_${process.pid}_${Math.random().toString(36).slice(2, 7)}`;
  let main: RunningAlerts;

  beforeAll(async () => {
    main = await startAlerts({ durable: 'alerts_main', bucket, channels: allChannels() });
  });
  afterAll(async () => main?.stop());

  it('sends one low-stock alert per crossing through 500 changes around the reorder point, then a recovery, then a second alert', async () => {
    await move(OSC, -19); // 21: above the reorder point
    for (let i = 0; i < 500; i++) await move(OSC, i % 2 === 0 ? -2 : 2); // 19, 21, 19, … ends at 21
    await caughtUp(main.runtime);
    await until('the low-stock alert on Slack', () => (slack.about(OSC).length ? true : undefined), 10_000);
    await until('the trigger on PagerDuty', () => (pd.forKey(`stockwire:low:${OSC}:${LOC}`).length ? true : undefined), 10_000);
    expect(slackAbout(slack, OSC)).toEqual([`Low stock: ${OSC} (Product ${OSC}) at ${LOC}`]);
    expect(pd.forKey(`stockwire:low:${OSC}:${LOC}`).map((e) => e.event_action)).toEqual(['trigger']);
    const low = slack.about(OSC)[0]!.body;
    expect(JSON.stringify(low.blocks)).toContain('reorder point*\\n20');
    expect(JSON.stringify(low.blocks)).toContain('Suggested reorder: *21*'); // no reorder_qty: 20 × 2 − 19

    await move(OSC, 10); // 31 ≥ 20 + 2: recovered
    await until('the recovery on Slack', () => (slack.about(OSC).length >= 2 ? true : undefined), 10_000);
    await move(OSC, -15); // 16: the second crossing
    await until('the second alert on Slack', () => (slack.about(OSC).length >= 3 ? true : undefined), 10_000);
    await until('three PagerDuty events', () => (pd.forKey(`stockwire:low:${OSC}:${LOC}`).length >= 3 ? true : undefined), 10_000);
    await until('three e-mails', () => (mailsAbout(OSC).length >= 3 ? true : undefined), 10_000);
    await caughtUp(main.runtime);
    expect(slackAbout(slack, OSC)).toEqual([
      `Low stock: ${OSC} (Product ${OSC}) at ${LOC}`, `Stock recovered: ${OSC} (Product ${OSC}) at ${LOC}`, `Low stock: ${OSC} (Product ${OSC}) at ${LOC}`,
    ]);
    const events = pd.forKey(`stockwire:low:${OSC}:${LOC}`);
    expect(events.map((e) => e.event_action)).toEqual(['trigger', 'resolve', 'trigger']);
    expect(events[0]!.payload).toMatchObject({ source: 'stockwire', severity: 'warning', custom_details: { sku: OSC, location: LOC, available: 19 } });
    expect(pd.rejected).toBe(0);
    const mails = mailsAbout(OSC);
    expect(mails).toHaveLength(3);
    expect(mails[0]!.subject).toContain(`Low stock: ${OSC}`);
    expect(mails[0]!.raw).toContain(`sku: ${OSC}`);
    expect(mails[0]!.to).toEqual(['ops@example.com']);
  }, 90_000);

  it('waits out a rate-limited Slack (Retry-After) without repeating the alert on PagerDuty or e-mail', async () => {
    const requestsBefore = slack.requests;
    slack.rateLimitNext(2, 1);
    await move(RL, -25); // 5 < 10
    await until('the alert on Slack after the 429s', () => (slack.about(RL).length ? true : undefined), 20_000);
    await caughtUp(main.runtime);
    await new Promise((r) => setTimeout(r, 1000));
    expect(slack.requests - requestsBefore).toBeGreaterThanOrEqual(3);
    expect(slackAbout(slack, RL)).toEqual([`Low stock: ${RL} (Product ${RL}) at ${LOC}`]);
    expect(JSON.stringify(slack.about(RL)[0]!.body.blocks)).toContain('Suggested reorder: *60*'); // reorder_qty
    expect(pd.forKey(`stockwire:low:${RL}:${LOC}`).map((e) => e.event_action)).toEqual(['trigger']);
    expect(mailsAbout(RL)).toHaveLength(1);
  }, 60_000);

  it('does not re-send alerts already sent when the projection restarts on the same state and durable', async () => {
    const counts = () => [slack.messages.length, pd.events.length, smtp.mails.length];
    const before = counts();
    await main.stop();
    main = await startAlerts({ durable: 'alerts_main', bucket, channels: allChannels() });
    await move(OSC, -1); // still low: no new alert
    await move(RL, 1);
    await caughtUp(main.runtime);
    await new Promise((r) => setTimeout(r, 1000));
    expect(counts()).toEqual(before);
  }, 60_000);

  it('alerts an expiring lot and an expired lot still on hand once each, from lot events and the periodic check', async () => {
    const { rows } = await h.pool.query<{ id: string; lot_code: string }>('SELECT id::text, lot_code FROM lots WHERE sku = $1', [CREAM]);
    const id = Object.fromEntries(rows.map((r) => [r.lot_code, r.id]));
    expect(slack.about(CREAM)).toHaveLength(0); // 40 and 100 days out: nothing yet
    clockNow += 20 * 86_400_000; // L-EXP now 20 days from expiry
    await until('the expiring alert', () => (slack.about('Lot expiring: AL-CREAM lot L-EXP').length ? true : undefined), 10_000);
    await h.fixtures.receive(CREAM, LOC, 3, { lot_code: 'L-EXP', expires_on: dayFrom(h.clock, 40) }); // a lot event
    await caughtUp(main.runtime);
    clockNow += 30 * 86_400_000; // L-EXP expired 10 days ago; L-SOON 50 days out
    await until('the expired alert', () => (slack.about('Expired stock on hand: AL-CREAM lot L-EXP').length ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 1200)); // several periodic checks later
    expect(slackAbout(slack, CREAM)).toEqual([
      'Lot expiring: AL-CREAM lot L-EXP at MAIN expires ' + dayFrom(h.clock, 40) + ' (20 days), 12 on hand',
      'Expired stock on hand: AL-CREAM lot L-EXP at MAIN expired ' + dayFrom(h.clock, 40) + ', 15 on hand',
    ]);
    expect(pd.forKey(`stockwire:expiring:${id['L-EXP']}`).map((e) => e.event_action)).toEqual(['trigger']);
    expect(pd.forKey(`stockwire:expired:${id['L-EXP']}`).map((e) => e.event_action)).toEqual(['trigger']);
    expect(pd.events.filter((e) => e.dedup_key?.endsWith(`:${id['L-SOON']}`))).toHaveLength(0);
    expect(mailsAbout(CREAM)).toHaveLength(2);
  }, 60_000);

  it('writes the alert to the log when no channel is configured', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const logOnly = await startAlerts({ durable: 'alerts_log', bucket: `${bucket}_log`, channels: {}, log });
    try {
      await caughtUp(logOnly.runtime);
      const line = await until('the low-stock alert in the log', () => lines.find((l) => l.includes(`Low stock: ${OSC}`)), 10_000);
      const entry = JSON.parse(line);
      expect(entry).toMatchObject({ level: 40, component: 'alerts', channel: 'log', alert: { kind: 'low-stock', action: 'trigger', sku: OSC, location: LOC, dedupKey: `stockwire:low:${OSC}:${LOC}` } });
    } finally {
      await logOnly.stop();
    }
  }, 60_000);

  it('measures commit → Slack latency at 200 changes/s for 20 s, every change a crossing', async () => {
    await main.stop();
    const fake = await startSlackFake();
    const load = await startAlerts({ durable: 'alerts_load', bucket: `${bucket}_load`, channels: { SLACK_WEBHOOK_URL: fake.url } });
    try {
      await caughtUp(load.runtime);
      const commits = new Map<string, number[]>(LOAD_SKUS.map((s) => [s, []]));
      const total = 200 * 20;
      const inFlight = new Set<Promise<void>>();
      const started = Date.now();
      for (let i = 0; i < total; i++) {
        const due = started + i * 5;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        const sku = LOAD_SKUS[i % LOAD_SKUS.length]!;
        const k = Math.floor(i / LOAD_SKUS.length);
        // up to 8 commits in flight keep the rate on a busy machine; a SKU's changes are 0.5 s apart, so in order
        while (inFlight.size >= 8) await Promise.race(inFlight);
        const p: Promise<void> = move(sku, k % 2 === 0 ? -10 : 10) // 25 → 15 (low) → 25 (recovered, ≥ 22) → …
          .then(() => void (commits.get(sku)![k] = Date.now()))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
      const elapsed = Date.now() - started;
      await until('every crossing on Slack', () => (fake.about('AL-L').length >= total ? true : undefined), 60_000, 100);
      const latencies: number[] = [];
      for (const sku of LOAD_SKUS) {
        const got = fake.messages.filter((m) => m.body.text?.includes(`: ${sku} (`));
        const sent = commits.get(sku)!;
        expect(got).toHaveLength(sent.length);
        got.forEach((m, n) => latencies.push(m.at - sent[n]!));
      }
      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
      console.log(`alerts: ${total} changes (each a crossing) committed in ${(elapsed / 1000).toFixed(1)} s → commit → Slack latency p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${latencies.at(-1)} ms`);
    } finally {
      await load.stop();
      await fake.close();
    }
  }, 150_000);
});
