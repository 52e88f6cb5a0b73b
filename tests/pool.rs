//! The buyer-account pool and offers on real databases (SQLite file, PostgreSQL database per
//! test): weighted choice, caps and rate budgets that hold across several processes' pools,
//! cooling down after risk control, sealed credentials.

mod common;
use common::TestDb;
use procure_domain::{Secret, clock::now_ms, order::Platform, seal::Sealer, status::AccountStatus};
use procure_store::{
    Store,
    accounts::{AccountOutcome, NewAccount, buckets},
    catalogue::{Listing, Offer},
};

fn sealer() -> Sealer {
    Sealer::from_spec("t1:2222222222222222222222222222222222222222222222222222222222222222")
        .unwrap()
}

fn acct(id: &str, weight: i64, daily_cap: i64, per_minute: i64) -> NewAccount {
    NewAccount {
        id: id.into(),
        platform: Platform::Alibaba1688,
        label: format!("buyer {id}"),
        weight,
        daily_cap,
        per_minute,
        access_token: Secret::new(format!("token-of-{id}")),
    }
}

async fn caps_hold_across_processes(db_url: &str) {
    let s = sealer();
    let a = Store::connect(db_url).await.unwrap();
    let b = Store::connect(db_url).await.unwrap(); // a second worker process's pool
    a.add_account(&acct("acc-1", 5, 10, 1000), &s)
        .await
        .unwrap();
    a.add_account(&acct("acc-2", 3, 7, 1000), &s).await.unwrap();
    a.add_account(&acct("acc-3", 2, 5, 1000), &s).await.unwrap();
    let at = now_ms();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let st = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            st.claim_account(Platform::Alibaba1688, &[], at, fastrand::f64())
                .await
                .unwrap()
        }));
    }
    let mut got = std::collections::HashMap::new();
    let mut none = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(acc) => *got.entry(acc.id).or_insert(0) += 1,
            None => none += 1,
        }
    }
    let (day, _) = buckets(at);
    assert_eq!(got.get("acc-1"), Some(&10));
    assert_eq!(got.get("acc-2"), Some(&7));
    assert_eq!(got.get("acc-3"), Some(&5));
    assert_eq!(none, 40 - 22, "claims beyond every cap are refused");
    assert_eq!(a.account_budget_used("acc-1", &day).await.unwrap(), 10);
}

/// The id of the 1688 account a claim with this pick gets, if any.
async fn claimed(st: &Store, exclude: &[String], at: i64, pick: f64) -> Option<String> {
    st.claim_account(Platform::Alibaba1688, exclude, at, pick)
        .await
        .unwrap()
        .map(|a| a.id)
}

async fn weights_rate_limits_and_cooling(db_url: &str) {
    let s = sealer();
    let st = Store::connect(db_url).await.unwrap();
    st.add_account(&acct("heavy", 9, 1000, 1000), &s)
        .await
        .unwrap();
    st.add_account(&acct("light", 1, 1000, 2), &s)
        .await
        .unwrap();
    let at = now_ms();
    // Deterministic picks: the top 10 % of the range lands on the light account.
    assert_eq!(claimed(&st, &[], at, 0.05).await.unwrap(), "heavy");
    assert_eq!(claimed(&st, &[], at, 0.95).await.unwrap(), "light");
    assert_eq!(claimed(&st, &[], at, 0.95).await.unwrap(), "light");
    // 'light' has used its 2 calls this minute: the same pick now falls to 'heavy'.
    assert_eq!(claimed(&st, &[], at, 0.95).await.unwrap(), "heavy");
    // Next minute, the rate budget is fresh again.
    assert_eq!(claimed(&st, &[], at + 60_000, 0.95).await.unwrap(), "light");
    // Risk control cools an account down; exclusion and disabling take it out of the choice.
    st.record_account_outcome(
        "heavy",
        AccountOutcome::RiskControl {
            cool_for_ms: 600_000,
        },
    )
    .await
    .unwrap();
    let later = now_ms() + 120_000;
    assert_eq!(claimed(&st, &[], later, 0.05).await.unwrap(), "light");
    assert!(claimed(&st, &["light".into()], later, 0.05).await.is_none());
    st.update_account(
        "light",
        None,
        None,
        None,
        Some(AccountStatus::Disabled),
        None,
    )
    .await
    .unwrap();
    assert!(claimed(&st, &[], later, 0.5).await.is_none());
    assert!(
        st.claim_account(Platform::Taobao, &[], later, 0.5)
            .await
            .unwrap()
            .is_none(),
        "no taobao accounts"
    );
    let heavy = st.account("heavy").await.unwrap();
    assert_eq!(heavy.risk_events, 1);
}

