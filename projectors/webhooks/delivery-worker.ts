/**
 * Sends queued webhook deliveries. Per endpoint strictly in id order with one request in flight (the
 * head of its queue must be delivered or dead before the next is sent); different endpoints in parallel,
 * up to `concurrency`. Sending runs in a transaction that holds the endpoint's row lock
 * (FOR NO KEY UPDATE SKIP LOCKED — it does not block the fan-out's inserts, which only take KEY SHARE),
 * so any number of worker replicas never send the same delivery at once: a replica that finds the
 * endpoint locked skips it. The queue is read after the lock is held, so it is never a stale one. One
 * transaction sends a short burst (up to 100 deliveries or 1 s) and records the outcomes together.
 * A crash before its commit re-sends that burst: delivery is at least once, and receivers dedupe by
 * webhook-id (the delivery id, stable across retries and replays).
 *
 * Cost per delivery is what bounds one endpoint (one request at a time): a burst is two database round
 * trips however many it sends (BEGIN + lock + read in one simple query, outcomes + COMMIT in another),
 * requests go over a keep-alive connection through node:http (http-sender.ts), the fan-out names the
 * endpoints it queued for so the worker starts on them without a poll query, and a drained queue is not
 * read again unless the fan-out queued more for it meanwhile. Other replicas' rows, retries falling due
 * and endpoints that had to wait for a free slot are found by the poll (CANDIDATES).
 *
 * Outcomes follow retry-schedule.ts: 2xx delivered; otherwise retried with backoff (Retry-After honoured
 * on 429/503) within the retry window, then dead (listed by the API, replayable). An endpoint without a
 * success for `disableAfterMs` is disabled with a reason and reported as a warning. All times come from
 * the database clock, so API replays and worker schedules agree.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createHttpSender, WebhookTimeout, type WebhookSender } from './http-sender.ts';
import { decideDelivery, parseRetryAfter, shouldDisable, type AttemptOutcome, type RetrySettings } from './retry-schedule.ts';
import { secretKey, webhookHeaders } from './signature.ts';

export interface DeliveryWorkerSettings extends RetrySettings {
  /** a request without an answer within this many ms is a failed attempt */
  timeoutMs: number;
  /** how often due deliveries are looked for when nothing wakes the worker */
  pollMs: number;
  /** endpoints served in parallel (each holds one pooled connection while its request is in flight) */
  concurrency: number;
}

export interface DeliveryWorkerProps {
  /** read/write on webhook_endpoints and webhook_deliveries only */
  pool: pg.Pool;
  /** unseals endpoint secrets (the API sealed them with the same PII keys) */
  cipher: { decrypt(sealed: string): string };
  log: Logger;
  settings: DeliveryWorkerSettings;
  registry?: Registry | undefined;
  /** how requests are sent (default: node:http with keep-alive); the worker closes it on stop() */
  sender?: WebhookSender;
  random?: () => number;
}

/** most deliveries sent to one endpoint in one transaction (its lock held), and for how long at most */
const BURST = 100;
const BURST_MS = 1000;
/** bursts one endpoint gets in a row before it yields its slot to others that are due */
const BURSTS_PER_TURN = 10;
const MAX_ERROR_TEXT = 500;

const CANDIDATES = `
SELECT e.id
  FROM webhook_endpoints e
 CROSS JOIN LATERAL (
       SELECT d.next_attempt_at FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.status = 'pending' ORDER BY d.id LIMIT 1) head
 WHERE e.status = 'active' AND head.next_attempt_at <= clock_timestamp() AND e.id <> ALL ($1::uuid[])
 ORDER BY head.next_attempt_at
 LIMIT $2`;

/**
 * Opens a burst in one round trip: BEGIN, asynchronous commit, the endpoint's lock, then the first
 * deliveries of its queue. A simple query carries no parameters, so the endpoint id is an escaped
 * literal; its statements run in order, each with a fresh snapshot, so the queue is read after the lock
 * is held (never a queue another replica has just sent).
 */
function openBurst(client: pg.PoolClient, endpointId: string): string {
  const id = `${client.escapeLiteral(endpointId)}::uuid`;
  // the outcomes need not wait for their WAL flush: marks lost in a crash only mean those deliveries
  // are sent again, which at-least-once delivery (receivers dedupe by webhook-id) allows anyway
  return `BEGIN;
SET LOCAL synchronous_commit = off;
SELECT url, secret, failing_since FROM webhook_endpoints WHERE id = ${id} AND status = 'active' FOR NO KEY UPDATE SKIP LOCKED;
SELECT id, payload::text AS body, attempts, first_attempt_at, next_attempt_at <= clock_timestamp() AS due, clock_timestamp() AS now
  FROM webhook_deliveries WHERE endpoint_id = ${id} AND status = 'pending' ORDER BY id LIMIT ${BURST}`;
}

