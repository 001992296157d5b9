-- Reverses 0004_db_roles in this database: every privilege of the two roles here goes. The roles themselves
-- are cluster-global: they are dropped only when no other database still grants them anything (and the
-- migrating role may drop roles); otherwise they stay, with a notice.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM stockwire_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE ON SEQUENCES FROM stockwire_app;
-- revoking a table privilege also revokes the column privileges on it (audit_log, orders)
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM stockwire_app, stockwire_replication;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM stockwire_app, stockwire_replication;
REVOKE ALL ON SCHEMA public FROM stockwire_app, stockwire_replication;
DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM stockwire_app, stockwire_replication', current_database());
END $$;

DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['stockwire_app', 'stockwire_replication'] LOOP
    BEGIN
      EXECUTE format('DROP ROLE IF EXISTS %I', role_name);
    EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege OR object_in_use THEN
      RAISE NOTICE 'role % kept: %', role_name, SQLERRM;
    END;
  END LOOP;
END $$;
