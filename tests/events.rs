//! The event log and its webhook deliveries in the store, on a fresh SQLite file and a fresh
//! PostgreSQL database each: an event commits with its change (a rolled-back change leaves
//! none), each subject's events are numbered without gaps, the cursor only grows in commit
//! order (a reader tailing the log while writers race misses nothing), a repeated business
//! event is stored once, customers read their own; deliveries are claimed in order per subject
//! under a lease, retried, given up, replayed, and an endpoint failing for long is disabled;
//! the storage reminders of the old `notifications` table become events on upgrade.

use procure_domain::{
    Currency, Money, OrderState,
    clock::now_ms,
    events::{EventType, RefundKind},
    order::{OrderLine, Platform},
};
use procure_store::{
    Store,
    catalogue::Listing,
    events::{NewEvent, Reader, append},
    orders::NewOrder,
    payments::RefundRecord,
    subscriptions::{AttemptOutcome, AttemptRecord, EndpointChange, NewEndpoint},
};
use procure_workflows::contract::TransitionRecord;
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

fn order(id: &str, customer: &str, sku: &str, qty: u32) -> NewOrder {
    let cny = Money::new(4_550, Currency::CNY);
    NewOrder {
        id: id.into(),
        customer_id: customer.into(),
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
        shipping_address: serde_json::json!({"name": "A. Customer", "line1": "1 Secret Lane", "country": "US"}),
        destination_country: "US".into(),
    }
}

fn moved(
    order_id: &str,
    seq: u32,
    from: OrderState,
    to: OrderState,
    reason: &str,
) -> TransitionRecord {
    TransitionRecord {
        order_id: order_id.into(),
        seq,
        from,
        to,
        at_ms: now_ms(),
        reason: reason.into(),
    }
}

async fn types_of(store: &Store, subject: &str) -> Vec<(i64, EventType)> {
    store
        .subject_events(subject)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.kind))
        .collect()
}

async fn count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// An accepted order commits its event; a refused one (out of stock), a replay of the same
/// key, and a transaction rolled back after its append leave none.
async fn events_commit_with_their_change_or_not_at_all(store: Store) {
    store.upsert_listing(&listing("SKU-A", 3)).await.unwrap();
    let first = store
        .create_order(&order("o1", "cust-1", "SKU-A", 2), "k1", "h1")
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(
        types_of(&store, "order:o1").await,
        [(1, EventType::OrderAccepted)]
    );
    let accepted = &store.subject_events("order:o1").await.unwrap()[0];
    assert_eq!(accepted.customer_id, "cust-1");
    assert_eq!(accepted.data["total"]["minor"], 3_186);
    assert_eq!(accepted.data["items"][0]["sku"], "SKU-A");
    let text = accepted.data.to_string();
    assert!(
        !text.contains("Secret Lane") && !text.contains("A. Customer"),
        "no personal data in a payload: {text}"
    );

    // Out of stock: the order, its reservation and its event are all rolled back.
    let refused = store
        .create_order(&order("o2", "cust-1", "SKU-A", 2), "k2", "h2")
        .await;
    assert!(refused.is_err());
    // The same key and body again: the same order, no second event.
    store
        .create_order(&order("o1-again", "cust-1", "SKU-A", 2), "k1", "h1")
        .await
        .unwrap();
    assert_eq!(count(&store).await, 1);

    // An append inside a transaction that rolls back is gone with it.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE orders SET updated_at_ms = 1 WHERE id = 'o1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let e = NewEvent::order(
        "o1",
        "cust-1",
        &procure_domain::events::OrderNeedsOperator {
            order_id: "o1".into(),
            reason: "test".into(),
        },
    );
    assert_eq!(
        append(&mut tx, store.backend(), std::slice::from_ref(&e))
            .await
            .unwrap(),
        1
    );
    tx.rollback().await.unwrap();
    assert_eq!(count(&store).await, 1, "rolled back with its change");
    // And committed with it.
    let mut tx = store.pool().begin().await.unwrap();
    append(&mut tx, store.backend(), &[e]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        types_of(&store, "order:o1").await,
        [
            (1, EventType::OrderAccepted),
            (2, EventType::OrderNeedsOperator)
        ],
        "numbered on from the last committed one"
    );
}

