-- The event log and its webhook subscriptions (docs/events.md, README "Events and webhooks").
--
-- events: append-only. Each row is written in the transaction of the change that causes it.
-- `id` is the global cursor (strictly increasing in commit order: SQLite has one writer at a
-- time, PostgreSQL appends under a transaction-level advisory lock, store/src/events.rs);
-- `seq` numbers the events of one subject (`order:…`, `parcel:…`, `customer:…`) 1, 2, 3, …
-- `dedupe_key` makes a retried write of the same business event (an activity's retry) a no-op.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    type TEXT NOT NULL,
    version BIGINT NOT NULL,
    subject TEXT NOT NULL,
    seq BIGINT NOT NULL,
    customer_id TEXT NOT NULL,
    order_id TEXT,
    parcel_id TEXT,
    data TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    occurred_at_ms BIGINT NOT NULL,
    UNIQUE (subject, seq)
);
CREATE INDEX events_customer_idx ON events (customer_id, id);

-- The storage reminders written before the log existed become its first events (their text
-- kept in `legacy_message`), and the table nothing read is gone: one source of truth.
INSERT INTO events (type, version, subject, seq, customer_id, data, dedupe_key, occurred_at_ms)
SELECT 'storage.reminder', 1, 'customer:' || customer_id,
       ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at_ms, id),
       customer_id,
       CAST(json_build_object('customer_id', customer_id, 'orders', json_build_array(), 'first_deadline_ms', created_at_ms,
                   'legacy_message', body) AS TEXT),
       id, created_at_ms
FROM notifications ORDER BY created_at_ms, id;
DROP TABLE notifications;

-- Webhook endpoints an admin subscribed. The secrets are sealed with the data keys
-- (PROCURE_DATA_KEYS) like buyer-account credentials; the previous one signs beside the
-- current one until `previous_secret_until_ms` (a rotation's overlap). `fanout_cursor` is the
-- last event id considered for this endpoint.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    previous_secret_sealed TEXT,
    previous_secret_until_ms BIGINT,
    enabled BIGINT NOT NULL,
    disabled_reason TEXT,
    disabled_at_ms BIGINT,
    failing_since_ms BIGINT,
    last_success_at_ms BIGINT,
    fanout_cursor BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- One event to one endpoint: pending until delivered, or failed once its retry window (3 days
-- by default) is over. A replica claims a due row with a lease; an order's later event is not
-- claimable while an earlier one of the same subject is pending for that endpoint.
CREATE TABLE event_deliveries (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL REFERENCES events (id),
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    first_attempt_at_ms BIGINT,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    replays BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX event_deliveries_due_idx ON event_deliveries (endpoint_id, status, next_attempt_at_ms);
CREATE INDEX event_deliveries_subject_idx ON event_deliveries (endpoint_id, subject, event_id);

-- Every attempt, as the admin lists it: status code, error, duration.
CREATE TABLE event_delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    delivery_id BIGINT NOT NULL REFERENCES event_deliveries (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    replay BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX event_delivery_attempts_endpoint_idx ON event_delivery_attempts (endpoint_id, id);
