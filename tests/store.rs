//! The sqlx store against real databases: a fresh SQLite file and a fresh PostgreSQL database
//! per test (PROCURE_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).

use procure_domain::clock::now_ms;
use procure_domain::status::PriceChangeStatus;
use procure_domain::{
    Currency, Money, OrderState,
    order::{OrderLine, Platform},
};
use procure_store::{
    Store, StoreError,
    catalogue::Listing,
    intake::Intake,
    orders::{IntentRecord, IntentToRecord, NewOrder, OrderToAccept},
    outbox::{Lane, OrderSignal, OutboxMessage},
    payments::IntentOwner,
    price_changes::PriceChange,
};
use procure_workflows::contract::{ReserveOutcome, TransitionRecord};
use procure_workflows::{contract::ChargePaid, order::PaymentSucceeded};
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
        2,
        "one payment intent and one workflow start queued"
    );
    let in_lane = |lane| {
        let store = store.clone();
        async move {
            store
                .outbox_due_in(lane, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.message)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        in_lane(Lane::Payments).await,
        [OutboxMessage::CreatePayment {}],
        "the intent travels in the payments lane"
    );
    assert_eq!(
        in_lane(Lane::Engine).await,
        [OutboxMessage::StartOrder {}],
        "the start in the engine's"
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

fn to_accept(id: &str, sku: &str, qty: u32, key: &str, hash: &str) -> OrderToAccept {
    OrderToAccept {
        order: order(id, sku, qty),
        idempotency_key: key.into(),
        request_hash: hash.into(),
        trace_parent: None,
    }
}

/// Group commit: each order of a batch is accepted, replayed or refused on its own, as one by
/// one, and a refused one leaves nothing behind while its neighbours commit.
async fn a_batch_answers_each_order_as_alone(store: Store) {
    store.upsert_listing(&listing("SKU-G", 5)).await.unwrap();
    let answers = store
        .create_orders(&[
            to_accept("g1", "SKU-G", 2, "gk-1", "h"),
            to_accept("g2", "SKU-G", 10, "gk-2", "h"),
            to_accept("g1-again", "SKU-G", 2, "gk-1", "h"),
            to_accept("g4", "SKU-G", 1, "gk-1", "other"),
            to_accept("g5", "SKU-G", 3, "gk-5", "h"),
        ])
        .await
        .unwrap();
    let [g1, g2, again, clash, g5] = <[_; 5]>::try_from(answers).unwrap();
    let g1 = g1.unwrap();
    assert!(g1.created);
    assert_eq!(g1.order.state, OrderState::Created);
    assert_eq!(
        format!("{:?}", g1.order),
        format!("{:?}", store.order("g1").await.unwrap()),
        "the answer is the stored row"
    );
    assert!(
        matches!(
            g2,
            Err(StoreError::OutOfStock {
                requested: 10,
                available: 3,
                ..
            })
        ),
        "{g2:?}"
    );
    let again = again.unwrap();
    assert!(
        !again.created,
        "a key repeated in the batch replays its order"
    );
    assert_eq!(again.order.id, "g1");
    assert!(
        matches!(clash, Err(StoreError::IdempotencyConflict)),
        "{clash:?}"
    );
    assert!(g5.unwrap().created);
    assert_eq!(available(&store, "SKU-G").await, 0);
    assert!(matches!(store.order("g2").await, Err(StoreError::NotFound)));
    assert!(matches!(store.order("g4").await, Err(StoreError::NotFound)));
    assert_eq!(
        store.outbox_pending().await.unwrap(),
        4,
        "g1 and g5: an intent and a start each"
    );
    assert_eq!(store.reservation_units("g2").await.unwrap(), (0, 0));
    // The refused order's key was not consumed.
    store.upsert_listing(&listing("SKU-G", 10)).await.unwrap();
    let later = store
        .create_orders(&[to_accept("g2", "SKU-G", 10, "gk-2", "h")])
        .await
        .unwrap();
    assert!(later.into_iter().next().unwrap().unwrap().created);
}

/// Concurrent accepts through the intake queue: batched, never oversold, each answered.
async fn intake_batches_concurrent_accepts_without_overselling(store: Store) {
    store.upsert_listing(&listing("SKU-I", 10)).await.unwrap();
    let intake = Intake::new(store.clone(), 8);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let intake = intake.clone();
        tasks.push(tokio::spawn(async move {
            intake
                .accept(to_accept(
                    &format!("i{i}"),
                    "SKU-I",
                    1,
                    &format!("ik{i}"),
                    "h",
                ))
                .await
        }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(c) if c.created => ok += 1,
            Err(StoreError::OutOfStock { .. }) => rejected += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, rejected), (10, 50));
    assert_eq!(available(&store, "SKU-I").await, 0);
    assert_eq!(store.outbox_pending().await.unwrap(), 20);
    let replay = intake
        .accept(to_accept("i-new", "SKU-I", 1, "ik0", "h"))
        .await;
    match replay {
        Ok(c) => assert!(!c.created),
        // ik0 may have been one of the refused ones: its key is free, and stock is gone.
        Err(StoreError::OutOfStock { .. }) => {}
        Err(e) => panic!("{e}"),
    }
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
            "x1",
            &OutboxMessage::SignalOrder(OrderSignal::CancelOrder("r".into())),
        )
        .await
        .unwrap();
    let due = store.outbox_due(10).await.unwrap();
    assert_eq!(due.len(), 1);
    let dead = store
        .outbox_retry_later(
            due[0].id,
            "temporal down",
            std::time::Duration::from_secs(60),
            5,
        )
        .await
        .unwrap();
    assert!(!dead, "one failure of five allowed");
    assert!(store.outbox_due(10).await.unwrap().is_empty(), "backed off");
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
    store.outbox_done(due[0].id).await.unwrap();
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
}

/// Many rows marked delivered in one call (more than one statement's worth), the others left.
async fn outbox_done_all_marks_exactly_those_rows(store: Store) {
    for i in 0..503 {
        store
            .enqueue(&format!("m{i}"), &OutboxMessage::StartOrder {})
            .await
            .unwrap();
    }
    let due = store.outbox_due(2_000).await.unwrap();
    assert_eq!(due.len(), 503);
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    store.outbox_done_all(&ids[..501]).await.unwrap();
    store.outbox_done_all(&[]).await.unwrap();
    let left: Vec<i64> = store
        .outbox_due(2_000)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, ids[501..]);
}