/// Sequences count per subject without gaps, the cursor grows, pages are stable, a repeated
/// business event (a retried activity) is stored once, and customers read their own events.
async fn sequences_cursors_pages_and_readers(store: Store) {
    store.upsert_listing(&listing("SKU-B", 100)).await.unwrap();
    for (id, customer) in [("a", "cust-a"), ("b", "cust-b")] {
        store
            .create_order(&order(id, customer, "SKU-B", 1), &format!("k-{id}"), "h")
            .await
            .unwrap();
        store
            .record_payment_intent(id, &format!("pi_{id}"), Money::new(3_186, Currency::USD))
            .await
            .unwrap();
    }
    let paid = [
        moved("a", 0, OrderState::Created, OrderState::Created, "accepted"),
        moved(
            "a",
            1,
            OrderState::Created,
            OrderState::PendingPayment,
            "payment created",
        ),
        moved(
            "a",
            2,
            OrderState::PendingPayment,
            OrderState::Paid,
            "payment verified",
        ),
    ];
    store.record_transitions(&paid).await.unwrap();
    // The same transitions again (a retried local activity): nothing new.
    store.record_transitions(&paid).await.unwrap();
    store
        .record_purchase("a", 1, "1688", "mk-1", 4_550)
        .await
        .unwrap();
    store
        .record_purchase("a", 1, "1688", "mk-1", 4_550)
        .await
        .unwrap();
    assert_eq!(
        types_of(&store, "order:a").await,
        [
            (1, EventType::OrderAccepted),
            (2, EventType::OrderPayable),
            (3, EventType::OrderPaid),
            (4, EventType::OrderPurchased),
        ]
    );
    assert_eq!(
        types_of(&store, "order:b").await,
        [(1, EventType::OrderAccepted), (2, EventType::OrderPayable)]
    );
    let a = store.subject_events("order:a").await.unwrap();
    assert_eq!(a[2].data["payment_intent_id"], "pi_a");
    assert_eq!(a[3].data["lines_purchased"], 1);
    assert_eq!(a[3].data["lines_total"], 1);

    // The feed: ids strictly increasing, pages continuing where the last ended.
    let all = store.events_after(Reader::All, 0, 500, None).await.unwrap();
    assert_eq!(all.events.len(), 6);
    assert!(!all.has_more);
    assert!(all.events.windows(2).all(|w| w[0].id < w[1].id));
    let first = store.events_after(Reader::All, 0, 4, None).await.unwrap();
    assert!(first.has_more);
    assert_eq!(first.next_cursor, first.events[3].id);
    let rest = store
        .events_after(Reader::All, first.next_cursor, 4, None)
        .await
        .unwrap();
    assert!(!rest.has_more);
    let paged: Vec<i64> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|e| e.id)
        .collect();
    let whole: Vec<i64> = all.events.iter().map(|e| e.id).collect();
    assert_eq!(paged, whole);
    let empty = store
        .events_after(Reader::All, rest.next_cursor, 4, None)
        .await
        .unwrap();
    assert_eq!(
        (empty.events.len(), empty.next_cursor),
        (0, rest.next_cursor)
    );

    // A customer reads their own; types filter.
    let b = store
        .events_after(Reader::Customer("cust-b"), 0, 100, None)
        .await
        .unwrap();
    assert!(b.events.iter().all(|e| e.customer_id == "cust-b"));
    assert_eq!(b.events.len(), 2);
    let paid_only = store
        .events_after(Reader::All, 0, 100, Some(&[EventType::OrderPaid]))
        .await
        .unwrap();
    assert_eq!(paid_only.events.len(), 1);

    // Refunds: one event per provider refund, summed into the cancellation.
    let refund = RefundRecord {
        refund_id: "re_a",
        amount: Money::new(3_186, Currency::USD),
        kind: RefundKind::Order,
        reason: "order cancelled",
    };
    store.record_refund("a", "pi_a", &refund).await.unwrap();
    store.record_refund("a", "pi_a", &refund).await.unwrap();
    store
        .record_transitions(&[moved(
            "a",
            3,
            OrderState::Paid,
            OrderState::Refunded,
            "cancelled by the customer",
        )])
        .await
        .unwrap();
    let a = store.subject_events("order:a").await.unwrap();
    let kinds: Vec<EventType> = a.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[4..],
        [EventType::RefundIssued, EventType::OrderCancelled]
    );
    assert_eq!(a[5].data["state"], "Refunded");
    assert_eq!(a[5].data["refunded"]["minor"], 3_186);
    let notes = store
        .customer_notifications("cust-a", 0, 100)
        .await
        .unwrap();
    assert_eq!(
        notes.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::OrderCancelled],
        "only the customer-message types"
    );
}

