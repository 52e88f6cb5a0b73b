//! Price monitors' storage against real databases (a fresh SQLite file and a fresh PostgreSQL
//! database per test): monitors and their schedule bookkeeping, and the recording of runs:
//! snapshots, alerts against what was known, offers taken out of and back into procurement,
//! the listing price following the best channel, and a run recorded once however often the
//! activity retries.

use procure_domain::{
    Currency, Money,
    monitor::{AlertKind, OfferRef, Seen},
    order::Platform,
};
use procure_store::{
    Store, StoreError,
    catalogue::{Listing, Offer},
    monitors::{Landed, MonitorStatus, NewMonitor},
    outbox::{SYNC_SCHEDULE, TRIGGER_SCHEDULE},
};
use procure_workflows::monitor::{Observation, Observed, RecordRun};
use std::collections::HashMap;
mod common;
use common::TestDb;

const SKU: &str = "SKU-M";

async fn seeded(url: &str) -> Store {
    let store = Store::connect(url).await.unwrap();
    store
        .upsert_listing(&Listing {
            sku: SKU.into(),
            platform: "1688".into(),
            offer_id: "a1".into(),
            spec_id: "s".into(),
            title: "Monitored item".into(),
            price_fen: 1_000,
            weight_g: 300,
            l_mm: 200,
            w_mm: 150,
            h_mm: 100,
            domestic_shipping_fen: 500,
            available: 50,
        })
        .await
        .unwrap();
    for (platform, id, price) in [
        (Platform::Alibaba1688, "a1", 1_000),
        (Platform::Taobao, "t1", 1_200),
        (Platform::Pinduoduo, "p1", 1_500),
    ] {
        store
            .upsert_offer(&Offer {
                sku: SKU.into(),
                platform,
                offer_id: id.into(),
                spec_id: "s".into(),
                price_fen: price,
                domestic_shipping_fen: 500,
                stock: Some(20),
                active: true,
            })
            .await
            .unwrap();
    }
    store
}

fn new_monitor(id: &str, offers: Vec<OfferRef>) -> NewMonitor {
    NewMonitor {
        id: id.into(),
        name: "watch".into(),
        cron: "*/5 * * * *".into(),
        threshold_bps: 1_000,
        destination_country: "US".into(),
        paused: false,
        products: vec![(SKU.into(), offers)],
    }
}

fn obs(platform: Platform, id: &str, outcome: Observed) -> Observation {
    Observation {
        sku: SKU.into(),
        offer: OfferRef {
            platform,
            offer_id: id.into(),
            spec_id: "s".into(),
        },
        observed_at_ms: 1_700_000_000_000,
        outcome,
    }
}

fn listed(price_fen: i64) -> Observed {
    Observed::Seen(Seen::Listed {
        price_fen,
        stock: Some(20),
    })
}

fn run(key: &str, observations: Vec<Observation>) -> RecordRun {
    RecordRun {
        monitor_id: "pm1".into(),
        run_key: key.into(),
        observations,
    }
}