async fn signal(store: &Store, subject: &str) -> i64 {
    store
        .enqueue(
            subject,
            &OutboxMessage::SignalOrder(OrderSignal::PaymentSucceeded(PaymentSucceeded {
                intent_id: "pi_secret_1".into(),
                amount: Money::new(1_234, Currency::USD),
            })),
        )
        .await
        .unwrap();
    store.outbox_due(100).await.unwrap().last().unwrap().id
}

/// A permanent failure is dead at once and never picked again; the list shows its reason but
/// not its payload; retry puts it back with attempts from zero; discard is final.
async fn outbox_dead_letters(store: Store) {
    use std::time::Duration;
    let id = signal(&store, "o-dead").await;
    store
        .outbox_mark_dead(id, "NotFound: workflow execution already completed")
        .await
        .unwrap();
    assert!(
        store.outbox_due(100).await.unwrap().is_empty(),
        "never picked"
    );
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert_eq!(store.outbox_dead_count().await.unwrap(), 1);
    let list = store.outbox_dead_letters(10).await.unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(
        (
            d.id,
            d.kind.as_str(),
            d.subject_id.as_str(),
            d.signal.as_deref(),
            d.attempts
        ),
        (id, "signal", "o-dead", Some("payment_succeeded"), 1)
    );
    assert!(d.last_error.contains("already completed"), "{d:?}");
    assert!(d.dead_at_ms > 0 && d.created_at_ms > 0 && !d.discarded);
    let json = serde_json::to_string(d).unwrap();
    assert!(!json.contains("pi_secret_1"), "no payload: {json}");
    // A second failure report of a dead row changes nothing.
    assert!(
        !store
            .outbox_retry_later(id, "late", Duration::ZERO, 1)
            .await
            .unwrap()
    );
    assert_eq!(store.outbox_dead_letters(10).await.unwrap()[0].attempts, 1);

    // Retry: pending, due now, attempts from zero, off the list.
    store.outbox_retry_dead(id).await.unwrap();
    let due = store.outbox_due(100).await.unwrap();
    assert_eq!((due.len(), due[0].id, due[0].attempts), (1, id, 0));
    assert_eq!(store.outbox_dead_count().await.unwrap(), 0);
    assert!(matches!(
        store.outbox_retry_dead(id).await,
        Err(StoreError::StateConflict(why)) if why.contains("pending")
    ));
    assert!(matches!(
        store.outbox_discard_dead(id, "op").await,
        Err(StoreError::StateConflict(_))
    ));

    // Dead again, then discarded: gone from the list and the queue, for good.
    store.outbox_mark_dead(id, "again").await.unwrap();
    store.outbox_discard_dead(id, "op-1").await.unwrap();
    store.outbox_discard_dead(id, "op-1").await.unwrap();
    assert_eq!(store.outbox_dead_count().await.unwrap(), 0);
    assert!(store.outbox_dead_letters(10).await.unwrap().is_empty());
    assert!(store.outbox_due(100).await.unwrap().is_empty());
    assert!(store.outbox_dead_letter(id).await.unwrap().discarded);
    assert!(matches!(
        store.outbox_retry_dead(id).await,
        Err(StoreError::StateConflict(why)) if why.contains("discarded")
    ));
    assert!(matches!(
        store.outbox_retry_dead(999_999).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.outbox_discard_dead(999_999, "op").await,
        Err(StoreError::NotFound)
    ));

    // A delivered row is not a dead letter.
    let done = signal(&store, "o-done").await;
    store.outbox_done(done).await.unwrap();
    assert!(matches!(
        store.outbox_retry_dead(done).await,
        Err(StoreError::StateConflict(why)) if why.contains("delivered")
    ));
}

/// Transient failures are retried at most `max_attempts` times, then the row is dead with the
/// last error.
async fn outbox_transient_failures_are_bounded(store: Store) {
    use std::time::Duration;
    let id = signal(&store, "o-flaky").await;
    for attempt in 1..=3 {
        let dead = store
            .outbox_retry_later(id, &format!("unavailable #{attempt}"), Duration::ZERO, 3)
            .await
            .unwrap();
        assert_eq!(dead, attempt == 3, "attempt {attempt}");
        assert_eq!(
            store.outbox_due(100).await.unwrap().len(),
            usize::from(attempt < 3)
        );
    }
    let d = store.outbox_dead_letter(id).await.unwrap();
    assert_eq!((d.attempts, d.last_error.as_str()), (3, "unavailable #3"));
    assert_eq!(store.outbox_dead_count().await.unwrap(), 1);
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
}