/// Writers racing on many orders while a reader tails the log by cursor: the reader ends up
/// with every event exactly once, and each subject's sequence has no gap and no repeat.
async fn a_reader_tailing_the_log_misses_nothing_while_writers_race(store: Store) {
    store
        .upsert_listing(&listing("SKU-C", 10_000))
        .await
        .unwrap();
    const ORDERS: usize = 24;
    let writers: Vec<_> = (0..ORDERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("race-{i}");
                store
                    .create_order(
                        &order(&id, "cust-race", "SKU-C", 1),
                        &format!("k-{id}"),
                        "h",
                    )
                    .await
                    .unwrap();
                store
                    .record_payment_intent(
                        &id,
                        &format!("pi_{id}"),
                        Money::new(3_186, Currency::USD),
                    )
                    .await
                    .unwrap();
                store
                    .record_transitions(&[
                        moved(&id, 1, OrderState::Created, OrderState::PendingPayment, "p"),
                        moved(&id, 2, OrderState::PendingPayment, OrderState::Paid, "paid"),
                    ])
                    .await
                    .unwrap();
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0i64, Vec::new());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while seen.len() < ORDERS * 3 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "reader saw {}",
                    seen.len()
                );
                let page = store
                    .events_after(Reader::All, cursor, 7, None)
                    .await
                    .unwrap();
                for e in &page.events {
                    assert!(e.id > cursor);
                    seen.push(e.id);
                    cursor = e.id;
                }
                if page.events.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let all: Vec<i64> = store
        .events_after(Reader::All, 0, 500, None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        seen, all,
        "the tailing reader saw every event, once, in order"
    );
    for i in 0..ORDERS {
        let seqs: Vec<i64> = types_of(&store, &format!("order:race-{i}"))
            .await
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(seqs, [1, 2, 3], "race-{i}");
    }
}

fn attempt<'a>(
    d: &'a procure_store::subscriptions::ClaimedDelivery,
    owner: &'a str,
    outcome: AttemptOutcome,
) -> AttemptRecord<'a> {
    AttemptRecord {
        delivery: d,
        endpoint_id: "we_1",
        owner,
        started_at_ms: now_ms(),
        duration_ms: 3,
        status_code: Some(if outcome == AttemptOutcome::Delivered {
            200
        } else {
            500
        }),
        error: (outcome != AttemptOutcome::Delivered).then(|| "HTTP 500".into()),
        outcome,
        disable_after_ms: 3_600_000,
    }
}

