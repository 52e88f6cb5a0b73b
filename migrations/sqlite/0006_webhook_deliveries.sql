-- Signed webhook deliveries seen recently, by provider and signature: the same signed request
-- arriving again is a replay and is refused. Rows older than the replay window are pruned.
CREATE TABLE webhook_deliveries (
    provider TEXT NOT NULL,
    signature TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, signature)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at_ms);
