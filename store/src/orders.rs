//! Orders: quotes, order acceptance (exactly once per idempotency key, with its stock
//! reservations and the outbox row that starts its workflow in one transaction), the read-model
//! the workflow's transitions write, and what the workflow records along the way (payments'
//! intents, purchases, shipments).
//!
//! Invariants kept here, not in callers: a reservation is one conditional `UPDATE … WHERE
//! available >= n` per line, idempotent per (order, line); an accepted order, its reservations,
//! its idempotency key and its outbox row commit in one transaction.

use crate::{
    db::{Result, Store, StoreError, corrupt, json, money, parse, placeholders},
    events::{NewEvent, append},
    outbox::{OutboxMessage, enqueue_traced},
};
use procure_domain::{
    Currency, FxRate, Money, OrderState,
    clock::now_ms,
    events,
    money::{RATE_SCALE, parse_rate_e6},
    order::{OrderLine, TimelineEvent},
    status::PurchaserTaskStatus,
};
use procure_workflows::contract::{OrderPlan, ReserveOutcome, TransitionRecord};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredQuote {
    pub id: String,
    /// The full quote document as the API returned it.
    pub body: serde_json::Value,
    pub total: Money,
    pub expires_at_ms: i64,
}

impl StoredQuote {
    /// The exchange rate this quote locked (CNY → `to`), as the quote states it.
    pub fn rate(&self, to: Currency) -> Result<FxRate, String> {
        quoted_rate(&self.body, to)
    }
}

/// The exchange rate a quote document locked (CNY → the order's currency), as it states it.
pub fn quoted_rate(quote: &serde_json::Value, to: Currency) -> Result<FxRate, String> {
    let rate = quote["fx"]["rate"]
        .as_str()
        .ok_or("the quote records no exchange rate")?;
    let num = parse_rate_e6(rate).map_err(|e| format!("the quote's rate {rate:?}: {e}"))?;
    Ok(FxRate {
        from: Currency::CNY,
        to,
        num,
        den: RATE_SCALE,
    })
}

