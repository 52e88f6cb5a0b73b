//! The application store (sqlx): SQLite file by default, PostgreSQL when the URL says so. One
//! `AnyPool` serves both; the SQL is the common dialect of the two (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`), and each backend has its own migration folder.
//!
//! Invariants kept here, not in callers: a reservation is one conditional `UPDATE … WHERE
//! available >= n` per line, idempotent per (order, line); an accepted order, its reservations,
//! its idempotency key and its outbox row commit in one transaction.

use procure_domain::{
    Currency, Money, OrderState,
    order::{OrderLine, TimelineEvent},
};
use procure_workflows::contract::{OrderPlan, ReserveOutcome, TransitionRecord};
use serde::{Deserialize, Serialize};
use sqlx::{
    Any, AnyPool, Row, Transaction,
    any::{AnyPoolOptions, AnyRow},
};
use std::{str::FromStr, time::Duration};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    #[error("insufficient stock for {sku}: requested {requested}, available {available}")]
    OutOfStock {
        sku: String,
        requested: u32,
        available: i64,
    },
    #[error("{0}")]
    StateConflict(String),
    #[error("unknown sku {0}")]
    UnknownSku(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub sku: String,
    pub platform: String,
    pub offer_id: String,
    pub spec_id: String,
    pub title: String,
    pub price_fen: i64,
    pub weight_g: i64,
    pub l_mm: i64,
    pub w_mm: i64,
    pub h_mm: i64,
    pub domestic_shipping_fen: i64,
    pub available: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredQuote {
    pub id: String,
    /// The full quote document as the API returned it.
    pub body: serde_json::Value,
    pub total: Money,
    pub expires_at_ms: i64,
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

#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderRecord,
    pub timeline: Vec<TimelineEvent>,
    /// Supplier price rises beyond the tolerance, with the supplement each asks of the customer.
    pub price_changes: Vec<crate::supplements::PriceChange>,
    /// The goods in the warehouse, once scanned in.
    pub warehouse: Option<crate::warehouse::WarehouseItem>,
    /// Charges beyond the total (storage extensions).
    pub charges: Vec<crate::warehouse::Charge>,
}

#[derive(Debug)]
pub struct CreatedOrder {
    pub order: OrderRecord,
    /// False when the idempotency key matched an earlier identical request.
    pub created: bool,
}

/// Work the dispatcher must hand to Temporal (start a workflow, deliver a signal).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub order_id: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
}

