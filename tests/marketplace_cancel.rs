//! Cancelling a bought line at its marketplace, end to end without Temporal: the worker's own
//! activities object (`components::order_activities`) on a fresh SQLite store, against the
//! sandbox over HTTP. Money is checked in the sandbox ledger: a marketplace refund equals what
//! was paid, once. Nothing waits on time (the sellers are held with a long shipping delay and
//! shipped through the sandbox control).

use procure::components::{External, order_activities};
use procure_activities::order::{OrderActivitiesImpl, demo_warehouse};
use procure_adapters::{CargoLine, PurchaseRequest, purchase};
use procure_domain::seal::Sealer;
use procure_domain::{
    Currency, Money, Secret,
    order::{OrderLine, Platform},
};
use procure_sandbox::{Sandbox, SandboxConfig};
use procure_store::{accounts::NewAccount, catalogue::Listing, orders::NewOrder};
use procure_workflows::contract::{MarketplaceCancelOutcome, MarketplaceCancelRequest};
use tokio::{net::TcpListener, sync::oneshot};

mod common;
use common::TestDb;

const EARBUDS: &str = "652983741026";
const EARBUDS_SPEC: &str = "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3";
const TB_EARBUDS: &str = "tb695028137746";
const TB_EARBUDS_SKU: &str = "4987301265501";
const ORDER: &str = "ord-mc-1";

struct World {
    base: String,
    sandbox: Sandbox,
    acts: OrderActivitiesImpl,
    _db: TestDb,
    _stop: oneshot::Sender<()>,
}