/// An order as accepted by the API. The address is personal data: it stays in the store and is
/// never put into workflow payloads or logs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewOrder {
    pub id: String,
    pub customer_id: String,
    pub quote_id: String,
    pub total: Money,
    pub lines: Vec<OrderLine>,
    pub shipping_address: serde_json::Value,
    pub destination_country: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct OrderRecord {
    pub id: String,
    pub customer_id: String,
    pub quote_id: String,
    pub state: OrderState,
    pub total: Money,
    pub lines: Vec<OrderLine>,
    pub destination_country: String,
    pub payment_intent_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What [`Store::record_payment_intent`] did (for each order of [`Store::record_payment_intents`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentRecord {
    /// The intent is now the order's.
    Recorded,
    /// The order already holds this intent (the same one, when both paths used the order's
    /// charge key).
    Held(String),
    /// The order's payment was closed: the intent must be cancelled at the provider.
    Closed,
}

/// One intent for [`Store::record_payment_intents`].
#[derive(Clone, Copy, Debug)]
pub struct IntentToRecord<'a> {
    pub order_id: &'a str,
    pub intent_id: &'a str,
    pub amount: Money,
}

#[derive(Debug)]
pub struct CreatedOrder {
    pub order: OrderRecord,
    /// False when the idempotency key matched an earlier identical request.
    pub created: bool,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    customer_id: String,
    quote_id: String,
    state: String,
    total_minor: i64,
    currency: String,
    lines: String,
    destination_country: String,
    payment_intent_id: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;

    fn try_from(r: OrderRow) -> Result<OrderRecord> {
        Ok(OrderRecord {
            state: parse(&r.state)?,
            total: money(r.total_minor, &r.currency)?,
            lines: json(&r.lines)?,
            id: r.id,
            customer_id: r.customer_id,
            quote_id: r.quote_id,
            destination_country: r.destination_country,
            payment_intent_id: r.payment_intent_id,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct QuoteRow {
    id: String,
    body: String,
    total_minor: i64,
    currency: String,
    expires_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    at_ms: i64,
    state: String,
    reason: String,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: String,
    order_id: String,
}

const ORDER_SELECT: &str = "SELECT id, customer_id, quote_id, state, total_minor, currency, lines, destination_country, \
     payment_intent_id, created_at_ms, updated_at_ms FROM orders";

impl Store {
    // ----- quotes ------------------------------------------------------------------------

    pub async fn insert_quote(&self, q: &StoredQuote) -> Result<()> {
        sqlx::query(
            "INSERT INTO quotes (id, body, total_minor, currency, expires_at_ms, created_at_ms) VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(&q.id)
        .bind(q.body.to_string())
        .bind(q.total.minor)
        .bind(q.total.currency.code())
        .bind(q.expires_at_ms)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn quote(&self, id: &str) -> Result<StoredQuote> {
        let r: QuoteRow = sqlx::query_as(
            "SELECT id, body, total_minor, currency, expires_at_ms FROM quotes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(StoredQuote {
            body: json(&r.body)?,
            total: money(r.total_minor, &r.currency)?,
            id: r.id,
            expires_at_ms: r.expires_at_ms,
        })
    }

    // ----- orders ------------------------------------------------------------------------

    /// Accept an order exactly once per idempotency key: the order row, its reservations, the key
    /// and the outbox row that will start its workflow commit together or not at all.
    pub async fn create_order(
        &self,
        order: &NewOrder,
        idempotency_key: &str,
        request_hash: &str,
    ) -> Result<CreatedOrder> {
        self.create_order_traced(order, idempotency_key, request_hash, None)
            .await
    }

    /// As [`Store::create_order`], the outbox row carrying the W3C `traceparent` of the request
    /// (when it is traced), so the order's workflow starts in the request's trace.
    pub async fn create_order_traced(
        &self,
        order: &NewOrder,
        idempotency_key: &str,
        request_hash: &str,
        trace_parent: Option<&str>,
    ) -> Result<CreatedOrder> {
        let mut tx = self.pool().begin().await?;
        match accept_in(
            &mut tx,
            order,
            idempotency_key,
            request_hash,
            trace_parent,
            now_ms(),
        )
        .await
        {
            Ok(created) => {
                // A replay wrote nothing; its transaction only read.
                if created.created {
                    append(&mut tx, self.backend(), &[accepted_event(order)]).await?;
                }
                tx.commit().await?;
                Ok(created)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }

    /// Accept many orders in one transaction (group commit): each order is its own savepoint,
    /// so each still commits atomically with its key, reservations and outbox row, or leaves
    /// nothing behind, and each gets its own answer, exactly as [`Store::create_order_traced`]
    /// would give it. One commit for the batch is what makes a single writer fast on SQLite.
    ///
    /// The outer error means the batch did not commit (nothing of it is stored); an inner one
    /// is that order's own refusal or failure. Orders later in the batch see the earlier ones:
    /// a key repeated within the batch is a replay of its first order. Keep batches to at most
    /// 64 orders: PostgreSQL keeps that many subtransactions per transaction in memory.
    pub async fn create_orders(
        &self,
        batch: &[OrderToAccept],
    ) -> Result<Vec<Result<CreatedOrder>>> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let mut answers = Vec::with_capacity(batch.len());
        let mut accepted = Vec::new();
        for o in batch {
            let mut sp = sqlx::Acquire::begin(&mut tx).await?;
            let answer = accept_in(
                &mut sp,
                &o.order,
                &o.idempotency_key,
                &o.request_hash,
                o.trace_parent.as_deref(),
                now,
            )
            .await;
            match &answer {
                Ok(created) => {
                    sp.commit().await?;
                    if created.created {
                        accepted.push(accepted_event(&o.order));
                    }
                }
                Err(_) => sp.rollback().await?,
            }
            answers.push(answer);
        }
        // Last, after every order's savepoint: the log's lock is held only for the commit.
        append(&mut tx, self.backend(), &accepted).await?;
        tx.commit().await?;
        Ok(answers)
    }

    /// Look up an earlier request under this idempotency key without creating anything.
    pub async fn create_order_replay_only(
        &self,
        idempotency_key: &str,
        request_hash: &str,
    ) -> Result<Option<OrderRecord>> {
        let key: Option<KeyRow> =
            sqlx::query_as("SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1")
                .bind(idempotency_key)
                .fetch_optional(self.pool())
                .await?;
        let Some(key) = key else { return Ok(None) };
        if key.request_hash != request_hash {
            return Err(StoreError::IdempotencyConflict);
        }
        Ok(Some(self.order(&key.order_id).await?))
    }

    pub async fn order(&self, id: &str) -> Result<OrderRecord> {
        let row: OrderRow = sqlx::query_as(&format!("{ORDER_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// The orders among `ids` that exist, in no particular order (one query per 500 ids).
    pub async fn orders_by_id(&self, ids: &[&str]) -> Result<Vec<OrderRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = placeholders(1, chunk.len());
            let sql = format!("{ORDER_SELECT} WHERE id IN ({list})");
            let mut q = sqlx::query_as::<_, OrderRow>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(self.pool()).await? {
                out.push(row.try_into()?);
            }
        }
        Ok(out)
    }

    /// The order's timeline as the workflow recorded it, oldest first.
    pub async fn timeline(&self, id: &str) -> Result<Vec<TimelineEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT at_ms, state, reason FROM order_events WHERE order_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TimelineEvent {
                    at_ms: r.at_ms,
                    state: parse(&r.state)?,
                    reason: r.reason,
                })
            })
            .collect()
    }

    /// Orders, newest first, optionally filtered by state and customer; `before_ms` pages.
    pub async fn list_orders(
        &self,
        state_filter: Option<OrderState>,
        customer: Option<&str>,
        limit: i64,
        before_ms: Option<i64>,
    ) -> Result<Vec<OrderRecord>> {
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "{ORDER_SELECT} WHERE ($1 = '' OR state = $1) AND ($2 = '' OR customer_id = $2) AND created_at_ms < $3 \
             ORDER BY created_at_ms DESC, id DESC LIMIT $4"
        ))
        .bind(state_filter.map(|s| s.as_str()).unwrap_or(""))
        .bind(customer.unwrap_or(""))
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(OrderRecord::try_from).collect()
    }

    pub async fn count_by_state(&self) -> Result<Vec<(OrderState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) AS n FROM orders GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|(state, n)| Ok((parse(&state)?, n)))
            .collect()
    }

    /// The workflow's view of an order: lines and total, no personal data.
    pub async fn plan(&self, order_id: &str) -> Result<OrderPlan> {
        let o = self.order(order_id).await?;
        Ok(OrderPlan {
            order_id: o.id,
            lines: o.lines,
            total: o.total,
        })
    }

    /// Idempotent read-model write of one workflow transition: the event is keyed by its
    /// timeline position, and the order's state only moves forward in that sequence.
    pub async fn record_transition(&self, t: &TransitionRecord) -> Result<()> {
        self.record_transitions(std::slice::from_ref(t)).await
    }

    /// As [`Store::record_transition`] for several, in one transaction. A transition the
    /// catalogue tells the storefront about (paid, storage expiring, ended, needs an operator)
    /// appends its event in the same transaction, once per timeline position.
    pub async fn record_transitions(&self, ts: &[TransitionRecord]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let mut events = Vec::new();
        for t in ts {
            let new = sqlx::query(
                "INSERT INTO order_events (order_id, seq, at_ms, from_state, state, reason) VALUES ($1,$2,$3,$4,$5,$6) \
                 ON CONFLICT (order_id, seq) DO NOTHING",
            )
            .bind(&t.order_id)
            .bind(i64::from(t.seq))
            .bind(t.at_ms)
            .bind(t.from.as_str())
            .bind(t.to.as_str())
            .bind(&t.reason)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE orders SET state = $1, state_seq = $2, updated_at_ms = $3 WHERE id = $4 AND state_seq < $2")
                .bind(t.to.as_str())
                .bind(i64::from(t.seq))
                .bind(now_ms())
                .bind(&t.order_id)
                .execute(&mut *tx)
                .await?;
            if new == 1
                && let Some(e) = transition_event(&mut tx, t).await?
            {
                events.push(e.dedupe(format!("order:{}:t{}", t.order_id, t.seq)));
            }
        }
        append(&mut tx, self.backend(), &events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Shipping address of an order, for the carrier booking only.
    pub async fn shipping_address(&self, order_id: &str) -> Result<(serde_json::Value, String)> {
        let (raw, country): (String, String) = sqlx::query_as(
            "SELECT shipping_address, destination_country FROM orders WHERE id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok((json(&raw)?, country))
    }

    // ----- stock -------------------------------------------------------------------------

    /// Make sure every line of the order holds its reservation (no-op for lines already held).
    pub async fn ensure_reserved(&self, order_id: &str) -> Result<ReserveOutcome> {
        let order = self.order(order_id).await?;
        let mut tx = self.pool().begin().await?;
        let outcome = reserve_lines(&mut tx, order_id, &order.lines).await?;
        match outcome {
            ReserveOutcome::Reserved => tx.commit().await?,
            ReserveOutcome::Insufficient { .. } => tx.rollback().await?,
        }
        Ok(outcome)
    }

    /// Return the order's held stock; idempotent (a released reservation is never released twice).
    pub async fn release_reservations(&self, order_id: &str) -> Result<u32> {
        let mut tx = self.pool().begin().await?;
        let released: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE reservations SET released_at_ms = $1 WHERE order_id = $2 AND released_at_ms IS NULL \
             RETURNING sku, quantity",
        )
        .bind(now_ms())
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        for (sku, quantity) in &released {
            sqlx::query("UPDATE listings SET available = available + $1 WHERE sku = $2")
                .bind(quantity)
                .bind(sku)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released.len() as u32)
    }

    /// (held, released) reservation units of an order.
    pub async fn reservation_units(&self, order_id: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN released_at_ms IS NULL THEN quantity ELSE 0 END), 0) AS BIGINT) AS held, \
             CAST(COALESCE(SUM(CASE WHEN released_at_ms IS NULL THEN 0 ELSE quantity END), 0) AS BIGINT) AS released \
             FROM reservations WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_one(self.pool())
        .await?)
    }

    // ----- the order's payment, purchases and shipment ------------------------------------

    /// The purchase of `line_no` of `order_id`, if it was bought.
    pub async fn line_purchase(
        &self,
        order_id: &str,
        line_no: u32,
    ) -> Result<Option<LinePurchase>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            platform: String,
            marketplace_order_id: String,
            paid_fen: i64,
            assisted: i64,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT p.platform, p.marketplace_order_id, p.paid_fen, \
             (SELECT COUNT(*) FROM purchaser_tasks t WHERE t.order_id = p.order_id AND t.line_no = p.line_no \
              AND t.status = $3 AND t.marketplace_order_id = p.marketplace_order_id) AS assisted \
             FROM purchases p WHERE p.order_id = $1 AND p.line_no = $2",
        )
        .bind(order_id)
        .bind(i64::from(line_no))
        .bind(PurchaserTaskStatus::Completed.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| LinePurchase {
            platform: r.platform,
            marketplace_order_id: r.marketplace_order_id,
            paid_fen: r.paid_fen,
            assisted: r.assisted > 0,
        }))
    }

    /// Record the order's payment intent, unless the order already holds one or its payment
    /// was closed ([`Store::close_payment`]). Both write the order's row, so whichever comes
    /// second sees the first: an intent created after the order stopped wanting the money is
    /// never recorded (the caller cancels it at the provider).
    pub async fn record_payment_intent(
        &self,
        order_id: &str,
        intent_id: &str,
        amount: Money,
    ) -> Result<IntentRecord> {
        let mut recorded = self
            .record_payment_intents(&[IntentToRecord {
                order_id,
                intent_id,
                amount,
            }])
            .await?;
        recorded.pop().ok_or(StoreError::NotFound)
    }

    /// [`Store::record_payment_intent`] for many orders in one transaction (the payments
    /// lane's pass): each order's outcome in the order given, with the same rule for each. An
    /// order that does not exist fails the whole batch with `NotFound`, writing nothing.
    pub async fn record_payment_intents(
        &self,
        intents: &[IntentToRecord<'_>],
    ) -> Result<Vec<IntentRecord>> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(intents.len());
        let mut payable = Vec::new();
        for intent in intents {
            let claimed: Option<(String,)> = sqlx::query_as(
                "UPDATE orders SET payment_intent_id = $1, updated_at_ms = $2 \
                 WHERE id = $3 AND payment_intent_id IS NULL AND payment_closed_at_ms IS NULL \
                 RETURNING customer_id",
            )
            .bind(intent.intent_id)
            .bind(now)
            .bind(intent.order_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((customer_id,)) = claimed else {
                let (held,): (Option<String>,) =
                    sqlx::query_as("SELECT payment_intent_id FROM orders WHERE id = $1")
                        .bind(intent.order_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                outcomes.push(match held {
                    Some(held) => IntentRecord::Held(held),
                    None => IntentRecord::Closed,
                });
                continue;
            };
            sqlx::query(
                "INSERT INTO payments (order_id, intent_id, amount_minor, currency, status, updated_at_ms, created_at_ms) \
                 VALUES ($1,$2,$3,$4,'requires_payment_method',$5,$5) ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(intent.order_id)
            .bind(intent.intent_id)
            .bind(intent.amount.minor)
            .bind(intent.amount.currency.code())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let data = events::OrderPayable {
                order_id: intent.order_id.to_owned(),
                payment_intent_id: intent.intent_id.to_owned(),
                amount: intent.amount,
            };
            payable.push(
                NewEvent::order(intent.order_id, &customer_id, &data)
                    .dedupe(format!("order:{}:payable", intent.order_id)),
            );
            outcomes.push(IntentRecord::Recorded);
        }
        // Last: the log's lock is held only for the commit.
        append(&mut tx, self.backend(), &payable).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Close the order's payment: no intent is recorded for it from now on. Answers the intent
    /// it holds, if any (which the caller cancels or refunds).
    pub async fn close_payment(&self, order_id: &str) -> Result<Option<String>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE orders SET payment_closed_at_ms = COALESCE(payment_closed_at_ms, $1) WHERE id = $2",
        )
        .bind(now_ms())
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        let held: Option<(Option<String>,)> =
            sqlx::query_as("SELECT payment_intent_id FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(held.and_then(|(id,)| id))
    }

    /// The order's payment intent: (intent id, amount, provider status).
    pub async fn payment_intent(&self, order_id: &str) -> Result<Option<(String, Money, String)>> {
        let row: Option<(String, i64, String, String)> = sqlx::query_as(
            "SELECT intent_id, amount_minor, currency, status FROM payments WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|(intent, minor, currency, status)| Ok((intent, money(minor, &currency)?, status)))
            .transpose()
    }

    pub async fn order_for_intent(&self, intent_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT order_id FROM payments WHERE intent_id = $1")
                .bind(intent_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Record the provider's status of an order's intent (and what was refunded, if anything).
    pub async fn set_payment_status(
        &self,
        intent_id: &str,
        status: &str,
        refunded_minor: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE payments SET status = $1, refunded_minor = COALESCE($2, refunded_minor), updated_at_ms = $3 WHERE intent_id = $4",
        )
        .bind(status)
        .bind(refunded_minor)
        .bind(now_ms())
        .bind(intent_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Record one line's purchase, once; its `order.purchased` event commits with it.
    pub async fn record_purchase(
        &self,
        order_id: &str,
        line_no: u32,
        platform: &str,
        marketplace_order_id: &str,
        paid_fen: i64,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let new = sqlx::query(
            "INSERT INTO purchases (order_id, line_no, platform, marketplace_order_id, paid_fen, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (order_id, line_no) DO NOTHING",
        )
        .bind(order_id)
        .bind(i64::from(line_no))
        .bind(platform)
        .bind(marketplace_order_id)
        .bind(paid_fen)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if new == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let order = order_in(&mut tx, order_id).await?;
        let (bought,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM purchases WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await?;
        let line = order.lines.iter().find(|l| l.line_no == line_no);
        let purchased = events::OrderPurchased {
            order_id: order_id.to_owned(),
            line_no,
            sku: line.map(|l| l.sku.clone()).unwrap_or_default(),
            quantity: line.map_or(0, |l| l.quantity),
            platform: platform.to_owned(),
            lines_purchased: u32::try_from(bought).unwrap_or(u32::MAX),
            lines_total: u32::try_from(order.lines.len()).unwrap_or(u32::MAX),
        };
        let event = NewEvent::order(order_id, &order.customer_id, &purchased)
            .dedupe(format!("order:{order_id}:purchased:L{line_no}"));
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_shipment(
        &self,
        order_id: &str,
        carrier: &str,
        tracking_number: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO shipments (order_id, carrier, tracking_number, created_at_ms) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(carrier)
        .bind(tracking_number)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn tracking_number(&self, order_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT tracking_number FROM shipments WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(t,)| t))
    }
}

/// One order for [`Store::create_orders`]: what [`Store::create_order_traced`] takes.
#[derive(Clone, Debug)]
pub struct OrderToAccept {
    pub order: NewOrder,
    pub idempotency_key: String,
    pub request_hash: String,
    /// The request's W3C `traceparent`, when it was traced.
    pub trace_parent: Option<String>,
}

/// One order's part of an accept transaction: claim the key, insert the order, reserve its
/// lines, queue its workflow's start. An error (a key reused with another request, stock that
/// is short, a database error) may leave writes behind in `tx`: the caller rolls `tx` back. A
/// replay writes nothing and reads the earlier order.
async fn accept_in(
    tx: &mut Transaction<'_, Any>,
    order: &NewOrder,
    idempotency_key: &str,
    request_hash: &str,
    trace_parent: Option<&str>,
    now: i64,
) -> Result<CreatedOrder> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (key, request_hash, order_id, created_at_ms) VALUES ($1,$2,$3,$4) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(idempotency_key)
    .bind(request_hash)
    .bind(&order.id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        let key: KeyRow =
            sqlx::query_as("SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1")
                .bind(idempotency_key)
                .fetch_one(&mut **tx)
                .await?;
        if key.request_hash != request_hash {
            return Err(StoreError::IdempotencyConflict);
        }
        let row: OrderRow = sqlx::query_as(&format!("{ORDER_SELECT} WHERE id = $1"))
            .bind(&key.order_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Ok(CreatedOrder {
            order: row.try_into()?,
            created: false,
        });
    }
    let lines = serde_json::to_string(&order.lines).map_err(corrupt)?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, quote_id, state, total_minor, currency, lines, shipping_address, \
         destination_country, created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)",
    )
    .bind(&order.id)
    .bind(&order.customer_id)
    .bind(&order.quote_id)
    .bind(OrderState::Created.as_str())
    .bind(order.total.minor)
    .bind(order.total.currency.code())
    .bind(lines)
    .bind(order.shipping_address.to_string())
    .bind(&order.destination_country)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if let ReserveOutcome::Insufficient {
        sku,
        requested,
        available,
    } = reserve_lines(tx, &order.id, &order.lines).await?
    {
        return Err(StoreError::OutOfStock {
            sku,
            requested,
            available,
        });
    }
    // The intent first: it does not wait for the engine (its own dispatcher lane).
    enqueue_traced(
        tx,
        &order.id,
        &OutboxMessage::CreatePayment {},
        trace_parent,
    )
    .await?;
    enqueue_traced(tx, &order.id, &OutboxMessage::StartOrder {}, trace_parent).await?;
    // The row as just written: no need to read it back.
    Ok(CreatedOrder {
        order: OrderRecord {
            id: order.id.clone(),
            customer_id: order.customer_id.clone(),
            quote_id: order.quote_id.clone(),
            state: OrderState::Created,
            total: order.total,
            lines: order.lines.clone(),
            destination_country: order.destination_country.clone(),
            payment_intent_id: None,
            created_at_ms: now,
            updated_at_ms: now,
        },
        created: true,
    })
}

/// Reserve each line once: the reservation row is the idempotency marker, and stock moves by
/// one conditional update that can never take `available` below zero.
async fn reserve_lines(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    lines: &[OrderLine],
) -> Result<ReserveOutcome> {
    let now = now_ms();
    for line in lines {
        let inserted = sqlx::query(
            "INSERT INTO reservations (order_id, line_no, sku, quantity, created_at_ms) VALUES ($1,$2,$3,$4,$5) \
             ON CONFLICT (order_id, line_no) DO NOTHING",
        )
        .bind(order_id)
        .bind(i64::from(line.line_no))
        .bind(&line.sku)
        .bind(i64::from(line.quantity))
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        let taken = sqlx::query(
            "UPDATE listings SET available = available - $1 WHERE sku = $2 AND available >= $1",
        )
        .bind(i64::from(line.quantity))
        .bind(&line.sku)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if taken == 0 {
            let (available,): (i64,) =
                sqlx::query_as("SELECT available FROM listings WHERE sku = $1")
                    .bind(&line.sku)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::UnknownSku(line.sku.clone()))?;
            return Ok(ReserveOutcome::Insufficient {
                sku: line.sku.clone(),
                requested: line.quantity,
                available,
            });
        }
    }
    Ok(ReserveOutcome::Reserved)
}

/// One line's purchase as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinePurchase {
    pub platform: String,
    pub marketplace_order_id: String,
    pub paid_fen: i64,
    /// Bought by a purchaser by hand (a completed purchaser task), not through a buyer API.
    pub assisted: bool,
}

/// The order's row, read inside a transaction.
pub(crate) async fn order_in(tx: &mut Transaction<'_, Any>, order_id: &str) -> Result<OrderRecord> {
    let row: OrderRow = sqlx::query_as(&format!("{ORDER_SELECT} WHERE id = $1"))
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// The order's lines as the catalogue lists them.
pub(crate) fn items(lines: &[OrderLine]) -> Vec<events::Item> {
    lines
        .iter()
        .map(|l| events::Item {
            line_no: l.line_no,
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect()
}

/// The `order.accepted` event of a newly accepted order.
fn accepted_event(o: &NewOrder) -> NewEvent {
    let accepted = events::OrderAccepted {
        order_id: o.id.clone(),
        quote_id: o.quote_id.clone(),
        total: o.total,
        items: items(&o.lines),
    };
    NewEvent::order(&o.id, &o.customer_id, &accepted).dedupe(format!("order:{}:accepted", o.id))
}

/// The grace period a "free storage ended" transition states (`… within 2592000 s, …`).
fn stated_grace_ms(reason: &str) -> Option<i64> {
    let rest = &reason[reason.find("within ")? + "within ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..]
        .starts_with(" s")
        .then(|| digits.parse::<i64>().ok())
        .flatten()
        .map(|s| s.saturating_mul(1000))
}

/// What everything refunded on an order adds up to: the `refund.issued` events of the order,
/// in its currency.
async fn refunded_in(tx: &mut Transaction<'_, Any>, order: &OrderRecord) -> Result<Money> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT data FROM events WHERE order_id = $1 AND type = $2 ORDER BY id")
            .bind(&order.id)
            .bind(events::EventType::RefundIssued.as_str())
            .fetch_all(&mut **tx)
            .await?;
    let mut total = Money::zero(order.total.currency);
    for (data,) in rows {
        let refund: events::RefundIssued = json(&data)?;
        if refund.amount.currency == total.currency {
            total = total.checked_add(refund.amount).map_err(corrupt)?;
        }
    }
    Ok(total)
}

/// The catalogue event a transition causes, if any.
async fn transition_event(
    tx: &mut Transaction<'_, Any>,
    t: &TransitionRecord,
) -> Result<Option<NewEvent>> {
    use OrderState::*;
    let wanted = matches!(
        (t.from, t.to),
        (
            _,
            Paid | Completed
                | Cancelled
                | Refunded
                | PaymentExpired
                | Failed
                | Disposed
                | NeedsOperator
        ) | (InWarehouse, AwaitingCustomer)
    );
    if !wanted {
        return Ok(None);
    }
    let Ok(order) = order_in(tx, &t.order_id).await else {
        // A transition of an order the read model does not hold (a test's, a bench's).
        return Ok(None);
    };
    let (id, customer) = (order.id.as_str(), order.customer_id.as_str());
    let event = match t.to {
        Paid => NewEvent::order(
            id,
            customer,
            &events::OrderPaid {
                order_id: id.to_owned(),
                payment_intent_id: order.payment_intent_id.clone(),
                amount: order.total,
            },
        ),
        AwaitingCustomer => {
            let until: Option<(i64,)> =
                sqlx::query_as("SELECT stored_until_ms FROM warehouse_items WHERE order_id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
            let ended = until.map(|(u,)| u);
            NewEvent::order(
                id,
                customer,
                &events::StorageExpiring {
                    order_id: id.to_owned(),
                    items: items(&order.lines),
                    free_storage_ended_at_ms: ended,
                    dispose_after_ms: ended
                        .zip(stated_grace_ms(&t.reason))
                        .map(|(u, g)| u.saturating_add(g)),
                },
            )
        }
        Completed => NewEvent::order(
            id,
            customer,
            &events::OrderCompleted {
                order_id: id.to_owned(),
                reason: t.reason.clone(),
            },
        ),
        Disposed => NewEvent::order(
            id,
            customer,
            &events::OrderDisposed {
                order_id: id.to_owned(),
                reason: t.reason.clone(),
                items: items(&order.lines),
            },
        ),
        NeedsOperator => NewEvent::order(
            id,
            customer,
            &events::OrderNeedsOperator {
                order_id: id.to_owned(),
                reason: t.reason.clone(),
            },
        ),
        state => NewEvent::order(
            id,
            customer,
            &events::OrderCancelled {
                order_id: id.to_owned(),
                state,
                reason: t.reason.clone(),
                items: items(&order.lines),
                total: order.total,
                refunded: refunded_in(tx, &order).await?,
            },
        ),
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_grace_period_is_read_from_the_workflows_reason() {
        let r = "free storage ended: ship in a parcel, extend storage or dispose within 2592000 s, \
                 else the goods are disposed";
        assert_eq!(super::stated_grace_ms(r), Some(2_592_000_000));
        assert_eq!(
            super::stated_grace_ms("storage extended by 30 day(s)"),
            None
        );
        assert_eq!(super::stated_grace_ms("within 5 days"), None);
    }
}
