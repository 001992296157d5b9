-- Reverses 0003_api_keys: drops the API keys (every key stops working).
DROP TABLE IF EXISTS api_keys;
