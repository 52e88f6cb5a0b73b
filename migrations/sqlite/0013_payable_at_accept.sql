-- Payable at accept: the dispatcher creates an order's payment intent right after the order is
-- accepted, outside the workflow (docs/ARCHITECTURE.md, "An order, end to end").
-- payments.created_at_ms: when the intent was stored, so the time from accept to payable can be
-- measured (0 for rows written before this column).
-- orders.payment_closed_at_ms: set when the order's payment is closed (cancelled or expired
-- before it was paid); an intent created after that is never recorded and is cancelled at the
-- provider, so a customer can never pay an order that no longer wants the money.
ALTER TABLE payments ADD COLUMN created_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN payment_closed_at_ms BIGINT;
