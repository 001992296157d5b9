/**
 * The webhooks projection: each batch of change events becomes webhook events (webhook-events.ts), and
 * every active endpoint subscribed to an event's type (or to "*") gets one webhook_deliveries row — all
 * in ONE INSERT … SELECT per batch, so a batch is queued entirely or not at all, and the runtime acks
 * only after it committed. UNIQUE (endpoint_id, event_id) with ON CONFLICT DO NOTHING makes redelivery
 * harmless. Rows are inserted in stream order, so their ids (bigserial) are the per-endpoint send order
 * the delivery worker keeps.
 *
 * Ordering holds for ONE fan-out consumer per stream: JetStream splits a durable consumer's messages
 * between replicas, so a second replica of this projection would interleave batches. Run the delivery
 * worker on as many replicas as wanted; run the fan-out once (standby via the process supervisor). The
 * projection is `ordered`: a batch that fails (Postgres restarting) is retried in place before anything
 * later is queued, since a redelivered change must not get an id after the changes that followed it.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ChangeEvent } from '../../cdc/envelope.ts';
import type { Projection } from '../runtime/projector-runtime.ts';
import { toWebhookEvent, type WebhookEvent } from './webhook-events.ts';

/** how many orders' last status the fan-out remembers (to tell a status change from another update) */
const STATUS_MEMORY = 50_000;

const FAN_OUT = `
WITH queued AS (
  INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload)
  SELECT e.id, ev.event_id, ev.event_type, ev.payload
    FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS ev (event_id, event_type, payload, ord)
    JOIN webhook_endpoints e
      ON e.status = 'active' AND (ev.event_type = ANY (e.event_types) OR '*' = ANY (e.event_types))
   ORDER BY ev.ord, e.id
  ON CONFLICT (endpoint_id, event_id) DO NOTHING
  RETURNING endpoint_id)
SELECT endpoint_id::text AS id, count(*)::int AS n FROM queued GROUP BY endpoint_id`;

export interface FanOutProps {
  pool: pg.Pool;
  log: Logger;
  /** called after a batch queued deliveries, with the endpoints they are for and how many (the in-process worker starts on them at once instead of polling) */
  onQueued?: (endpointIds: string[], count: number) => void;
}

/** Creates the fan-out projection over `pool` (which needs INSERT on webhook_deliveries, SELECT on webhook_endpoints). */
export function createWebhookFanOut(props: FanOutProps): Projection {
  const lastStatus = new Map<string, string>();

  function remember(id: string, status: string) {
    lastStatus.delete(id);
    lastStatus.set(id, status);
    if (lastStatus.size > STATUS_MEMORY) lastStatus.delete(lastStatus.keys().next().value!);
  }

  return {
    ordered: true,
    async apply(changes: ChangeEvent[]) {
      const events: WebhookEvent[] = [];
      const seen = new Map<string, string>(); // statuses within this batch, committed to memory only after the insert
      for (const change of changes) {
        const orderId = change.table === 'orders' && change.after ? String(change.after.id) : undefined;
        const previous = orderId ? seen.get(orderId) ?? lastStatus.get(orderId) : undefined;
        const event = toWebhookEvent(change, previous);
        if (event) events.push(event);
        if (orderId) seen.set(orderId, String(change.after!.status));
      }
      if (events.length > 0) {
        const { rows } = await props.pool.query<{ id: string; n: number }>(FAN_OUT, [
          events.map((e) => e.eventId),
          events.map((e) => e.type),
          events.map((e) => JSON.stringify(e.payload)),
        ]);
        if (rows.length) props.onQueued?.(rows.map((r) => r.id), rows.reduce((sum, r) => sum + r.n, 0));
      }
      for (const [id, status] of seen) remember(id, status);
    },
  };
}
