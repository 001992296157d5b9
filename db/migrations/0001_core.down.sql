-- Reverses 0001_core: drops the whole core schema (data included).
DROP TABLE IF EXISTS audit_log, idempotency_keys, stock_movements, reservations, order_lines, orders, lots,
  stock_levels, bundle_components, products, locations CASCADE;
DROP FUNCTION IF EXISTS refuse_truncate(), refuse_mutation(), apply_stock_movement(), bump_version();