async fn world() -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::new(SandboxConfig {
        seller_ship_ms: 3_600_000,
        close_order_grace_ms: 0,
        ..Default::default()
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(procure_sandbox::serve(
        listener,
        sandbox.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let db = TestDb::sqlite().await;
    let acts = order_activities(&db.url, &External::at(&base))
        .await
        .unwrap();
    // One order of five lines for the purchases below to hang from.
    let cny = Money::new(5_000, Currency::CNY);
    let lines = (1..=5)
        .map(|n| OrderLine {
            line_no: n,
            sku: "SKU-MC".into(),
            platform: Platform::Alibaba1688,
            offer_id: EARBUDS.into(),
            spec_id: EARBUDS_SPEC.into(),
            quantity: 1,
            unit_price: cny,
            max_unit_price: cny,
        })
        .collect();
    acts.store
        .upsert_listing(&Listing {
            sku: "SKU-MC".into(),
            platform: "1688".into(),
            offer_id: EARBUDS.into(),
            spec_id: EARBUDS_SPEC.into(),
            title: "Earbuds".into(),
            price_fen: 5_000,
            weight_g: 100,
            l_mm: 10,
            w_mm: 10,
            h_mm: 10,
            domestic_shipping_fen: 800,
            available: 100,
        })
        .await
        .unwrap();
    acts.store
        .create_order(
            &NewOrder {
                id: ORDER.into(),
                customer_id: "cust-1".into(),
                quote_id: "q-1".into(),
                total: Money::new(10_000, Currency::USD),
                lines,
                shipping_address: serde_json::json!({"country": "US"}),
                destination_country: "US".into(),
            },
            "key-mc-1",
            "hash-mc-1",
        )
        .await
        .unwrap();
    World {
        base,
        sandbox,
        acts,
        _db: db,
        _stop: stop,
    }
}

fn request(out: &str, offer: &str, spec: &str) -> PurchaseRequest {
    PurchaseRequest {
        out_order_id: out.into(),
        lines: vec![CargoLine {
            offer_id: offer.into(),
            spec_id: spec.into(),
            quantity: 1,
            max_unit_price_fen: 1_000_000,
        }],
        address: demo_warehouse(),
        max_total_fen: 1_000_000,
    }
}

impl World {
    /// Buy line `line_no` on `platform` at the sandbox and book it as the purchase activity
    /// does; returns (marketplace order id, fen paid).
    async fn buy(&self, line_no: u32, platform: Platform) -> (String, i64) {
        let out = format!("{ORDER}-L{line_no}");
        let req = match platform {
            Platform::Alibaba1688 => request(&out, EARBUDS, EARBUDS_SPEC),
            _ => request(&out, TB_EARBUDS, TB_EARBUDS_SKU),
        };
        let buyer = self.acts.marketplaces.buyer(platform).unwrap();
        let p = purchase(buyer, &req).await.unwrap();
        self.acts
            .store
            .record_purchase(
                ORDER,
                line_no,
                platform.as_str(),
                &p.marketplace_order_id,
                p.amount_paid_fen,
            )
            .await
            .unwrap();
        (p.marketplace_order_id, p.amount_paid_fen)
    }

    async fn cancel(&self, line_no: u32, account: Option<&str>) -> MarketplaceCancelOutcome {
        self.acts
            .cancel_line_at_marketplace(&MarketplaceCancelRequest {
                order_id: ORDER.into(),
                line_no,
                account: account.map(Into::into),
                reason: "customer cancelled".into(),
            })
            .await
            .unwrap()
    }

    fn refunds(&self) -> Vec<(String, String, i64)> {
        self.sandbox
            .ledger()
            .into_iter()
            .filter(|e| e.kind == "marketplace_refund")
            .map(|e| (e.platform, e.reference, e.amount_minor))
            .collect()
    }

    async fn ship(&self, marketplace_order_id: &str) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/_sandbox/marketplace/orders/{marketplace_order_id}/ship",
                self.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
}

fn cny(fen: i64) -> Money {
    Money::new(fen, Currency::CNY)
}

#[tokio::test]
async fn paid_lines_are_cancelled_and_refunded_until_the_seller_ships() {
    let w = world().await;
    assert_eq!(w.cancel(1, None).await, MarketplaceCancelOutcome::NotBought);

    // 1688: paid, not shipped → refunded in full (createRefund), once.
    let (ali, ali_paid) = w.buy(1, Platform::Alibaba1688).await;
    let cancelled = MarketplaceCancelOutcome::Cancelled {
        platform: "1688".into(),
        marketplace_order_id: ali.clone(),
        refunded: cny(ali_paid),
    };
    assert_eq!(w.cancel(1, None).await, cancelled);
    assert_eq!(
        w.cancel(1, None).await,
        cancelled,
        "a repeat reads the closed order"
    );
    assert_eq!(w.refunds(), [("1688".to_string(), ali.clone(), ali_paid)]);

    // Taobao: paid, not shipped → cancelled and refunded in full, once.
    let (tb, tb_paid) = w.buy(2, Platform::Taobao).await;
    let cancelled = MarketplaceCancelOutcome::Cancelled {
        platform: "taobao".into(),
        marketplace_order_id: tb.clone(),
        refunded: cny(tb_paid),
    };
    assert_eq!(w.cancel(2, None).await, cancelled);
    assert_eq!(w.cancel(2, None).await, cancelled);
    assert_eq!(w.refunds().len(), 2);
    assert_eq!(w.refunds()[1], ("taobao".to_string(), tb, tb_paid));

    // Shipped by the seller → too late on both, nothing refunded.
    let (ali3, _) = w.buy(3, Platform::Alibaba1688).await;
    w.ship(&ali3).await;
    assert_eq!(
        w.cancel(3, None).await,
        MarketplaceCancelOutcome::TooLate {
            platform: "1688".into(),
            marketplace_order_id: ali3,
            status: "waitbuyerreceive".into()
        }
    );
    let (tb4, _) = w.buy(4, Platform::Taobao).await;
    w.ship(&tb4).await;
    assert_eq!(
        w.cancel(4, None).await,
        MarketplaceCancelOutcome::TooLate {
            platform: "taobao".into(),
            marketplace_order_id: tb4,
            status: "WAIT_BUYER_CONFIRM_GOODS".into()
        }
    );
    assert_eq!(w.refunds().len(), 2, "nothing refunded after shipping");
}

#[tokio::test]
async fn lines_without_a_buyer_api_and_unknown_accounts_are_refused_cleanly() {
    let w = world().await;
    w.acts
        .store
        .record_purchase(ORDER, 5, "pinduoduo", "pdd-123", 3_900)
        .await
        .unwrap();
    assert!(matches!(
        w.cancel(5, None).await,
        MarketplaceCancelOutcome::NotCancellable { platform, .. } if platform == "pinduoduo"
    ));

    // Two pooled Taobao accounts: which one bought must be named.
    let sealer = Sealer::development();
    for id in ["tb-a", "tb-b"] {
        w.acts
            .store
            .add_account(
                &NewAccount {
                    id: id.into(),
                    platform: Platform::Taobao,
                    label: id.into(),
                    weight: 1,
                    daily_cap: 100,
                    per_minute: 100,
                    access_token: Secret::new(format!("demotaobao-token-{id}")),
                },
                &sealer,
            )
            .await
            .unwrap();
    }
    let (tb, paid) = w.buy(2, Platform::Taobao).await;
    let req = |account: Option<&str>, reason: &str| MarketplaceCancelRequest {
        order_id: ORDER.into(),
        line_no: 2,
        account: account.map(Into::into),
        reason: reason.into(),
    };
    let err = w
        .acts
        .cancel_line_at_marketplace(&req(None, "customer cancelled"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("several buyer accounts"),
        "{err:?}"
    );
    let err = w
        .acts
        .cancel_line_at_marketplace(&req(Some("tb-a"), "x\u{7}"))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("cancel reason"), "{err:?}");
    assert!(w.refunds().is_empty(), "refused requests change nothing");
    assert_eq!(
        w.acts
            .cancel_line_at_marketplace(&req(Some("tb-a"), "customer cancelled"))
            .await
            .unwrap(),
        MarketplaceCancelOutcome::Cancelled {
            platform: "taobao".into(),
            marketplace_order_id: tb,
            refunded: cny(paid)
        }
    );
}

#[tokio::test]
async fn a_refund_the_seller_decides_later_is_pending_then_final() {
    let w = world().await;
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/_sandbox/marketplace/seller", w.base))
        .json(&serde_json::json!({"refunds_at_once": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let decide = |id: String, agree: bool| {
        let (http, base) = (http.clone(), w.base.clone());
        async move {
            let r = http
                .post(format!("{base}/_sandbox/marketplace/orders/{id}/refund"))
                .json(&serde_json::json!({"agree": agree}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
    };

    for (line, platform) in [(1, Platform::Alibaba1688), (2, Platform::Taobao)] {
        let (id, paid) = w.buy(line, platform).await;
        let pending = MarketplaceCancelOutcome::Pending {
            platform: platform.as_str().into(),
            marketplace_order_id: id.clone(),
            requested: cny(paid),
        };
        assert_eq!(w.cancel(line, None).await, pending);
        assert_eq!(
            w.cancel(line, None).await,
            pending,
            "asked again: still pending"
        );
        assert!(w.refunds().iter().all(|r| r.1 != id), "no money moved yet");
        decide(id.clone(), true).await;
        assert_eq!(
            w.cancel(line, None).await,
            MarketplaceCancelOutcome::Cancelled {
                platform: platform.as_str().into(),
                marketplace_order_id: id.clone(),
                refunded: cny(paid)
            }
        );
        assert_eq!(
            w.refunds().iter().filter(|r| r.1 == id).count(),
            1,
            "refunded once"
        );
    }

    // A refund the 1688 seller refuses is too late for a cancellation.
    let (id, _) = w.buy(3, Platform::Alibaba1688).await;
    assert!(matches!(
        w.cancel(3, None).await,
        MarketplaceCancelOutcome::Pending { .. }
    ));
    decide(id.clone(), false).await;
    assert_eq!(
        w.cancel(3, None).await,
        MarketplaceCancelOutcome::TooLate {
            platform: "1688".into(),
            marketplace_order_id: id,
            status: "waitsellersend/refundclose".into()
        }
    );
}
