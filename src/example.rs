//! `procure example-parcels`: a worked example anyone can run. For two destinations it places
//! two orders of one customer, buys them, scans them in, consolidates them into one parcel,
//! packs it, and prints what each quote estimated for shipping, duty and insurance, what the
//! packed parcel actually cost, and how each order was settled (charge, refund or absorbed),
//! checked against the sandbox's ledger. Everything runs in-process on loopback and stops by
//! itself.

use crate::demo::Driver;
use anyhow::{Context, bail};
use procure_domain::{Currency, Money, OrderState};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One customer's consolidated shipment to a destination.
pub struct Scenario {
    pub customer: &'static str,
    pub country: &'static str,
    pub currency: &'static str,
    /// Catalogue indexes of the two orders' items (one unit each).
    pub items: [usize; 2],
    /// Quote the second order as a guaranteed all-in price.
    pub guaranteed_second: bool,
    /// Padding the warehouse adds on each side when packing (fragile goods get a lot).
    pub padding_mm: u64,
}

pub const SCENARIOS: [Scenario; 2] = [
    Scenario {
        customer: "cust-example-us",
        country: "US",
        currency: "USD",
        items: [0, 1],
        guaranteed_second: false,
        padding_mm: 20,
    },
    Scenario {
        customer: "cust-example-de",
        country: "DE",
        currency: "EUR",
        items: [2, 3],
        guaranteed_second: true,
        padding_mm: 160,
    },
];

fn money(v: &Value) -> String {
    let minor = v["minor"].as_i64().unwrap_or_default();
    v["currency"]
        .as_str()
        .and_then(|c| c.parse::<Currency>().ok())
        .map(|c| Money::new(minor, c).to_string())
        .unwrap_or_else(|| format!("{minor}"))
}

async fn wait(driver: &Driver, id: &str, want: OrderState) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut paid = false;
    let me = [(id.to_owned(), Instant::now())];
    loop {
        // Lines cheapest on Pinduoduo are bought by a purchaser: play that part too.
        driver.work_purchaser_tasks(&me).await?;
        let o = driver.order(id).await?;
        if o["state"] == want.as_str() {
            return Ok(o);
        }
        if o["state"] == "PendingPayment"
            && !paid
            && let Some(intent) = o["payment_intent_id"].as_str()
        {
            driver.pay(intent).await?;
            paid = true;
        }
        if Instant::now() > deadline {
            bail!("order {id} stuck in {}", o["state"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run one scenario; returns its report (markdown).
pub async fn run_scenario(driver: &Driver, s: &Scenario) -> anyhow::Result<String> {
    let catalogue = driver.catalogue().await?;
    let mut orders = Vec::new();
    for (n, idx) in s.items.iter().enumerate() {
        let sku = catalogue[*idx % catalogue.len()]["sku"]
            .as_str()
            .context("sku")?;
        let guaranteed = n == 1 && s.guaranteed_second;
        let quote = driver
            .quote_with(
                &[(sku.to_owned(), 1)],
                s.country,
                s.currency,
                json!({"guaranteed": guaranteed, "insurance": true}),
            )
            .await?;
        let order = driver
            .place_order(
                quote["quote_id"].as_str().context("quote id")?,
                s.customer,
                s.country,
                &uuid::Uuid::new_v4().to_string(),
            )
            .await?;
        orders.push((order["id"].as_str().context("order id")?.to_owned(), quote));
    }
    let mut weight = 0u64;
    let (mut l, mut w, mut h) = (0u64, 0u64, 0u64);
    for (id, _) in &orders {
        wait(driver, id, OrderState::InboundTransit).await?;
        driver.scan_in(id).await?;
        let o = wait(driver, id, OrderState::InWarehouse).await?;
        let item = &o["warehouse"];
        weight += item["weight_g"].as_u64().unwrap_or_default();
        l = l.max(item["dims"]["l_mm"].as_u64().unwrap_or_default());
        w = w.max(item["dims"]["w_mm"].as_u64().unwrap_or_default());
        h += item["dims"]["h_mm"].as_u64().unwrap_or_default();
    }
    let ids: Vec<&str> = orders.iter().map(|(id, _)| id.as_str()).collect();
    let parcel = driver.request_parcel(s.customer, &ids, None).await?;
    let pid = parcel["id"].as_str().context("parcel id")?.to_owned();
    for id in &ids {
        wait(driver, id, OrderState::Packing).await?;
    }
    // One box for both: their weights plus 5 % and a 40 g carton, padded on every side.
    let packed_g = weight + weight / 20 + 40;
    let pad = s.padding_mm;
    let (l, w, h) = (l + pad, w + pad, h + pad);
    let priced = driver
        .pack(&pid, packed_g as u32, [l as u32, w as u32, h as u32])
        .await?;
    // The customer pays a supplementary charge if there is one.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = driver.parcel(&pid).await?;
        if driver.pay_charges(&p).await? > 0 || p["tracking_number"].as_str().is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("parcel {pid} stuck in {}", p["status"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        wait(driver, id, OrderState::Completed).await?;
    }
    let parcel = driver.parcel(&pid).await?;
    let ledger = driver.ledger().await?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} → {} ({}), parcel {pid}\n\nPacked: {} g, {}×{}×{} mm on {}; actual shipping + duty + insurance {} (the quotes estimated {}).\n",
        s.customer,
        s.country,
        s.currency,
        packed_g,
        l,
        w,
        h,
        parcel["shipping_line"].as_str().unwrap_or_default(),
        money(&priced["actual"]),
        money(&priced["estimated"]),
    );
    let _ = writeln!(
        out,
        "| order | quote total | quote: shipping / duty / insurance (CNY) | guaranteed | estimate | actual share | settlement | charged | refunded |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (id, quote) in &orders {
        let b = &quote["breakdown"];
        let st = parcel["settlements"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["order_id"] == id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let charged: i64 = ledger
            .iter()
            .filter(|e| e.kind == "charge" && e.reference == *id)
            .map(|e| e.amount_minor)
            .sum();
        let refunded: i64 = ledger
            .iter()
            .filter(|e| e.kind == "refund" && e.reference.contains(id.as_str()))
            .map(|e| e.amount_minor)
            .sum();
        let cur = quote["total"]["currency"].clone();
        let _ = writeln!(
            out,
            "| {id} | {} | {} / {} / {} | {} | {} | {} | {} {} | {} | {} |",
            money(&quote["total"]),
            money(&b["international_shipping"]),
            money(&b["duty"]),
            money(&b["insurance"]),
            if quote["guaranteed"] == true {
                "yes"
            } else {
                "no"
            },
            money(&st["estimated"]),
            money(&st["actual"]),
            st["outcome"].as_str().unwrap_or("-"),
            money(&st["amount"]),
            money(&json!({"minor": charged, "currency": cur})),
            money(&json!({"minor": refunded, "currency": cur})),
        );
    }
    let supplementary: i64 = ledger
        .iter()
        .filter(|e| e.kind == "charge" && e.reference == pid)
        .map(|e| e.amount_minor)
        .sum();
    let _ = writeln!(
        out,
        "\nSupplementary parcel charge paid: {}. Shipments booked for the parcel: {}.\n",
        money(&json!({"minor": supplementary, "currency": parcel["currency"]})),
        ledger
            .iter()
            .filter(|e| e.kind == "shipment" && e.reference == pid)
            .count()
    );
    Ok(out)
}
