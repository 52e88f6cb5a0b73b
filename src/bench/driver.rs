//! The bench's driver: a separate process (`procure bench-driver`) that plays customers, the
//! warehouse and the purchaser against the running system. It places orders on a schedule (an
//! initial burst, then a fixed rate) and reacts to the read model: each tick it lists the
//! orders of each state it acts on (`GET /api/v1/orders?state=…`, paged, one request per state
//! and page, never one per order) and acts on what changed: pays an order whose payment intent
//! exists, scans in what was bought, asks for a parcel, packs it, pays its charges. It stops
//! when its standard input closes (the bench closes it) or its deadline passes, and writes what
//! it did to a JSON file.

use crate::demo::Driver;
use anyhow::Context;
use futures_util::StreamExt;
use procure_api::auth::Role;
use procure_domain::OrderState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How far the driver takes each order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Plan {
    /// Place only: orders wait for payment (memory).
    Place,
    /// Pay as soon as payable; the order then waits for the warehouse (burst).
    Pay,
    /// The happy path to Completed: pay, scan in, parcel, pack, pay its charges (steady).
    Full,
}

impl std::str::FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "place" => Ok(Plan::Place),
            "pay" => Ok(Plan::Pay),
            "full" => Ok(Plan::Full),
            _ => Err(format!("{s:?}: place, pay or full")),
        }
    }
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Place => "place",
            Plan::Pay => "pay",
            Plan::Full => "full",
        }
    }

    /// The states whose lists the driver reads each tick.
    pub fn watched(self) -> &'static [OrderState] {
        match self {
            Plan::Place => &[],
            // An intent may exist before the workflow moved the order to PendingPayment (the
            // intent is created right after accept), so Created is watched too.
            Plan::Pay => &[OrderState::Created, OrderState::PendingPayment],
            Plan::Full => &[
                OrderState::Created,
                OrderState::PendingPayment,
                OrderState::AwaitingCustomer,
                OrderState::InboundTransit,
                OrderState::InWarehouse,
                OrderState::Packing,
            ],
        }
    }
}

#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub api: String,
    pub sandbox: String,
    pub plan: Plan,
    /// Orders placed at once at the start.
    pub burst: usize,
    /// Then this many per second …
    pub rate: f64,
    /// … for this long.
    pub seconds: f64,
    /// Time between two rounds of lists.
    pub tick: Duration,
    /// Stop anyway after this long.
    pub deadline: Duration,
    /// Placements in flight at once.
    pub concurrency: usize,
    pub out: PathBuf,
}

/// One order the driver placed, and what it saw and did, epoch ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    pub id: String,
    pub placed_ms: i64,
    pub in_burst: bool,
    /// When a list first showed its payment intent.
    pub payable_seen_ms: Option<i64>,
    /// When the customer's confirm call succeeded.
    pub paid_ms: Option<i64>,
    /// The parcel it was shipped in.
    pub parcel_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverReport {
    pub plan: String,
    pub orders: Vec<Placed>,
    /// Placements that failed, by reason.
    pub place_errors: BTreeMap<String, u64>,
    /// Seconds from the start until the initial burst was accepted.
    pub burst_accept_seconds: f64,
    pub seconds: f64,
    pub ticks: u64,
    /// Requests made: lists (by state and page) and actions.
    pub list_requests: u64,
    pub action_requests: u64,
    pub action_errors: BTreeMap<String, u64>,
}

/// What the driver has done for one order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acted {
    pub paid: bool,
    /// The weight and measures it scanned the goods in with.
    pub scanned: Option<(u32, [u32; 3])>,
    pub parcel: Option<String>,
    pub packed: bool,
}

/// The next step for an order the lists show in `state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Pay(String),
    ScanIn,
    RequestParcel,
    Pack,
    PayParcelCharges,
    AnswerPriceChanges,
}

