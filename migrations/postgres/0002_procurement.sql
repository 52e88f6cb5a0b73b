-- Offers of each sku across platforms (latest price snapshot), the buyer-account pool with its
-- budgets, and the purchaser tasks of the assisted (Pinduoduo) channel.

CREATE TABLE offers (
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES listings (sku),
    spec_id TEXT NOT NULL,
    price_fen BIGINT NOT NULL,
    domestic_shipping_fen BIGINT NOT NULL,
    stock BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    successes BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (platform, offer_id)
);
CREATE INDEX offers_sku_idx ON offers (sku);

CREATE TABLE buyer_accounts (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    label TEXT NOT NULL,
    weight BIGINT NOT NULL CHECK (weight > 0),
    daily_cap BIGINT NOT NULL CHECK (daily_cap >= 0),
    per_minute BIGINT NOT NULL CHECK (per_minute >= 0),
    status TEXT NOT NULL,
    cooling_until_ms BIGINT NOT NULL DEFAULT 0,
    credentials TEXT NOT NULL,
    successes BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    risk_events BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX buyer_accounts_platform_idx ON buyer_accounts (platform, status);

-- Usage per account and time bucket ('d:YYYYMMDD' daily orders, 'm:<epoch minute>' calls):
-- budgets hold across worker processes because every claim is a conditional increment here.
CREATE TABLE account_budget (
    account_id TEXT NOT NULL REFERENCES buyer_accounts (id),
    bucket TEXT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (account_id, bucket)
);

CREATE TABLE purchaser_tasks (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    max_total_fen BIGINT NOT NULL,
    status TEXT NOT NULL,
    marketplace_order_id TEXT,
    paid_fen BIGINT,
    due_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    completed_at_ms BIGINT,
    UNIQUE (order_id, line_no, offer_id)
);
CREATE INDEX purchaser_tasks_status_idx ON purchaser_tasks (status, due_at_ms);
