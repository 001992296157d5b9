/**
 * The alerts projection: a small model (products' reorder settings and names, stock levels, lots) loaded
 * from Postgres at start and kept current from the change stream by version, the alert decisions of
 * alert-rules.ts applied to it after each transaction, and delivery of the resulting alerts to every
 * configured channel.
 *
 * Delivery is at-least-once per channel and in order per subject: a decision goes into its subject's
 * outbox and is written to the KV state BEFORE any send and before the change is acknowledged; after each
 * channel confirms, the state is written again without it. A channel that fails keeps its entries (the
 * others are not re-sent), and apply() throws so the runtime redelivers with backoff or Retry-After;
 * the redelivered change is stale by version and decides nothing new, it only drives the outbox again.
 * A crash between a send and the state write that records it can repeat that one message on that one
 * channel (PagerDuty absorbs it by dedup_key; e-mail carries the same Message-ID; Slack shows it twice).
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { ChangeEvent, Row } from '../../cdc/envelope.ts';
import type { Projection } from '../runtime/projector-runtime.ts';
import {
  daysBetween, expiryDecisions, isoDay, lotKey, lowStockDecision, lowStockKey, recoveryMargin, reorderSuggestion, summaryOf, type Notice,
} from './alert-rules.ts';
import { lotStateKey, lowStateKey, type AlertState, type SubjectState } from './alert-state.ts';
import { createEmailChannel } from './channels/email.ts';
import { ChannelError, createLogChannel, type Channel } from './channels/log.ts';
import { createPagerDutyChannel } from './channels/pagerduty.ts';
import { createSlackChannel } from './channels/slack.ts';

interface Product { sku: string; name: string; reorderPoint: number; reorderQty: number; version: number }
interface Stock { sku: string; location: string; onHand: number; reserved: number; version: number; deleted?: boolean }
interface Lot { id: string; sku: string; location: string; lotCode: string; expiresOn: string; onHand: number; version: number; deleted?: boolean }

export interface AlertModel { products: Row[]; stock: Row[]; lots: Row[] }

export interface AlertSettings {
  /** lots expiring within this many days are alerted */
  expiryDays: number;
  /** fixed recovery margin; default per product max(1, 10 % of its reorder point) */
  recoveryMargin?: number | undefined;
  /** how often lots are re-checked (time passes without events) and undelivered alerts retried */
  checkIntervalMs: number;
}

export interface AlertsProjection extends Projection {
  /** Re-checks every lot against today's date and retries undelivered alerts. */
  check(): Promise<void>;
  /** Starts the periodic check. */
  start(): void;
  stop(): Promise<void>;
  /** alerts decided so far, by kind:action (for tests and logs) */
  readonly decided: Record<string, number>;
}

/** Undelivered alerts remain; the change is redelivered (after Retry-After when a channel gave one). */
export class AlertDeliveryPending extends Error {
  readonly code = 'ALERT_DELIVERY_PENDING';
  constructor(readonly failures: ChannelError[], readonly retryAfterMs: number | undefined) {
    super(`alerts not yet delivered: ${failures.map((f) => f.message).slice(0, 3).join('; ')}`);
  }
}

export interface ChannelSettings {
  SLACK_WEBHOOK_URL?: string | undefined;
  PAGERDUTY_ROUTING_KEY?: string | undefined;
  PAGERDUTY_EVENTS_URL?: string | undefined;
  PAGERDUTY_SOURCE?: string | undefined;
  SMTP_URL?: string | undefined;
  ALERT_EMAIL_FROM?: string | undefined;
  ALERT_EMAIL_TO?: string[] | undefined;
}

