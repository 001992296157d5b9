-- API keys for machine callers (order systems, the sheet-sync service): sw_<prefix>_<secret>.
--
-- Only the public prefix and a SHA-256 of the secret are stored. A fast, unsalted hash is right here and
-- would be wrong for passwords: the secret is 256 bits from the CSPRNG, so there is no dictionary to try
-- and brute force needs ~2^256 guesses however fast each one is — slowing the hash (bcrypt, scrypt)
-- would only cost every request CPU. Passwords are low-entropy and guessable, which is what slow, salted
-- hashes exist for; never reuse this scheme for them.
--
-- Invariants kept here: a key has at least one role; an empty scope list is refused (NULL means "all");
-- a key has at most one successor (the rotation chain cannot fork). The table is deliberately not in
-- the CDC publication: credentials never reach NATS, sheets or projectors.
CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  key_prefix    text NOT NULL CHECK (key_prefix ~ '^[0-9A-Za-z]{12}$'),
  secret_hash   bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
  roles         text[] NOT NULL CHECK (cardinality(roles) > 0),
  locations     text[] CHECK (locations IS NULL OR cardinality(locations) > 0),
  allowed_cidrs text[] CHECK (allowed_cidrs IS NULL OR cardinality(allowed_cidrs) > 0),
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz,
  replaces      uuid REFERENCES api_keys (id),
  CONSTRAINT api_keys_prefix_key UNIQUE (key_prefix)
);
-- the per-request lookup is the unique index on key_prefix (one index scan, one row)
-- one successor per key; also serves "which key replaced this one"
CREATE UNIQUE INDEX api_keys_replaces_key ON api_keys (replaces) WHERE replaces IS NOT NULL;
-- listing and the "name already held by a live key" check on create
CREATE INDEX api_keys_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
