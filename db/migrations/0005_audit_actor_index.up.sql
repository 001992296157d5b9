-- GET /v1/audit?actor=… pages one actor's rows newest first.
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
