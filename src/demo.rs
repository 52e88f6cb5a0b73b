//! A customer, a warehouse and a carrier, played through the public API and the sandbox: places
//! orders, pays for them as the customer would (the sandbox's confirm call), scans parcels in at
//! the warehouse, and follows every order to a terminal state. Used by `procure dev`,
//! `procure bench` and the end-to-end tests.

use anyhow::{Context, bail};
use procure_api::auth::Role;
use procure_domain::OrderState;
use procure_sandbox::LedgerEntry;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Clone)]
pub struct Driver {
    http: reqwest::Client,
    pub api: String,
    pub sandbox: String,
    /// Signs the bearer token of whichever role the driver plays for a call (customer,
    /// warehouse, purchaser, operator): the API's key, from the same environment.
    tokens: procure_api::auth::TokenKey,
}

/// What became of one demo order.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub order_id: String,
    pub state: OrderState,
    pub total: String,
    pub elapsed: Duration,
    /// Milliseconds from acceptance to the marketplace purchase, when there was one.
    pub to_purchase_ms: Option<i64>,
}

/// How a demo order is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Pay, receive in the warehouse, let the carrier deliver.
    HappyPath,
    /// Never pay: the reservation must expire.
    NeverPay,
    /// As `HappyPath` while the system is being broken on purpose (`procure chaos`): an order
    /// parked for an operator counts as done.
    Chaos,
}

impl Script {
    /// Whether the customer, warehouse and purchaser play along.
    fn acts(self) -> bool {
        matches!(self, Script::HappyPath | Script::Chaos)
    }
}

/// A failed step of the driver is logged and tried again on the next pass: the system may be
/// restarting (the chaos run restarts it on purpose).
fn soft<T>(what: &str, r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(
                step = what,
                error = format!("{e:#}"),
                "driver step failed; retrying"
            );
            None
        }
    }
}

/// Name of the monitor `procure dev` creates.
pub const DEMO_MONITOR: &str = "demo: every product";

const DESTINATIONS: [(&str, &str); 4] =
    [("US", "USD"), ("GB", "GBP"), ("DE", "EUR"), ("JP", "JPY")];

impl Driver {
    pub fn new(api: impl Into<String>, sandbox: impl Into<String>) -> Self {
        crate::system::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        Driver {
            http,
            api: api.into(),
            sandbox: sandbox.into(),
            tokens: procure_api::auth::TokenKey::development(),
        }
    }

    /// Sign its tokens with `key` (the API's, when it is not the environment's).
    pub fn with_token_key(mut self, key: procure_api::auth::TokenKey) -> Self {
        self.tokens = key;
        self
    }

    /// A short-lived bearer token for `role` (customers: acting for `customer`).
    pub fn token(&self, role: Role, customer: Option<&str>) -> String {
        let now = procure_domain::clock::now_ms() / 1000;
        self.tokens.issue(
            &format!("driver-{}", role.as_str()),
            role,
            customer,
            now,
            3_600,
        )
    }

    async fn json(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("{what}: unreadable response"))?;
        if !status.is_success() {
            bail!("{what}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// The sandbox's catalogue: `{"products": […], "offers": […]}` (every platform's offers).
    pub async fn catalogue_full(&self) -> anyhow::Result<Value> {
        Self::json(
            self.http
                .get(format!("{}/_sandbox/catalogue", self.sandbox))
                .send()
                .await?,
            "catalogue",
        )
        .await
    }

    pub async fn catalogue(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.catalogue_full().await?;
        Ok(v["products"].as_array().cloned().unwrap_or_default())
    }

    pub async fn quote(
        &self,
        items: &[(String, u32)],
        country: &str,
        currency: &str,
    ) -> anyhow::Result<Value> {
        self.quote_with(items, country, currency, json!({})).await
    }

    /// A quote with options (`shipping_line`, `insurance`, `guaranteed`) merged into the request.
    pub async fn quote_with(
        &self,
        items: &[(String, u32)],
        country: &str,
        currency: &str,
        options: Value,
    ) -> anyhow::Result<Value> {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, q)| json!({"sku": sku, "quantity": q}))
            .collect();
        let mut body =
            json!({"items": items, "destination_country": country, "currency": currency});
        if let (Some(b), Some(o)) = (body.as_object_mut(), options.as_object()) {
            b.extend(o.clone());
        }
        Self::json(
            self.http
                .post(format!("{}/api/v1/quotes", self.api))
                .bearer_auth(self.token(Role::Operator, None))
                .json(&body)
                .send()
                .await?,
            "quote",
        )
        .await
    }

