-- What leaves Postgres through logical decoding. Only the tables projectors need are published, and
-- personal data never is: the orders column list leaves out customer_contact (PG15 column lists).
-- Stock rows carry their full old image (REPLICA IDENTITY FULL) so an update event has a real `before`
-- (alerts detect threshold crossings from it); the rows are narrow, so the extra WAL is small.
ALTER TABLE stock_levels REPLICA IDENTITY FULL;
ALTER TABLE lots REPLICA IDENTITY FULL;

CREATE PUBLICATION stockwire FOR TABLE
  locations,
  products,
  bundle_components,
  stock_levels,
  lots,
  stock_movements,
  orders (id, external_ref, status, location, expires_at, created_by, version, created_at, updated_at);
