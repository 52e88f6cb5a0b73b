-- Orders read-model, stock, reservations, idempotency keys and the outbox.
-- Timestamps are milliseconds since the Unix epoch; money is integer minor units + currency.

CREATE TABLE listings (
    sku TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    spec_id TEXT NOT NULL,
    title TEXT NOT NULL,
    price_fen BIGINT NOT NULL,
    weight_g BIGINT NOT NULL,
    l_mm BIGINT NOT NULL,
    w_mm BIGINT NOT NULL,
    h_mm BIGINT NOT NULL,
    domestic_shipping_fen BIGINT NOT NULL,
    available BIGINT NOT NULL CHECK (available >= 0),
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE quotes (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    quote_id TEXT NOT NULL,
    state TEXT NOT NULL,
    state_seq BIGINT NOT NULL DEFAULT -1,
    total_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    shipping_address TEXT NOT NULL,
    destination_country TEXT NOT NULL,
    payment_intent_id TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX orders_state_idx ON orders (state, created_at_ms);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at_ms);

CREATE TABLE order_events (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

CREATE TABLE reservations (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL REFERENCES listings (sku),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    created_at_ms BIGINT NOT NULL,
    released_at_ms BIGINT,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE purchases (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    platform TEXT NOT NULL,
    marketplace_order_id TEXT NOT NULL,
    paid_fen BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE payments (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    intent_id TEXT NOT NULL UNIQUE,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE shipments (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    received_at_ms BIGINT NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    dispatched_at_ms BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due_idx ON outbox (dispatched_at_ms, next_attempt_at_ms);
