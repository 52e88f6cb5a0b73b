-- The W3C trace context (`traceparent`) of the request that queued an outbox row, when the
-- process traces with OpenTelemetry: the dispatcher hands the work to Temporal inside a span
-- parented on it, so an order's HTTP request and its workflow share one trace. NULL when the
-- row was queued without tracing (and for every row written before this column).
ALTER TABLE outbox ADD COLUMN trace_parent TEXT;
