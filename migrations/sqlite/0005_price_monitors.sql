-- Price monitors: which products to price on every platform, when (a cron expression run by a
-- Temporal Schedule), what move is worth an alert, and which destination the landed cost is
-- computed for. status: active | paused | deleted (kept until its schedule is deleted).
-- `version` counts changes; the dispatcher brings the schedule up to it and records
-- `synced_version`, so the API can tell whether Temporal already reflects the last change.
CREATE TABLE price_monitors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    threshold_bps BIGINT NOT NULL,
    destination_country TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    synced_version BIGINT NOT NULL DEFAULT 0,
    sync_error TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE price_monitor_products (
    monitor_id TEXT NOT NULL REFERENCES price_monitors (id),
    sku TEXT NOT NULL REFERENCES listings (sku),
    PRIMARY KEY (monitor_id, sku)
);

-- One row per recorded run (the scheduled workflow's id): recording a run twice is a no-op.
CREATE TABLE price_monitor_runs (
    run_key TEXT PRIMARY KEY,
    monitor_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX price_monitor_runs_monitor_idx ON price_monitor_runs (monitor_id, recorded_at_ms);

-- What one run saw of one offer. listed = 0: the listing (or its spec) was gone.
-- Landed cost: the all-in price of one unit from this offer to the monitor's destination, in
-- CNY and in the destination's currency, on the cheapest line that can carry it.
CREATE TABLE price_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    monitor_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    spec_id TEXT NOT NULL,
    observed_at_ms BIGINT NOT NULL,
    listed BIGINT NOT NULL,
    price_fen BIGINT,
    stock BIGINT,
    domestic_shipping_fen BIGINT,
    landed_cost_fen BIGINT,
    landed_cost_minor BIGINT,
    landed_currency TEXT,
    shipping_line TEXT,
    destination_country TEXT NOT NULL
);
CREATE INDEX price_snapshots_sku_idx ON price_snapshots (sku, observed_at_ms);
CREATE INDEX price_snapshots_offer_idx ON price_snapshots (platform, offer_id, id);

CREATE TABLE price_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    monitor_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    observed_at_ms BIGINT NOT NULL
);
CREATE INDEX price_alerts_monitor_idx ON price_alerts (monitor_id, id);
CREATE INDEX price_alerts_sku_idx ON price_alerts (sku, id);