/** Every configured channel; the log channel when none is. */
export function selectChannels(config: ChannelSettings, log: Logger): Channel[] {
  const out: Channel[] = [];
  if (config.SLACK_WEBHOOK_URL) out.push(createSlackChannel({ webhookUrl: config.SLACK_WEBHOOK_URL }));
  if (config.PAGERDUTY_ROUTING_KEY) {
    out.push(createPagerDutyChannel({ routingKey: config.PAGERDUTY_ROUTING_KEY, eventsUrl: config.PAGERDUTY_EVENTS_URL, source: config.PAGERDUTY_SOURCE }));
  }
  if (config.SMTP_URL) {
    if (!config.ALERT_EMAIL_FROM || !config.ALERT_EMAIL_TO?.length) throw new Error('SMTP_URL is set: ALERT_EMAIL_FROM and ALERT_EMAIL_TO are required too');
    out.push(createEmailChannel({ smtpUrl: config.SMTP_URL, from: config.ALERT_EMAIL_FROM, to: config.ALERT_EMAIL_TO }));
  }
  if (!out.length) out.push(createLogChannel({ log }));
  return out;
}

/** The projection's starting picture, in one read-only repeatable-read snapshot. */
export async function loadAlertModel(pool: pg.Pool): Promise<AlertModel> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const products = await client.query('SELECT sku, name, reorder_point, reorder_qty, version::int AS version FROM products');
    const stock = await client.query('SELECT sku, location, on_hand, reserved, version::int AS version FROM stock_levels');
    const lots = await client.query(
      'SELECT id::text AS id, sku, location, lot_code, expires_on::text AS expires_on, on_hand, version::int AS version FROM lots WHERE on_hand > 0');
    await client.query('COMMIT');
    return { products: products.rows, stock: stock.rows, lots: lots.rows };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** A date column as YYYY-MM-DD, whether decoded as text or as a (local-midnight) timestamp. */
