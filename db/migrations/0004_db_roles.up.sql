-- Least-privilege database roles (issue 6). The migrations run as the schema owner; the processes do not:
--   * stockwire_app (the API; the sheet projectors read with it too): reads and writes the tables it
--     serves, but the ledger (stock_movements) is insert-only and the audit log is insert-only apart
--     from the three chain columns the audit sealer fills once (api/domain/audit-chain.ts). It owns
--     nothing and has no CREATE anywhere, so it cannot change the schema or drop the append-only triggers.
--   * stockwire_replication (the cdc reader and resync): REPLICATION for the slot, and SELECT on exactly
--     what the publication publishes (orders without customer_contact) for snapshots. Nothing else.
-- Roles are cluster-global and may already exist (another database on the cluster, or created by an
-- operator), so they are created only when missing; privileges are granted per database. Passwords are
-- never set here: the launcher sets generated ones (.data/secrets.json), operators set their own.
-- Tables that later migrations create get the app's DML through default privileges; a later append-only
-- table must REVOKE UPDATE, DELETE, TRUNCATE from stockwire_app itself.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stockwire_app') THEN
    CREATE ROLE stockwire_app LOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- another database's migration created it at the same moment
END $$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stockwire_replication') THEN
    CREATE ROLE stockwire_replication LOGIN REPLICATION;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END $$;

DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO stockwire_app, stockwire_replication', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO stockwire_app, stockwire_replication;

-- the API: full DML on the mutable tables
GRANT SELECT, INSERT, UPDATE, DELETE ON
  locations, products, bundle_components, stock_levels, lots, orders, order_lines, reservations, idempotency_keys
  TO stockwire_app;
-- append-only: the triggers refuse UPDATE/DELETE/TRUNCATE even to the owner; the app is not granted them at all
GRANT SELECT, INSERT ON stock_movements TO stockwire_app;
GRANT SELECT, INSERT ON audit_log TO stockwire_app;
GRANT UPDATE (chain_seq, prev_hash, hash) ON audit_log TO stockwire_app;
-- API keys (0003_api_keys) when that migration ran first; otherwise the default privileges below cover it
DO $$
BEGIN
  IF to_regclass('public.api_keys') IS NOT NULL THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO stockwire_app;
  END IF;
END $$;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO stockwire_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO stockwire_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO stockwire_app;

-- cdc snapshots and resync read what the publication "stockwire" (0002) publishes, column for column
GRANT SELECT ON locations, products, bundle_components, stock_levels, lots, stock_movements TO stockwire_replication;
GRANT SELECT (id, external_ref, status, location, expires_at, created_by, version, created_at, updated_at)
  ON orders TO stockwire_replication;