/// Fan-out, claims in order per subject under a lease, retries, giving up, replay, disabling.
async fn deliveries_are_claimed_in_order_and_accounted(store: Store) {
    store.upsert_listing(&listing("SKU-D", 100)).await.unwrap();
    store
        .create_order(&order("before", "cust-d", "SKU-D", 1), "k-before", "h")
        .await
        .unwrap();
    let e = store
        .add_webhook_endpoint(&NewEndpoint {
            id: "we_1",
            url: "https://shop.example/hooks",
            description: "",
            event_types: &[EventType::OrderAccepted, EventType::OrderPayable],
            secret_sealed: "sealed",
            enabled: true,
        })
        .await
        .unwrap();
    assert!(e.fanout_cursor > 0, "an endpoint hears from now on");
    for id in ["x", "y"] {
        store
            .create_order(&order(id, "cust-d", "SKU-D", 1), &format!("k-{id}"), "h")
            .await
            .unwrap();
        store
            .record_payment_intent(id, &format!("pi_{id}"), Money::new(1, Currency::USD))
            .await
            .unwrap();
    }
    // Not a wanted type: no delivery.
    store
        .record_transitions(&[moved(
            "x",
            2,
            OrderState::PendingPayment,
            OrderState::Paid,
            "paid",
        )])
        .await
        .unwrap();
    assert_eq!(store.fan_out("we_1", 500).await.unwrap(), 5);
    assert_eq!(store.fan_out("we_1", 500).await.unwrap(), 0, "idempotent");
    assert_eq!(store.delivery_counts("we_1").await.unwrap().pending, 4);

    // Only the first pending delivery of each subject is claimable, by one owner at a time.
    let now = now_ms();
    let a = store
        .claim_deliveries("we_1", "replica-a", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 2, "the heads of order x and order y");
    let b = store
        .claim_deliveries("we_1", "replica-b", now, now + 60_000, 10)
        .await
        .unwrap();
    assert!(
        b.is_empty(),
        "leased to a, and the rest waits behind the heads"
    );

    // x's head fails: it is retried later, and x's next event still waits behind it.
    let (x_head, y_head) = (&a[0], &a[1]);
    store
        .record_attempt(&attempt(
            x_head,
            "replica-a",
            AttemptOutcome::Failed {
                retry_at_ms: Some(now + 60_000),
                disable: None,
            },
        ))
        .await
        .unwrap();
    store
        .record_attempt(&attempt(y_head, "replica-a", AttemptOutcome::Delivered))
        .await
        .unwrap();
    let next = store
        .claim_deliveries("we_1", "replica-b", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "y's second event, not x's");
    assert!(next[0].event_id > y_head.event_id);
    // A late finisher whose lease was taken over records its attempt but changes nothing.
    store
        .record_attempt(&attempt(&next[0], "replica-a", AttemptOutcome::Delivered))
        .await
        .unwrap();
    assert_eq!(store.delivery_counts("we_1").await.unwrap().delivered, 1);
    store
        .record_attempt(&attempt(&next[0], "replica-b", AttemptOutcome::Delivered))
        .await
        .unwrap();
    // x's head, due again, fails for good (its window is over): x's next event goes.
    let later = now + 61_000;
    let retry = store
        .claim_deliveries("we_1", "replica-b", later, later + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].id, retry[0].attempts), (x_head.id, 1));
    assert!(retry[0].first_attempt_at_ms.is_some());
    store
        .record_attempt(&attempt(
            &retry[0],
            "replica-b",
            AttemptOutcome::Failed {
                retry_at_ms: None,
                disable: None,
            },
        ))
        .await
        .unwrap();
    let counts = store.delivery_counts("we_1").await.unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.failed), (1, 2, 1));
    let endpoint = store.webhook_endpoint("we_1").await.unwrap();
    assert!(endpoint.failing_since_ms.is_some() && endpoint.enabled);

    // Replay since the start: every wanted event of its range is pending again.
    let queued = store.replay_deliveries("we_1", 0, 100).await.unwrap();
    assert_eq!(queued, 5, "the order from before the subscription too");
    let c = store.delivery_counts("we_1").await.unwrap();
    assert_eq!((c.pending, c.delivered, c.failed), (5, 0, 0));
    let attempts = store.delivery_attempts("we_1", None, 100).await.unwrap();
    assert_eq!(attempts.len(), 5);
    assert_eq!(attempts[0].outcome, "failed");
    assert_eq!(attempts[0].attempt, 2);
    let sums = store.attempt_counts("we_1").await.unwrap();
    assert_eq!(
        (sums.sent, sums.delivered, sums.retried, sums.replayed),
        (5, 3, 1, 0)
    );

    // A 410 disables at once, with the reason; enabling clears it.
    let head = store
        .claim_deliveries("we_1", "replica-a", later, later + 60_000, 1)
        .await
        .unwrap();
    let health = store
        .record_attempt(&attempt(
            &head[0],
            "replica-a",
            AttemptOutcome::Failed {
                retry_at_ms: Some(later),
                disable: Some("the endpoint answered 410 Gone".into()),
            },
        ))
        .await
        .unwrap();
    assert!(health.disabled.is_some());
    let off = store.webhook_endpoint("we_1").await.unwrap();
    assert!(!off.enabled);
    assert_eq!(
        off.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    let on = store
        .update_webhook_endpoint(
            "we_1",
            &EndpointChange {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(on.enabled && on.disabled_reason.is_none() && on.failing_since_ms.is_none());
    // Failing for longer than `disable_after` disables it too.
    let head = store
        .claim_deliveries("we_1", "replica-a", now_ms(), now_ms() + 60_000, 1)
        .await
        .unwrap();
    let mut long = attempt(
        &head[0],
        "replica-a",
        AttemptOutcome::Failed {
            retry_at_ms: Some(now_ms()),
            disable: None,
        },
    );
    long.disable_after_ms = 0;
    let health = store.record_attempt(&long).await.unwrap();
    assert!(
        health
            .disabled
            .as_deref()
            .is_some_and(|r| r.contains("every delivery failed")),
        "{health:?}"
    );
    store.delete_webhook_endpoint("we_1").await.unwrap();
    assert_eq!(store.delivery_counts("we_1").await.unwrap().pending, 0);
}

/// The email channel's rows: fan-out after the cursor (pending with a contact that wants
/// mail, skipped otherwise, nothing for other types), claims under a lease, bounded attempts.
async fn email_deliveries_fan_out_claim_and_record(store: Store) {
    use procure_store::email::{EmailAttempt, EmailOutcome};
    store
        .put_contact("cust-e", "sealed-address", true, "en")
        .await
        .unwrap();
    store
        .put_contact("cust-off", "sealed", false, "en")
        .await
        .unwrap();
    let note = |customer: &str, kind: EventType, key: &str| NewEvent {
        kind,
        subject: format!("order:ord_{key}"),
        customer_id: customer.into(),
        order_id: Some(format!("ord_{key}")),
        parcel_id: None,
        data: kind.example_json(),
        dedupe_key: Some(key.into()),
    };
    store
        .append_events(&[
            note("cust-e", EventType::ChargeDue, "e1"),
            note("cust-e", EventType::OrderPaid, "e2"),
            note("cust-off", EventType::OrderCancelled, "e3"),
            note("cust-none", EventType::PriceChangeAwaitingDecision, "e4"),
            note("cust-e", EventType::StorageExpiring, "e5"),
        ])
        .await
        .unwrap();
    assert_eq!(store.email_fan_out(500).await.unwrap(), 5);
    assert_eq!(
        store.email_fan_out(500).await.unwrap(),
        0,
        "the cursor moved"
    );
    let all = store.email_deliveries(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 4, "one per customer notification: {all:?}");
    let skipped = store
        .email_deliveries(Some("skipped"), None, 100)
        .await
        .unwrap();
    let mut reasons: Vec<_> = skipped
        .iter()
        .map(|d| {
            (
                d.customer_id.as_str(),
                d.last_error.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("cust-none", "the customer has no contact"),
            ("cust-off", "the customer turned notification emails off")
        ]
    );

    let now = now_ms();
    let claimed = store
        .claim_emails("a", now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed[0].event_id < claimed[1].event_id, "oldest first");
    assert!(
        store
            .claim_emails("b", now, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let attempt = |d, owner, outcome| EmailAttempt {
        delivery: d,
        owner,
        started_at_ms: now,
        duration_ms: 3,
        error: (outcome != EmailOutcome::Sent).then(|| "HTTP-free failure".to_owned()),
        outcome,
    };
    store
        .record_email_attempt(&attempt(&claimed[0], "a", EmailOutcome::Sent))
        .await
        .unwrap();
    store
        .record_email_attempt(&attempt(
            &claimed[1],
            "a",
            EmailOutcome::Retry { at_ms: now + 1 },
        ))
        .await
        .unwrap();
    // A late finisher whose lease is gone records its attempt and changes nothing.
    store
        .record_email_attempt(&attempt(&claimed[0], "b", EmailOutcome::Failed))
        .await
        .unwrap();
    let sent = store
        .email_deliveries(Some("sent"), None, 10)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attempts, 1);
    let again = store
        .claim_emails("b", now + 2, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    store
        .record_email_attempt(&attempt(&again[0], "b", EmailOutcome::Failed))
        .await
        .unwrap();
    let failed = store
        .email_deliveries(Some("failed"), None, 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 2);
    let log = store.email_attempts(failed[0].id).await.unwrap();
    assert_eq!(
        log.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(),
        ["failed", "failed"]
    );
    assert!(
        store
            .claim_emails("c", now + 10_000, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_contact("cust-e").await.unwrap();
    assert!(store.contact("cust-e").await.is_err());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::sqlite().await; let s = Store::connect(&db.url).await.unwrap(); super::$name(s.clone()).await; s.close().await; db.drop_db().await; } )* }
        mod postgres { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::postgres().await; let s = Store::connect(&db.url).await.unwrap(); super::$name(s.clone()).await; s.close().await; db.drop_db().await; } )* }
    };
}

on_both!(
    events_commit_with_their_change_or_not_at_all,
    sequences_cursors_pages_and_readers,
    a_reader_tailing_the_log_misses_nothing_while_writers_race,
    deliveries_are_claimed_in_order_and_accounted,
    email_deliveries_fan_out_claim_and_record,
);

#[tokio::test]
async fn the_old_storage_reminders_become_events_on_upgrade_sqlite() {
    let db = TestDb::sqlite().await;
    the_old_storage_reminders_become_events_on_upgrade(&db.url).await;
    db.drop_db().await;
}

#[tokio::test]
async fn the_old_storage_reminders_become_events_on_upgrade_postgres() {
    let db = TestDb::postgres().await;
    the_old_storage_reminders_become_events_on_upgrade(&db.url).await;
    db.drop_db().await;
}

/// A database at migration 13 with two storage reminders in `notifications`, then upgraded:
/// the reminders are the customer's first `storage.reminder` events (their text kept), their
/// keys still deduplicate, and the table is gone.
async fn the_old_storage_reminders_become_events_on_upgrade(url: &str) {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let dir = if sqlite {
        "migrations/sqlite"
    } else {
        "migrations/postgres"
    };
    let full =
        sqlx::migrate::Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .await
            .unwrap();
    let mut before = sqlx::migrate::Migrator::DEFAULT;
    before.migrations = full
        .migrations
        .iter()
        .filter(|m| m.version < 14)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let pool_url = if sqlite {
        format!("{url}?mode=rwc")
    } else {
        url.to_owned()
    };
    let pool = sqlx::AnyPool::connect(&pool_url).await.unwrap();
    before.run(&pool).await.unwrap();
    for (id, at, body) in [
        (
            "storage-cust-old-20000-aa",
            2_000,
            "Free storage ends soon for 1 item(s): order ord_1",
        ),
        (
            "storage-cust-old-20001-bb",
            3_000,
            "Free storage ends soon for 2 item(s): order ord_1; order ord_2",
        ),
    ] {
        sqlx::query("INSERT INTO notifications (id, customer_id, kind, body, created_at_ms) VALUES ($1, 'cust-old', 'storage_reminder', $2, $3)")
            .bind(id)
            .bind(body)
            .bind(at as i64)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let store = Store::connect(url).await.unwrap();
    let events = store.subject_events("customer:cust-old").await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[0].seq, events[1].seq), (1, 2));
    assert!(events.iter().all(|e| e.kind == EventType::StorageReminder));
    assert_eq!(events[1].occurred_at_ms, 3_000);
    assert_eq!(
        events[1].data["legacy_message"],
        "Free storage ends soon for 2 item(s): order ord_1; order ord_2"
    );
    let reminder: procure_domain::events::StorageReminder =
        serde_json::from_value(events[0].data.clone()).unwrap();
    assert!(reminder.orders.is_empty());
    let again = procure_domain::events::StorageReminder {
        customer_id: "cust-old".into(),
        orders: vec![],
        first_deadline_ms: 0,
        legacy_message: None,
    };
    assert!(
        !store
            .storage_reminder_once("storage-cust-old-20001-bb", &again)
            .await
            .unwrap(),
        "a reminder sent before the upgrade is not sent again"
    );
    assert!(
        store
            .storage_reminder_once("storage-cust-old-20002-cc", &again)
            .await
            .unwrap()
    );
    let gone = sqlx::query("SELECT COUNT(*) FROM notifications")
        .fetch_one(store.pool())
        .await;
    assert!(gone.is_err(), "the notifications table is gone");
    store.close().await;
}