/// What a customer, the warehouse or the purchaser does on seeing an order in `state` (with
/// its payment intent, if the list shows one), given what was done for it already.
pub fn react(plan: Plan, state: OrderState, intent: Option<&str>, acted: &Acted) -> Option<Action> {
    if plan == Plan::Place {
        return None;
    }
    match state {
        OrderState::Created | OrderState::PendingPayment if !acted.paid => {
            intent.map(|i| Action::Pay(i.to_owned()))
        }
        _ if plan != Plan::Full => None,
        OrderState::InboundTransit if acted.scanned.is_none() => Some(Action::ScanIn),
        OrderState::InWarehouse if acted.parcel.is_none() => Some(Action::RequestParcel),
        OrderState::Packing if acted.parcel.is_some() && !acted.packed => Some(Action::Pack),
        OrderState::Packing if acted.packed => Some(Action::PayParcelCharges),
        OrderState::AwaitingCustomer => Some(Action::AnswerPriceChanges),
        _ => None,
    }
}

/// A quote the driver places orders on (many orders may share one, each with its own key).
#[derive(Clone, Debug)]
pub struct PooledQuote {
    pub quote_id: String,
    pub country: String,
    pub customer: String,
}

/// Skus whose cheapest offer is on a buyer API (1688 or Taobao), so their orders are bought
/// by the workflow rather than by a purchaser task.
pub fn skus_bought_by_api(catalogue: &Value) -> Vec<String> {
    let offers = catalogue["offers"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = catalogue["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            offers
                .iter()
                .filter(|o| o["sku"] == p["sku"])
                .min_by_key(|o| o["price_fen"].as_i64().unwrap_or(i64::MAX))
                .is_none_or(|best| best["platform"] != "pinduoduo")
        })
        .filter_map(|p| p["sku"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// One quote per sku and destination (US, GB, DE, JP), each for one unit.
pub async fn quote_pool(driver: &Driver, skus: &[String]) -> anyhow::Result<Vec<PooledQuote>> {
    let mut out = Vec::new();
    for (i, sku) in skus.iter().enumerate() {
        for (j, (country, currency)) in [("US", "USD"), ("GB", "GBP"), ("DE", "EUR"), ("JP", "JPY")]
            .into_iter()
            .enumerate()
        {
            // Not every line carries every sku everywhere (a 422 names why): skip those.
            let Ok(q) = driver.quote(&[(sku.clone(), 1)], country, currency).await else {
                continue;
            };
            out.push(PooledQuote {
                quote_id: q["quote_id"].as_str().context("quote id")?.to_owned(),
                country: country.to_owned(),
                customer: format!("bench-c{}", (i * 4 + j) % 50),
            });
        }
    }
    anyhow::ensure!(!out.is_empty(), "no sku to quote");
    Ok(out)
}

/// The body of an order on a pooled quote.
pub fn order_body(q: &PooledQuote) -> Value {
    json!({
        "quote_id": q.quote_id,
        "customer_id": q.customer,
        "shipping_address": {
            "name": "Bench Customer", "line1": "1 Example Street", "city": "Springfield",
            "postal_code": "12345", "country": q.country, "phone": "+10000000000"
        }
    })
}

struct Shared {
    orders: Mutex<Vec<Placed>>,
    index: Mutex<HashMap<String, usize>>,
    place_errors: Mutex<BTreeMap<String, u64>>,
    action_errors: Mutex<BTreeMap<String, u64>>,
    list_requests: AtomicU64,
    action_requests: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn error(map: &Mutex<BTreeMap<String, u64>>, what: String) {
        *map.lock().unwrap().entry(what).or_default() += 1;
    }
}

/// Run the driver until its input closes or its deadline passes; writes the report.
pub async fn run(cfg: DriverConfig) -> anyhow::Result<DriverReport> {
    crate::system::install_crypto_provider();
    let started = Instant::now();
    let driver = Driver::new(cfg.api.clone(), cfg.sandbox.clone());
    let catalogue = driver.catalogue_full().await?;
    let skus = skus_bought_by_api(&catalogue);
    let quotes = quote_pool(&driver, &skus).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(cfg.concurrency.max(16))
        .build()?;
    let shared = Arc::new(Shared {
        orders: Mutex::new(Vec::new()),
        index: Mutex::new(HashMap::new()),
        place_errors: Mutex::new(BTreeMap::new()),
        action_errors: Mutex::new(BTreeMap::new()),
        list_requests: AtomicU64::new(0),
        action_requests: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    // The bench closes our standard input to stop us (read on a thread of its own: tokio's
    // stdin is not in this build's features).
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            shared.stop.store(true, Ordering::SeqCst);
        });
    }
    let placing = tokio::spawn(place_all(
        cfg.clone(),
        http.clone(),
        driver.clone(),
        quotes,
        shared.clone(),
    ));
    let measures = Measures::from_catalogue(&catalogue);
    let mut acted: HashMap<String, Acted> = HashMap::new();
    let mut ticks = 0u64;
    let mut last_progress = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < cfg.deadline {
        let tick_start = Instant::now();
        ticks += 1;
        if cfg.plan != Plan::Place {
            tick(&cfg, &driver, &http, &shared, &measures, &mut acted).await;
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            let n = shared.orders.lock().unwrap().len();
            let paid = acted.values().filter(|a| a.paid).count();
            let packed = acted.values().filter(|a| a.packed).count();
            eprintln!(
                "bench-driver: {:.0} s: {n} placed, {paid} paid, {packed} packed",
                started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(cfg.tick.saturating_sub(tick_start.elapsed())).await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    let burst_accept_seconds = placing.await.unwrap_or(Ok(0.0)).unwrap_or(0.0);
    let report = DriverReport {
        plan: cfg.plan.as_str().to_owned(),
        orders: shared.orders.lock().unwrap().clone(),
        place_errors: shared.place_errors.lock().unwrap().clone(),
        burst_accept_seconds,
        seconds: started.elapsed().as_secs_f64(),
        ticks,
        list_requests: shared.list_requests.load(Ordering::SeqCst),
        action_requests: shared.action_requests.load(Ordering::SeqCst),
        action_errors: shared.action_errors.lock().unwrap().clone(),
    };
    if let Some(dir) = cfg.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cfg.out, serde_json::to_vec(&report)?)?;
    Ok(report)
}

/// Place the burst at once (at most `concurrency` in flight), then `rate` per second for
/// `seconds`, open loop; returns how long the burst took to be accepted.
async fn place_all(
    cfg: DriverConfig,
    http: reqwest::Client,
    driver: Driver,
    quotes: Vec<PooledQuote>,
    shared: Arc<Shared>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    let quotes = Arc::new(quotes);
    let place = |i: usize, in_burst: bool| {
        let (http, driver, quotes, shared, sem, api) = (
            http.clone(),
            driver.clone(),
            quotes.clone(),
            shared.clone(),
            sem.clone(),
            cfg.api.clone(),
        );
        tokio::spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let q = &quotes[i % quotes.len()];
            let resp = http
                .post(format!("{api}/api/v1/orders"))
                .bearer_auth(driver.token(Role::Customer, Some(&q.customer)))
                .header(
                    "Idempotency-Key",
                    format!("bench-{}", uuid::Uuid::new_v4().simple()),
                )
                .json(&order_body(q))
                .send()
                .await;
            let placed_ms = procure_domain::clock::now_ms();
            let failed = match resp {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(o) => match o["id"].as_str() {
                        Some(id) => {
                            // Locks in one order everywhere: the index, then the orders.
                            let mut index = shared.index.lock().unwrap();
                            let mut orders = shared.orders.lock().unwrap();
                            index.insert(id.to_owned(), orders.len());
                            orders.push(Placed {
                                id: id.to_owned(),
                                placed_ms: o["created_at_ms"].as_i64().unwrap_or(placed_ms),
                                in_burst,
                                ..Placed::default()
                            });
                            None
                        }
                        None => Some("no id".to_owned()),
                    },
                    Err(_) => Some("unreadable".to_owned()),
                },
                Ok(r) => Some(r.status().as_u16().to_string()),
                Err(e) if e.is_timeout() => Some("timeout".to_owned()),
                Err(_) => Some("transport".to_owned()),
            };
            if let Some(why) = failed {
                Shared::error(&shared.place_errors, why);
            }
        })
    };
    let burst: Vec<_> = (0..cfg.burst).map(|i| place(i, true)).collect();
    for h in burst {
        let _ = h.await;
    }
    let burst_accept = start.elapsed().as_secs_f64();
    if cfg.burst > 0 {
        eprintln!(
            "bench-driver: burst of {} placed in {burst_accept:.1} s",
            cfg.burst
        );
    }
    let trickle_start = tokio::time::Instant::now();
    let n = (cfg.rate * cfg.seconds).round() as u64;
    let mut handles = Vec::new();
    for k in 0..n {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep_until(trickle_start + super::latency::intended_send(k, cfg.rate)).await;
        handles.push(place(cfg.burst + k as usize, false));
    }
    for h in handles {
        let _ = h.await;
    }
    Ok(burst_accept)
}

/// One order as a list shows it.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    state: OrderState,
    intent: Option<String>,
    customer: String,
    lines: Vec<(String, u32)>,
}

