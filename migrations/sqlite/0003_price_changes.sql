-- A supplier's price rose beyond the customer's tolerance: the customer accepts by paying the
-- supplement (its own payment intent) or declines; the workflow withdraws it at the deadline.
-- status: pending -> accepted -> paid -> refunded, or pending/accepted -> declined / withdrawn.
CREATE TABLE price_changes (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    platform TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    quoted_unit_fen BIGINT NOT NULL,
    new_unit_fen BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    intent_id TEXT UNIQUE,
    status TEXT NOT NULL,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    due_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    decided_at_ms BIGINT
);
CREATE INDEX price_changes_order_idx ON price_changes (order_id);
