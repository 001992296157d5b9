/**
 * Kysely table types for the core schema (db/migrations/0001_core.up.sql).
 * Kept by hand next to the migrations: a migration that changes a table changes its interface here.
 */
import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** bigint columns arrive as strings from pg; we write numbers. */
type BigIntColumn = ColumnType<string, number | string | undefined, number | string>;

export type Category = 'sheets' | 'linens' | 'beauty' | 'bundle';
export type ProductKind = 'simple' | 'bundle';
export type OrderStatus = 'reserved' | 'confirmed' | 'cancelled' | 'payment_failed' | 'expired';
export type MovementReason =
  | 'receipt' | 'reservation' | 'release' | 'confirm' | 'adjustment'
  | 'count' | 'transfer_in' | 'transfer_out' | 'import';

export interface LocationsTable {
  code: string;
  name: string;
  created_at: Timestamp;
}

export interface ProductsTable {
  sku: string;
  name: string;
  category: Category;
  kind: ProductKind;
  lot_tracked: boolean;
  reorder_point: number;
  reorder_qty: number;
  active: ColumnType<boolean, boolean | undefined, boolean>;
  version: BigIntColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface BundleComponentsTable {
  bundle_sku: string;
  component_sku: string;
  qty: number;
}

export interface StockLevelsTable {
  sku: string;
  location: string;
  on_hand: ColumnType<number, number | undefined, number>;
  reserved: ColumnType<number, number | undefined, number>;
  version: BigIntColumn;
  updated_at: Timestamp;
}

export interface LotsTable {
  id: Generated<string>;
  sku: string;
  location: string;
  lot_code: string;
  expires_on: ColumnType<string, string, string>;
  on_hand: ColumnType<number, number | undefined, number>;
  reserved: ColumnType<number, number | undefined, number>;
  version: BigIntColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OrdersTable {
  id: string;
  external_ref: string | null;
  status: OrderStatus;
  location: string;
  expires_at: Timestamp;
  customer_contact: string | null;
  created_by: string;
  version: BigIntColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface OrderLinesTable {
  order_id: string;
  line_no: number;
  sku: string;
  qty: number;
}

export interface ReservationsTable {
  id: Generated<string>;
  order_id: string;
  line_no: number;
  sku: string;
  location: string;
  lot_id: string | null;
  qty: number;
}

export interface StockMovementsTable {
  id: Generated<string>;
  sku: string;
  location: string;
  lot_id: string | null;
  delta_on_hand: number;
  delta_reserved: number;
  reason: MovementReason;
  order_id: string | null;
  ref: string | null;
  cause: string | null;
  actor: string;
  note: string | null;
  request_id: string | null;
  created_at: Timestamp;
}

export interface IdempotencyKeysTable {
  actor: string;
  key: string;
  request_hash: string;
  status_code: number;
  response: unknown;
  created_at: Timestamp;
}

export interface AuditLogTable {
  id: Generated<string>;
  at: Timestamp;
  actor: string;
  action: string;
  entity: string;
  entity_id: string;
  request_id: string | null;
  ip: string | null;
  before: unknown;
  after: unknown;
  chain_seq: string | null;
  prev_hash: string | null;
  hash: string | null;
}

/** db/migrations/0003_api_keys.up.sql: machine callers' keys (only the prefix and the secret's SHA-256). */
export interface ApiKeysTable {
  id: string;
  name: string;
  key_prefix: string;
  secret_hash: Buffer;
  roles: string[];
  /** NULL: every location */
  locations: string[] | null;
  /** NULL: any address */
  allowed_cidrs: string[] | null;
  created_by: string;
  created_at: Timestamp;
  expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  last_used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** the key this one rotated out */
  replaces: string | null;
}

/** db/migrations/0006_webhooks.up.sql: registered webhook endpoints (the signing secret sealed with the PII cipher). */
export interface WebhookEndpointsTable {
  id: string;
  url: string;
  event_types: string[];
  /** the whsec_ secret sealed by PiiCipher ("v1.<kid>.…"), never plaintext */
  secret: string;
  status: ColumnType<'active' | 'disabled', 'active' | 'disabled' | undefined, 'active' | 'disabled'>;
  disabled_reason: string | null;
  disabled_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  failing_since: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_by: string;
  created_at: Timestamp;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'dead';

/** db/migrations/0006_webhooks.up.sql: one event for one endpoint, sent in id order per endpoint. */
export interface WebhookDeliveriesTable {
  id: Generated<string>;
  endpoint_id: string;
  /** the change's message id, <commitLsn>:<index> */
  event_id: string;
  event_type: string;
  payload: unknown;
  status: ColumnType<WebhookDeliveryStatus, WebhookDeliveryStatus | undefined, WebhookDeliveryStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  first_attempt_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  next_attempt_at: Timestamp;
  last_error: string | null;
  created_at: Timestamp;
  delivered_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface Database {
  locations: LocationsTable;
  products: ProductsTable;
  bundle_components: BundleComponentsTable;
  stock_levels: StockLevelsTable;
  lots: LotsTable;
  orders: OrdersTable;
  order_lines: OrderLinesTable;
  reservations: ReservationsTable;
  stock_movements: StockMovementsTable;
  idempotency_keys: IdempotencyKeysTable;
  audit_log: AuditLogTable;
  api_keys: ApiKeysTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}

export type Product = Selectable<ProductsTable>;
export type Lot = Selectable<LotsTable>;
export type Order = Selectable<OrdersTable>;
