//! The API's response bodies, one module per resource. Handlers answer with these types only,
//! never with the store's rows: each view is built from its row by `From`, so the wire is
//! described here, in one place per resource, and a change to a store type cannot change an
//! answer without a change here. Each module's tests pin, field by field, the JSON its views
//! produce: the documents the store's rows serialized to when they were the answers (checked
//! against the rows' own serialization before the rows stopped serializing).
//!
//! Domain types that are wire types already (`Money`, `OrderState`, `TimelineEvent`,
//! `OrderLine`, the status enums) appear as they are.

pub mod accounts;
pub mod email;
pub mod events;
pub mod monitors;
pub mod orders;
pub mod outbox;
pub mod parcels;
pub mod payments;
pub mod price_changes;
pub mod products;
pub mod warehouse;
pub mod webhooks;

/// Test support: a view's JSON is exactly the expected document.
#[cfg(test)]
pub(crate) fn assert_wire(view: &impl serde::Serialize, expected: serde_json::Value) {
    let got = serde_json::to_value(view).expect("a view serializes");
    assert_eq!(
        got,
        expected,
        "wire drifted:\n got {}\nwant {}",
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
}