async fn credentials_are_sealed(db_url: &str) {
    let s = sealer();
    let st = Store::connect(db_url).await.unwrap();
    let acc = st.add_account(&acct("sealed", 1, 1, 1), &s).await.unwrap();
    assert!(!format!("{acc:?}").contains("token-of-sealed"));
    let raw: String = sqlx::query_scalar::<_, String>(
        "SELECT credentials FROM buyer_accounts WHERE id = 'sealed'",
    )
    .fetch_one(st.pool())
    .await
    .unwrap();
    assert!(
        !raw.contains("token-of-sealed") && raw.starts_with("v1:t1:"),
        "stored sealed: {raw}"
    );
    assert_eq!(
        st.account_token("sealed", &s).await.unwrap().expose(),
        "token-of-sealed"
    );
    st.update_account(
        "sealed",
        None,
        None,
        None,
        None,
        Some((&Secret::new("rotated"), &s)),
    )
    .await
    .unwrap();
    assert_eq!(
        st.account_token("sealed", &s).await.unwrap().expose(),
        "rotated"
    );
}

async fn offers_rank_with_track_record(db_url: &str) {
    let st = Store::connect(db_url).await.unwrap();
    st.upsert_listing(&Listing {
        sku: "S1".into(),
        platform: "1688".into(),
        offer_id: "a1".into(),
        spec_id: "x".into(),
        title: "t".into(),
        price_fen: 4_500,
        weight_g: 1,
        l_mm: 1,
        w_mm: 1,
        h_mm: 1,
        domestic_shipping_fen: 500,
        available: 10,
    })
    .await
    .unwrap();
    for (p, id, price) in [
        (Platform::Alibaba1688, "a1", 4_500),
        (Platform::Taobao, "tb1", 4_200),
        (Platform::Pinduoduo, "pdd1", 3_900),
    ] {
        st.upsert_offer(&Offer {
            sku: "S1".into(),
            platform: p,
            offer_id: id.into(),
            spec_id: "x".into(),
            price_fen: price,
            domestic_shipping_fen: 500,
            stock: None,
            active: true,
        })
        .await
        .unwrap();
    }
    let ranked = procure_domain::procurement::rank(&st.candidates("S1").await.unwrap(), 1);
    assert_eq!(ranked[0].offer_id, "pdd1");
    for _ in 0..20 {
        st.record_offer_attempt(Platform::Pinduoduo, "pdd1", false)
            .await
            .unwrap();
    }
    let ranked = procure_domain::procurement::rank(&st.candidates("S1").await.unwrap(), 1);
    assert_ne!(
        ranked[0].offer_id, "pdd1",
        "a supplier that keeps failing sinks"
    );
    // A withdrawn offer leaves the candidates and the listing of active offers.
    assert!(
        st.set_offer_active(Platform::Taobao, "tb1", false)
            .await
            .unwrap()
    );
    assert!(
        !st.set_offer_active(Platform::Taobao, "nope", false)
            .await
            .unwrap()
    );
    let active: Vec<String> = st
        .offers()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.offer_id)
        .collect();
    assert_eq!(active, ["a1", "pdd1"]);
    assert!(
        st.candidates("S1")
            .await
            .unwrap()
            .iter()
            .all(|c| c.offer_id != "tb1")
    );
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::sqlite().await; super::$name(&db.url).await; db.drop_db().await; } )* }
        mod postgres { use super::*; $( #[tokio::test] async fn $name() { let db = TestDb::postgres().await; super::$name(&db.url).await; db.drop_db().await; } )* }
    };
}

on_both!(
    caps_hold_across_processes,
    weights_rate_limits_and_cooling,
    credentials_are_sealed,
    offers_rank_with_track_record
);