/** Marks deliveries delivered (ids, times: arrays; endpoint: uuid — SQL expressions) and ends a failing streak. */
const markDelivered = (ids: string, ats: string, endpoint: string) => `
WITH delivered AS (
  UPDATE webhook_deliveries d
     SET status = 'delivered', delivered_at = v.at, attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, v.at), last_error = NULL
    FROM unnest(${ids}::bigint[], ${ats}::timestamptz[]) AS v (id, at)
   WHERE d.id = v.id)
UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ${endpoint}::uuid AND failing_since IS NOT NULL`;

const MARK_DELIVERED = markDelivered('$1', '$2', '$3');

const MARK_FAILED = `
WITH failed AS (
  UPDATE webhook_deliveries
     SET status = $2, attempts = attempts + 1, first_attempt_at = $3, next_attempt_at = coalesce($4, next_attempt_at), last_error = $5
   WHERE id = $1)
UPDATE webhook_endpoints
   SET failing_since = $7,
       status = CASE WHEN $8::text IS NULL THEN status ELSE 'disabled' END,
       disabled_reason = coalesce($8, disabled_reason),
       disabled_at = CASE WHEN $8::text IS NULL THEN disabled_at ELSE $9 END
 WHERE id = $6`;

/**
 * idle: nothing sent (locked by another replica, disabled or deleted, no due head); failed: a send failed
 * (its retry is scheduled); drained: everything the queue held when read was delivered; delivered: sent
 * what the burst could, more may be waiting.
 */
type BurstResult = 'idle' | 'failed' | 'drained' | 'delivered';

interface Head {
  id: string;
  body: string;
  attempts: number;
  first_attempt_at: Date | null;
  due: boolean;
  now: Date;
}

interface LockedEndpoint {
  url: string;
  secret: string;
  failing_since: Date | null;
}

export class DeliveryWorker {
  private readonly inFlight = new Map<string, Promise<void>>();
  /** endpoints the fan-out queued for while their drain was running: read their queue again */
  private readonly signalled = new Set<string>();
  /** a due endpoint had to wait for a slot: look for it when one frees */
  private saturated = false;
  private readonly keys = new Map<string, Buffer>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private again = false;
  private stopped = true;
  private readonly sender: WebhookSender;
  private readonly metrics;

  constructor(private readonly props: DeliveryWorkerProps) {
    this.sender = props.sender ?? createHttpSender();
    this.metrics = workerMetrics(props.registry);
  }

  /** Starts polling (and serving wake-ups). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops polling and waits for the requests in flight to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight.values()]);
    this.sender.close();
  }

  /**
   * Sends what is due now: for the endpoints named (the fan-out queued deliveries for them), or for
   * whichever are due (a poll) when called without.
   */
  wake(endpointIds?: readonly string[]): void {
    if (this.stopped) return;
    if (!endpointIds) {
      void this.tick();
      return;
    }
    for (const id of endpointIds) {
      if (this.inFlight.has(id)) this.signalled.add(id);
      else if (this.inFlight.size < this.props.settings.concurrency) this.drain(id);
      else this.saturated = true;
    }
  }