/// A signal waits on its workflow's start while the start is live (queued or retrying), not
/// once it is delivered or dead.
async fn outbox_signal_waits_on_its_start(store: Store) {
    store
        .enqueue("o-w", &OutboxMessage::StartOrder {})
        .await
        .unwrap();
    let start = store.outbox_due(100).await.unwrap()[0].id;
    let sig = signal(&store, "o-w").await;
    assert!(store.outbox_waits_on(sig, "o-w", "start").await.unwrap());
    assert!(
        !store
            .outbox_waits_on(sig, "o-other", "start")
            .await
            .unwrap()
    );
    assert!(!store.outbox_waits_on(start, "o-w", "start").await.unwrap());
    store.outbox_mark_dead(start, "x").await.unwrap();
    assert!(!store.outbox_waits_on(sig, "o-w", "start").await.unwrap());
    store.outbox_retry_dead(start).await.unwrap();
    assert!(store.outbox_waits_on(sig, "o-w", "start").await.unwrap());
    store.outbox_done(start).await.unwrap();
    assert!(!store.outbox_waits_on(sig, "o-w", "start").await.unwrap());
}

fn change(id: &str, order_id: &str, due_at_ms: i64) -> PriceChange {
    PriceChange {
        id: id.into(),
        order_id: order_id.into(),
        line_no: 1,
        platform: "1688".into(),
        offer_id: "offer-SKU-P".into(),
        quantity: 1,
        quoted_unit_fen: 4_550,
        new_unit_fen: 7_000,
        amount: Money::new(345, Currency::USD),
        intent_id: None,
        status: PriceChangeStatus::Pending,
        refunded_minor: 0,
        due_at_ms,
        created_at_ms: 0,
        decided_at_ms: None,
    }
}

