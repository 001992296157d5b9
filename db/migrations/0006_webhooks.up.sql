-- Outbound webhooks (issue 5): registered endpoints and the per-endpoint delivery queue.
--
-- webhook_endpoints.secret is the endpoint's signing secret (whsec_…), sealed by the application with
-- the PII cipher (AES-256-GCM, "v1.<kid>.…", the key id kept with the ciphertext). It cannot be hashed
-- like an API key's secret: the sender must hold the secret itself to compute each HMAC. Sealing keeps a
-- database dump, a replica or a backup from being enough to forge deliveries; the CHECK refuses a value
-- that is not sealed, so a plaintext secret can never be stored by mistake.
--
-- webhook_deliveries is the outbox the webhooks projector fills from change events and its delivery
-- worker drains: UNIQUE (endpoint_id, event_id), event_id being the change's message id
-- "<commitLsn>:<index>", makes fan-out idempotent under redelivery; the id (bigserial, assigned in
-- stream order by the single fan-out statement) is the per-endpoint delivery order.
--
-- Neither table is in the CDC publication: secrets and delivery bookkeeping never reach NATS.
CREATE TABLE webhook_endpoints (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  url             text NOT NULL CHECK (url ~ '^https?://[^/?#@]+' AND length(url) <= 2048),
  event_types     text[] NOT NULL CHECK (
                    cardinality(event_types) > 0
                    AND event_types <@ ARRAY['*', 'stock.changed', 'order.created', 'order.status_changed', 'lot.changed', 'product.changed']),
  secret          text NOT NULL CHECK (secret LIKE 'v1.%'),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason text,
  disabled_at     timestamptz,
  -- first failure since the last successful delivery (NULL: healthy)
  failing_since   timestamptz,
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_endpoints_disabled_has_reason CHECK ((status = 'disabled') = (disabled_reason IS NOT NULL))
);

CREATE TABLE webhook_deliveries (
  id               bigserial PRIMARY KEY,
  endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id         text NOT NULL,
  event_type       text NOT NULL,
  payload          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- the retry window runs from the first attempt, not from creation: a delivery queued behind a failing
  -- head (strict per-endpoint order) has not been tried yet
  first_attempt_at timestamptz,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  CONSTRAINT webhook_deliveries_event_key UNIQUE (endpoint_id, event_id),
  CONSTRAINT webhook_deliveries_delivered_at CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- the worker's whole query path: an endpoint's oldest pending delivery (the head of its queue), whose
-- next_attempt_at says whether the endpoint is due. Only heads are ever due-checked (strict order: nothing
-- behind a waiting head may go first), so an index on next_attempt_at alone would serve no query.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, id) WHERE status = 'pending';
-- GET /v1/webhooks/{id}/dead-letters, newest first
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (endpoint_id, id) WHERE status = 'dead';

-- 0004's default privileges cover tables created by the role that ran 0004; grant explicitly as well, so
-- the API and the webhooks projector (both stockwire_app) can use these tables whoever migrates.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stockwire_app') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_deliveries TO stockwire_app;
    GRANT USAGE ON SEQUENCE webhook_deliveries_id_seq TO stockwire_app;
  END IF;
END $$;