/// Every page of one state's list, newest first, down to the oldest order placed.
async fn list_state(
    http: &reqwest::Client,
    driver: &Driver,
    shared: &Shared,
    state: OrderState,
    oldest_ms: i64,
) -> anyhow::Result<Vec<Seen>> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!(
            "{}/api/v1/orders?state={}&limit=500",
            driver.api,
            state.as_str()
        );
        if let Some(b) = before {
            url.push_str(&format!("&before_ms={b}"));
        }
        shared.list_requests.fetch_add(1, Ordering::Relaxed);
        let v: Value = http
            .get(url)
            .bearer_auth(driver.token(Role::Operator, None))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let page = v["orders"].as_array().cloned().unwrap_or_default();
        let mut page_oldest = i64::MAX;
        for o in &page {
            page_oldest = page_oldest.min(o["created_at_ms"].as_i64().unwrap_or(0));
            let Some(st) = o["state"].as_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            out.push(Seen {
                id: o["id"].as_str().unwrap_or_default().to_owned(),
                state: st,
                intent: o["payment_intent_id"].as_str().map(str::to_owned),
                customer: o["customer_id"].as_str().unwrap_or_default().to_owned(),
                lines: o["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        (
                            l["sku"].as_str().unwrap_or_default().to_owned(),
                            l["quantity"].as_u64().unwrap_or(1) as u32,
                        )
                    })
                    .collect(),
            });
        }
        if page.len() < 500 || page_oldest < oldest_ms {
            break;
        }
        // Orders accepted in the same millisecond as the page's oldest are read again rather
        // than skipped (`before_ms` is exclusive); a page of one millisecond moves on.
        let next = if before == Some(page_oldest + 1) {
            page_oldest
        } else {
            page_oldest + 1
        };
        before = Some(next);
    }
    Ok(out)
}

