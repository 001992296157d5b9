/**
 * Which webhook event a change event becomes, and what its payload carries. Payloads are built field by
 * field from an allow-list, never by forwarding a row, so nothing the publication might one day add
 * (least of all customer contact on orders) reaches a receiver by accident. Snapshot events (a resync
 * re-stating current rows) and tables without a webhook type produce nothing: a webhook reports a change.
 *
 * Payload: Standard Webhooks' recommended envelope { type, timestamp (commit time), data } plus event_id,
 * the change's message id "<commitLsn>:<index>".
 */
import { messageIdFor, type ChangeEvent, type Row } from '../../cdc/envelope.ts';

export const WEBHOOK_EVENT_TYPES = ['stock.changed', 'order.created', 'order.status_changed', 'lot.changed', 'product.changed'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEvent {
  eventId: string;
  type: WebhookEventType;
  payload: { type: WebhookEventType; timestamp: string; event_id: string; data: Record<string, unknown> };
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown) => (v === null || v === undefined ? null : String(v));

function stockData(row: Row) {
  const onHand = Number(row.on_hand);
  const reserved = Number(row.reserved);
  return { sku: str(row.sku), location: str(row.location), on_hand: onHand, reserved, available: onHand - reserved, version: num(row.version), updated_at: str(row.updated_at) };
}

function lotData(row: Row) {
  const onHand = Number(row.on_hand);
  const reserved = Number(row.reserved);
  return {
    id: str(row.id), sku: str(row.sku), location: str(row.location), lot_code: str(row.lot_code), expires_on: str(row.expires_on),
    on_hand: onHand, reserved, available: onHand - reserved, version: num(row.version), updated_at: str(row.updated_at),
  };
}

function productData(row: Row) {
  return {
    sku: str(row.sku), name: str(row.name), category: str(row.category), kind: str(row.kind), lot_tracked: Boolean(row.lot_tracked),
    reorder_point: num(row.reorder_point), reorder_qty: num(row.reorder_qty), active: row.active === undefined ? null : Boolean(row.active),
    version: num(row.version), updated_at: str(row.updated_at),
  };
}

/** the order fields a receiver may see: no customer contact, ever */
function orderData(row: Row) {
  return {
    id: str(row.id), external_ref: str(row.external_ref), status: str(row.status), location: str(row.location),
    expires_at: str(row.expires_at), version: num(row.version), created_at: str(row.created_at), updated_at: str(row.updated_at),
  };
}

/**
 * The webhook event for `change`, or undefined. For an orders update without a before image (orders have
 * REPLICA IDENTITY DEFAULT), `previousStatus` is what the caller last saw for that order, if anything: an
 * update that leaves the status as it was (a PII key rotation re-sealing contact) is not a status change.
 */
export function toWebhookEvent(change: ChangeEvent, previousStatus?: string): WebhookEvent | undefined {
  if (change.op === 'snapshot') return undefined;
  const deleted = change.op === 'delete';
  const row = change.after ?? change.before!;
  let type: WebhookEventType;
  let data: Record<string, unknown>;
  switch (change.table) {
    case 'stock_levels':
      type = 'stock.changed';
      data = { ...stockData(row), ...(deleted ? { deleted: true } : {}) };
      break;
    case 'lots':
      type = 'lot.changed';
      data = { ...lotData(row), ...(deleted ? { deleted: true } : {}) };
      break;
    case 'products':
      type = 'product.changed';
      data = { ...productData(row), ...(deleted ? { deleted: true } : {}) };
      break;
    case 'orders': {
      if (change.op === 'insert') {
        type = 'order.created';
        data = orderData(row);
        break;
      }
      if (change.op !== 'update') return undefined;
      const before = change.before?.status !== undefined ? String(change.before.status) : previousStatus;
      if (before !== undefined && before === String(change.after.status)) return undefined;
      type = 'order.status_changed';
      data = { ...orderData(row), previous_status: before ?? null };
      break;
    }
    default:
      return undefined;
  }
  const eventId = messageIdFor(change.source);
  return { eventId, type, payload: { type, timestamp: change.source.commitTime, event_id: eventId, data } };
}
