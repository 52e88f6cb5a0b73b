//! The sqlx store against real databases: a fresh SQLite file and a fresh PostgreSQL database
//! per test (PROCURE_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).

use procure_activities::store::{Listing, NewOrder, Store, StoreError};
use procure_domain::{
    Currency, Money, OrderState,
    order::{OrderLine, Platform},
};
use procure_workflows::contract::{ReserveOutcome, TransitionRecord};
mod common;
use common::TestDb;

fn listing(sku: &str, available: i64) -> Listing {
    Listing {
        sku: sku.into(),
        platform: "1688".into(),
        offer_id: format!("offer-{sku}"),
        spec_id: "spec-1".into(),
        title: "Test item".into(),
        price_fen: 4_550,
        weight_g: 300,
        l_mm: 200,
        w_mm: 150,
        h_mm: 100,
        domestic_shipping_fen: 800,
        available,
    }
}

fn order(id: &str, sku: &str, qty: u32) -> NewOrder {
    let cny = Money::new(4_550, Currency::CNY);
    NewOrder {
        id: id.into(),
        customer_id: "cust-1".into(),
        quote_id: "q-1".into(),
        total: Money::new(3_186, Currency::USD),
        lines: vec![OrderLine {
            line_no: 1,
            sku: sku.into(),
            platform: Platform::Alibaba1688,
            offer_id: format!("offer-{sku}"),
            spec_id: "spec-1".into(),
            quantity: qty,
            unit_price: cny,
            max_unit_price: cny.basis_points(11_000).unwrap(),
        }],
        shipping_address: serde_json::json!({"name": "A. Customer", "country": "US"}),
        destination_country: "US".into(),
    }
}

async fn available(store: &Store, sku: &str) -> i64 {
    store.listing(sku).await.unwrap().available
}

async fn idempotent_acceptance(store: Store) {
    store.upsert_listing(&listing("SKU-A", 10)).await.unwrap();
    let first = store
        .create_order(&order("o1", "SKU-A", 3), "key-1", "hash-1")
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.order.state, OrderState::Created);
    let again = store
        .create_order(&order("o1-retry", "SKU-A", 3), "key-1", "hash-1")
        .await
        .unwrap();
    assert!(!again.created, "same key + same body is the same order");
    assert_eq!(again.order.id, "o1");
    assert_eq!(
        available(&store, "SKU-A").await,
        7,
        "reserved once, not twice"
    );
    let clash = store
        .create_order(&order("o2", "SKU-A", 1), "key-1", "other-hash")
        .await;
    assert!(matches!(clash, Err(StoreError::IdempotencyConflict)));
    assert_eq!(
        store.outbox_pending().await.unwrap(),
        1,
        "one workflow start queued"
    );
    assert!(
        store
            .create_order_replay_only("key-1", "hash-1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .create_order_replay_only("key-unknown", "hash-1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn rejection_leaves_nothing_behind(store: Store) {
    store.upsert_listing(&listing("SKU-B", 2)).await.unwrap();
    let r = store
        .create_order(&order("o3", "SKU-B", 5), "key-3", "h")
        .await;
    assert!(
        matches!(r, Err(StoreError::OutOfStock { available: 2, .. })),
        "{r:?}"
    );
    assert!(
        matches!(store.order("o3").await, Err(StoreError::NotFound)),
        "no half-accepted order"
    );
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert_eq!(available(&store, "SKU-B").await, 2);
    // The key was not consumed by the failed attempt.
    store.upsert_listing(&listing("SKU-B", 5)).await.unwrap();
    assert!(
        store
            .create_order(&order("o3", "SKU-B", 5), "key-3", "h")
            .await
            .unwrap()
            .created
    );
}

async fn no_overselling_under_concurrency(store: Store) {
    store.upsert_listing(&listing("SKU-C", 10)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_order(&order(&format!("c{i}"), "SKU-C", 1), &format!("k{i}"), "h")
                .await
        }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::OutOfStock { .. }) => rejected += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((ok, rejected), (10, 50));
    assert_eq!(available(&store, "SKU-C").await, 0);
}

async fn release_is_idempotent(store: Store) {
    store.upsert_listing(&listing("SKU-D", 4)).await.unwrap();
    store
        .create_order(&order("d1", "SKU-D", 3), "kd", "h")
        .await
        .unwrap();
    assert_eq!(
        store.ensure_reserved("d1").await.unwrap(),
        ReserveOutcome::Reserved,
        "already held: no-op"
    );
    assert_eq!(available(&store, "SKU-D").await, 1);
    assert_eq!(store.release_reservations("d1").await.unwrap(), 1);
    assert_eq!(store.release_reservations("d1").await.unwrap(), 0);
    assert_eq!(available(&store, "SKU-D").await, 4);
    assert_eq!(store.reservation_units("d1").await.unwrap(), (0, 3));
}

async fn transitions_are_idempotent_and_ordered(store: Store) {
    store.upsert_listing(&listing("SKU-E", 4)).await.unwrap();
    store
        .create_order(&order("e1", "SKU-E", 1), "ke", "h")
        .await
        .unwrap();
    let rec = |seq, from, to| TransitionRecord {
        order_id: "e1".into(),
        seq,
        from,
        to,
        at_ms: 1_000 + i64::from(seq),
        reason: format!("step {seq}"),
    };
    store
        .record_transition(&rec(0, OrderState::Created, OrderState::Created))
        .await
        .unwrap();
    store
        .record_transition(&rec(2, OrderState::PendingPayment, OrderState::Paid))
        .await
        .unwrap();
    // A late retry of an earlier step must not move the state backwards or duplicate the event.
    store
        .record_transition(&rec(1, OrderState::Created, OrderState::PendingPayment))
        .await
        .unwrap();
    store
        .record_transition(&rec(1, OrderState::Created, OrderState::PendingPayment))
        .await
        .unwrap();
    let d = store.order_detail("e1").await.unwrap();
    assert_eq!(d.order.state, OrderState::Paid);
    let states: Vec<_> = d.timeline.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            OrderState::Created,
            OrderState::PendingPayment,
            OrderState::Paid
        ]
    );
    let paid = store
        .list_orders(Some(OrderState::Paid), None, 10, None)
        .await
        .unwrap();
    assert_eq!(paid.len(), 1);
    assert!(
        store
            .list_orders(Some(OrderState::Completed), None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn outbox_retries_and_completes(store: Store) {
    store
        .enqueue(
            "signal",
            "x1",
            &serde_json::json!({"signal": "cancel_order", "args": "r"}),
        )
        .await
        .unwrap();
    let due = store.outbox_due(10).await.unwrap();
    assert_eq!(due.len(), 1);
    store
        .outbox_retry_later(
            due[0].id,
            "temporal down",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(store.outbox_due(10).await.unwrap().is_empty(), "backed off");
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
    store.outbox_done(due[0].id).await.unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::sqlite().await; let s = Store::connect(&db.url).await.unwrap(); super::$name(s.clone()).await; s.close().await; db.drop_db().await; } )* }
        mod postgres { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::postgres().await; let s = Store::connect(&db.url).await.unwrap(); super::$name(s.clone()).await; s.close().await; db.drop_db().await; } )* }
    };
}

on_both!(
    idempotent_acceptance,
    rejection_leaves_nothing_behind,
    no_overselling_under_concurrency,
    release_is_idempotent,
    transitions_are_idempotent_and_ordered,
    outbox_retries_and_completes,
);