/// One round: list each watched state, act on each of our orders that needs it.
async fn tick(
    cfg: &DriverConfig,
    driver: &Driver,
    http: &reqwest::Client,
    shared: &Arc<Shared>,
    measures: &Measures,
    acted: &mut HashMap<String, Acted>,
) {
    let oldest_ms = shared
        .orders
        .lock()
        .unwrap()
        .first()
        .map(|o| o.placed_ms)
        .unwrap_or(0);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for &state in cfg.plan.watched() {
        match list_state(http, driver, shared, state, oldest_ms).await {
            Ok(list) => {
                for s in list {
                    seen.insert(s.id.clone(), s);
                }
            }
            Err(e) => Shared::error(
                &shared.action_errors,
                format!("list {}: {e}", state.as_str()),
            ),
        }
    }
    if cfg.plan == Plan::Full {
        // Assisted (Pinduoduo) lines wait in Purchasing for a purchaser: one list of open
        // tasks, worked for any of our orders.
        let ours: Vec<(String, Instant)> = shared
            .orders
            .lock()
            .unwrap()
            .iter()
            .map(|o| (o.id.clone(), Instant::now()))
            .collect();
        if let Err(e) = driver.work_purchaser_tasks(&ours).await {
            Shared::error(&shared.action_errors, format!("purchaser: {e}"));
        }
    }
    let now = procure_domain::clock::now_ms();
    let mut todo = Vec::new();
    {
        let index = shared.index.lock().unwrap();
        let mut orders = shared.orders.lock().unwrap();
        for s in seen.values() {
            let Some(&i) = index.get(&s.id) else {
                continue;
            };
            if s.intent.is_some() && orders[i].payable_seen_ms.is_none() {
                orders[i].payable_seen_ms = Some(now);
            }
            let a = acted.entry(s.id.clone()).or_default();
            if let Some(action) = react(cfg.plan, s.state, s.intent.as_deref(), a) {
                todo.push((s.clone(), a.clone(), action));
            }
        }
    }
    let results: Vec<(String, Acted)> = futures_util::stream::iter(todo)
        .map(|(s, a, action)| {
            let (driver, shared, http) = (driver.clone(), shared.clone(), http.clone());
            let dims = measures.of(&s.lines);
            async move {
                shared.action_requests.fetch_add(1, Ordering::Relaxed);
                let id = s.id.clone();
                let done = act(&driver, &http, &s, a, action, dims).await;
                match done {
                    Ok((a, paid_at)) => {
                        if let Some(&i) = shared.index.lock().unwrap().get(&id) {
                            let o = &mut shared.orders.lock().unwrap()[i];
                            if paid_at.is_some() {
                                o.paid_ms = paid_at;
                            }
                            if o.parcel_id.is_none() {
                                o.parcel_id.clone_from(&a.parcel);
                            }
                        }
                        Some((id, a))
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let short: String = msg.chars().take(80).collect();
                        Shared::error(&shared.action_errors, short);
                        None
                    }
                }
            }
        })
        .buffer_unordered(32)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    for (id, a) in results {
        acted.insert(id, a);
    }
}

