-- stockwire core schema: catalog, stock ledger, orders, idempotency, audit.
--
-- Invariants kept by the schema itself (not only by application code):
--   * quantities never go negative and reserved never exceeds on hand (CHECK on stock_levels and lots);
--   * stock_levels and lots change only through the ledger: an AFTER INSERT trigger on stock_movements
--     applies each movement's deltas, so levels always equal the sum of the ledger;
--   * stock_movements and audit_log are append-only (triggers refuse UPDATE, DELETE and TRUNCATE; the one
--     permitted UPDATE is sealing an audit row's hash chain columns once);
--   * every change to a versioned row bumps its version (optimistic-concurrency token) by trigger.

CREATE TABLE locations (
  code       text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]{0,31}$'),
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
  sku           text PRIMARY KEY CHECK (sku ~ '^[A-Z0-9][A-Z0-9._-]{0,63}$'),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  category      text NOT NULL CHECK (category IN ('sheets', 'linens', 'beauty', 'bundle')),
  kind          text NOT NULL CHECK (kind IN ('simple', 'bundle')),
  lot_tracked   boolean NOT NULL DEFAULT false,
  reorder_point integer NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
  reorder_qty   integer NOT NULL DEFAULT 0 CHECK (reorder_qty >= 0),
  active        boolean NOT NULL DEFAULT true,
  version       bigint NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT products_bundle_not_lot_tracked CHECK (NOT (kind = 'bundle' AND lot_tracked))
);
CREATE INDEX products_category_idx ON products (category, sku);

CREATE TABLE bundle_components (
  bundle_sku    text NOT NULL REFERENCES products (sku) ON DELETE CASCADE,
  component_sku text NOT NULL REFERENCES products (sku),
  qty           integer NOT NULL CHECK (qty > 0),
  PRIMARY KEY (bundle_sku, component_sku),
  CHECK (bundle_sku <> component_sku)
);
-- "which bundles contain this component" (bundle availability, catalog guards)
CREATE INDEX bundle_components_component_idx ON bundle_components (component_sku);

CREATE TABLE stock_levels (
  sku        text NOT NULL REFERENCES products (sku),
  location   text NOT NULL REFERENCES locations (code),
  on_hand    integer NOT NULL DEFAULT 0,
  reserved   integer NOT NULL DEFAULT 0,
  version    bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sku, location),
  CONSTRAINT stock_levels_quantities CHECK (on_hand >= 0 AND reserved >= 0 AND reserved <= on_hand)
);
CREATE INDEX stock_levels_location_idx ON stock_levels (location, sku);