/// Accept, decline, payment and the deadline race; each change ends in exactly one outcome, and
/// a decline queues the order's cancellation in the same transaction.
async fn price_change_decisions_are_settled_once(store: Store) {
    store.upsert_listing(&listing("SKU-P", 10)).await.unwrap();
    store
        .create_order(&order("op", "SKU-P", 1), "key-p", "hash-p")
        .await
        .unwrap();
    let due = now_ms() + 60_000;
    let first = store
        .insert_price_change(&change("pc1", "op", due))
        .await
        .unwrap();
    assert_eq!(first.status, "pending");
    let again = store
        .insert_price_change(&PriceChange {
            new_unit_fen: 9_999,
            ..change("pc1", "op", due)
        })
        .await
        .unwrap();
    assert_eq!(
        again.new_unit_fen, 7_000,
        "a retried insert keeps the first row"
    );
    store
        .set_price_change_intent("pc1", "pi_sup1")
        .await
        .unwrap();
    assert_eq!(
        store.intent_owner("pi_sup1").await.unwrap(),
        Some(IntentOwner::Supplement {
            order_id: "op".into(),
            change_id: "pc1".into()
        })
    );

    // Another order's id does not reach this change.
    assert!(matches!(
        store.accept_price_change("other", "pc1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.accept_price_change("op", "pc1").await.unwrap().status,
        "accepted"
    );
    assert_eq!(
        store.accept_price_change("op", "pc1").await.unwrap().status,
        "accepted"
    );
    let before = store.outbox_pending().await.unwrap();
    assert_eq!(
        store
            .decline_price_change("op", "pc1")
            .await
            .unwrap()
            .status,
        "declined"
    );
    assert_eq!(
        store.outbox_pending().await.unwrap(),
        before + 1,
        "cancel queued"
    );
    let cancel = store.outbox_due(100).await.unwrap().pop().unwrap();
    assert!(
        matches!(
            cancel.message,
            OutboxMessage::SignalOrder(OrderSignal::CancelOrder(_))
        ),
        "{cancel:?}"
    );
    assert!(matches!(
        store.decline_price_change("op", "pc1").await,
        Err(StoreError::StateConflict(_))
    ));
    assert!(matches!(
        store.accept_price_change("op", "pc1").await,
        Err(StoreError::StateConflict(_))
    ));
    // The customer's payment raced the decline: the provider's word wins, the change is paid
    // (and the workflow refunds it with the order); withdrawing it later keeps it paid.
    let signal = OrderSignal::SupplementPaid(ChargePaid {
        charge_id: "pc1".into(),
        intent_id: "pi_sup1".into(),
        amount: Money::new(345, Currency::USD),
    });
    assert!(
        store
            .accept_payment_succeeded("evt_1", "pi_sup1", "op", &signal, true)
            .await
            .unwrap()
    );
    assert!(
        !store
            .accept_payment_succeeded("evt_1", "pi_sup1", "op", &signal, true)
            .await
            .unwrap()
    );
    assert_eq!(store.price_change("pc1").await.unwrap().status, "paid");
    assert_eq!(
        store.withdraw_price_change("pc1").await.unwrap().status,
        "paid"
    );
    store
        .mark_price_change_refunded(
            "pc1",
            &procure_store::payments::RefundRecord {
                refund_id: "re_pc1",
                amount: Money::new(345, Currency::USD),
                kind: procure_domain::events::RefundKind::Supplement,
                reason: "price change pc1 supplement",
            },
        )
        .await
        .unwrap();
    let refunded = store.price_change("pc1").await.unwrap();
    assert_eq!(
        (refunded.status.as_str(), refunded.refunded_minor),
        ("refunded", 345)
    );

    // Past its deadline a change can no longer be accepted; the workflow withdraws it.
    store
        .insert_price_change(&change("pc2", "op", now_ms() - 1))
        .await
        .unwrap();
    match store.accept_price_change("op", "pc2").await {
        Err(StoreError::StateConflict(why)) => assert!(why.contains("deadline"), "{why}"),
        other => panic!("accepted after the deadline: {other:?}"),
    }
    assert_eq!(
        store.withdraw_price_change("pc2").await.unwrap().status,
        "withdrawn"
    );
    let all = store.price_changes("op").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(store.order_detail("op").await.unwrap().price_changes, all);
}

/// Seeding on every start (procure dev, procure api --seed-sandbox-catalogue) against held
/// reservations: the stock stays as reservations left it, the rest of the listing refreshes, a
/// new product arrives with its stock.
async fn seeding_keeps_the_stock_reservations_hold(store: Store) {
    let sandbox = procure_sandbox::Sandbox::new(Default::default());
    let (products, offers) = (sandbox.catalogue(), sandbox.offers());
    procure::system::seed_products(&store, &products, &offers)
        .await
        .unwrap();
    let sku = products[0].sku.clone();
    let seeded = available(&store, &sku).await;
    assert_eq!(seeded, products[0].amount_on_sale);
    for (id, qty) in [("os1", 3), ("os2", 2)] {
        assert!(
            store
                .create_order(&order(id, &sku, qty), &format!("key-{id}"), id)
                .await
                .unwrap()
                .created
        );
    }
    assert_eq!(available(&store, &sku).await, seeded - 5);

    // The catalogue moved on (price, title, the seller's stock figure, one product more) and is
    // seeded again, twice, as two restarts would.
    let mut changed = products.clone();
    changed[0].price_fen += 100;
    changed[0].title = "Renamed".into();
    changed[0].amount_on_sale += 50;
    let mut extra = changed[0].clone();
    extra.sku = "SKU-NEW".into();
    extra.amount_on_sale = 7;
    changed.push(extra);
    for _ in 0..2 {
        procure::system::seed_products(&store, &changed, &offers)
            .await
            .unwrap();
    }
    let l = store.listing(&sku).await.unwrap();
    let held = store.reservation_units("os1").await.unwrap().0
        + store.reservation_units("os2").await.unwrap().0;
    assert_eq!(
        (l.available, held),
        (seeded - 5, 5),
        "held units stay out of available; available + reserved is unchanged"
    );
    assert_eq!(
        (l.price_fen, l.title.as_str()),
        (changed[0].price_fen, "Renamed"),
        "the rest of the listing refreshes"
    );
    assert_eq!(
        available(&store, "SKU-NEW").await,
        7,
        "new listings get their stock"
    );
    for p in &products[1..] {
        assert_eq!(available(&store, &p.sku).await, p.amount_on_sale);
    }
    // Releasing returns exactly what was held, once.
    store.release_reservations("os1").await.unwrap();
    store.release_reservations("os1").await.unwrap();
    assert_eq!(available(&store, &sku).await, seeded - 2);
}

/// A row that cannot be decoded (written by an older or foreign writer) is never handed to
/// the dispatcher and never retried: it is dead at once, with why, for an operator.
async fn outbox_undecodable_rows_are_dead_letters(store: Store) {
    for (kind, payload) in [
        ("teleport", "{}"),
        (
            "signal",
            r#"{"signal":"cancel_order","args":{"who":"Jane Roe"}}"#,
        ),
        ("signal", r#"{"signal":"no_such_signal","args":1}"#),
    ] {
        sqlx::query(
            "INSERT INTO outbox (kind, order_id, payload, created_at_ms, next_attempt_at_ms) VALUES ($1,$2,$3,$4,$4)",
        )
        .bind(kind)
        .bind("o-bad")
        .bind(payload)
        .bind(now_ms())
        .execute(store.pool())
        .await
        .unwrap();
    }
    store
        .enqueue("o-good", &OutboxMessage::StartOrder {})
        .await
        .unwrap();
    let due = store.outbox_due(100).await.unwrap();
    assert_eq!(
        due.iter().map(|i| i.subject.as_str()).collect::<Vec<_>>(),
        ["o-good"]
    );
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
    let dead = store.outbox_dead_letters(10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().map(|d| d.last_error.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{dead:?}");
    assert_eq!(reasons[0], "unknown outbox kind \"teleport\"");
    assert!(
        reasons[1].starts_with("undecodable cancel_order payload") && !reasons[1].contains("Jane"),
        "{}",
        reasons[1]
    );
    assert_eq!(reasons[2], "unknown signal \"no_such_signal\"");
    assert!(
        dead.iter()
            .all(|d| d.attempts == 1 && d.subject_id == "o-bad")
    );
    assert!(
        store.outbox_due(100).await.unwrap().len() == 1,
        "not picked again"
    );
}

/// An intent is recorded for an order only while its payment is open, and whichever of
/// "record" and "close" comes second sees the first: the closer always learns of a recorded
/// intent (and cancels it), a recorder after the close is refused (and cancels its own).
async fn payment_intents_are_recorded_only_while_the_payment_is_open(store: Store) {
    store
        .upsert_listing(&listing("SKU-P", 1_000))
        .await
        .unwrap();
    let usd = Money::new(3_186, Currency::USD);
    let accept = |id: String| {
        let store = store.clone();
        async move {
            store
                .create_order(&order(&id, "SKU-P", 1), &format!("key-{id}"), "h")
                .await
                .unwrap();
        }
    };
    accept("pa".into()).await;
    assert_eq!(
        store
            .record_payment_intent("pa", "pi_a", usd)
            .await
            .unwrap(),
        IntentRecord::Recorded
    );
    assert_eq!(
        store
            .record_payment_intent("pa", "pi_a", usd)
            .await
            .unwrap(),
        IntentRecord::Held("pi_a".into()),
        "asked twice, still one intent"
    );
    let (intent, amount, status) = store.payment_intent("pa").await.unwrap().unwrap();
    assert_eq!(
        (intent.as_str(), amount, status.as_str()),
        ("pi_a", usd, "requires_payment_method")
    );
    assert_eq!(
        store
            .order("pa")
            .await
            .unwrap()
            .payment_intent_id
            .as_deref(),
        Some("pi_a")
    );
    assert_eq!(
        store.close_payment("pa").await.unwrap().as_deref(),
        Some("pi_a")
    );

    accept("pb".into()).await;
    assert_eq!(store.close_payment("pb").await.unwrap(), None);
    assert_eq!(
        store
            .record_payment_intent("pb", "pi_b", usd)
            .await
            .unwrap(),
        IntentRecord::Closed
    );
    assert!(store.payment_intent("pb").await.unwrap().is_none());
    assert!(store.order("pb").await.unwrap().payment_intent_id.is_none());

    // Racing: every order ends one way or the other, never with an intent nobody cancels.
    let mut races = Vec::new();
    for i in 0..24 {
        let id = format!("pr{i}");
        accept(id.clone()).await;
        let (a, b) = (store.clone(), store.clone());
        let (ida, idb) = (id.clone(), id.clone());
        races.push(tokio::spawn(async move {
            let record = tokio::spawn(async move {
                a.record_payment_intent(&ida, &format!("pi_{ida}"), usd)
                    .await
                    .unwrap()
            });
            let close = tokio::spawn(async move { b.close_payment(&idb).await.unwrap() });
            (id, record.await.unwrap(), close.await.unwrap())
        }));
    }
    for race in races {
        let (id, recorded, closed) = race.await.unwrap();
        match (&recorded, &closed) {
            (IntentRecord::Recorded, Some(held)) => assert_eq!(held, &format!("pi_{id}")),
            (IntentRecord::Closed, None) => {}
            other => panic!("{id}: an intent the closer never saw: {other:?}"),
        }
    }
}

/// The payments lane records a pass's intents in one transaction: each order gets the answer
/// it would get alone (recorded, the intent it already holds, closed), in the order given, and
/// the batch read finds exactly the orders that exist.
async fn a_batch_of_intents_answers_each_order_as_alone(store: Store) {
    store
        .upsert_listing(&listing("SKU-B", 1_000))
        .await
        .unwrap();
    let usd = Money::new(1_250, Currency::USD);
    for id in ["ba", "bb", "bc"] {
        store
            .create_order(&order(id, "SKU-B", 1), &format!("key-{id}"), "h")
            .await
            .unwrap();
    }
    let mut found: Vec<String> = store
        .orders_by_id(&["ba", "bb", "bc", "nope"])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    found.sort();
    assert_eq!(found, ["ba", "bb", "bc"]);
    store
        .record_payment_intent("bb", "pi_bb", usd)
        .await
        .unwrap();
    store.close_payment("bc").await.unwrap();
    let batch = [
        IntentToRecord {
            order_id: "ba",
            intent_id: "pi_ba",
            amount: usd,
        },
        IntentToRecord {
            order_id: "bb",
            intent_id: "pi_other",
            amount: usd,
        },
        IntentToRecord {
            order_id: "bc",
            intent_id: "pi_bc",
            amount: usd,
        },
    ];
    assert_eq!(
        store.record_payment_intents(&batch).await.unwrap(),
        [
            IntentRecord::Recorded,
            IntentRecord::Held("pi_bb".into()),
            IntentRecord::Closed
        ]
    );
    let intent = |id: &'static str| {
        let store = store.clone();
        async move { store.payment_intent(id).await.unwrap().map(|p| p.0) }
    };
    assert_eq!(intent("ba").await.as_deref(), Some("pi_ba"));
    assert_eq!(intent("bb").await.as_deref(), Some("pi_bb"));
    assert_eq!(intent("bc").await, None);

    // An unknown order fails the batch and writes nothing, not even the valid ones.
    store
        .create_order(&order("bd", "SKU-B", 1), "key-bd", "h")
        .await
        .unwrap();
    let bad = [
        IntentToRecord {
            order_id: "bd",
            intent_id: "pi_bd",
            amount: usd,
        },
        IntentToRecord {
            order_id: "missing",
            intent_id: "pi_x",
            amount: usd,
        },
    ];
    assert!(matches!(
        store.record_payment_intents(&bad).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(intent("bd").await, None);
    assert!(store.order("bd").await.unwrap().payment_intent_id.is_none());
}

/// A seller's shipment is recorded once per line and waybill, with one `order.seller_shipped`
/// event; a purchaser's completion records its waybill in the same transaction; the waybill
/// finds every order it was recorded for.
async fn seller_shipments_are_recorded_once_and_found_by_waybill(store: Store) {
    use procure_store::shipments::{NewSellerShipment, ShipmentSource};
    store
        .upsert_listing(&listing("SKU-S", 1_000))
        .await
        .unwrap();
    for id in ["sa", "sb"] {
        store
            .create_order(&order(id, "SKU-S", 1), &format!("key-{id}"), "h")
            .await
            .unwrap();
    }
    store
        .record_purchase("sa", 1, "1688", "9001", 4_200)
        .await
        .unwrap();
    let shipment = NewSellerShipment {
        order_id: "sa".into(),
        line_no: 1,
        platform: "1688".into(),
        marketplace_order_id: "9001".into(),
        carrier: "YTO".into(),
        waybill: "YT100".into(),
        source: ShipmentSource::Marketplace,
    };
    assert!(store.record_seller_shipment(&shipment).await.unwrap());
    assert!(
        !store.record_seller_shipment(&shipment).await.unwrap(),
        "seen twice, stored once"
    );
    let second = NewSellerShipment {
        waybill: "YT101".into(),
        ..shipment.clone()
    };
    assert!(
        store.record_seller_shipment(&second).await.unwrap(),
        "a second parcel of the line"
    );
    let recorded: Vec<String> = store
        .seller_shipments("sa")
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {} {} {}", s.line_no, s.carrier, s.waybill, s.source))
        .collect();
    assert_eq!(
        recorded,
        ["1 YTO YT100 marketplace", "1 YTO YT101 marketplace"]
    );
    assert!(matches!(
        store
            .record_seller_shipment(&NewSellerShipment {
                order_id: "nope".into(),
                ..shipment.clone()
            })
            .await,
        Err(procure_store::StoreError::NotFound)
    ));

    // A purchaser's completion with the waybill: the task, the purchase and the shipment at once.
    let task = store
        .open_purchaser_task(&procure_workflows::contract::PurchaserTaskRequest {
            order_id: "sb".into(),
            line_no: 1,
            platform: "pinduoduo".into(),
            offer_id: "pdd1".into(),
            spec_id: String::new(),
            quantity: 1,
            max_total_fen: 5_000,
            due_at_ms: i64::MAX / 2,
        })
        .await
        .unwrap();
    store
        .complete_purchaser_task(&task.id, "PDD-1", 4_000, Some(("ZTO", "YT100")))
        .await
        .unwrap();
    let b = store.seller_shipments("sb").await.unwrap();
    assert_eq!(
        (
            b.len(),
            b[0].source.as_str(),
            b[0].marketplace_order_id.as_str()
        ),
        (1, "purchaser", "PDD-1")
    );
    assert_eq!(
        store.orders_by_waybill("YT100").await.unwrap(),
        ["sa", "sb"]
    );
    assert_eq!(store.orders_by_waybill("YT101").await.unwrap(), ["sa"]);
    assert!(store.orders_by_waybill("YT999").await.unwrap().is_empty());

    let shipped = store
        .events_after(
            procure_store::events::Reader::All,
            0,
            100,
            Some(&[procure_domain::events::EventType::OrderSellerShipped]),
        )
        .await
        .unwrap();
    let seen: Vec<(Option<String>, String)> = shipped
        .events
        .iter()
        .map(|e| {
            (
                e.order_id.clone(),
                e.data["tracking_number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("sa".into()), "YT100".into()),
            (Some("sa".into()), "YT101".into()),
            (Some("sb".into()), "YT100".into())
        ]
    );
}

/// Imports write concurrently (each a transaction that reads, then writes): every one lands,
/// and importing a product again refreshes it, never a second product.
async fn concurrent_imports_all_land_and_a_second_import_refreshes(store: Store) {
    use procure_domain::{
        order::Platform,
        product::{Attribute, ProductDetail, Seller, SkuDetail, estimate_measures},
    };
    let detail = |n: u32, price: i64| ProductDetail {
        platform: Platform::Alibaba1688,
        product_id: format!("90000{n}"),
        title: format!("Cup {n}"),
        image_urls: vec!["https://img.example/1.jpg".into()],
        attributes: vec![],
        skus: (0..2)
            .map(|k| SkuDetail {
                spec_id: format!("spec{k}"),
                attributes: vec![Attribute::new("颜色", if k == 0 { "白" } else { "黑" })],
                price_fen: price + i64::from(k),
                stock: Some(10),
                image_url: None,
            })
            .collect(),
        min_order_quantity: Some(1),
        seller: Seller::default(),
        weight_g: None,
        dimensions: None,
    };
    let writes = (0..16u32).map(|n| {
        let (store, d) = (store.clone(), detail(n, 1_000));
        async move { store.save_product(&d, estimate_measures(&d), 1).await }
    });
    let saved = futures_util::future::join_all(writes).await;
    for (n, r) in saved.iter().enumerate() {
        let (p, created) = r.as_ref().unwrap_or_else(|e| panic!("import {n}: {e}"));
        assert!(created);
        assert_eq!(p.skus.len(), 2);
    }
    let (again, created) = store
        .save_product(&detail(3, 1_200), estimate_measures(&detail(3, 1_200)), 2)
        .await
        .unwrap();
    assert!(!created, "the same product refreshes");
    assert_eq!(again.detail.skus[0].price_fen, 1_200);
    let page = store.products(None, None, 100).await.unwrap();
    assert_eq!(page.products.len(), 16);
    // A page reads every product's offers at once: each shows its own prices.
    for p in &page.products {
        let want = if p.detail.product_id == "900003" {
            1_200
        } else {
            1_000
        };
        let prices: Vec<i64> = p.detail.skus.iter().map(|s| s.price_fen).collect();
        assert_eq!(prices, [want, want + 1], "{}", p.id);
    }
    let listing = store.listing(&again.skus[1].sku).await.unwrap();
    assert_eq!(listing.price_fen, 1_201);
}

/// Alternatives: a link joins two listings both ways, their offers become each other's
/// candidates, every product listing either is marked changed, a variant of the same product is
/// refused, and unlinking undoes it all. The title index finds the look-alike; a platform
/// filter and a delisting leave it out.
async fn alternatives_join_two_listings_both_ways_and_feed_the_candidates(store: Store) {
    use procure_domain::{
        order::Platform,
        product::{Attribute, ProductDetail, Seller, SkuDetail, estimate_measures},
    };
    let detail = |platform: Platform, id: &str, title: &str, price: i64| ProductDetail {
        platform,
        product_id: id.into(),
        title: title.into(),
        image_urls: vec![],
        attributes: vec![],
        skus: ["白", "黑"]
            .iter()
            .enumerate()
            .map(|(k, colour)| SkuDetail {
                spec_id: format!("{id}-{k}"),
                attributes: vec![Attribute::new("颜色", *colour)],
                price_fen: price + k as i64,
                stock: Some(10),
                image_url: None,
            })
            .collect(),
        min_order_quantity: None,
        seller: Seller::default(),
        weight_g: None,
        dimensions: None,
    };
    let save = |d: ProductDetail| {
        let store = store.clone();
        async move {
            store
                .save_product(&d, estimate_measures(&d), 1)
                .await
                .unwrap()
                .0
        }
    };
    let ali = save(detail(
        Platform::Alibaba1688,
        "700001",
        "陶瓷马克杯 350ml 白色",
        1_000,
    ))
    .await;
    let tb = save(detail(
        Platform::Taobao,
        "800001",
        "【包邮】陶瓷马克杯 350ml 新款",
        1_100,
    ))
    .await;
    let other = save(detail(
        Platform::Taobao,
        "800002",
        "不锈钢保温杯 500ml",
        900,
    ))
    .await;
    let (a0, t0) = (ali.skus[0].sku.clone(), tb.skus[0].sku.clone());

    assert!(
        matches!(
            store
                .link_alternative(&a0, &ali.skus[1].sku, None, "op")
                .await,
            Err(procure_store::StoreError::StateConflict(_))
        ),
        "two variants of one product"
    );
    assert!(matches!(
        store.link_alternative(&a0, "no-such-sku", None, "op").await,
        Err(procure_store::StoreError::UnknownSku(s)) if s == "no-such-sku"
    ));
    let (v_ali, v_tb) = (
        store.product(&ali.id).await.unwrap().version,
        store.product(&tb.id).await.unwrap().version,
    );
    let (created, changed) = store
        .link_alternative(&a0, &t0, Some(9_000), "op")
        .await
        .unwrap();
    assert!(created);
    let ids: Vec<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [ali.id.as_str(), tb.id.as_str()],
        "both products changed"
    );
    assert_eq!(changed[0].1, v_ali + 1);
    assert_eq!(changed[1].1, v_tb + 1);
    let (again, _) = store.link_alternative(&t0, &a0, None, "op").await.unwrap();
    assert!(!again, "the same link, from the other side");
    // Read together (a page, the matching candidates), each product carries its own links.
    let page = store.products(None, None, 10).await.unwrap();
    let links = |id: &str| -> Vec<(String, String)> {
        page.products
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .alternatives
            .iter()
            .map(|a| (a.sku.clone(), a.alternative_sku.clone()))
            .collect()
    };
    assert_eq!(links(&ali.id), [(a0.clone(), t0.clone())]);
    assert_eq!(links(&tb.id), [(t0.clone(), a0.clone())]);
    assert!(links(&other.id).is_empty());

    // Both ways, each with the other's channel and price.
    let on_ali = store.alternatives(&a0).await.unwrap();
    assert_eq!(
        (
            on_ali.len(),
            on_ali[0].alternative_sku.as_str(),
            on_ali[0].platform,
            on_ali[0].price_fen,
            on_ali[0].confidence_bps
        ),
        (1, t0.as_str(), Platform::Taobao, 1_100, Some(9_000))
    );
    assert_eq!(
        store.alternatives(&t0).await.unwrap()[0].alternative_sku,
        a0
    );
    let offers = |sku: String| {
        let store = store.clone();
        async move {
            let mut c: Vec<String> = store
                .candidates(&sku)
                .await
                .unwrap()
                .into_iter()
                .map(|c| format!("{} {}", c.platform.as_str(), c.offer_id))
                .collect();
            c.sort();
            c
        }
    };
    assert_eq!(offers(a0.clone()).await, ["1688 700001", "taobao 800001"]);
    assert_eq!(offers(t0.clone()).await, ["1688 700001", "taobao 800001"]);
    assert_eq!(
        offers(ali.skus[1].sku.clone()).await,
        ["1688 700001"],
        "not the other variant"
    );
    let read = store.product(&ali.id).await.unwrap();
    assert_eq!(read.alternatives.len(), 1);

    // The title index: the copy shares the most words and comes first.
    let found = store
        .products_sharing_title(&ali.id, &ali.detail.title, None, 10)
        .await
        .unwrap();
    assert_eq!(found[0].id, tb.id, "the most words in common first");
    assert!(
        store
            .products_sharing_title(&ali.id, &ali.detail.title, Some(Platform::Pinduoduo), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.mark_delisted(&tb.id).await.unwrap();
    let found = store
        .products_sharing_title(&ali.id, &ali.detail.title, None, 10)
        .await
        .unwrap();
    assert!(
        found.iter().all(|p| p.id != tb.id),
        "a delisted product is not suggested"
    );
    assert!(found.iter().all(|p| p.id != ali.id));
    let _ = other;

    // Unlinked: nothing left either way, and the candidates are the listing's own again.
    let changed = store
        .unlink_alternative(&t0, &a0)
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(changed.len(), 2);
    assert!(store.alternatives(&a0).await.unwrap().is_empty());
    assert!(store.alternatives(&t0).await.unwrap().is_empty());
    assert_eq!(offers(a0.clone()).await, ["1688 700001"]);
    assert_eq!(store.unlink_alternative(&t0, &a0).await.unwrap(), None);
}

/// A catalogue listing quoted from its 1688 offer, with a Taobao offer beside it: importing the
/// Taobao product adopts the listing but leaves its price (the 1688 channel's) alone, and both
/// products list it.
async fn an_adopted_listing_keeps_its_own_channels_price(store: Store) {
    use procure_domain::{
        order::Platform,
        product::{ProductDetail, Seller, SkuDetail, estimate_measures},
    };
    use procure_store::catalogue::{Listing, Offer};
    store
        .upsert_listing(&Listing {
            sku: "MUG-1".into(),
            platform: "1688".into(),
            offer_id: "610001".into(),
            spec_id: "s1".into(),
            title: "Mug".into(),
            price_fen: 1_280,
            weight_g: 380,
            l_mm: 120,
            w_mm: 95,
            h_mm: 100,
            domestic_shipping_fen: 500,
            available: 10,
        })
        .await
        .unwrap();
    for (platform, offer, spec, price) in [
        (Platform::Alibaba1688, "610001", "s1", 1_280),
        (Platform::Taobao, "710001", "t1", 1_500),
    ] {
        store
            .upsert_offer(&Offer {
                sku: "MUG-1".into(),
                platform,
                offer_id: offer.into(),
                spec_id: spec.into(),
                price_fen: price,
                domestic_shipping_fen: 500,
                stock: None,
                active: true,
            })
            .await
            .unwrap();
    }
    let one = |platform, id: &str, spec: &str, price| ProductDetail {
        platform,
        product_id: id.into(),
        title: "Mug".into(),
        image_urls: vec![],
        attributes: vec![],
        skus: vec![SkuDetail {
            spec_id: spec.into(),
            attributes: vec![],
            price_fen: price,
            stock: None,
            image_url: None,
        }],
        min_order_quantity: None,
        seller: Seller::default(),
        weight_g: None,
        dimensions: None,
    };
    let tb = one(Platform::Taobao, "710001", "t1", 1_590);
    let (p, _) = store
        .save_product(&tb, estimate_measures(&tb), 1)
        .await
        .unwrap();
    assert_eq!(p.skus[0].sku, "MUG-1", "adopted");
    assert_eq!(
        store.listing("MUG-1").await.unwrap().price_fen,
        1_280,
        "still the 1688 price"
    );
    let ali = one(Platform::Alibaba1688, "610001", "s1", 1_300);
    let (q, _) = store
        .save_product(&ali, estimate_measures(&ali), 1)
        .await
        .unwrap();
    assert_eq!(q.skus[0].sku, "MUG-1", "adopted by the second product too");
    assert_eq!(
        store.listing("MUG-1").await.unwrap().price_fen,
        1_300,
        "its own channel's price"
    );
    let of = store.product_of_sku("MUG-1").await.unwrap().unwrap();
    assert_eq!(
        of.id, q.id,
        "the listing belongs to the product whose offer it is quoted from"
    );
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
    a_batch_answers_each_order_as_alone,
    intake_batches_concurrent_accepts_without_overselling,
    release_is_idempotent,
    transitions_are_idempotent_and_ordered,
    outbox_retries_and_completes,
    outbox_done_all_marks_exactly_those_rows,
    outbox_dead_letters,
    outbox_transient_failures_are_bounded,
    outbox_signal_waits_on_its_start,
    price_change_decisions_are_settled_once,
    seeding_keeps_the_stock_reservations_hold,
    outbox_undecodable_rows_are_dead_letters,
    payment_intents_are_recorded_only_while_the_payment_is_open,
    a_batch_of_intents_answers_each_order_as_alone,
    seller_shipments_are_recorded_once_and_found_by_waybill,
    concurrent_imports_all_land_and_a_second_import_refreshes,
    alternatives_join_two_listings_both_ways_and_feed_the_candidates,
    an_adopted_listing_keeps_its_own_channels_price,
);

/// Every table and column of the schema, with each column's type reduced to a family
/// (integer, text, …), so the two dialects' spellings compare.
type Schema = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

fn type_family(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    if t.contains("int") || t.contains("serial") {
        "integer".into()
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text".into()
    } else if t.contains("bool") {
        // SQLite has no boolean: such columns hold 0 or 1.
        "integer".into()
    } else if t.contains("real")
        || t.contains("double")
        || t.contains("float")
        || t.contains("numeric")
    {
        "real".into()
    } else {
        t
    }
}

async fn schema(store: &Store) -> Schema {
    let rows: Vec<(String, String, String)> = match store.backend() {
        procure_store::Backend::Sqlite => {
            sqlx::query_as(
                "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            )
            .fetch_all(store.pool())
            .await
            .unwrap()
        }
        procure_store::Backend::Postgres => sqlx::query_as(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name NOT LIKE '_sqlx%'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap(),
    };
    let mut schema = Schema::new();
    for (table, column, ty) in rows {
        schema
            .entry(table)
            .or_default()
            .insert(column, type_family(&ty));
    }
    schema
}

/// The SQLite and PostgreSQL migration trees describe the same schema: the same tables, each
/// with the same columns of the same kind of type.
#[tokio::test]
async fn both_migration_trees_build_the_same_schema() {
    let lite_db = TestDb::sqlite().await;
    let pg_db = TestDb::postgres().await;
    let lite = Store::connect(&lite_db.url).await.unwrap();
    let pg = Store::connect(&pg_db.url).await.unwrap();
    let (a, b) = (schema(&lite).await, schema(&pg).await);
    lite.close().await;
    pg.close().await;
    lite_db.drop_db().await;
    pg_db.drop_db().await;
    assert!(
        a.contains_key("orders") && a.contains_key("outbox"),
        "sanity: {a:?}"
    );
    let tables = |s: &Schema| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(tables(&a), tables(&b), "tables (sqlite, postgres)");
    for (table, columns) in &a {
        assert_eq!(columns, &b[table], "columns of {table} (sqlite, postgres)");
    }
}

/// Several processes starting at once on a fresh SQLite file (an API and its workers) each
/// migrate it: every one connects, and the schema is applied once. SQLite has no advisory lock
/// for sqlx to take, so without one of our own two migrators apply the same script and one
/// fails ("table … already exists").
#[tokio::test]
async fn processes_starting_together_on_a_fresh_sqlite_file_all_migrate_it() {
    for round in 0..5 {
        let dir = std::env::temp_dir().join(format!(
            "procure-migrate-{}-{round}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("fresh.db").display());
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                // A runtime each, as separate processes have.
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(async { Store::connect(&url).await.map(|_| ()) })
                })
            })
            .collect();
        for s in starts {
            s.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let store = Store::connect(&url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .count() as i64;
        assert_eq!(applied, files, "every migration applied once");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