/// Carry out one action; returns what was done (and when the customer paid, for a payment).
async fn act(
    driver: &Driver,
    http: &reqwest::Client,
    s: &Seen,
    mut a: Acted,
    action: Action,
    (weight_g, dims): (u32, [u32; 3]),
) -> anyhow::Result<(Acted, Option<i64>)> {
    let mut paid_at = None;
    match action {
        Action::Pay(intent) => {
            driver.pay(&intent).await?;
            a.paid = true;
            paid_at = Some(procure_domain::clock::now_ms());
        }
        Action::ScanIn => {
            let body = json!({"order_id": s.id, "weight_g": weight_g, "l_mm": dims[0], "w_mm": dims[1],
                "h_mm": dims[2], "photo_urls": ["https://warehouse.example/qc/1.jpg"]});
            http.post(format!("{}/api/v1/warehouse/inbound", driver.api))
                .bearer_auth(driver.token(Role::Warehouse, None))
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            a.scanned = Some((weight_g, dims));
        }
        Action::RequestParcel => {
            let p = driver
                .request_parcel(&s.customer, &[s.id.as_str()], None)
                .await?;
            a.parcel = p["id"].as_str().map(str::to_owned);
        }
        Action::Pack => {
            let parcel = a.parcel.clone().context("no parcel")?;
            let (w, d) = a.scanned.unwrap_or((weight_g, dims));
            // Repacked in a fitted box: a little heavier, a little bigger.
            let p = driver
                .pack(&parcel, w + w / 20 + 40, [d[0] + 20, d[1] + 20, d[2] + 20])
                .await?;
            a.packed = true;
            driver.pay_charges(&p).await?;
        }
        Action::PayParcelCharges => {
            let parcel = a.parcel.clone().context("no parcel")?;
            let p = driver.parcel(&parcel).await?;
            driver.pay_charges(&p).await?;
        }
        Action::AnswerPriceChanges => {
            let o = driver.order(&s.id).await?;
            driver.accept_price_changes(&o).await?;
        }
    }
    Ok((a, paid_at))
}

/// The goods' weight and measures as the catalogue describes them, as the warehouse scans them
/// in: units stacked plus 60 g and 20 mm of the seller's packaging.
struct Measures(HashMap<String, (u32, [u32; 3])>);