CREATE TABLE lots (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sku        text NOT NULL,
  location   text NOT NULL,
  lot_code   text NOT NULL CHECK (lot_code ~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$'),
  expires_on date NOT NULL,
  on_hand    integer NOT NULL DEFAULT 0,
  reserved   integer NOT NULL DEFAULT 0,
  version    bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (sku, location) REFERENCES stock_levels (sku, location),
  UNIQUE (sku, location, lot_code),
  CONSTRAINT lots_quantities CHECK (on_hand >= 0 AND reserved >= 0 AND reserved <= on_hand)
);
-- FEFO picking: earliest expiry first within a (sku, location)
CREATE INDEX lots_fefo_idx ON lots (sku, location, expires_on, id);
-- expiry alerts: lots still holding stock, by date
CREATE INDEX lots_expiry_idx ON lots (expires_on) WHERE on_hand > 0;

CREATE TABLE orders (
  id               uuid PRIMARY KEY,
  external_ref     text CHECK (length(external_ref) BETWEEN 1 AND 100),
  status           text NOT NULL CHECK (status IN ('reserved', 'confirmed', 'cancelled', 'payment_failed', 'expired')),
  location         text NOT NULL REFERENCES locations (code),
  expires_at       timestamptz NOT NULL,
  -- AES-256-GCM ciphertext with its key id ("v1.<kid>.<iv>.<tag>.<data>"); never published by CDC
  customer_contact text,
  created_by       text NOT NULL,
  version          bigint NOT NULL DEFAULT 1,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- an order system's own reference is unique per caller: a retry without Idempotency-Key cannot double-book
CREATE UNIQUE INDEX orders_external_ref_idx ON orders (created_by, external_ref) WHERE external_ref IS NOT NULL;
-- the expiry sweeper's query
CREATE INDEX orders_reserved_expiry_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_created_idx ON orders (created_at DESC, id);

CREATE TABLE order_lines (
  order_id uuid NOT NULL REFERENCES orders (id),
  line_no  integer NOT NULL CHECK (line_no > 0),
  sku      text NOT NULL REFERENCES products (sku),
  qty      integer NOT NULL CHECK (qty > 0),
  PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_sku_idx ON order_lines (sku);

-- What an order holds: one row per (line, component, lot) picked at reservation time.
CREATE TABLE reservations (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id uuid NOT NULL,
  line_no  integer NOT NULL,
  sku      text NOT NULL,
  location text NOT NULL,
  lot_id   bigint REFERENCES lots (id),
  qty      integer NOT NULL CHECK (qty > 0),
  FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no),
  FOREIGN KEY (sku, location) REFERENCES stock_levels (sku, location)
);
CREATE INDEX reservations_order_idx ON reservations (order_id);
CREATE INDEX reservations_stock_idx ON reservations (sku, location);
CREATE INDEX reservations_lot_idx ON reservations (lot_id) WHERE lot_id IS NOT NULL;

CREATE TABLE stock_movements (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sku            text NOT NULL,
  location       text NOT NULL,
  lot_id         bigint REFERENCES lots (id),
  delta_on_hand  integer NOT NULL,
  delta_reserved integer NOT NULL,
  reason         text NOT NULL CHECK (reason IN ('receipt', 'reservation', 'release', 'confirm', 'adjustment',
                                                 'count', 'transfer_in', 'transfer_out', 'import')),
  order_id       uuid REFERENCES orders (id),
  ref            text,
  -- why, in the caller's words (damaged, lost, found, correction, count…); required for manual changes
  cause          text CHECK (length(cause) <= 50),
  actor          text NOT NULL,
  note           text CHECK (length(note) <= 500),
  request_id     text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (sku, location) REFERENCES stock_levels (sku, location),
  CHECK (delta_on_hand <> 0 OR delta_reserved <> 0)
);
-- ledger reads: by product, by location, by order, newest first
CREATE INDEX stock_movements_sku_idx ON stock_movements (sku, id);
CREATE INDEX stock_movements_location_idx ON stock_movements (location, id);
CREATE INDEX stock_movements_order_idx ON stock_movements (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX stock_movements_lot_idx ON stock_movements (lot_id) WHERE lot_id IS NOT NULL;
-- analytics scan the ledger by time; rows arrive in time order, so a BRIN index stays tiny
CREATE INDEX stock_movements_created_brin ON stock_movements USING brin (created_at);

CREATE TABLE idempotency_keys (
  actor        text NOT NULL,
  key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
  request_hash text NOT NULL,
  status_code  integer NOT NULL,
  response     jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE audit_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL,
  action     text NOT NULL,
  entity     text NOT NULL,
  entity_id  text NOT NULL,
  request_id text,
  ip         text,
  before     jsonb,
  after      jsonb,
  -- hash chain, filled by the audit sealer in commit-visibility order (see api/domain/audit-sealer.ts)
  chain_seq  bigint UNIQUE,
  prev_hash  text,
  hash       text,
  CHECK ((chain_seq IS NULL) = (hash IS NULL))
);
CREATE INDEX audit_log_unsealed_idx ON audit_log (id) WHERE hash IS NULL;
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, id);

-- versioned rows: bump version and updated_at on every change
CREATE FUNCTION bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := OLD.version + 1;
  NEW.updated_at := now();
  RETURN NEW;
END $$;
CREATE TRIGGER products_bump_version BEFORE UPDATE ON products FOR EACH ROW EXECUTE FUNCTION bump_version();
CREATE TRIGGER stock_levels_bump_version BEFORE UPDATE ON stock_levels FOR EACH ROW EXECUTE FUNCTION bump_version();
CREATE TRIGGER lots_bump_version BEFORE UPDATE ON lots FOR EACH ROW EXECUTE FUNCTION bump_version();
CREATE TRIGGER orders_bump_version BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION bump_version();

-- the ledger drives the balances: each movement applies its deltas to its stock level and lot
CREATE FUNCTION apply_stock_movement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE stock_levels
     SET on_hand = on_hand + NEW.delta_on_hand, reserved = reserved + NEW.delta_reserved
   WHERE sku = NEW.sku AND location = NEW.location;
  IF NEW.lot_id IS NOT NULL THEN
    UPDATE lots
       SET on_hand = on_hand + NEW.delta_on_hand, reserved = reserved + NEW.delta_reserved
     WHERE id = NEW.lot_id AND sku = NEW.sku AND location = NEW.location;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'lot % does not belong to % at %', NEW.lot_id, NEW.sku, NEW.location
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER stock_movements_apply AFTER INSERT ON stock_movements FOR EACH ROW EXECUTE FUNCTION apply_stock_movement();

-- append-only tables
CREATE FUNCTION refuse_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- the audit sealer may fill the chain columns of a row once; nothing else may change
  IF TG_TABLE_NAME = 'audit_log' AND TG_OP = 'UPDATE' THEN
    IF OLD.hash IS NULL
       AND (to_jsonb(NEW) - 'chain_seq' - 'prev_hash' - 'hash') = (to_jsonb(OLD) - 'chain_seq' - 'prev_hash' - 'hash') THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER stock_movements_append_only BEFORE UPDATE OR DELETE ON stock_movements
  FOR EACH ROW EXECUTE FUNCTION refuse_mutation();
CREATE TRIGGER stock_movements_no_truncate BEFORE TRUNCATE ON stock_movements
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_mutation();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
