-- The optional email channel (README "Events and webhooks", "Email").
--
-- customer_contacts: a customer's email address, sealed with the data keys (PROCURE_DATA_KEYS)
-- like buyer-account credentials and webhook secrets, whether they want notification emails,
-- and the locale that picks the templates.
CREATE TABLE customer_contacts (
    customer_id TEXT PRIMARY KEY,
    email_sealed TEXT NOT NULL,
    email_notifications BIGINT NOT NULL,
    locale TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- How far the email loop has read the event log. It starts at the log's end: events committed
-- before the channel existed are not mailed.
CREATE TABLE email_cursor (
    id BIGINT PRIMARY KEY,
    last_event_id BIGINT NOT NULL
);
INSERT INTO email_cursor (id, last_event_id) SELECT 1, COALESCE(MAX(id), 0) FROM events;

-- One customer notification event to its customer: pending until sent, failed after the
-- bounded attempts, skipped (not retried) when the customer has no contact or turned
-- notifications off. A replica claims a due row with a lease.
CREATE TABLE email_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BIGINT NOT NULL UNIQUE REFERENCES events (id),
    customer_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    last_error TEXT,
    sent_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX email_deliveries_due_idx ON email_deliveries (status, next_attempt_at_ms);

-- Every attempt: when, how long, and what went wrong (the server's answer, never the address).
CREATE TABLE email_delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES email_deliveries (id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX email_delivery_attempts_delivery_idx ON email_delivery_attempts (delivery_id, id);