impl Measures {
    fn from_catalogue(c: &Value) -> Measures {
        let get = |p: &Value, k: &str| p[k].as_u64().unwrap_or(100) as u32;
        Measures(
            c["products"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let sku = p["sku"].as_str()?.to_owned();
                    Some((
                        sku,
                        (
                            get(p, "weight_g"),
                            [get(p, "l_mm"), get(p, "w_mm"), get(p, "h_mm")],
                        ),
                    ))
                })
                .collect(),
        )
    }

    fn of(&self, lines: &[(String, u32)]) -> (u32, [u32; 3]) {
        let (mut weight, mut l, mut w, mut h) = (60u32, 0u32, 0u32, 0u32);
        for (sku, qty) in lines {
            let Some((g, [pl, pw, ph])) = self.0.get(sku) else {
                continue;
            };
            weight += g * qty;
            l = l.max(*pl);
            w = w.max(*pw);
            h += ph * qty;
        }
        if l == 0 {
            return (850, [300, 200, 120]);
        }
        (weight, [l + 20, w + 20, h + 20])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_pays_once_as_soon_as_the_intent_shows() {
        let none = Acted::default();
        for plan in [Plan::Pay, Plan::Full] {
            assert_eq!(
                react(plan, OrderState::Created, None, &none),
                None,
                "no intent yet"
            );
            assert_eq!(
                react(plan, OrderState::Created, Some("pi_1"), &none),
                Some(Action::Pay("pi_1".into())),
                "an intent made right after accept is payable before the workflow moves"
            );
            assert_eq!(
                react(plan, OrderState::PendingPayment, Some("pi_1"), &none),
                Some(Action::Pay("pi_1".into()))
            );
            let paid = Acted {
                paid: true,
                ..Acted::default()
            };
            assert_eq!(
                react(plan, OrderState::PendingPayment, Some("pi_1"), &paid),
                None
            );
        }
        assert_eq!(
            react(Plan::Place, OrderState::PendingPayment, Some("pi_1"), &none),
            None
        );
    }

    #[test]
    fn the_warehouse_and_customer_follow_the_happy_path() {
        let mut a = Acted {
            paid: true,
            ..Acted::default()
        };
        assert_eq!(react(Plan::Full, OrderState::Paid, None, &a), None);
        assert_eq!(
            react(Plan::Full, OrderState::InboundTransit, None, &a),
            Some(Action::ScanIn)
        );
        assert_eq!(
            react(Plan::Pay, OrderState::InboundTransit, None, &a),
            None,
            "the burst stops at the purchase"
        );
        a.scanned = Some((500, [100, 100, 100]));
        assert_eq!(
            react(Plan::Full, OrderState::InboundTransit, None, &a),
            None
        );
        assert_eq!(
            react(Plan::Full, OrderState::InWarehouse, None, &a),
            Some(Action::RequestParcel)
        );
        assert_eq!(
            react(Plan::Full, OrderState::Packing, None, &a),
            None,
            "someone else's parcel"
        );
        a.parcel = Some("par-1".into());
        assert_eq!(react(Plan::Full, OrderState::InWarehouse, None, &a), None);
        assert_eq!(
            react(Plan::Full, OrderState::Packing, None, &a),
            Some(Action::Pack)
        );
        a.packed = true;
        assert_eq!(
            react(Plan::Full, OrderState::Packing, None, &a),
            Some(Action::PayParcelCharges)
        );
        assert_eq!(
            react(Plan::Full, OrderState::AwaitingCustomer, None, &a),
            Some(Action::AnswerPriceChanges)
        );
        assert_eq!(react(Plan::Full, OrderState::Completed, None, &a), None);
    }

    #[test]
    fn each_plan_watches_only_the_states_it_acts_on() {
        assert!(Plan::Place.watched().is_empty());
        assert_eq!(
            Plan::Pay.watched(),
            &[OrderState::Created, OrderState::PendingPayment]
        );
        let with_parcel = Acted {
            parcel: Some("p".into()),
            ..Acted::default()
        };
        for s in Plan::Full.watched() {
            assert!(
                react(Plan::Full, *s, Some("pi"), &Acted::default()).is_some()
                    || react(Plan::Full, *s, Some("pi"), &with_parcel).is_some(),
                "{s:?} is watched but never acted on"
            );
        }
        assert_eq!("pay".parse::<Plan>(), Ok(Plan::Pay));
        assert!("walk".parse::<Plan>().is_err());
    }

    #[test]
    fn skus_cheapest_on_pinduoduo_are_left_out_and_measures_stack() {
        let c = json!({
            "products": [
                {"sku": "A", "weight_g": 100, "l_mm": 50, "w_mm": 40, "h_mm": 10},
                {"sku": "B", "weight_g": 200, "l_mm": 60, "w_mm": 30, "h_mm": 20}
            ],
            "offers": [
                {"sku": "A", "platform": "1688", "price_fen": 100},
                {"sku": "A", "platform": "pinduoduo", "price_fen": 150},
                {"sku": "B", "platform": "1688", "price_fen": 300},
                {"sku": "B", "platform": "pinduoduo", "price_fen": 200}
            ]
        });
        assert_eq!(skus_bought_by_api(&c), vec!["A".to_owned()]);
        let m = Measures::from_catalogue(&c);
        assert_eq!(m.of(&[("A".into(), 2)]), (260, [70, 60, 40]));
        assert_eq!(m.of(&[("Z".into(), 1)]), (850, [300, 200, 120]));
    }
}
