-- Goods in the consolidation warehouse: one row per order scanned in, with what the scan found
-- and its storage clock. status: stored -> in_parcel -> shipped, or stored -> disposed.
CREATE TABLE warehouse_items (
    order_id TEXT PRIMARY KEY REFERENCES orders (id),
    customer_id TEXT NOT NULL,
    destination_country TEXT NOT NULL,
    weight_g BIGINT NOT NULL,
    l_mm BIGINT NOT NULL,
    w_mm BIGINT NOT NULL,
    h_mm BIGINT NOT NULL,
    photo_urls TEXT NOT NULL,
    status TEXT NOT NULL,
    parcel_id TEXT,
    received_at_ms BIGINT NOT NULL,
    -- Free period end, moved by paid extensions.
    stored_until_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX warehouse_items_customer_idx ON warehouse_items (customer_id, status);

-- Parcels the warehouse received but could not match to an order.
CREATE TABLE warehouse_exceptions (
    id BIGSERIAL PRIMARY KEY,
    reference TEXT NOT NULL,
    weight_g BIGINT NOT NULL,
    l_mm BIGINT NOT NULL,
    w_mm BIGINT NOT NULL,
    h_mm BIGINT NOT NULL,
    photo_urls TEXT NOT NULL,
    status TEXT NOT NULL,
    resolved_order_id TEXT,
    created_at_ms BIGINT NOT NULL
);

-- A customer's shipment of one or more stored orders. status: requested -> packed ->
-- awaiting_payment -> booked -> shipped -> delivered, or exception while tracking.
CREATE TABLE parcels (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    destination_country TEXT NOT NULL,
    shipping_line TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    estimated_minor BIGINT NOT NULL,
    actual_minor BIGINT,
    weight_g BIGINT,
    l_mm BIGINT,
    w_mm BIGINT,
    h_mm BIGINT,
    carrier TEXT,
    tracking_number TEXT UNIQUE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX parcels_customer_idx ON parcels (customer_id);

-- Per order of a parcel: what its quote estimated for shipping, duty and insurance, what the
-- packed parcel actually costs (its share), and how the difference was settled.
CREATE TABLE parcel_settlements (
    parcel_id TEXT NOT NULL REFERENCES parcels (id),
    order_id TEXT NOT NULL REFERENCES orders (id),
    guaranteed BIGINT NOT NULL,
    estimated_minor BIGINT NOT NULL,
    actual_minor BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    refund_id TEXT,
    PRIMARY KEY (parcel_id, order_id)
);

-- Charges beyond an order's total (shipping settlement, storage extension), each with its own
-- payment intent. status: pending -> paid -> refunded, or pending -> withdrawn.
CREATE TABLE charges (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    intent_id TEXT UNIQUE,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    paid_at_ms BIGINT
);

-- Messages to customers (storage reminders), one per customer, kind and day.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX notifications_customer_idx ON notifications (customer_id);
