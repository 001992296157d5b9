-- Reverses 0006_webhooks: drops the endpoints and every queued or dead delivery.
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_endpoints;