function dateOf(v: unknown): string {
  const s = String(v);
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return s;
  const d = new Date(s);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const stockId = (sku: string, location: string) => `${sku}\u0000${location}`;
const productOf = (r: Row): Product => ({ sku: String(r.sku), name: String(r.name), reorderPoint: Number(r.reorder_point), reorderQty: Number(r.reorder_qty ?? 0), version: Number(r.version) });
const stockOf = (r: Row): Stock => ({ sku: String(r.sku), location: String(r.location), onHand: Number(r.on_hand), reserved: Number(r.reserved), version: Number(r.version) });
const lotOf = (r: Row): Lot => ({
  id: String(r.id), sku: String(r.sku), location: String(r.location), lotCode: String(r.lot_code), expiresOn: dateOf(r.expires_on), onHand: Number(r.on_hand), version: Number(r.version),
});

export async function createAlertsProjection(props: {
  state: AlertState;
  channels: Channel[];
  model: AlertModel;
  settings: AlertSettings;
  log: Logger;
  clock?: () => Date;
}): Promise<AlertsProjection> {
  const { state, channels, settings } = props;
  const log = props.log.child({ component: 'alerts' });
  const clock = props.clock ?? (() => new Date());
  const byName = new Map(channels.map((c) => [c.name, c]));
  const products = new Map<string, Product>();
  const stock = new Map<string, Stock>();
  const lots = new Map<string, Lot>();
  const subjects = await state.load();
  const dirty = new Set<string>();
  /** changes of a transaction split across batches: evaluated at its last change */
  const touchedStock = new Set<string>();
  const touchedLots = new Set<string>();
  /** permanent failures waiting to dead-letter the next change applied alone (the runtime's retry) */
  const deadLetterNext: ChannelError[] = [];
  /** channel → time before which it is not called again (its Retry-After) */
  const notBefore = new Map<string, number>();
  const decided: Record<string, number> = {};
  let lock: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  for (const r of props.model.products) products.set(String(r.sku), productOf(r));
  for (const r of props.model.stock) stock.set(stockId(String(r.sku), String(r.location)), stockOf(r));
  for (const r of props.model.lots) lots.set(String(r.id), lotOf(r));

  /** Runs `fn` after everything queued before it: apply() and the periodic check never interleave. */
  function serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = lock.then(fn);
    lock = run.catch(() => {});
    return run;
  }

  function subject(key: string): SubjectState {
    let s = subjects.get(key);
    if (!s) subjects.set(key, (s = { active: [], episode: 0, outbox: [] }));
    return s;
  }

  function enqueue(key: string, s: SubjectState, id: string, notice: Notice) {
    s.outbox.push({ id, notice, pending: channels.map((c) => c.name) });
    dirty.add(key);
    const label = `${notice.kind}:${notice.action}`;
    decided[label] = (decided[label] ?? 0) + 1;
    log.debug({ id, summary: summaryOf(notice) }, 'alert decided');
  }

  function evaluateStock(id: string) {
    const row = stock.get(id);
    const product = row && products.get(row.sku);
    if (!row || row.deleted || !product) return;
    const key = lowStateKey(row.sku, row.location);
    const s = subject(key);
    const available = row.onHand - row.reserved;
    const decision = lowStockDecision({ available, reorderPoint: product.reorderPoint, margin: recoveryMargin(product.reorderPoint, settings.recoveryMargin), low: s.active.includes('low') });
    if (decision === 'none') return;
    if (decision === 'trigger') {
      s.episode += 1;
      s.active = ['low'];
    } else {
      s.active = [];
    }
    const dedupKey = lowStockKey(row.sku, row.location);
    enqueue(key, s, `${dedupKey}#${s.episode}:${decision}`, {
      kind: 'low-stock', action: decision, dedupKey, sku: row.sku, name: product.name, location: row.location, available,
      reorderPoint: product.reorderPoint, suggestion: reorderSuggestion(product.reorderQty, product.reorderPoint, available), at: clock().toISOString(),
    });
  }

  function evaluateLot(id: string, today: string) {
    const lot = lots.get(id);
    if (!lot || lot.deleted) return;
    const key = lotStateKey(lot.id);
    const s = subjects.get(key);
    const kinds = expiryDecisions({ expiresOn: lot.expiresOn, onHand: lot.onHand, today, windowDays: settings.expiryDays, alerted: new Set(s?.active ?? []) });
    if (!kinds.length) return;
    const record = subject(key);
    for (const kind of kinds) {
      record.active.push(kind);
      const dedupKey = lotKey(kind, lot.id);
      enqueue(key, record, `${dedupKey}:trigger`, {
        kind, action: 'trigger', dedupKey, sku: lot.sku, name: products.get(lot.sku)?.name ?? lot.sku, location: lot.location, lotId: lot.id,
        lotCode: lot.lotCode, onHand: lot.onHand, expiresOn: lot.expiresOn, daysLeft: daysBetween(today, lot.expiresOn), at: clock().toISOString(),
      });
    }
  }

  function evaluateTouched() {
    for (const id of touchedStock) evaluateStock(id);
    const today = isoDay(clock());
    for (const id of touchedLots) evaluateLot(id, today);
    touchedStock.clear();
    touchedLots.clear();
  }

  /** Folds one change into the model when it is newer (by version) than what the model holds. */
  function fold(e: ChangeEvent): void {
    const row = e.after ?? e.before;
    if (!row) return;
    const version = Number(row.version);
    const deleted = e.op === 'delete';
    if (e.table === 'products') {
      const current = products.get(String(row.sku));
      if (current && current.version >= version) return;
      if (deleted) products.delete(String(row.sku));
      else products.set(String(row.sku), productOf(row));
      for (const [id, s] of stock) if (s.sku === row.sku) touchedStock.add(id);
    } else if (e.table === 'stock_levels') {
      const id = stockId(String(row.sku), String(row.location));
      const current = stock.get(id);
      if (current && current.version >= version) return;
      stock.set(id, { ...stockOf(row), deleted });
      touchedStock.add(id);
    } else if (e.table === 'lots') {
      const current = lots.get(String(row.id));
      if (current && current.version >= version) return;
      lots.set(String(row.id), { ...lotOf(row), deleted });
      touchedLots.add(String(row.id));
    }
  }

  async function persist() {
    const keys = [...dirty];
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(keys.slice(i, i + 64).map(async (key) => {
        await state.save(key, subjects.get(key)!);
        dirty.delete(key);
      }));
    }
  }

  /** Sends every owed alert, in order per subject and channel; returns the failures. */
  async function deliver(): Promise<ChannelError[]> {
    const failures: ChannelError[] = [];
    const owing = [...subjects].filter(([, s]) => s.outbox.length);
    const sendSubject = async ([key, s]: [string, SubjectState]) => {
      const stuck = new Set<string>(); // a channel that failed here gets nothing later from this subject
      for (const out of s.outbox) {
        for (const name of [...out.pending]) {
          if (stuck.has(name)) continue;
          const channel = byName.get(name);
          const waitUntil = notBefore.get(name) ?? 0;
          if (channel && waitUntil > Date.now()) {
            stuck.add(name);
            failures.push(new ChannelError(name, 'waiting out Retry-After', { retryAfterMs: waitUntil - Date.now() }));
            continue;
          }
          try {
            if (channel) await channel.send(out.notice, out.id); // a channel no longer configured is dropped
            out.pending = out.pending.filter((n) => n !== name);
          } catch (err) {
            const failure = err instanceof ChannelError ? err : new ChannelError(name, (err as Error).message, { cause: err });
            failures.push(failure);
            if (failure.permanent) {
              log.error({ channel: name, id: out.id, err: { message: failure.message } }, 'alert refused by channel; dropped for it');
              out.pending = out.pending.filter((n) => n !== name);
            } else {
              stuck.add(name);
              if (failure.retryAfterMs !== undefined) notBefore.set(name, Date.now() + failure.retryAfterMs);
              log.warn({ channel: name, id: out.id, err: { message: failure.message } }, 'alert not delivered; will retry');
            }
          }
          dirty.add(key);
        }
      }
      s.outbox = s.outbox.filter((o) => o.pending.length);
    };
    for (let i = 0; i < owing.length; i += 32) await Promise.all(owing.slice(i, i + 32).map(sendSubject));
    return failures;
  }

  /** Delivers, records, and reports: throws when anything is still owed or was refused. */
  async function deliverAndRecord(fromChange: boolean) {
    const failures = await deliver();
    await persist();
    const permanent = failures.filter((f) => f.permanent);
    if (fromChange) deadLetterNext.push(...permanent);
    const retryable = failures.filter((f) => !f.permanent);
    if (retryable.length) {
      const waits = retryable.map((f) => f.retryAfterMs).filter((ms): ms is number => ms !== undefined);
      throw new AlertDeliveryPending(retryable, waits.length ? Math.max(...waits) : undefined);
    }
    if (fromChange && deadLetterNext.length) throw Object.assign(new Error(deadLetterNext[0]!.message), { permanent: false });
  }

  async function check() {
    const today = isoDay(clock());
    for (const id of lots.keys()) evaluateLot(id, today);
    await persist();
    await deliverAndRecord(false);
  }

  // the starting picture: anything already low or expiring that the state has not alerted yet
  for (const id of stock.keys()) touchedStock.add(id);
  for (const id of lots.keys()) touchedLots.add(id);
  evaluateTouched();
  await persist();
  await deliverAndRecord(false).catch((err: Error) => log.warn({ err: { message: err.message } }, 'alerts at start not all delivered; retrying later'));

  return {
    decided,
    apply(events) {
      return serialized(async () => {
        // the runtime retries a failed batch change by change: the first one carries a refused alert to the DLQ
        const refused = deadLetterNext.shift();
        if (refused) throw refused;
        for (const e of events) {
          fold(e);
          if (e.source.last) evaluateTouched();
        }
        await persist(); // the decisions are durable before the changes are acknowledged
        await deliverAndRecord(true);
      });
    },
    check: () => serialized(check),
    start() {
      timer ??= setInterval(() => {
        serialized(check).catch((err: Error) => log.warn({ err: { message: err.message } }, 'periodic alert check: alerts still owed'));
      }, settings.checkIntervalMs);
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await lock;
      await Promise.all(channels.map((c) => c.close?.().catch(() => {})));
    },
  };
}
