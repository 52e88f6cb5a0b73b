//! `procure example-monitor`: a worked price-monitor example anyone can run. It creates a
//! monitor through the API, shows the Temporal Schedule as the stock `temporal` CLI lists it,
//! runs it, changes prices in the sandbox (Taobao drops below 1688, the Pinduoduo listing is
//! withdrawn), runs it again, and prints the price history before and after, the alerts, and
//! the channel quotes now use. Everything runs in-process on loopback and stops by itself.

use crate::{demo::Driver, devserver::temporal_cli};
use anyhow::{Context, bail};
use procure_domain::{Currency, Money};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

fn cny(fen: &Value) -> String {
    fen.as_i64()
        .map(|f| Money::new(f, Currency::CNY).to_string())
        .unwrap_or_else(|| "–".into())
}

/// The product's offers after the latest run: one table row per offer, newest observation.
fn history_table(prices: &Value, runs: usize) -> String {
    let mut t = String::from(
        "| platform | offer | observed | price | stock | landed cost (1 unit to DE) | line |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for o in prices["offers"].as_array().into_iter().flatten() {
        let history: Vec<&Value> = o["history"]
            .as_array()
            .into_iter()
            .flatten()
            .take(runs)
            .collect();
        for h in history.into_iter().rev() {
            let landed = &h["landed"];
            let _ = writeln!(
                t,
                "| {} | {} | run {} | {} | {} | {} | {} |",
                o["platform"].as_str().unwrap_or_default(),
                o["offer_id"].as_str().unwrap_or_default(),
                h["run_no"],
                if h["listed"] == true {
                    cny(&h["price_fen"])
                } else {
                    "gone".into()
                },
                h["stock"].as_i64().map_or("–".into(), |s| s.to_string()),
                if landed.is_null() {
                    "–".into()
                } else {
                    format!(
                        "{} ({})",
                        landed["cost"]["display"].as_str().unwrap_or_default(),
                        cny(&landed["cost_fen"])
                    )
                },
                landed["shipping_line"].as_str().unwrap_or("–")
            );
        }
    }
    t
}

/// Number each history row by the run it belongs to (1 = oldest).
fn number_runs(prices: &mut Value, run_keys: &[String]) {
    for o in prices["offers"].as_array_mut().into_iter().flatten() {
        for h in o["history"].as_array_mut().into_iter().flatten() {
            let key = h["run_key"].as_str().unwrap_or_default();
            if let Some(i) = run_keys.iter().position(|k| k == key) {
                h["run_no"] = json!(i + 1);
            }
        }
    }
}

pub async fn run(driver: &Driver, temporal_address: &str) -> anyhow::Result<String> {
    let v = driver.catalogue_full().await?;
    let products = v["products"].as_array().context("catalogue")?;
    let offers = v["offers"].as_array().context("catalogue offers")?;
    // A product whose cheapest offer is on 1688, with offers on all three platforms.
    let (sku, mine) = products
        .iter()
        .filter_map(|p| {
            let mine: Vec<&Value> = offers.iter().filter(|o| o["sku"] == p["sku"]).collect();
            let best = mine.iter().min_by_key(|o| o["price_fen"].as_i64())?;
            (best["platform"] == "1688" && mine.len() == 3)
                .then(|| (p["sku"].as_str().unwrap_or_default().to_owned(), mine))
        })
        .next()
        .context("no product cheapest on 1688")?;
    let of = |platform: &str| -> anyhow::Result<(String, i64)> {
        let o = mine
            .iter()
            .find(|o| o["platform"] == platform)
            .context("offer")?;
        Ok((
            o["offer_id"].as_str().unwrap_or_default().to_owned(),
            o["price_fen"].as_i64().unwrap_or_default(),
        ))
    };
    let ((_, p1688), (tb, _), (pdd, _)) = (of("1688")?, of("taobao")?, of("pinduoduo")?);

    let m = driver
        .api_post(
            "/api/v1/price-monitors",
            &json!({"name": "example: one product", "cron": "0 */6 * * *", "threshold_bps": 1000,
                    "destination_country": "DE", "products": [{"sku": sku}]}),
        )
        .await?;
    let id = m["monitor_id"].as_str().context("monitor id")?.to_owned();
    let schedule_id = m["schedule"]["schedule_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while driver
        .api_get(&format!("/api/v1/price-monitors/{id}"))
        .await?["schedule"]["in_sync"]
        != true
    {
        if Instant::now() > deadline {
            bail!("the schedule was not created within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = temporal_cli(temporal_address, &["schedule", "list"])?;

    let mut report = format!(
        "## Worked example: a price monitor\n\n\
         Produced by `procure example-monitor` against the sandbox. The monitor watches `{sku}` \
         on 1688, Taobao and Pinduoduo every 6 hours (`0 */6 * * *`), alerts beyond a 10 % move \
         and compares the landed cost of one unit to Germany.\n\n\
         `POST /api/v1/price-monitors` created `{id}`; Temporal lists its schedule \
         (`temporal schedule list`):\n\n```\n{}\n```\n\n",
        listed.trim_end()
    );

    let mut run_keys = Vec::new();
    let first = driver.run_monitor(&id, Duration::from_secs(60)).await?;
    run_keys.push(first["run_key"].as_str().unwrap_or_default().to_owned());

    driver
        .set_product(&tb, json!({"price_fen": p1688 * 6 / 10}))
        .await?;
    driver.set_product(&pdd, json!({"removed": true})).await?;
    let second = driver.run_monitor(&id, Duration::from_secs(60)).await?;
    run_keys.push(second["run_key"].as_str().unwrap_or_default().to_owned());

    let mut prices = driver
        .api_get(&format!("/api/v1/products/{sku}/prices"))
        .await?;
    number_runs(&mut prices, &run_keys);
    let _ = write!(
        report,
        "Run 1 (`POST /api/v1/price-monitors/{id}/run`) priced {} offers. Then, in the sandbox, \
         Taobao `{tb}` dropped to 60 % of the 1688 price and Pinduoduo `{pdd}` was withdrawn. \
         Run 2 priced {} listed, {} gone. `GET /api/v1/products/{sku}/prices`, oldest first per \
         offer:\n\n{}\n",
        first["offers"],
        second["listed"],
        second["gone"],
        history_table(&prices, 2)
    );
    let _ = writeln!(report, "Run 2's alerts and quote changes:\n");
    for line in second["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(second["ranking"].as_array().into_iter().flatten())
    {
        let _ = writeln!(report, "- {}", line.as_str().unwrap_or_default());
    }
    let quote = driver.quote(&[(sku.clone(), 1)], "DE", "EUR").await?;
    let _ = writeln!(
        report,
        "\nA quote for one `{sku}` to Germany now buys from {} `{}` at {} (total {}).",
        quote["items"][0]["platform"].as_str().unwrap_or_default(),
        quote["items"][0]["offer_id"].as_str().unwrap_or_default(),
        cny(&quote["items"][0]["unit_price"]["minor"]),
        quote["total"]["display"].as_str().unwrap_or_default()
    );
    driver
        .api_post(&format!("/api/v1/price-monitors/{id}/pause"), &json!({}))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = temporal_cli(
            temporal_address,
            &["schedule", "describe", "--schedule-id", &schedule_id],
        )?;
        if d.contains("Paused") && d.contains("true") {
            let _ = writeln!(
                report,
                "\n`POST …/pause`, then `temporal schedule describe --schedule-id {schedule_id}`:\n\n```\n{}\n```",
                d.trim_end()
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("the schedule was not paused within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(report)
}