  private schedule(ms: number) {
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      const free = this.props.settings.concurrency - this.inFlight.size;
      if (free > 0) {
        const { rows } = await this.props.pool.query<{ id: string }>(CANDIDATES, [[...this.inFlight.keys()], free]);
        if (rows.length === free) this.saturated = true; // there may be more than the slots
        for (const { id } of rows) if (!this.inFlight.has(id)) this.drain(id);
      } else {
        this.saturated = true;
      }
    } catch (err) {
      this.props.log.warn({ err: { message: (err as Error).message } }, 'webhook poll failed; retrying');
    } finally {
      this.ticking = false;
      if (this.again) {
        this.again = false;
        queueMicrotask(() => void this.tick());
      } else {
        this.schedule(this.props.settings.pollMs);
      }
    }
  }

  /** Sends one endpoint's due deliveries in order, burst after burst, until its queue is drained, one fails or none is due. */
  private drain(endpointId: string) {
    const run = (async () => {
      let client: pg.PoolClient | undefined;
      let broken: Error | undefined;
      let ended: BurstResult | 'yield' = 'yield';
      try {
        client = await this.props.pool.connect();
        for (let i = 0; i < BURSTS_PER_TURN && !this.stopped; i++) {
          this.signalled.delete(endpointId);
          const result = await this.sendBurst(client, endpointId);
          // drained: read again only if more was queued while this burst was sending
          if (result === 'delivered' || (result === 'drained' && this.signalled.has(endpointId))) continue;
          ended = result;
          break;
        }
      } catch (err) {
        broken = err as Error;
        ended = 'failed';
        this.props.log.warn({ endpoint: endpointId, err: { message: broken.message } }, 'webhook send failed before an outcome was recorded; it will be retried');
      } finally {
        client?.release(broken);
        this.inFlight.delete(endpointId);
        // (synchronous from the last check on: a wake-up for this endpoint now finds it not in flight)
        const signalled = this.signalled.delete(endpointId);
        // look again at once when this endpoint yielded its slot with more queued, when more was queued
        // for it just now, or when another endpoint waited for the slot; a failed, idle (locked by another
        // replica, head backing off) or drained queue waits for the next wake-up or poll
        if (ended === 'yield' || signalled || this.saturated) {
          this.saturated = false;
          this.wake();
        }
      }
    })();
    this.inFlight.set(endpointId, run);
  }

  /**
   * One transaction holding the endpoint's lock: read the queue's first deliveries, send them one after
   * the other until one fails, one is not due or the burst's time is up, then record every outcome and
   * commit. Marks are written once per burst, not once per send, so the per-endpoint rate is bounded by
   * the receiver's answer time rather than by database round trips.
   */
  private async sendBurst(client: pg.PoolClient, endpointId: string): Promise<BurstResult> {
    try {
      const opened = (await client.query(openBurst(client, endpointId))) as unknown as pg.QueryResult[];
      const endpoint = opened[2]?.rows[0] as LockedEndpoint | undefined;
      const heads = (opened[3]?.rows ?? []) as Head[];
      if (!endpoint || !heads[0]?.due) {
        await client.query('ROLLBACK');
        return 'idle'; // another replica holds it, it was disabled or deleted, or its head is waiting out a backoff
      }
      const readAt = performance.now();
      const dbNow = () => new Date(heads[0]!.now.getTime() + (performance.now() - readAt));
      const delivered: { id: string; at: Date }[] = [];
      let failure: { head: Head; outcome: Extract<AttemptOutcome, { ok: false }>; at: Date } | undefined;
      for (const head of heads) {
        if (!head.due || this.stopped || performance.now() - readAt > BURST_MS) break;
        const started = performance.now();
        const outcome = await this.attempt(endpoint.url, endpoint.secret, head.id, head.body);
        this.metrics.seconds.observe((performance.now() - started) / 1000);
        if (!outcome.ok) {
          failure = { head, outcome, at: dbNow() };
          break;
        }
        delivered.push({ id: head.id, at: dbNow() });
      }
      if (failure) {
        if (delivered.length > 0) await client.query(MARK_DELIVERED, [delivered.map((d) => d.id), delivered.map((d) => d.at), endpointId]);
        // a success earlier in this burst ended any previous failing streak
        const failingSince = (delivered.length === 0 ? endpoint.failing_since : null) ?? failure.at;
        await this.recordFailure(client, endpointId, endpoint.url, failingSince, failure.head, failure.outcome, failure.at);
        await client.query('COMMIT');
      } else if (delivered.length > 0) {
        // the common case: outcomes and COMMIT in one round trip (ids and times are ours, escaped as literals)
        const ids = client.escapeLiteral(`{${delivered.map((d) => String(d.id)).join(',')}}`);
        const ats = client.escapeLiteral(`{${delivered.map((d) => d.at.toISOString()).join(',')}}`);
        await client.query(`${markDelivered(ids, ats, client.escapeLiteral(endpointId))};\nCOMMIT`);
      } else {
        await client.query('COMMIT');
      }
      this.metrics.attempts.inc({ outcome: 'delivered' }, delivered.length);
      if (failure) return 'failed';
      return delivered.length === heads.length && heads.length < BURST ? 'drained' : 'delivered';
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  /** Schedules the retry (or dead-letters the delivery) and disables an endpoint that kept failing. */
  private async recordFailure(
    client: pg.PoolClient, endpointId: string, url: string, failingSince: Date, head: Head, outcome: Extract<AttemptOutcome, { ok: false }>, now: Date,
  ) {
    const firstAttemptAt = head.first_attempt_at ?? now;
    const decision = decideDelivery({ outcome, attempts: head.attempts + 1, firstAttemptAt, now, settings: this.props.settings, random: this.props.random });
    if (decision.status === 'delivered') return; // not reachable for a failed outcome
    const disable = shouldDisable(failingSince, now, this.props.settings)
      ? `no successful delivery since ${failingSince.toISOString()} (${formatDuration(this.props.settings.disableAfterMs)} or more); last error: ${decision.error}`.slice(0, MAX_ERROR_TEXT)
      : null;
    await client.query(MARK_FAILED, [
      head.id, decision.status, firstAttemptAt, decision.status === 'pending' ? decision.nextAttemptAt : null, decision.error.slice(0, MAX_ERROR_TEXT),
      endpointId, failingSince, disable, now,
    ]);
    this.metrics.attempts.inc({ outcome: decision.status === 'dead' ? 'dead' : 'retry' });
    if (decision.status === 'dead') {
      this.props.log.warn({ endpoint: endpointId, delivery: head.id, attempts: head.attempts + 1, error: decision.error }, 'webhook delivery dead after its retry window');
    }
    if (disable) {
      this.metrics.disabled.inc();
      this.props.log.warn({ endpoint: endpointId, url: redactUrl(url), reason: disable }, 'webhook endpoint disabled: it kept failing; re-enable it with POST /v1/webhooks/{id}/enable once it is fixed');
    }
  }

  /** One signed POST; every answer but 2xx (and every error or timeout) is a failure. */
  private async attempt(url: string, sealedSecret: string, id: string, body: string): Promise<AttemptOutcome> {
    let key: Buffer;
    try {
      key = this.keyFor(sealedSecret);
    } catch (err) {
      return { ok: false, error: `the endpoint secret cannot be unsealed (${(err as Error).message}); is its PII key still configured?` };
    }
    try {
      const answer = await this.sender.post({
        url,
        body,
        timeoutMs: this.props.settings.timeoutMs,
        headers: { 'content-type': 'application/json', 'user-agent': 'stockwire-webhooks/1', ...webhookHeaders(key, id, body, Date.now()) },
      });
      if (answer.status >= 200 && answer.status < 300) return { ok: true };
      return { ok: false, status: answer.status, error: `HTTP ${answer.status}`, retryAfterMs: parseRetryAfter(answer.retryAfter, Date.now()) };
    } catch (err) {
      if (err instanceof WebhookTimeout) return { ok: false, error: err.message };
      const e = err as NodeJS.ErrnoException;
      return { ok: false, error: `request failed: ${e.code ?? e.message}` };
    }
  }

  private keyFor(sealed: string): Buffer {
    let key = this.keys.get(sealed);
    if (!key) {
      key = secretKey(this.props.cipher.decrypt(sealed));
      this.keys.set(sealed, key);
    }
    return key;
  }
}

/** The worker's metrics, registered once per registry (a restarted worker reuses them). */
function workerMetrics(registry: Registry | undefined) {
  const registers = registry ? [registry] : [];
  const reuse = <T>(name: string, make: () => T): T => (registry?.getSingleMetric(name) as T | undefined) ?? make();
  return {
    attempts: reuse('stockwire_webhook_attempts_total', () => new Counter({
      name: 'stockwire_webhook_attempts_total', help: 'Webhook delivery attempts by outcome (delivered, retry, dead)', labelNames: ['outcome'], registers,
    })),
    disabled: reuse('stockwire_webhook_endpoints_disabled_total', () => new Counter({
      name: 'stockwire_webhook_endpoints_disabled_total', help: 'Endpoints disabled after failing continuously', registers,
    })),
    seconds: reuse('stockwire_webhook_request_seconds', () => new Histogram({
      name: 'stockwire_webhook_request_seconds', help: 'Duration of one webhook request', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    })),
  };
}

function formatDuration(ms: number): string {
  return ms >= 3_600_000 ? `${+(ms / 3_600_000).toFixed(2)} h` : `${+(ms / 1000).toFixed(1)} s`;
}

/** the URL without query string (which may carry a receiver's token) for logs */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(unparsable url)';
  }
}
