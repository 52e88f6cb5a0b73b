-- Outbox rows that will not be delivered without an operator (dead letters): a permanent
-- failure (the workflow has finished, an undecodable payload, an unknown kind), or transient
-- failures past the attempt bound. `dead_at_ms` is when the row went dead (it is never picked
-- again until an operator retries it); `discarded_at_ms` / `discarded_by` record an operator
-- giving it up. `last_error` holds the reason.
ALTER TABLE outbox ADD COLUMN dead_at_ms BIGINT;
ALTER TABLE outbox ADD COLUMN discarded_at_ms BIGINT;
ALTER TABLE outbox ADD COLUMN discarded_by TEXT;
CREATE INDEX outbox_dead_idx ON outbox (dead_at_ms);
CREATE INDEX outbox_subject_idx ON outbox (order_id);