async fn monitors_and_schedule_bookkeeping(url: &str) {
    let store = seeded(url).await;
    let extra = OfferRef {
        platform: Platform::Taobao,
        offer_id: "t2".into(),
        spec_id: "x".into(),
    };
    let m = store
        .create_monitor(&new_monitor("pm1", vec![extra.clone()]))
        .await
        .unwrap();
    assert_eq!(m.status, MonitorStatus::Active);
    assert_eq!((m.version, m.synced_version), (1, 0));
    assert_eq!(m.skus, vec![SKU.to_owned()]);
    // The new offer is a candidate, unpriced (so never ranked) until a run prices it.
    let t2 = store
        .offers_all()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.offer_id == "t2")
        .unwrap();
    assert_eq!((t2.price_fen, t2.active), (0, true));
    let watched = store.monitor_offers("pm1").await.unwrap().unwrap();
    assert_eq!(watched.len(), 4);
    let due = store.outbox_due(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].kind(), due[0].subject.as_str()),
        (SYNC_SCHEDULE, "pm1")
    );
    store.outbox_done(due[0].id).await.unwrap();

    // Same status again: no new version, nothing queued.
    let same = store
        .set_monitor_status("pm1", MonitorStatus::Active)
        .await
        .unwrap();
    assert_eq!(same.version, 1);
    assert!(store.outbox_due(10).await.unwrap().is_empty());
    let paused = store
        .set_monitor_status("pm1", MonitorStatus::Paused)
        .await
        .unwrap();
    assert_eq!((paused.status, paused.version), (MonitorStatus::Paused, 2));
    store.mark_schedule_synced("pm1", 2).await.unwrap();
    store.mark_schedule_synced("pm1", 1).await.unwrap();
    assert_eq!(
        store.monitor("pm1").await.unwrap().synced_version,
        2,
        "never backwards"
    );
    store.trigger_monitor("pm1").await.unwrap();
    let kinds: Vec<&str> = store
        .outbox_due(10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.kind())
        .collect();
    assert_eq!(kinds, [SYNC_SCHEDULE, TRIGGER_SCHEDULE]);

    // A product that is not a listing, or an offer of another product: nothing is stored.
    let mut bad = new_monitor("pm2", vec![]);
    bad.products.push(("NOPE".into(), vec![]));
    assert!(
        matches!(store.create_monitor(&bad).await, Err(StoreError::UnknownSku(s)) if s == "NOPE")
    );
    store
        .upsert_listing(&Listing {
            sku: "OTHER".into(),
            ..store.listing(SKU).await.unwrap()
        })
        .await
        .unwrap();
    let mut taken = new_monitor("pm3", vec![]);
    taken.products = vec![("OTHER".into(), vec![extra])];
    assert!(matches!(
        store.create_monitor(&taken).await,
        Err(StoreError::StateConflict(_))
    ));
    assert_eq!(store.monitors().await.unwrap().len(), 1);

    let deleted = store
        .set_monitor_status("pm1", MonitorStatus::Deleted)
        .await
        .unwrap();
    assert_eq!(deleted.status, MonitorStatus::Deleted);
    assert!(matches!(
        store.monitor("pm1").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.monitor_any("pm1").await.unwrap().version, 3);
    assert!(store.monitor_offers("pm1").await.unwrap().is_none());
    assert!(matches!(
        store.set_monitor_status("pm1", MonitorStatus::Active).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.monitors().await.unwrap().is_empty());
    // Deleted but its schedule not yet removed: still re-synced; once removed, never again.
    assert_eq!(store.resync_schedules().await.unwrap(), 1);
    store.mark_schedule_synced("pm1", 3).await.unwrap();
    assert_eq!(store.resync_schedules().await.unwrap(), 0);
}

async fn runs_record_snapshots_alerts_and_ranking_once(url: &str) {
    let store = seeded(url).await;
    store
        .create_monitor(&new_monitor("pm1", vec![]))
        .await
        .unwrap();
    let landed = HashMap::from([(
        (Platform::Taobao, "t1".to_owned()),
        Landed {
            domestic_shipping_fen: 500,
            cost_fen: 9_999,
            cost: Money::new(1_400, Currency::USD),
            line: "SANDBOX-EXP".into(),
        },
    )]);

    // Run 1: 1688 unchanged, Taobao −50 % (beyond the 10 % threshold), PDD failed to answer.
    let r1 = run(
        "run-1",
        vec![
            obs(Platform::Alibaba1688, "a1", listed(1_000)),
            obs(Platform::Taobao, "t1", listed(600)),
            obs(
                Platform::Pinduoduo,
                "p1",
                Observed::Failed {
                    reason: "rate limited".into(),
                },
            ),
        ],
    );
    let s1 = store.record_run(&r1, &landed).await.unwrap();
    assert_eq!((s1.offers, s1.listed, s1.gone, s1.failed), (3, 2, 0, 1));
    assert_eq!(s1.price_changes, 1);
    assert_eq!(s1.alerts.len(), 1, "{:?}", s1.alerts);
    assert!(
        s1.alerts[0].contains("price_down") && s1.alerts[0].contains("-50.00 %"),
        "{:?}",
        s1.alerts
    );
    assert_eq!(s1.ranking.len(), 1, "{:?}", s1.ranking);
    assert_eq!(
        s1.ranking,
        ["SKU-M: quoted from taobao t1 at 6.00 CNY (was 1688 a1 at 10.00 CNY)"]
    );
    let l = store.listing(SKU).await.unwrap();
    assert_eq!(
        (l.platform.as_str(), l.offer_id.as_str(), l.price_fen),
        ("taobao", "t1", 600)
    );

    // The activity retried after the commit: same key, same summary, nothing doubled.
    let again = store.record_run(&r1, &landed).await.unwrap();
    assert_eq!(again, s1);
    assert_eq!(
        store.price_history(SKU, 100).await.unwrap().len(),
        2,
        "a failed lookup leaves no snapshot"
    );
    assert_eq!(
        store
            .price_alerts(Some("pm1"), None, 100)
            .await
            .unwrap()
            .len(),
        1
    );

    // Run 2: Taobao's listing is gone, 1688 +5 % (under the threshold), PDD answers.
    let r2 = run(
        "run-2",
        vec![
            obs(Platform::Alibaba1688, "a1", listed(1_050)),
            obs(Platform::Taobao, "t1", Observed::Seen(Seen::Gone)),
            obs(Platform::Pinduoduo, "p1", listed(1_500)),
        ],
    );
    let s2 = store.record_run(&r2, &HashMap::new()).await.unwrap();
    assert_eq!(
        (s2.listed, s2.gone, s2.failed, s2.price_changes),
        (2, 1, 0, 1)
    );
    let kinds: Vec<&str> = store
        .price_alerts(None, Some(SKU), 100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.alert.name())
        .collect();
    assert_eq!(
        kinds,
        ["disappeared", "price_down"],
        "newest first; +5 % is no alert"
    );
    let active: Vec<String> = store
        .offers()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.offer_id)
        .collect();
    assert_eq!(active, ["a1", "p1"], "the gone listing left procurement");
    let l = store.listing(SKU).await.unwrap();
    assert_eq!((l.offer_id.as_str(), l.price_fen), ("a1", 1_050));
    assert!(
        s2.ranking[0].contains("quoted from 1688 a1"),
        "{:?}",
        s2.ranking
    );

    // Run 3: it is back, out of stock.
    let r3 = run(
        "run-3",
        vec![obs(
            Platform::Taobao,
            "t1",
            Observed::Seen(Seen::Listed {
                price_fen: 600,
                stock: Some(0),
            }),
        )],
    );
    store.record_run(&r3, &HashMap::new()).await.unwrap();
    let newest: Vec<AlertKind> = store
        .price_alerts(Some("pm1"), None, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.alert)
        .collect();
    assert_eq!(newest, [AlertKind::OutOfStock, AlertKind::Reappeared]);
    // Back in procurement, but out of stock: ranking still passes it over.
    assert_eq!(store.listing(SKU).await.unwrap().offer_id, "a1");

    // History: newest first, the landed cost where it was computed.
    let history = store.price_history(SKU, 100).await.unwrap();
    assert_eq!(history.len(), 6);
    let t1: Vec<(bool, Option<i64>)> = history
        .iter()
        .filter(|s| s.offer_id == "t1")
        .map(|s| (s.listed, s.price_fen))
        .collect();
    assert_eq!(t1, [(true, Some(600)), (false, None), (true, Some(600))]);
    let first_t1 = history.iter().rfind(|s| s.offer_id == "t1").unwrap();
    assert_eq!(
        first_t1.landed.as_ref().unwrap().cost,
        Money::new(1_400, Currency::USD)
    );
    let runs = store.monitor_runs("pm1", 10).await.unwrap();
    assert_eq!(runs.len(), 3);

    // A run of a monitor that does not exist records nothing.
    let mut ghost = run(
        "run-ghost",
        vec![obs(Platform::Alibaba1688, "a1", listed(1))],
    );
    ghost.monitor_id = "pm-none".into();
    assert!(matches!(
        store.record_run(&ghost, &HashMap::new()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.price_history(SKU, 100).await.unwrap().len(), 6);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::sqlite().await; super::$name(&db.url).await; db.drop_db().await; } )* }
        mod postgres { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::postgres().await; super::$name(&db.url).await; db.drop_db().await; } )* }
    };
}

on_both!(
    monitors_and_schedule_bookkeeping,
    runs_record_snapshots_alerts_and_ranking_once
);