/// An outbox row that will not be delivered without an operator: a permanent failure, or
/// transient failures past the attempt bound. Carries no payload (personal data and payment
/// details stay in the store); a signal is named, not shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    pub kind: String,
    /// The order, parcel or price monitor the work is for.
    pub subject_id: String,
    /// The signal's name, for signals.
    pub signal: Option<String>,
    pub attempts: i64,
    pub last_error: String,
    pub created_at_ms: i64,
    pub dead_at_ms: i64,
    /// Given up by an operator (such rows leave the list).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub discarded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connect and migrate. `sqlite://path/to/file.db` (created when missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        let max = if url.starts_with("sqlite:") { 8 } else { 16 };
        Store::connect_with(url, max, Duration::from_secs(30)).await
    }

    /// As [`Store::connect`], with at most `max_connections` pooled connections, each caller
    /// waiting at most `acquire_timeout` for one.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Corrupt(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the single writer; the busy timeout
                            // makes concurrent writers queue instead of failing.
                            sqlx::query("PRAGMA journal_mode=WAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous=NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout=10000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys=ON")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .acquire_timeout(acquire_timeout)
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect(url)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- catalogue ---------------------------------------------------------------------

    /// Write a listing with exactly the stock given, overwriting what is there: for setting
    /// stock on purpose (tests, a restock). Seeding uses [`Store::seed_listing`], which never
    /// touches stock.
    pub async fn upsert_listing(&self, l: &Listing) -> Result<()> {
        self.write_listing(l, true).await
    }

    /// Seed a listing from a catalogue: inserted with its stock when new; when it exists, its
    /// offer, title, price and measures refresh and its stock stays as it is. Units held by
    /// reservations were taken out of `available` when they were reserved, so writing the
    /// catalogue's figure again on a restart would sell them twice.
    pub async fn seed_listing(&self, l: &Listing) -> Result<()> {
        self.write_listing(l, false).await
    }

    /// Insert or refresh a listing; `set_stock` also overwrites `available` on an existing one.
    async fn write_listing(&self, l: &Listing, set_stock: bool) -> Result<()> {
        let stock = if set_stock {
            "available = excluded.available, "
        } else {
            ""
        };
        sqlx::query(&format!(
            "INSERT INTO listings (sku, platform, offer_id, spec_id, title, price_fen, weight_g, l_mm, w_mm, h_mm, \
             domestic_shipping_fen, available, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
             ON CONFLICT (sku) DO UPDATE SET platform = excluded.platform, offer_id = excluded.offer_id, \
             spec_id = excluded.spec_id, title = excluded.title, price_fen = excluded.price_fen, \
             weight_g = excluded.weight_g, l_mm = excluded.l_mm, w_mm = excluded.w_mm, h_mm = excluded.h_mm, \
             domestic_shipping_fen = excluded.domestic_shipping_fen, {stock}updated_at_ms = excluded.updated_at_ms"
        ))
        .bind(&l.sku)
        .bind(&l.platform)
        .bind(&l.offer_id)
        .bind(&l.spec_id)
        .bind(&l.title)
        .bind(l.price_fen)
        .bind(l.weight_g)
        .bind(l.l_mm)
        .bind(l.w_mm)
        .bind(l.h_mm)
        .bind(l.domestic_shipping_fen)
        .bind(l.available)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn listing(&self, sku: &str) -> Result<Listing> {
        let row = sqlx::query(&format!("{LISTING_SELECT} WHERE sku = $1"))
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::UnknownSku(sku.to_owned()))?;
        listing_from_row(&row)
    }

    pub async fn listings(&self) -> Result<Vec<Listing>> {
        let rows = sqlx::query(&format!("{LISTING_SELECT} ORDER BY sku"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(listing_from_row).collect()
    }

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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn quote(&self, id: &str) -> Result<StoredQuote> {
        let row = sqlx::query(
            "SELECT id, body, total_minor, currency, expires_at_ms FROM quotes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let body: String = row.try_get("body")?;
        Ok(StoredQuote {
            id: row.try_get("id")?,
            body: serde_json::from_str(&body).map_err(corrupt)?,
            total: money(&row, "total_minor", "currency")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
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
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, order_id, created_at_ms) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(idempotency_key)
        .bind(request_hash)
        .bind(&order.id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            let row =
                sqlx::query("SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1")
                    .bind(idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            let hash: String = row.try_get("request_hash")?;
            if hash != request_hash {
                return Err(StoreError::IdempotencyConflict);
            }
            let existing: String = row.try_get("order_id")?;
            return Ok(CreatedOrder {
                order: self.order(&existing).await?,
                created: false,
            });
        }
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
        .bind(serde_json::to_string(&order.lines).map_err(corrupt)?)
        .bind(order.shipping_address.to_string())
        .bind(&order.destination_country)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let ReserveOutcome::Insufficient {
            sku,
            requested,
            available,
        } = reserve_lines(&mut tx, &order.id, &order.lines).await?
        {
            tx.rollback().await?;
            return Err(StoreError::OutOfStock {
                sku,
                requested,
                available,
            });
        }
        enqueue(&mut tx, "start", &order.id, &serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(CreatedOrder {
            order: self.order(&order.id).await?,
            created: true,
        })
    }

    /// Look up an earlier request under this idempotency key without creating anything.
    pub async fn create_order_replay_only(
        &self,
        idempotency_key: &str,
        request_hash: &str,
    ) -> Result<Option<OrderRecord>> {
        let row = sqlx::query("SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1")
            .bind(idempotency_key)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<String, _>("request_hash")? != request_hash {
            return Err(StoreError::IdempotencyConflict);
        }
        Ok(Some(
            self.order(&row.try_get::<String, _>("order_id")?).await?,
        ))
    }

    pub async fn order(&self, id: &str) -> Result<OrderRecord> {
        let row = sqlx::query(&format!("{ORDER_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        order_from_row(&row)
    }

    pub async fn order_detail(&self, id: &str) -> Result<OrderDetail> {
        let order = self.order(id).await?;
        let rows = sqlx::query(
            "SELECT at_ms, state, reason FROM order_events WHERE order_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let timeline = rows
            .iter()
            .map(|r| {
                Ok(TimelineEvent {
                    at_ms: r.try_get("at_ms")?,
                    state: state(r.try_get::<String, _>("state")?)?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let price_changes = self.price_changes(id).await?;
        let warehouse = match self.warehouse_item(id).await {
            Ok(i) => Some(i),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let charges = self
            .charges_of(&procure_workflows::order_workflow_id(id))
            .await?;
        Ok(OrderDetail {
            order,
            timeline,
            price_changes,
            warehouse,
            charges,
        })
    }

    /// Orders, newest first, optionally filtered by state and customer; `before_ms` pages.
    pub async fn list_orders(
        &self,
        state_filter: Option<OrderState>,
        customer: Option<&str>,
        limit: i64,
        before_ms: Option<i64>,
    ) -> Result<Vec<OrderRecord>> {
        let rows = sqlx::query(&format!(
            "{ORDER_SELECT} WHERE ($1 = '' OR state = $1) AND ($2 = '' OR customer_id = $2) AND created_at_ms < $3 \
             ORDER BY created_at_ms DESC, id DESC LIMIT $4"
        ))
        .bind(state_filter.map(|s| s.as_str()).unwrap_or(""))
        .bind(customer.unwrap_or(""))
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect()
    }

    pub async fn count_by_state(&self) -> Result<Vec<(OrderState, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM orders GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((state(r.try_get::<String, _>("state")?)?, r.try_get("n")?)))
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
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
        .await?;
        sqlx::query("UPDATE orders SET state = $1, state_seq = $2, updated_at_ms = $3 WHERE id = $4 AND state_seq < $2")
            .bind(t.to.as_str())
            .bind(i64::from(t.seq))
            .bind(now_ms())
            .bind(&t.order_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- stock -------------------------------------------------------------------------

    /// Make sure every line of the order holds its reservation (no-op for lines already held).
    pub async fn ensure_reserved(&self, order_id: &str) -> Result<ReserveOutcome> {
        let order = self.order(order_id).await?;
        let mut tx = self.pool.begin().await?;
        let outcome = reserve_lines(&mut tx, order_id, &order.lines).await?;
        match outcome {
            ReserveOutcome::Reserved => tx.commit().await?,
            ReserveOutcome::Insufficient { .. } => tx.rollback().await?,
        }
        Ok(outcome)
    }

    /// Return the order's held stock; idempotent (a released reservation is never released twice).
    pub async fn release_reservations(&self, order_id: &str) -> Result<u32> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE reservations SET released_at_ms = $1 WHERE order_id = $2 AND released_at_ms IS NULL \
             RETURNING sku, quantity",
        )
        .bind(now_ms())
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &released {
            sqlx::query("UPDATE listings SET available = available + $1 WHERE sku = $2")
                .bind(r.try_get::<i64, _>("quantity")?)
                .bind(r.try_get::<String, _>("sku")?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released.len() as u32)
    }

    /// (held, released) reservation units of an order.
    pub async fn reservation_units(&self, order_id: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN released_at_ms IS NULL THEN quantity ELSE 0 END), 0) AS BIGINT) AS held, \
             CAST(COALESCE(SUM(CASE WHEN released_at_ms IS NULL THEN 0 ELSE quantity END), 0) AS BIGINT) AS released \
             FROM reservations WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("held")?, row.try_get("released")?))
    }

    // ----- payments, purchases, shipments -----------------------------------------------

    pub async fn record_payment_intent(
        &self,
        order_id: &str,
        intent_id: &str,
        amount: Money,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO payments (order_id, intent_id, amount_minor, currency, status, updated_at_ms) \
             VALUES ($1,$2,$3,$4,'requires_payment_method',$5) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(intent_id)
        .bind(amount.minor)
        .bind(amount.currency.code())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE orders SET payment_intent_id = $1 WHERE id = $2")
            .bind(intent_id)
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn payment_intent(&self, order_id: &str) -> Result<Option<(String, Money, String)>> {
        let row = sqlx::query(
            "SELECT intent_id, amount_minor, currency, status FROM payments WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("intent_id")?,
                money(&r, "amount_minor", "currency")?,
                r.try_get("status")?,
            ))
        })
        .transpose()
    }

    pub async fn order_for_intent(&self, intent_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT order_id FROM payments WHERE intent_id = $1")
            .bind(intent_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("order_id").map_err(StoreError::from))
            .transpose()
    }

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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Handle a payment-succeeded event exactly once: remember the event id, mark the payment
    /// and queue the workflow signal in one transaction (a crash half-way loses nothing, and a
    /// redelivery of the same event does nothing). Returns false for a duplicate.
    pub async fn accept_payment_succeeded(
        &self,
        event_id: &str,
        intent_id: &str,
        order_id: &str,
        signal: &serde_json::Value,
        provider_confirmed: bool,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let new = sqlx::query("INSERT INTO webhook_events (event_id, received_at_ms) VALUES ($1,$2) ON CONFLICT (event_id) DO NOTHING")
            .bind(event_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if new == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Only what the provider holds is recorded as paid; an event it does not confirm still
        // reaches the workflow, which parks the order with the reason.
        if !provider_confirmed {
            enqueue(&mut tx, "signal", order_id, signal).await?;
            tx.commit().await?;
            return Ok(true);
        }
        sqlx::query(
            "UPDATE payments SET status = 'succeeded', updated_at_ms = $1 WHERE intent_id = $2",
        )
        .bind(now_ms())
        .bind(intent_id)
        .execute(&mut *tx)
        .await?;
        // A supplement's intent: the customer accepted a price change by paying it.
        sqlx::query(
            "UPDATE price_changes SET status = 'paid', decided_at_ms = COALESCE(decided_at_ms, $1) \
             WHERE intent_id = $2 AND status IN ('pending', 'accepted', 'declined', 'withdrawn')",
        )
        .bind(now_ms())
        .bind(intent_id)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, "signal", order_id, signal).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn record_purchase(
        &self,
        order_id: &str,
        line_no: u32,
        platform: &str,
        marketplace_order_id: &str,
        paid_fen: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO purchases (order_id, line_no, platform, marketplace_order_id, paid_fen, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (order_id, line_no) DO NOTHING",
        )
        .bind(order_id)
        .bind(i64::from(line_no))
        .bind(platform)
        .bind(marketplace_order_id)
        .bind(paid_fen)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn tracking_number(&self, order_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT tracking_number FROM shipments WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("tracking_number").map_err(StoreError::from))
            .transpose()
    }

    /// Shipping address of an order, for the carrier booking only.
    pub async fn shipping_address(&self, order_id: &str) -> Result<(serde_json::Value, String)> {
        let row =
            sqlx::query("SELECT shipping_address, destination_country FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        let raw: String = row.try_get("shipping_address")?;
        Ok((
            serde_json::from_str(&raw).map_err(corrupt)?,
            row.try_get("destination_country")?,
        ))
    }

    // ----- outbox ------------------------------------------------------------------------

    /// Queue work for Temporal outside an order transaction (e.g. a signal from a webhook).
    pub async fn enqueue(
        &self,
        kind: &str,
        order_id: &str,
        payload: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        enqueue(&mut tx, kind, order_id, payload).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Live work whose next attempt is due: neither dispatched nor dead.
    pub async fn outbox_due(&self, limit: i64) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT id, kind, order_id, payload, attempts FROM outbox \
             WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL AND next_attempt_at_ms <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload")?;
                Ok(OutboxItem {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    order_id: r.try_get("order_id")?,
                    payload: serde_json::from_str(&payload).map_err(corrupt)?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    pub async fn outbox_done(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET dispatched_at_ms = $1, last_error = NULL WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A transient failure: count the attempt and try again after `delay`, unless this was
    /// attempt `max_attempts`, when the row goes dead instead. Returns true when it went dead.
    pub async fn outbox_retry_later(
        &self,
        id: i64,
        error: &str,
        delay: Duration,
        max_attempts: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at_ms = $2, \
             dead_at_ms = CASE WHEN attempts + 1 >= $3 THEN $4 ELSE NULL END \
             WHERE id = $5 AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL RETURNING dead_at_ms",
        )
        .bind(clip_error(error))
        .bind(now + delay.as_millis() as i64)
        .bind(max_attempts)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("dead_at_ms")?.is_some(),
            None => false,
        })
    }

    /// A permanent failure: the row goes dead at once with its reason (the attempt counts).
    pub async fn outbox_mark_dead(&self, id: i64, reason: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, dead_at_ms = $2 \
             WHERE id = $3 AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .bind(clip_error(reason))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether live work of `kind` for the same subject was queued before row `id` and is not
    /// delivered yet (a signal whose workflow's start is still on its way).
    pub async fn outbox_waits_on(&self, id: i64, subject: &str, kind: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND kind = $2 AND id < $3 \
             AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .bind(subject)
        .bind(kind)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Dead letters awaiting an operator, oldest first.
    pub async fn outbox_dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, kind, order_id, payload, attempts, last_error, created_at_ms, dead_at_ms, \
             discarded_at_ms FROM outbox WHERE dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL \
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dead_letter).collect()
    }

    /// How many dead letters await an operator.
    pub async fn outbox_dead_count(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// One row as a dead letter (also once discarded); `NotFound` when there is no such row,
    /// `StateConflict` naming its state when it is not dead.
    pub async fn outbox_dead_letter(&self, id: i64) -> Result<DeadLetter> {
        let row = sqlx::query(
            "SELECT id, kind, order_id, payload, attempts, last_error, created_at_ms, dead_at_ms, \
             discarded_at_ms, dispatched_at_ms FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        if row.try_get::<Option<i64>, _>("dead_at_ms")?.is_none() {
            let state = if row.try_get::<Option<i64>, _>("dispatched_at_ms")?.is_some() {
                "delivered"
            } else {
                "pending delivery"
            };
            return Err(StoreError::StateConflict(format!(
                "outbox row {id} is not dead: it is {state}"
            )));
        }
        dead_letter(&row)
    }

    /// An operator sends a dead letter again: back to pending, due now, attempts from zero.
    pub async fn outbox_retry_dead(&self, id: i64) -> Result<()> {
        let n = sqlx::query(
            "UPDATE outbox SET dead_at_ms = NULL, attempts = 0, next_attempt_at_ms = $1 \
             WHERE id = $2 AND dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(self.not_a_dead_letter(id).await);
        }
        Ok(())
    }

    /// An operator gives a dead letter up: it leaves the list and is never delivered. Discarding
    /// a discarded row again changes nothing.
    pub async fn outbox_discard_dead(&self, id: i64, by: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE outbox SET discarded_at_ms = $1, discarded_by = $2 \
             WHERE id = $3 AND dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 && !self.outbox_dead_letter(id).await?.discarded {
            return Err(self.not_a_dead_letter(id).await);
        }
        Ok(())
    }

    /// Why row `id` cannot be retried or discarded.
    async fn not_a_dead_letter(&self, id: i64) -> StoreError {
        match self.outbox_dead_letter(id).await {
            Ok(d) if d.discarded => {
                StoreError::StateConflict(format!("outbox row {id} was discarded"))
            }
            Ok(_) => StoreError::StateConflict(format!("outbox row {id} changed meanwhile")),
            Err(e) => e,
        }
    }

    /// Record a signed webhook delivery; false when the same signature was seen within
    /// `window` (a replay). Deliveries older than the window are forgotten.
    pub async fn claim_webhook_delivery(
        &self,
        provider: &str,
        signature: &str,
        window: Duration,
    ) -> Result<bool> {
        let now = now_ms();
        let horizon = now - window.as_millis() as i64;
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at_ms < $1")
            .bind(horizon)
            .execute(&self.pool)
            .await?;
        let n = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, signature, received_at_ms) VALUES ($1,$2,$3) \
             ON CONFLICT (provider, signature) DO NOTHING",
        )
        .bind(provider)
        .bind(signature)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Forget a claimed delivery whose processing failed, so the provider's retry is accepted.
    pub async fn release_webhook_delivery(&self, provider: &str, signature: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE provider = $1 AND signature = $2")
            .bind(provider)
            .bind(signature)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live work not delivered yet (dead letters not included).
    pub async fn outbox_pending(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// Outbox errors are kept to a readable length.
fn clip_error(e: &str) -> String {
    e.chars().take(500).collect()
}

fn dead_letter(r: &AnyRow) -> Result<DeadLetter> {
    let payload: String = r.try_get("payload")?;
    // Only a signal's name leaves the store, and only when it looks like one.
    let signal = serde_json::from_str::<serde_json::Value>(&payload)
        .ok()
        .and_then(|v| v["signal"].as_str().map(str::to_owned))
        .filter(|n| {
            !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
    Ok(DeadLetter {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        subject_id: r.try_get("order_id")?,
        signal,
        attempts: r.try_get("attempts")?,
        last_error: r
            .try_get::<Option<String>, _>("last_error")?
            .unwrap_or_default(),
        created_at_ms: r.try_get("created_at_ms")?,
        dead_at_ms: r
            .try_get::<Option<i64>, _>("dead_at_ms")?
            .unwrap_or_default(),
        discarded: r.try_get::<Option<i64>, _>("discarded_at_ms")?.is_some(),
    })
}

pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    kind: &str,
    order_id: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    let now = now_ms();
    sqlx::query("INSERT INTO outbox (kind, order_id, payload, created_at_ms, next_attempt_at_ms) VALUES ($1,$2,$3,$4,$4)")
        .bind(kind)
        .bind(order_id)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
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
            let available = sqlx::query("SELECT available FROM listings WHERE sku = $1")
                .bind(&line.sku)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get::<i64, _>("available"))
                .transpose()?
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

const LISTING_SELECT: &str = "SELECT sku, platform, offer_id, spec_id, title, price_fen, weight_g, l_mm, w_mm, h_mm, \
     domestic_shipping_fen, available FROM listings";

const ORDER_SELECT: &str = "SELECT id, customer_id, quote_id, state, total_minor, currency, lines, destination_country, \
     payment_intent_id, created_at_ms, updated_at_ms FROM orders";

fn listing_from_row(r: &AnyRow) -> Result<Listing> {
    Ok(Listing {
        sku: r.try_get("sku")?,
        platform: r.try_get("platform")?,
        offer_id: r.try_get("offer_id")?,
        spec_id: r.try_get("spec_id")?,
        title: r.try_get("title")?,
        price_fen: r.try_get("price_fen")?,
        weight_g: r.try_get("weight_g")?,
        l_mm: r.try_get("l_mm")?,
        w_mm: r.try_get("w_mm")?,
        h_mm: r.try_get("h_mm")?,
        domestic_shipping_fen: r.try_get("domestic_shipping_fen")?,
        available: r.try_get("available")?,
    })
}

fn order_from_row(r: &AnyRow) -> Result<OrderRecord> {
    let lines: String = r.try_get("lines")?;
    Ok(OrderRecord {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        quote_id: r.try_get("quote_id")?,
        state: state(r.try_get::<String, _>("state")?)?,
        total: money(r, "total_minor", "currency")?,
        lines: serde_json::from_str(&lines).map_err(corrupt)?,
        destination_country: r.try_get("destination_country")?,
        payment_intent_id: r.try_get("payment_intent_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn state(s: String) -> Result<OrderState> {
    OrderState::from_str(&s).map_err(corrupt)
}

pub(crate) fn money(r: &AnyRow, minor: &str, currency: &str) -> Result<Money> {
    let c: String = r.try_get(currency)?;
    Ok(Money::new(
        r.try_get(minor)?,
        Currency::from_str(&c).map_err(corrupt)?,
    ))
}
