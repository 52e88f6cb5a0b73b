//! How an activity reports a failure to Temporal, shared by every activity module: transient
//! (Temporal's retry policy decides) or permanent (typed `InvalidState`, never retried), and
//! the store's errors mapped onto the two.

use procure_store::StoreError;
use temporalio_sdk::activities::ActivityError;

/// A failure worth retrying (network, database, a 5xx): Temporal's retry policy decides.
pub(crate) fn transient(e: impl std::fmt::Display) -> ActivityError {
    procure_adapters::failure::failed(e, Ok(procure_adapters::failure::retryable::UNAVAILABLE))
}

/// A failure no retry can fix (our own data does not allow the step), typed `InvalidState`.
pub(crate) fn permanent(e: impl std::fmt::Display) -> ActivityError {
    procure_adapters::failure::failed(e, Err(procure_adapters::failure::types::INVALID_STATE))
}

/// Missing or corrupt data is permanent; anything else the database says may pass.
pub(crate) fn store_err(e: StoreError) -> ActivityError {
    match e {
        StoreError::NotFound | StoreError::Corrupt(_) | StoreError::UnknownSku(_) => permanent(e),
        other => transient(other),
    }
}
