//! The one wall-clock helper of the non-workflow code (store, adapters, API). Workflow code must
//! never call it: a workflow reads time only through its SDK context, so that a replay sees the
//! same instant as the first run (`tests/hygiene.rs` checks `workflows/src`).

/// Milliseconds since the Unix epoch, now (0 if the system clock is before the epoch).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