    pub async fn place_order(
        &self,
        quote_id: &str,
        customer: &str,
        country: &str,
        key: &str,
    ) -> anyhow::Result<Value> {
        let body = json!({
            "quote_id": quote_id,
            "customer_id": customer,
            "shipping_address": {
                "name": "Demo Customer", "line1": "1 Example Street", "city": "Springfield",
                "postal_code": "12345", "country": country, "phone": "+10000000000"
            }
        });
        let resp = self
            .http
            .post(format!("{}/api/v1/orders", self.api))
            .bearer_auth(self.token(Role::Customer, Some(customer)))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await?;
        Self::json(resp, "place order").await
    }

    pub async fn order(&self, id: &str) -> anyhow::Result<Value> {
        Self::json(
            self.http
                .get(format!("{}/api/v1/orders/{id}", self.api))
                .bearer_auth(self.token(Role::Operator, None))
                .send()
                .await?,
            "get order",
        )
        .await
    }

    /// The customer pays (the sandbox's stand-in for the browser confirming the intent).
    pub async fn pay(&self, intent_id: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!(
                "{}/v1/payment_intents/{intent_id}/confirm",
                self.sandbox
            ))
            .bearer_auth("sk_test_procure")
            .send()
            .await?;
        Self::json(resp, "confirm payment").await.map(drop)
    }

    /// One unit of each line of `order` as the sandbox's catalogue describes it, else as the
    /// imported product says (`GET /api/v1/products/{id}`).
    async fn unit_measures(&self, order: &Value) -> anyhow::Result<Vec<Option<(u32, [u32; 3])>>> {
        let catalogue = self.catalogue().await?;
        let mut out = Vec::new();
        for line in order["lines"].as_array().into_iter().flatten() {
            if let Some(p) = catalogue.iter().find(|p| p["sku"] == line["sku"]) {
                let get = |k: &str| p[k].as_u64().unwrap_or(100) as u32;
                out.push(Some((
                    get("weight_g"),
                    [get("l_mm"), get("w_mm"), get("h_mm")],
                )));
                continue;
            }
            let Some(platform) = line["platform"]
                .as_str()
                .and_then(|p| p.parse::<procure_domain::order::Platform>().ok())
            else {
                out.push(None);
                continue;
            };
            let offer = line["offer_id"].as_str().unwrap_or_default();
            let id = procure_store::products::product_key(platform, offer);
            let product = self.api_get(&format!("/api/v1/products/{id}")).await.ok();
            out.push(product.map(|p| {
                let m = &p["measures"];
                let d = |k: &str| m["dimensions"][k].as_u64().unwrap_or(100) as u32;
                (
                    m["weight_g"].as_u64().unwrap_or(100) as u32,
                    [d("l_mm"), d("w_mm"), d("h_mm")],
                )
            }));
        }
        Ok(out)
    }

    /// The warehouse scans the seller's parcel in, as the catalogue describes the goods (units
    /// stacked, plus the seller's packaging); a fixed demo size when the order is unknown. The
    /// parcel is named by the seller's waybill once the order has one, else by our order id.
    pub async fn scan_in(&self, order_id: &str) -> anyhow::Result<()> {
        let order = self.order(order_id).await.ok();
        let (weight_g, [l, w, h]) = match &order {
            Some(o) => measure(o, &self.unit_measures(o).await?),
            None => (850, [300, 200, 120]),
        };
        let waybill = order.as_ref().and_then(|o| {
            o["seller_shipments"][0]["waybill"]
                .as_str()
                .map(str::to_owned)
        });
        let mut body = json!({"weight_g": weight_g, "l_mm": l, "w_mm": w, "h_mm": h,
            "photo_urls": ["https://warehouse.example/qc/1.jpg"]});
        match waybill {
            Some(wb) => body["waybill"] = json!(wb),
            None => body["order_id"] = json!(order_id),
        }
        Self::json(
            self.http
                .post(format!("{}/api/v1/warehouse/inbound", self.api))
                .bearer_auth(self.token(Role::Warehouse, None))
                .json(&body)
                .send()
                .await?,
            "inbound scan",
        )
        .await
        .map(drop)
    }

    pub async fn ledger(&self) -> anyhow::Result<Vec<LedgerEntry>> {
        let v = Self::json(
            self.http
                .get(format!("{}/_sandbox/ledger", self.sandbox))
                .send()
                .await?,
            "ledger",
        )
        .await?;
        Ok(serde_json::from_value(v["entries"].clone())?)
    }

    pub async fn set_product(&self, offer_id: &str, change: Value) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}/_sandbox/products/{offer_id}", self.sandbox))
            .json(&change)
            .send()
            .await?;
        Self::json(resp, "change product").await.map(drop)
    }

    /// GET an API path (e.g. `/api/v1/price-monitors`), failing on a non-2xx answer.
    pub async fn api_get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(self.token(Role::Operator, None))
            .send()
            .await?;
        Self::json(resp, path).await
    }

    /// POST JSON to an API path, failing on a non-2xx answer.
    pub async fn api_post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(self.token(Role::Operator, None))
            .json(body)
            .send()
            .await?;
        Self::json(resp, path).await
    }

    /// The demo price monitor (every demo product, every 5 minutes, landed cost to the US),
    /// created unless one by that name exists; returns it.
    pub async fn ensure_demo_monitor(&self) -> anyhow::Result<Value> {
        let list = self.api_get("/api/v1/price-monitors").await?;
        if let Some(m) = list["monitors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == DEMO_MONITOR)
        {
            return Ok(m.clone());
        }
        let products: Vec<Value> = self
            .catalogue()
            .await?
            .iter()
            .map(|p| json!({"sku": p["sku"]}))
            .collect();
        self.api_post(
            "/api/v1/price-monitors",
            &json!({"name": DEMO_MONITOR, "cron": "*/5 * * * *", "threshold_bps": 500,
                    "destination_country": "US", "products": products}),
        )
        .await
    }

    /// Run a monitor now and wait (up to `within`) for the run to be recorded; returns it.
    pub async fn run_monitor(&self, monitor_id: &str, within: Duration) -> anyhow::Result<Value> {
        let path = format!("/api/v1/price-monitors/{monitor_id}");
        let newest = |m: &Value| m["recent_runs"][0]["run_key"].clone();
        let before = newest(&self.api_get(&path).await?);
        self.api_post(&format!("{path}/run"), &json!({})).await?;
        let deadline = Instant::now() + within;
        loop {
            let m = self.api_get(&path).await?;
            if newest(&m) != before {
                return Ok(m["recent_runs"][0].clone());
            }
            if Instant::now() > deadline {
                bail!("price monitor {monitor_id}: no run recorded within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn add_fault(&self, fault: Value) -> anyhow::Result<()> {
        Self::json(
            self.http
                .post(format!("{}/_sandbox/faults", self.sandbox))
                .json(&fault)
                .send()
                .await?,
            "add fault",
        )
        .await
        .map(drop)
    }

    /// Purchaser tasks with a status (`open`, `completed`, `expired`, `all`).
    pub async fn purchaser_tasks(&self, status: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/api/v1/purchaser/tasks?status={status}", self.api);
        let v = Self::json(
            self.http
                .get(url)
                .bearer_auth(self.token(Role::Purchaser, None))
                .send()
                .await?,
            "purchaser tasks",
        )
        .await?;
        Ok(v["tasks"].as_array().cloned().unwrap_or_default())
    }

    /// Report a purchaser task done; the status tells whether it was accepted.
    pub async fn complete_task(
        &self,
        task_id: &str,
        marketplace_order_id: &str,
        amount_paid_fen: i64,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let resp = self
            .http
            .post(format!("{}/api/v1/purchaser/tasks/{task_id}/complete", self.api))
            .bearer_auth(self.token(Role::Purchaser, None))
            .json(&json!({"marketplace_order_id": marketplace_order_id, "amount_paid_fen": amount_paid_fen}))
            .send()
            .await?;
        Ok(resp.status())
    }

    /// The customer ships stored orders in one parcel; returns the parcel.
    pub async fn request_parcel(
        &self,
        customer_id: &str,
        order_ids: &[&str],
        shipping_line: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut body = json!({"customer_id": customer_id, "order_ids": order_ids});
        if let Some(l) = shipping_line {
            body["shipping_line"] = json!(l);
        }
        Self::json(
            self.http
                .post(format!("{}/api/v1/parcels", self.api))
                .bearer_auth(self.token(Role::Customer, Some(customer_id)))
                .json(&body)
                .send()
                .await?,
            "request parcel",
        )
        .await
    }

    pub async fn parcel(&self, id: &str) -> anyhow::Result<Value> {
        Self::json(
            self.http
                .get(format!("{}/api/v1/parcels/{id}", self.api))
                .bearer_auth(self.token(Role::Warehouse, None))
                .send()
                .await?,
            "get parcel",
        )
        .await
    }

    /// The warehouse reports the packed parcel's measures; returns the priced parcel.
    pub async fn pack(
        &self,
        parcel_id: &str,
        weight_g: u32,
        dims: [u32; 3],
    ) -> anyhow::Result<Value> {
        let body = json!({"weight_g": weight_g, "l_mm": dims[0], "w_mm": dims[1], "h_mm": dims[2]});
        Self::json(
            self.http
                .post(format!(
                    "{}/api/v1/warehouse/parcels/{parcel_id}/packed",
                    self.api
                ))
                .bearer_auth(self.token(Role::Warehouse, None))
                .json(&body)
                .send()
                .await?,
            "packed parcel",
        )
        .await
    }

    /// Pay every pending charge of a parcel or order document (`charges` list); returns how many.
    pub async fn pay_charges(&self, doc: &Value) -> anyhow::Result<usize> {
        let mut n = 0;
        for c in doc["charges"].as_array().into_iter().flatten() {
            if c["status"] == "pending"
                && let Some(intent) = c["intent_id"].as_str()
            {
                self.pay(intent).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The customer's storage choice: `{"choice": "extend", "days": n}` or `{"choice": "dispose"}`.
    pub async fn storage_choice(
        &self,
        order_id: &str,
        choice: Value,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let resp = self
            .http
            .post(format!("{}/api/v1/orders/{order_id}/storage", self.api))
            .bearer_auth(self.token(Role::Operator, None))
            .json(&choice)
            .send()
            .await?;
        Ok(resp.status())
    }

    /// The customer answers a price change (`accept` or `decline`); returns the HTTP status and
    /// the answer's body.
    pub async fn answer_price_change(
        &self,
        order_id: &str,
        change_id: &str,
        decision: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/orders/{order_id}/price-changes/{change_id}",
                self.api
            ))
            .bearer_auth(self.token(Role::Operator, None))
            .json(&json!({ "decision": decision }))
            .send()
            .await?;
        let status = resp.status();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// The customer accepts every pending price change of an order and pays its supplement.
    /// Returns how many were paid.
    pub async fn accept_price_changes(&self, order: &Value) -> anyhow::Result<usize> {
        let order_id = order["id"].as_str().context("order id")?;
        let mut paid = 0;
        for c in order["price_changes"].as_array().into_iter().flatten() {
            if c["status"] != "pending" {
                continue;
            }
            let change_id = c["id"].as_str().context("price change id")?;
            let (status, body) = self
                .answer_price_change(order_id, change_id, "accept")
                .await?;
            if !status.is_success() {
                bail!("accepting price change {change_id}: HTTP {status} {body}");
            }
            let intent = body["pay_intent_id"]
                .as_str()
                .context("supplement payment intent")?;
            self.pay(intent).await?;
            paid += 1;
        }
        Ok(paid)
    }

    /// The sandbox faults still armed (a fault with a count leaves once spent).
    pub async fn faults(&self) -> anyhow::Result<Vec<Value>> {
        let resp = self
            .http
            .get(format!("{}/_sandbox/faults", self.sandbox))
            .send()
            .await?;
        let v = Self::json(resp, "list faults").await?;
        Ok(v["faults"].as_array().cloned().unwrap_or_default())
    }

    /// Clear every injected sandbox fault.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        let resp = self
            .http
            .delete(format!("{}/_sandbox/faults", self.sandbox))
            .send()
            .await?;
        Self::json(resp, "clear faults").await.map(drop)
    }

    /// Play the purchaser of the assisted channel: buy each open task's goods "in the PDD app"
    /// (the sandbox records it) and report the order number and amount through the API.
    pub async fn work_purchaser_tasks(
        &self,
        orders: &[(String, Instant)],
    ) -> anyhow::Result<usize> {
        let mut done = 0;
        for t in self.purchaser_tasks("open").await? {
            let order_id = t["order_id"].as_str().unwrap_or_default();
            if !orders.iter().any(|(id, _)| id == order_id) {
                continue;
            }
            let task_id = t["id"].as_str().context("task id")?;
            let amount = t["max_total_fen"].as_i64().context("task amount")?;
            let bought = Self::json(
                self.http
                    .post(format!("{}/_sandbox/pinduoduo/orders", self.sandbox))
                    .json(&json!({"reference": task_id, "goods_id": t["offer_id"], "amount_fen": amount}))
                    .send()
                    .await?,
                "manual PDD order",
            )
            .await?;
            let order_sn = bought["order_sn"].as_str().context("PDD order number")?;
            let status = self.complete_task(task_id, order_sn, amount).await?;
            // 409: another purchaser (or a previous round) completed it first.
            if status.is_success() {
                done += 1;
            } else if status != reqwest::StatusCode::CONFLICT {
                bail!("completing purchaser task {task_id}: HTTP {status}");
            }
        }
        Ok(done)
    }

    /// Quote and place one order for the `i`-th demo customer.
    pub async fn place_demo_order(&self, i: usize, catalogue: &[Value]) -> anyhow::Result<Value> {
        let product = &catalogue[i % catalogue.len()];
        let sku = product["sku"].as_str().context("catalogue sku")?.to_owned();
        let (country, currency) = DESTINATIONS[i % DESTINATIONS.len()];
        let quote = self
            .quote(&[(sku, 1 + (i % 2) as u32)], country, currency)
            .await?;
        let key = format!("demo-{}", uuid::Uuid::new_v4());
        self.place_order(
            quote["quote_id"].as_str().context("quote id")?,
            &format!("cust-{}", i % 7),
            country,
            &key,
        )
        .await
    }

    /// Drive already-placed orders until each is terminal (or `deadline` passes), acting as
    /// customer and warehouse on the way. `on_change` sees every state change as it happens.
    pub async fn drive(
        &self,
        orders: Vec<(String, Instant)>,
        script: Script,
        deadline: Duration,
        mut on_change: impl FnMut(&str, OrderState, &str, Duration),
    ) -> anyhow::Result<Vec<Outcome>> {
        let started = Instant::now();
        let mut seen: HashMap<String, OrderState> = HashMap::new();
        let mut reported: HashMap<String, usize> = HashMap::new();
        let mut acted: HashMap<String, Acted> = HashMap::new();
        let mut done: HashMap<String, Outcome> = HashMap::new();
        while done.len() < orders.len() {
            if started.elapsed() > deadline {
                break;
            }
            if script.acts() {
                soft("purchaser tasks", self.work_purchaser_tasks(&orders).await);
            }
            for (id, placed) in &orders {
                if done.contains_key(id) {
                    continue;
                }
                let Some(o) = soft("read order", self.order(id).await) else {
                    continue;
                };
                let state: OrderState = o["state"]
                    .as_str()
                    .unwrap_or("Created")
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                // Report every timeline event once, so fast steps between two polls still show.
                let timeline = o["timeline"].as_array().cloned().unwrap_or_default();
                let shown = reported.entry(id.clone()).or_insert(0);
                for e in timeline.iter().skip(*shown) {
                    if let Some(st) = e["state"]
                        .as_str()
                        .and_then(|s| s.parse::<OrderState>().ok())
                    {
                        on_change(id, st, e["reason"].as_str().unwrap_or(""), placed.elapsed());
                    }
                }
                *shown = timeline.len();
                seen.insert(id.clone(), state);
                let flags = acted.entry(id.clone()).or_default();
                match state {
                    OrderState::PendingPayment if script.acts() && !flags.paid => {
                        if let Some(intent) = o["payment_intent_id"].as_str() {
                            flags.paid = soft("pay", self.pay(intent).await).is_some();
                        }
                    }
                    // The customer ships each order on its own (consolidation is the parcel
                    // example's business); the warehouse packs it a little heavier than
                    // scanned, in a box; the customer pays any supplementary charge.
                    OrderState::InWarehouse
                        if script.acts()
                            && flags.parcel.is_none()
                            && o["warehouse"]["status"] == "stored" =>
                    {
                        let customer = o["customer_id"].as_str().unwrap_or_default();
                        if let Some(p) = soft(
                            "request parcel",
                            self.request_parcel(customer, &[id.as_str()], None).await,
                        ) {
                            flags.parcel = p["id"].as_str().map(str::to_owned);
                        }
                    }
                    OrderState::Packing if script.acts() => {
                        if let Some(pid) = flags.parcel.clone() {
                            let Some(p) = soft("read parcel", self.parcel(&pid).await) else {
                                continue;
                            };
                            if p["status"] == "requested" {
                                // Repacked in a fitted box: a little heavier, a little bigger.
                                let item = &o["warehouse"];
                                let dim =
                                    |k: &str| item["dims"][k].as_u64().unwrap_or(100) as u32 + 20;
                                let w = item["weight_g"].as_u64().unwrap_or(850) as u32;
                                soft(
                                    "pack",
                                    self.pack(
                                        &pid,
                                        w + w / 20 + 40,
                                        [dim("l_mm"), dim("w_mm"), dim("h_mm")],
                                    )
                                    .await,
                                );
                            } else {
                                soft("pay charges", self.pay_charges(&p).await);
                            }
                        }
                    }
                    OrderState::AwaitingCustomer if script.acts() => {
                        // The demo customer accepts a higher price (each change once: an
                        // accepted one is no longer pending).
                        soft("accept price change", self.accept_price_changes(&o).await);
                    }
                    // The parcel arrives once its seller has shipped (or a while after the
                    // purchase, for a seller the demo never hears from).
                    OrderState::InboundTransit
                        if !flags.scanned && (seller_shipped(&o) || in_state_ms(&o) > 5_000) =>
                    {
                        flags.scanned = soft("scan in", self.scan_in(id).await).is_some();
                    }
                    s if s.is_terminal()
                        || (script == Script::Chaos && s == OrderState::NeedsOperator) =>
                    {
                        let created = o["created_at_ms"].as_i64().unwrap_or_default();
                        let purchased = o["timeline"].as_array().and_then(|t| {
                            t.iter()
                                .find(|e| e["state"] == "Purchased")
                                .and_then(|e| e["at_ms"].as_i64())
                        });
                        done.insert(
                            id.clone(),
                            Outcome {
                                order_id: id.clone(),
                                state: s,
                                total: display_total(&o),
                                elapsed: placed.elapsed(),
                                to_purchase_ms: purchased.map(|p| p - created),
                            },
                        );
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut out: Vec<Outcome> = orders
            .iter()
            .map(|(id, placed)| {
                done.remove(id).unwrap_or(Outcome {
                    order_id: id.clone(),
                    state: seen.get(id).copied().unwrap_or(OrderState::Created),
                    total: String::new(),
                    elapsed: placed.elapsed(),
                    to_purchase_ms: None,
                })
            })
            .collect();
        out.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(out)
    }
}

/// The goods of an order as the catalogue describes them: total weight plus 60 g of seller
/// packaging, footprint of the largest unit, units stacked in height, 10 mm of packaging a side.
/// `units` holds one `(weight_g, [l, w, h])` per line, `None` where nothing describes it.
fn measure(order: &Value, units: &[Option<(u32, [u32; 3])>]) -> (u32, [u32; 3]) {
    let (mut weight, mut l, mut w, mut h) = (60u32, 0u32, 0u32, 0u32);
    for (line, unit) in order["lines"].as_array().into_iter().flatten().zip(units) {
        let qty = line["quantity"].as_u64().unwrap_or(1) as u32;
        let Some((uw, [ul, uwid, uh])) = *unit else {
            continue;
        };
        weight += uw * qty;
        l = l.max(ul);
        w = w.max(uwid);
        h += uh * qty;
    }
    if l == 0 {
        return (850, [300, 200, 120]);
    }
    (weight, [l + 20, w + 20, h + 20])
}

/// What the driver already did for an order.
#[derive(Default)]
struct Acted {
    paid: bool,
    scanned: bool,
    parcel: Option<String>,
}

/// Render money the way people read it: "12.34 USD" from minor units.
pub fn display_total(o: &Value) -> String {
    let minor = o["total"]["minor"].as_i64().unwrap_or_default();
    let currency = o["total"]["currency"].as_str().unwrap_or("");
    currency
        .parse::<procure_domain::Currency>()
        .map(|c| procure_domain::Money::new(minor, c).to_string())
        .unwrap_or_else(|_| format!("{minor} {currency}"))
}

/// The order's seller has reported a domestic shipment.
fn seller_shipped(order: &Value) -> bool {
    order["seller_shipments"]
        .as_array()
        .is_some_and(|s| !s.is_empty())
}

/// How long the order has been in its current state (ms), by its timeline.
fn in_state_ms(order: &Value) -> i64 {
    // The first event of the timeline's last run in this state (notes repeat the state).
    let since = order["timeline"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .rev()
                .take_while(|e| e["state"] == order["state"])
                .last()
        })
        .and_then(|e| e["at_ms"].as_i64())
        .unwrap_or_default();
    procure_domain::clock::now_ms() - since
}
