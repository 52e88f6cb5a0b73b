//! Taobao Global Open Platform (IOP) buyer-side client: product, order render (preview),
//! purchase-order creation (idempotent on our `outer_purchase_id`), batch pay, order and
//! logistics queries, and [`Taobao::cancel_order`] (`/purchase/order/asyn/cancel`,
//! docs/vendors/taobao.md). It is a [`BuyerMarketplace`] (the exactly-once purchase is
//! `crate::market::purchase`) and a [`PriceSource`], with the same request, result and error
//! types as every marketplace client (`crate::market`).

use std::sync::Arc;

use procure_domain::{Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::{BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429};
use crate::market::buyer::{OfferPrice, pick_spec};
use crate::market::wire::{int, list, need, now_ms, sign_form, text, unreadable};
use crate::market::{
    BuyerMarketplace, BuyerOrder, CancelOutcome, CargoLine, Created, DeliveryAddress,
    LogisticsInfo, MarketError, MarketFuture, OrderState, PayAnswer, PriceSource, PurchaseRequest,
    Quote, QuotedLine,
};

/// Business code for a restricted buyer account (risk control). IOP publishes none, so the
/// sandbox's code is modelled here and nowhere else.
pub const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";

/// IOP's success code.
const CODE_OK: &str = "0";

/// Assumed (docs/vendors/taobao.md, "Assumed"): the code `/purchase/order/asyn/cancel` answers
/// for an order it will not cancel (shipped, finished). Taobao Global documents none; this is
/// the one place the client names it.
pub const CANCEL_NOT_ALLOWED: &str = "ORDER_CANNOT_CANCEL";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaobaoConfig {
    pub base_url: String,
    pub app_key: Secret,
    pub app_secret: Secret,
    pub access_token: Secret,
    pub http: HttpConfig,
    /// Pay requests per `purchase` call before handing back to the activity's retry.
    pub max_pay_attempts: u32,
}

impl Default for TaobaoConfig {
    fn default() -> Self {
        TaobaoConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            app_key: Secret::new("demotaobao"),
            app_secret: Secret::new("demotaobao-secret"),
            access_token: Secret::new("demotaobao-token"),
            http: HttpConfig::default(),
            max_pay_attempts: 3,
        }
    }
}

/// The one mapping from IOP codes to [`MarketError`].
pub fn classify_code(code: &str, message: &str) -> MarketError {
    match code {
        ACCOUNT_RESTRICTED => MarketError::AccountRestricted,
        "OUT_OF_STOCK" => MarketError::OutOfStock,
        "ITEM_NOT_FOUND" => MarketError::ListingGone,
        "IncompleteSignature" | "InvalidSignature" => MarketError::SignatureRejected,
        "ApiCallLimit" | "AppCallLimit" => MarketError::RateLimited,
        // purchase_amount no longer matches the current total: nothing was created, and the
        // next attempt renders again (and applies the tolerance to the new price).
        "PRICE_CHANGED" => MarketError::Transient(format!("PRICE_CHANGED: {message}")),
        "SystemError" | "InternalError" | "ServiceUnavailable" | "ServiceTimeout" => {
            MarketError::Transient(format!("{code}: {message}"))
        }
        c if c.contains("CallLimit") => MarketError::RateLimited,
        _ => MarketError::Rejected {
            code: code.into(),
            message: message.into(),
        },
    }
}

/// Turn any IOP answer into its `data` or a classified error.
fn classify_response(resp: &RawResponse) -> Result<Value, MarketError> {
    let parsed: Option<Value> = serde_json::from_str(&resp.body).ok();
    let code = parsed.as_ref().and_then(|b| text(b, "code"));
    let (Some(body), Some(code)) = (parsed.filter(Value::is_object), code) else {
        return Err(unreadable(resp));
    };
    if code != CODE_OK {
        let message = text(&body, "message").unwrap_or_default();
        return Err(classify_code(&code, &message));
    }
    if !resp.is_success() {
        return Err(MarketError::invalid_response(format!(
            "HTTP {} with code 0",
            resp.status
        )));
    }
    Ok(body.get("data").cloned().unwrap_or_else(|| json!({})))
}

/// The `receiver` param. IOP's exact field names are not published for this call: they live
/// here and nowhere else.
fn receiver_param(a: &DeliveryAddress) -> String {
    json!({
        "name": a.full_name,
        "mobile": a.mobile,
        "zip": a.post_code,
        "country": "CN",
        "state": a.province,
        "city": a.city,
        "district": a.area,
        "town": a.town,
        "address": a.address,
    })
    .to_string()
}

fn order_line_list_param(lines: &[CargoLine]) -> String {
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| json!({"item_id": l.offer_id, "sku_id": l.spec_id, "quantity": l.quantity}))
        .collect();
    Value::Array(lines).to_string()
}

fn order_params(req: &PurchaseRequest) -> Vec<(&'static str, String)> {
    vec![
        ("order_line_list", order_line_list_param(&req.lines)),
        ("receiver", receiver_param(&req.address)),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaobaoSku {
    pub sku_id: String,
    pub price_fen: i64,
    pub quantity: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaobaoProduct {
    pub item_id: String,
    pub title: String,
    pub skus: Vec<TaobaoSku>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedLine {
    pub item_id: String,
    pub sku_id: String,
    pub quantity: i64,
    /// Unit price, fen.
    pub price_fen: i64,
}

/// `/purchase/order/render`: what the order would cost now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedOrder {
    /// Goods + postage: the `purchase_amount` a create must carry.
    pub total_amount_fen: i64,
    pub postage_fen: i64,
    pub lines: Vec<RenderedLine>,
}

impl RenderedOrder {
    /// The render as the purchase protocol checks it (an empty `sku_id` matches any spec).
    pub fn quote(&self) -> Quote {
        Quote {
            lines: self
                .lines
                .iter()
                .map(|r| QuotedLine {
                    offer_id: r.item_id.clone(),
                    spec_id: r.sku_id.clone(),
                    unit_price_fen: r.price_fen,
                })
                .collect(),
            total_fen: self.total_amount_fen,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaobaoOrderStatus {
    /// `BULIDING` [sic]: the order is still being assembled; it cannot be paid yet.
    Building,
    WaitBuyerPay,
    WaitSellerSendGoods,
    WaitBuyerConfirmGoods,
    TradeFinished,
    TradeClosed,
    Unknown(String),
}

impl TaobaoOrderStatus {
    pub fn from_wire(s: &str) -> Self {
        match s.trim().to_ascii_uppercase().as_str() {
            "BULIDING" | "BUILDING" => TaobaoOrderStatus::Building,
            "WAIT_BUYER_P" | "WAIT_BUYER_PAY" => TaobaoOrderStatus::WaitBuyerPay,
            "WAIT_SELLER_SEND_GOODS" => TaobaoOrderStatus::WaitSellerSendGoods,
            "WAIT_BUYER_CONFIRM_GOODS" => TaobaoOrderStatus::WaitBuyerConfirmGoods,
            "TRADE_FINISHED" | "TRADE_SUCCESS" => TaobaoOrderStatus::TradeFinished,
            "TRADE_CLOSED" | "TRADE_CLOSED_BY_TAOBAO" => TaobaoOrderStatus::TradeClosed,
            _ => TaobaoOrderStatus::Unknown(s.to_owned()),
        }
    }

    /// The status as Taobao writes it.
    pub fn wire(&self) -> &str {
        match self {
            TaobaoOrderStatus::Building => "BULIDING",
            TaobaoOrderStatus::WaitBuyerPay => "WAIT_BUYER_P",
            TaobaoOrderStatus::WaitSellerSendGoods => "WAIT_SELLER_SEND_GOODS",
            TaobaoOrderStatus::WaitBuyerConfirmGoods => "WAIT_BUYER_CONFIRM_GOODS",
            TaobaoOrderStatus::TradeFinished => "TRADE_FINISHED",
            TaobaoOrderStatus::TradeClosed => "TRADE_CLOSED",
            TaobaoOrderStatus::Unknown(s) => s,
        }
    }

    /// The buyer's payment has gone through.
    pub fn is_paid(&self) -> bool {
        matches!(
            self,
            TaobaoOrderStatus::WaitSellerSendGoods
                | TaobaoOrderStatus::WaitBuyerConfirmGoods
                | TaobaoOrderStatus::TradeFinished
        )
    }

    pub fn is_closed(&self) -> bool {
        matches!(self, TaobaoOrderStatus::TradeClosed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaobaoOrder {
    pub purchase_order_id: String,
    pub outer_purchase_id: Option<String>,
    pub status: TaobaoOrderStatus,
    pub total_amount_fen: i64,
    /// Why a closed order was closed, when Taobao says.
    pub close_reason: Option<String>,
    /// `lines[].sub_purchase_order_id`: the sub-orders a cancellation names (assumed field).
    #[serde(default)]
    pub sub_order_ids: Vec<String>,
    /// `refund_amount` (fen): what a closed, paid order refunded (assumed field).
    #[serde(default)]
    pub refund_fen: Option<i64>,
}

impl TaobaoOrder {
    fn from_wire(v: &Value) -> Result<Self, MarketError> {
        Ok(TaobaoOrder {
            purchase_order_id: need(text(v, "purchase_order_id"), "purchase_order_id")?,
            outer_purchase_id: text(v, "outer_purchase_id").filter(|s| !s.is_empty()),
            status: TaobaoOrderStatus::from_wire(&need(text(v, "status"), "status")?),
            total_amount_fen: need(int(v, "total_amount"), "total_amount")?,
            close_reason: text(v, "close_reason").filter(|s| !s.is_empty()),
            sub_order_ids: list(v, "lines")
                .iter()
                .filter_map(|l| text(l, "sub_purchase_order_id"))
                .collect(),
            refund_fen: int(v, "refund_amount"),
        })
    }

    /// The order as the purchase protocol sees it.
    pub fn buyer_order(&self) -> BuyerOrder {
        let state = match &self.status {
            s if s.is_paid() => OrderState::Paid,
            TaobaoOrderStatus::WaitBuyerPay => OrderState::AwaitingPayment,
            TaobaoOrderStatus::TradeClosed => OrderState::Closed(self.closed_error()),
            TaobaoOrderStatus::Building => OrderState::Building,
            other => OrderState::Other(format!("{other:?}")),
        };
        BuyerOrder {
            order_id: self.purchase_order_id.clone(),
            state,
            total_fen: self.total_amount_fen,
        }
    }

    fn closed_error(&self) -> MarketError {
        match self.close_reason.as_deref() {
            Some("OUT_OF_STOCK" | "sellerGoodsLack") => MarketError::OutOfStock,
            reason => MarketError::Rejected {
                code: "ORDER_CLOSED".into(),
                message: format!(
                    "Taobao order {} is closed ({})",
                    self.purchase_order_id,
                    reason.unwrap_or("no reason given")
                ),
            },
        }
    }
}

/// `/purchase/order/create`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedPurchase {
    pub purchase_order_id: String,
    pub outer_purchase_id: Option<String>,
    pub status: TaobaoOrderStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaobaoPayOutcome {
    /// Listed in `pay_success_list` (also for an order that was paid already).
    Paid,
    /// Listed in `pay_failure_list` with this reason.
    Failed { reason: String },
}

/// The outcome of a cancellation from the order's state alone; `None` while Taobao may still
/// cancel it (unpaid, or paid and not shipped).
fn cancel_decided(o: &TaobaoOrder) -> Option<CancelOutcome> {
    match o.status {
        TaobaoOrderStatus::Building
        | TaobaoOrderStatus::WaitBuyerPay
        | TaobaoOrderStatus::WaitSellerSendGoods => None,
        TaobaoOrderStatus::TradeClosed => Some(CancelOutcome::Cancelled {
            refunded_fen: o.refund_fen.unwrap_or(0),
            refund_id: None,
        }),
        _ => Some(CancelOutcome::TooLate {
            status: o.status.wire().to_owned(),
        }),
    }
}

/// Taobao Global buyer-side client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Taobao {
    cfg: TaobaoConfig,
    http: HttpClient,
}

/// The signed form of one call: the call's params plus `app_key`, `access_token`,
/// `sign_method`, `timestamp` (epoch ms) and `sign` over `api_path` (`/product/get`).
fn signed_params(
    api_path: &str,
    params: &[(&'static str, String)],
    cfg: &TaobaoConfig,
    timestamp_ms: i64,
) -> Vec<(&'static str, String)> {
    let mut all = params.to_vec();
    all.push(("app_key", cfg.app_key.expose().to_owned()));
    all.push(("access_token", cfg.access_token.expose().to_owned()));
    all.push(("sign_method", "sha256".into()));
    all.push(("timestamp", timestamp_ms.to_string()));
    sign_form(all, "sign", |form| {
        signing::iop_signature(api_path, form, cfg.app_secret.expose())
    })
}

/// Whether a call changes state at Taobao. A write is never repeated inside the call after an
/// answer that may mean "done" (5xx): the purchase flow re-queries by our outer id first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    Read,
    Write,
}

impl Taobao {
    pub fn new(cfg: TaobaoConfig) -> Result<Self, BuildError> {
        let secrets = vec![
            cfg.app_secret.clone(),
            cfg.access_token.clone(),
            cfg.app_key.clone(),
        ];
        let http = HttpClient::new("taobao", &cfg.http, secrets)?;
        Ok(Taobao { cfg, http })
    }

    async fn call(
        &self,
        api_path: &'static str,
        params: Vec<(&'static str, String)>,
        effect: Effect,
    ) -> Result<Value, MarketError> {
        let url = join_url(&self.cfg.base_url, &format!("rest{api_path}"));
        let make = |c: &reqwest::Client| {
            let form = signed_params(api_path, &params, &self.cfg, now_ms());
            c.post(&url).form(&form)
        };
        // A rate-limit answer means "refused, not processed": safe to repeat for any call.
        let retry_on = |r: &RawResponse| {
            let limited =
                r.status == 429 || matches!(classify_response(r), Err(MarketError::RateLimited));
            limited || (effect == Effect::Read && retry_5xx_429(r))
        };
        let resp = self
            .http
            .execute(api_path, make, retry_on)
            .await
            .map_err(MarketError::from_transport)?;
        classify_response(&resp)
    }

    pub async fn product(&self, item_id: &str) -> Result<TaobaoProduct, MarketError> {
        let data = self
            .call(
                "/product/get",
                vec![("item_id", item_id.into())],
                Effect::Read,
            )
            .await?;
        let skus = list(&data, "skus")
            .iter()
            .map(|s| {
                Ok(TaobaoSku {
                    sku_id: text(s, "sku_id").unwrap_or_default(),
                    price_fen: need(int(s, "price"), "skus.price")?,
                    quantity: int(s, "quantity").unwrap_or(0),
                })
            })
            .collect::<Result<_, MarketError>>()?;
        Ok(TaobaoProduct {
            item_id: text(&data, "item_id").unwrap_or_else(|| item_id.into()),
            title: text(&data, "title").unwrap_or_default(),
            skus,
        })
    }

    /// Price the order as it stands now (goods + postage), creating nothing.
    pub async fn render(&self, req: &PurchaseRequest) -> Result<RenderedOrder, MarketError> {
        req.validate()?;
        let data = self
            .call("/purchase/order/render", order_params(req), Effect::Read)
            .await?;
        let lines = list(&data, "lines")
            .iter()
            .map(|l| {
                Ok(RenderedLine {
                    item_id: need(text(l, "item_id"), "lines.item_id")?,
                    sku_id: text(l, "sku_id").unwrap_or_default(),
                    quantity: int(l, "quantity").unwrap_or(0),
                    price_fen: need(int(l, "price"), "lines.price")?,
                })
            })
            .collect::<Result<_, MarketError>>()?;
        Ok(RenderedOrder {
            total_amount_fen: need(int(&data, "total_amount"), "total_amount")?,
            postage_fen: int(&data, "postage").unwrap_or(0),
            lines,
        })
    }

    /// Create the purchase order for the render's total `purchase_amount_fen` (it must equal
    /// the current total, or Taobao answers `PRICE_CHANGED`). A repeat with the same
    /// `outer_purchase_id` returns the first order. A timeout here means "maybe created": look
    /// it up with [`Taobao::order_by_outer_id`] before creating again.
    pub async fn create(
        &self,
        req: &PurchaseRequest,
        purchase_amount_fen: i64,
    ) -> Result<CreatedPurchase, MarketError> {
        req.validate()?;
        let mut params = order_params(req);
        params.push(("outer_purchase_id", req.out_order_id.clone()));
        params.push(("purchase_amount", purchase_amount_fen.to_string()));
        let data = self
            .call("/purchase/order/create", params, Effect::Write)
            .await?;
        Ok(CreatedPurchase {
            purchase_order_id: need(text(&data, "purchase_order_id"), "purchase_order_id")?,
            outer_purchase_id: text(&data, "outer_purchase_id"),
            status: TaobaoOrderStatus::from_wire(&text(&data, "status").unwrap_or_default()),
        })
    }

    /// Pay one purchase order. Paying a paid order is listed as a success. A timeout here
    /// means "maybe paid": re-read the order before paying again.
    pub async fn pay(&self, purchase_order_id: &str) -> Result<TaobaoPayOutcome, MarketError> {
        let ids = Value::Array(vec![Value::String(purchase_order_id.into())]).to_string();
        let data = self
            .call(
                "/purchase/order/batch/pay",
                vec![("purchase_order_id_list", ids)],
                Effect::Write,
            )
            .await?;
        let is_ours = |v: &Value| match v {
            Value::String(s) => s == purchase_order_id,
            Value::Number(n) => n.to_string() == purchase_order_id,
            other => text(other, "purchase_order_id").as_deref() == Some(purchase_order_id),
        };
        if list(&data, "pay_success_list").iter().any(is_ours) {
            return Ok(TaobaoPayOutcome::Paid);
        }
        if let Some(f) = list(&data, "pay_failure_list").iter().find(|f| is_ours(f)) {
            return Ok(TaobaoPayOutcome::Failed {
                reason: text(f, "reason").unwrap_or_else(|| "no reason given".into()),
            });
        }
        Err(MarketError::invalid_response(format!(
            "batch pay lists neither success nor failure for {purchase_order_id}"
        )))
    }

    async fn query(&self, key: &'static str, id: &str) -> Result<Vec<TaobaoOrder>, MarketError> {
        let data = match self
            .call(
                "/purchase/orders/query",
                vec![(key, id.into())],
                Effect::Read,
            )
            .await
        {
            Ok(data) => data,
            Err(MarketError::Rejected { code, .. }) if code == "ORDER_NOT_FOUND" => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        list(&data, "orders")
            .iter()
            .map(TaobaoOrder::from_wire)
            .collect()
    }

    /// Find the order made for our external id (after a timeout, before creating or paying).
    pub async fn order_by_outer_id(
        &self,
        outer_purchase_id: &str,
    ) -> Result<Option<TaobaoOrder>, MarketError> {
        let mut found = self.query("outer_purchase_id", outer_purchase_id).await?;
        // Never adopt someone else's order if the filter is ignored upstream.
        found.retain(|o| {
            o.outer_purchase_id
                .as_deref()
                .is_none_or(|id| id == outer_purchase_id)
        });
        if found.len() > 1 {
            tracing::warn!(
                outer_purchase_id,
                count = found.len(),
                "several Taobao orders carry one outer_purchase_id"
            );
        }
        Ok(found.into_iter().next())
    }

    pub async fn order(&self, purchase_order_id: &str) -> Result<TaobaoOrder, MarketError> {
        self.query("purchase_order_id", purchase_order_id)
            .await?
            .into_iter()
            .find(|o| o.purchase_order_id == purchase_order_id)
            .ok_or_else(|| MarketError::Rejected {
                code: "ORDER_NOT_FOUND".into(),
                message: format!("no Taobao order {purchase_order_id}"),
            })
    }

    /// Domestic shipments of the order (empty until the seller ships).
    pub async fn logistics(
        &self,
        purchase_order_id: &str,
    ) -> Result<Vec<LogisticsInfo>, MarketError> {
        let data = self
            .call(
                "/logistics/detail/get",
                vec![("purchase_order_id", purchase_order_id.into())],
                Effect::Read,
            )
            .await?;
        Ok(list(&data, "logistics")
            .iter()
            .filter_map(|l| {
                Some(LogisticsInfo {
                    bill_no: text(l, "tracking_number")?,
                    company: text(l, "company").unwrap_or_default(),
                })
            })
            .collect())
    }

    /// `/purchase/order/asyn/cancel`: ask Taobao to cancel the order (all its sub-orders).
    /// Taobao processes it asynchronously: success means accepted, the order's status says
    /// when it is done.
    pub async fn request_cancel(
        &self,
        order: &TaobaoOrder,
        remark: &str,
    ) -> Result<(), MarketError> {
        let subs: Vec<Value> = order
            .sub_order_ids
            .iter()
            .map(|id| Value::String(id.clone()))
            .collect();
        self.call(
            "/purchase/order/asyn/cancel",
            vec![
                ("purchase_id", order.purchase_order_id.clone()),
                ("sub_purchase_orderId_list", Value::Array(subs).to_string()),
                ("cancel_reason", remark.into()),
                ("cancel_remark", remark.into()),
            ],
            Effect::Write,
        )
        .await
        .map(|_| ())
    }

    /// Cancel our order at Taobao as far as Taobao allows, however often this is called:
    /// unpaid, or paid and not shipped (`WAIT_SELLER_SEND_GOODS`): ask for the cancellation,
    /// then read the order: `TRADE_CLOSED` is `Cancelled` (with the refunded amount of a paid
    /// order), still open is `Pending`; closed already is `Cancelled`; shipped or finished is
    /// `TooLate`, and so is a refusal ([`CANCEL_NOT_ALLOWED`]) of an order that moved on.
    #[tracing::instrument(skip(self, remark))]
    pub async fn cancel_order(
        &self,
        purchase_order_id: &str,
        remark: &str,
    ) -> Result<CancelOutcome, MarketError> {
        let order = self.order(purchase_order_id).await?;
        if let Some(done) = cancel_decided(&order) {
            return Ok(done);
        }
        match self.request_cancel(&order, remark).await {
            Ok(()) => {}
            Err(MarketError::Rejected { code, message }) if code == CANCEL_NOT_ALLOWED => {
                let now = self.order(purchase_order_id).await?;
                return cancel_decided(&now).ok_or(MarketError::Rejected { code, message });
            }
            Err(e) => return Err(e),
        }
        tracing::info!(purchase_order_id, "Taobao cancellation requested");
        let now = self.order(purchase_order_id).await?;
        Ok(cancel_decided(&now).unwrap_or(CancelOutcome::Pending {
            refund_id: None,
            requested_fen: if now.status.is_paid() {
                now.total_amount_fen
            } else {
                0
            },
        }))
    }

    /// Our order as it stands, read by our outer id.
    async fn reread(&self, order_id: &str, out_order_id: &str) -> Result<TaobaoOrder, MarketError> {
        match self.order_by_outer_id(out_order_id).await? {
            Some(o) if o.purchase_order_id == order_id => Ok(o),
            other => Err(MarketError::invalid_response(format!(
                "order {order_id} not found by its outer id (found {:?})",
                other.map(|o| o.purchase_order_id)
            ))),
        }
    }
}

impl BuyerMarketplace for Taobao {
    fn name(&self) -> &'static str {
        "Taobao"
    }

    fn find_by_external_id<'a>(
        &'a self,
        out_order_id: &'a str,
    ) -> MarketFuture<'a, Option<BuyerOrder>> {
        Box::pin(async move {
            let found = self.order_by_outer_id(out_order_id).await?;
            Ok(found.map(|o| o.buyer_order()))
        })
    }

    /// [`BuyerMarketplace::read`] is the same query by our outer id.
    fn found_is_current(&self) -> bool {
        true
    }

    fn preview<'a>(&'a self, req: &'a PurchaseRequest) -> MarketFuture<'a, Quote> {
        Box::pin(async move { Ok(self.render(req).await?.quote()) })
    }

    fn create<'a>(
        &'a self,
        req: &'a PurchaseRequest,
        quote: &'a Quote,
    ) -> MarketFuture<'a, Created> {
        Box::pin(async move {
            let created = Taobao::create(self, req, quote.total_fen).await?;
            Ok(Created {
                order_id: created.purchase_order_id,
                failed_offers: Vec::new(),
            })
        })
    }

    fn read<'a>(
        &'a self,
        order_id: &'a str,
        out_order_id: &'a str,
    ) -> MarketFuture<'a, BuyerOrder> {
        Box::pin(async move { Ok(self.reread(order_id, out_order_id).await?.buyer_order()) })
    }

    /// Batch pay takes no attempt key: paying a paid order is listed as a success.
    fn pay<'a>(
        &'a self,
        order: &'a BuyerOrder,
        _attempt_key: &'a str,
    ) -> MarketFuture<'a, PayAnswer> {
        Box::pin(async move {
            match Taobao::pay(self, &order.order_id).await? {
                TaobaoPayOutcome::Paid => Ok(PayAnswer::Paid),
                TaobaoPayOutcome::Failed { reason } => {
                    match classify_code(&reason, "batch pay failure") {
                        MarketError::Rejected { .. } => Ok(PayAnswer::Declined(
                            MarketError::Transient(format!("Taobao pay failed: {reason}")),
                        )),
                        e if e.is_retryable() => Ok(PayAnswer::Declined(e)),
                        e => Err(e),
                    }
                }
            }
        })
    }

    fn max_pay_attempts(&self) -> u32 {
        self.cfg.max_pay_attempts
    }

    fn logistics<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, Vec<LogisticsInfo>> {
        Box::pin(Taobao::logistics(self, order_id))
    }

    fn cancel<'a>(&'a self, order_id: &'a str, remark: &'a str) -> MarketFuture<'a, CancelOutcome> {
        Box::pin(self.cancel_order(order_id, remark))
    }

    fn for_account(
        &self,
        access_token: Option<Secret>,
    ) -> Result<Arc<dyn BuyerMarketplace>, BuildError> {
        let mut cfg = self.cfg.clone();
        if let Some(t) = access_token {
            cfg.access_token = t;
        }
        Ok(Arc::new(Taobao::new(cfg)?))
    }
}

impl PriceSource for Taobao {
    fn offer_price<'a>(
        &'a self,
        offer_id: &'a str,
        spec_id: &'a str,
    ) -> MarketFuture<'a, Option<OfferPrice>> {
        Box::pin(async move {
            let item = self.product(offer_id).await?;
            let skus: Vec<_> = item.skus.iter().map(|s| (s.sku_id.as_str(), s)).collect();
            Ok(pick_spec(&skus, spec_id).map(|s| (s.price_fen, Some(s.quantity))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Purchased, purchase};
    use crate::testing::{MockServer, Recorded, Reply};
    use std::sync::Mutex;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn signs_with_the_published_iop_vector() {
        // IOP KAT (docs/vendors/signing.md): /order/get, access_token=test, app_key=123456, order_id=1234,
        // sign_method=sha256, timestamp=1517820392000, secret helloworld.
        let cfg = TaobaoConfig {
            app_key: Secret::new("123456"),
            app_secret: Secret::new("helloworld"),
            access_token: Secret::new("test"),
            ..TaobaoConfig::default()
        };
        let form = signed_params(
            "/order/get",
            &[("order_id", "1234".into())],
            &cfg,
            1_517_820_392_000,
        );
        let keys: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "order_id",
                "app_key",
                "access_token",
                "sign_method",
                "timestamp",
                "sign"
            ]
        );
        assert_eq!(form[3].1, "sha256");
        assert_eq!(
            form[5].1,
            "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
        );
    }

    #[test]
    fn maps_iop_codes() {
        let c = |code: &str| classify_code(code, "m");
        assert_eq!(c(ACCOUNT_RESTRICTED), MarketError::AccountRestricted);
        assert_eq!(c("IncompleteSignature"), MarketError::SignatureRejected);
        assert_eq!(c("ApiCallLimit"), MarketError::RateLimited);
        assert_eq!(c("OUT_OF_STOCK"), MarketError::OutOfStock);
        assert_eq!(c("ITEM_NOT_FOUND"), MarketError::ListingGone);
        assert!(c("PRICE_CHANGED").is_retryable());
        for code in [
            "InvalidAppKey",
            "IllegalAccessToken",
            "ORDER_NOT_FOUND",
            "InvalidParameter",
        ] {
            assert!(
                matches!(c(code), MarketError::Rejected { code: got, .. } if got == code),
                "{code}"
            );
        }
    }

    #[test]
    fn classifies_responses() {
        assert_eq!(
            classify_response(&raw(200, r#"{"code":"0","request_id":"r","data":{"x":1}}"#))
                .unwrap()["x"],
            1
        );
        assert_eq!(
            classify_response(&raw(
                200,
                r#"{"code":"ApiCallLimit","message":"slow down","request_id":"r"}"#
            )),
            Err(MarketError::RateLimited)
        );
        assert!(matches!(
            classify_response(&raw(502, "<html>bad gateway</html>")),
            Err(MarketError::Transient(_))
        ));
        assert_eq!(
            classify_response(&raw(429, "")),
            Err(MarketError::RateLimited)
        );
        assert!(
            matches!(classify_response(&raw(200, r#"{"data":{}}"#)), Err(e) if e.is_retryable())
        );
    }

    #[test]
    fn parses_statuses() {
        use TaobaoOrderStatus as S;
        assert_eq!(S::from_wire("BULIDING"), S::Building);
        assert_eq!(S::from_wire("WAIT_BUYER_P"), S::WaitBuyerPay);
        assert!(S::from_wire("WAIT_SELLER_SEND_GOODS").is_paid());
        assert!(S::from_wire("WAIT_BUYER_CONFIRM_GOODS").is_paid());
        assert!(S::from_wire("TRADE_CLOSED").is_closed());
        assert_eq!(S::from_wire("NEW_ONE"), S::Unknown("NEW_ONE".into()));
    }

    #[test]
    fn builds_order_params_as_json_strings() {
        let p = order_params(&request(4200, 9000));
        let lines: Value = serde_json::from_str(&p[0].1).unwrap();
        assert_eq!(
            lines,
            json!([{"item_id": "tb1001", "sku_id": "tbs1", "quantity": 2}])
        );
        let receiver: Value = serde_json::from_str(&p[1].1).unwrap();
        assert_eq!(receiver["name"], "Wang Wei");
        assert_eq!(receiver["city"], "深圳市");
    }

    fn request(max_unit: i64, max_total: i64) -> PurchaseRequest {
        PurchaseRequest {
            out_order_id: "ord-7-L1".into(),
            lines: vec![CargoLine {
                offer_id: "tb1001".into(),
                spec_id: "tbs1".into(),
                quantity: 2,
                max_unit_price_fen: max_unit,
            }],
            address: DeliveryAddress {
                full_name: "Wang Wei".into(),
                mobile: "13800000000".into(),
                post_code: "518000".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                area: "宝安区".into(),
                town: String::new(),
                address: "Warehouse 1".into(),
            },
            max_total_fen: max_total,
        }
    }

    // ---- a fake IOP behind the mock server ----

    #[derive(Clone, PartialEq)]
    enum PayMode {
        Normal,
        /// First pay debits, then never answers.
        HangAfterDebit,
        /// First pay is listed as failed without debiting.
        FailNoDebit,
        /// Every pay is refused by risk control.
        Restricted,
    }

    #[derive(Clone)]
    struct FakeOrder {
        id: String,
        outer: String,
        status: String,
        total: i64,
    }

    struct Fake {
        unit_price_fen: i64,
        /// The unit price moves to this value right after the next render.
        jump_after_render: Option<i64>,
        orders: Vec<FakeOrder>,
        hang_create_after_commit: bool,
        create_code: Option<&'static str>,
        pay_mode: PayMode,
        pays: usize,
        creates: usize,
    }

    const POSTAGE: i64 = 600;

    impl Fake {
        fn total(&self) -> i64 {
            self.unit_price_fen * 2 + POSTAGE
        }
    }

    fn fake(unit_price_fen: i64) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake {
            unit_price_fen,
            jump_after_render: None,
            orders: vec![],
            hang_create_after_commit: false,
            create_code: None,
            pay_mode: PayMode::Normal,
            pays: 0,
            creates: 0,
        }))
    }

    fn ok(data: Value) -> Reply {
        Reply::json(
            200,
            json!({"code": "0", "request_id": "req-1", "data": data}).to_string(),
        )
    }

    fn fail(code: &str) -> Reply {
        Reply::json(
            200,
            json!({"code": code, "message": "m", "request_id": "req-1"}).to_string(),
        )
    }

    fn order_json(o: &FakeOrder) -> Value {
        json!({"purchase_order_id": o.id, "outer_purchase_id": o.outer, "status": o.status, "total_amount": o.total})
    }

    fn handle(state: &Mutex<Fake>, req: &Recorded) -> Reply {
        let form = req.form();
        let api = req.path().trim_start_matches("/rest").to_string();
        // Verify the request exactly as the real gateway would.
        let sign = signing::iop_signature(
            &api,
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "demotaobao-secret",
        );
        let ts_ok = form
            .get("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| (now_ms() - t).abs() < 600_000);
        if form.get("sign") != Some(&sign)
            || form.get("app_key").map(String::as_str) != Some("demotaobao")
            || form.get("access_token").map(String::as_str) != Some("demotaobao-token")
            || form.get("sign_method").map(String::as_str) != Some("sha256")
            || !ts_ok
        {
            return fail("IncompleteSignature");
        }
        let mut s = state.lock().unwrap();
        match api.as_str() {
            "/product/get" => match form["item_id"].as_str() {
                "tb1001" => ok(
                    json!({"item_id": "tb1001", "title": "Mug", "skus": [{"sku_id": "tbs1", "price": s.unit_price_fen, "quantity": 300}]}),
                ),
                _ => fail("ITEM_NOT_FOUND"),
            },
            "/purchase/order/render" => {
                let lines: Value = serde_json::from_str(&form["order_line_list"]).unwrap();
                assert_eq!(lines[0]["item_id"], "tb1001");
                let receiver: Value = serde_json::from_str(&form["receiver"]).unwrap();
                assert_eq!(receiver["name"], "Wang Wei");
                let reply = ok(json!({
                    "total_amount": s.total(), "postage": POSTAGE,
                    "lines": [{"item_id": "tb1001", "sku_id": "tbs1", "quantity": 2, "price": s.unit_price_fen}]
                }));
                if let Some(p) = s.jump_after_render.take() {
                    s.unit_price_fen = p;
                }
                reply
            }
            "/purchase/order/create" => {
                s.creates += 1;
                if let Some(code) = s.create_code {
                    return fail(code);
                }
                let outer = form["outer_purchase_id"].clone();
                let existing = s.orders.iter().find(|o| o.outer == outer).cloned();
                let order = match existing {
                    Some(o) => o,
                    None => {
                        if form["purchase_amount"] != s.total().to_string() {
                            return fail("PRICE_CHANGED");
                        }
                        let o = FakeOrder {
                            id: format!("TB{}", 5000 + s.orders.len()),
                            outer,
                            status: "WAIT_BUYER_P".into(),
                            total: s.total(),
                        };
                        s.orders.push(o.clone());
                        o
                    }
                };
                if s.hang_create_after_commit {
                    s.hang_create_after_commit = false;
                    return Reply::Hang;
                }
                ok(
                    json!({"purchase_order_id": order.id, "outer_purchase_id": order.outer, "status": order.status}),
                )
            }
            "/purchase/order/batch/pay" => {
                let ids: Vec<String> =
                    serde_json::from_str(&form["purchase_order_id_list"]).unwrap();
                s.pays += 1;
                let first = s.pays == 1;
                let mode = s.pay_mode.clone();
                let o = s.orders.iter_mut().find(|o| o.id == ids[0]).unwrap();
                let paid = o.status != "WAIT_BUYER_P";
                let success = json!({"pay_success_list": [o.id], "pay_failure_list": []});
                let failure = |reason: &str| json!({"pay_success_list": [], "pay_failure_list": [{"purchase_order_id": o.id, "reason": reason}]});
                match (mode, first) {
                    _ if paid => ok(success),
                    (PayMode::Restricted, _) => ok(failure(ACCOUNT_RESTRICTED)),
                    (PayMode::FailNoDebit, true) => ok(failure("BALANCE_NOT_ENOUGH")),
                    (PayMode::HangAfterDebit, true) => {
                        o.status = "WAIT_SELLER_SEND_GOODS".into();
                        Reply::Hang
                    }
                    _ => {
                        o.status = "WAIT_SELLER_SEND_GOODS".into();
                        ok(success)
                    }
                }
            }
            "/purchase/orders/query" => {
                let orders: Vec<Value> = s
                    .orders
                    .iter()
                    .filter(|o| {
                        form.get("outer_purchase_id") == Some(&o.outer)
                            || form.get("purchase_order_id") == Some(&o.id)
                    })
                    .map(order_json)
                    .collect();
                ok(json!({ "orders": orders }))
            }
            "/logistics/detail/get" => ok(
                json!({"logistics": [{"tracking_number": "SF123", "company": "SF"}, {"company": "no number"}]}),
            ),
            other => panic!("unexpected api {other}"),
        }
    }

    async fn setup(state: &Arc<Mutex<Fake>>) -> (MockServer, Taobao) {
        let s = state.clone();
        let server = MockServer::start(move |req| handle(&s, req)).await;
        let mut cfg = TaobaoConfig {
            base_url: server.base_url(),
            ..TaobaoConfig::default()
        };
        cfg.http = crate::testing::quick_http(Some(300));
        (server, Taobao::new(cfg).unwrap())
    }

    fn apis(server: &MockServer) -> Vec<String> {
        server
            .requests()
            .iter()
            .map(|r| r.path().trim_start_matches("/rest").to_string())
            .collect()
    }

    #[tokio::test]
    async fn purchases_once_for_the_render_total_and_a_repeat_adopts() {
        let state = fake(4200);
        let (server, client) = setup(&state).await;
        let first = purchase(&client, &request(4200, 9000)).await.unwrap();
        assert_eq!(
            first,
            Purchased {
                marketplace_order_id: "TB5000".into(),
                amount_paid_fen: 9000,
                adopted: false
            }
        );
        let create = server
            .requests()
            .into_iter()
            .find(|r| r.path() == "/rest/purchase/order/create")
            .unwrap();
        assert_eq!(create.form()["purchase_amount"], "9000");
        assert_eq!(create.form()["outer_purchase_id"], "ord-7-L1");
        let again = purchase(&client, &request(4200, 9000)).await.unwrap();
        assert_eq!(
            again,
            Purchased {
                adopted: true,
                ..first
            }
        );
        let s = state.lock().unwrap();
        assert_eq!((s.creates, s.pays, s.orders.len()), (1, 1, 1));
        drop(s);
        assert_eq!(
            apis(&server),
            [
                "/purchase/orders/query",
                "/purchase/order/render",
                "/purchase/order/create",
                "/purchase/orders/query",
                "/purchase/order/batch/pay",
                "/purchase/orders/query",
            ]
        );
    }

    #[tokio::test]
    async fn refuses_prices_above_tolerance_before_creating() {
        let state = fake(4300);
        let (server, client) = setup(&state).await;
        assert_eq!(
            purchase(&client, &request(4200, 99_999)).await.unwrap_err(),
            MarketError::PriceAboveTolerance {
                quoted: 4300,
                max: 4200
            }
        );
        assert_eq!(
            purchase(&client, &request(4300, 9100)).await.unwrap_err(),
            MarketError::PriceAboveTolerance {
                quoted: 9200,
                max: 9100
            }
        );
        assert!(!apis(&server).iter().any(|a| a == "/purchase/order/create"));
        assert_eq!(state.lock().unwrap().creates, 0);
    }

    #[tokio::test]
    async fn a_create_that_timed_out_after_commit_is_adopted_by_outer_id() {
        let state = fake(4200);
        state.lock().unwrap().hang_create_after_commit = true;
        let (server, client) = setup(&state).await;
        let p = purchase(&client, &request(4200, 9000)).await.unwrap();
        assert!(p.adopted);
        assert_eq!(p.amount_paid_fen, 9000);
        let s = state.lock().unwrap();
        assert_eq!((s.creates, s.pays, s.orders.len()), (1, 1, 1));
        drop(s);
        let apis = apis(&server);
        assert_eq!(
            apis[2..4],
            ["/purchase/order/create", "/purchase/orders/query"],
            "re-queried by outer id right after the create timed out"
        );
    }

    #[tokio::test]
    async fn a_pay_that_timed_out_after_debit_is_not_paid_twice() {
        let state = fake(4200);
        state.lock().unwrap().pay_mode = PayMode::HangAfterDebit;
        let (server, client) = setup(&state).await;
        let p = purchase(&client, &request(4200, 9000)).await.unwrap();
        assert_eq!((p.amount_paid_fen, p.adopted), (9000, false));
        assert_eq!(state.lock().unwrap().pays, 1);
        let apis = apis(&server);
        assert_eq!(
            apis[apis.len() - 2..],
            ["/purchase/order/batch/pay", "/purchase/orders/query"]
        );
        let last = server.requests().pop().unwrap();
        assert_eq!(last.form()["outer_purchase_id"], "ord-7-L1");
    }

    #[tokio::test]
    async fn a_failed_pay_without_debit_is_retried_after_a_re_read() {
        let state = fake(4200);
        state.lock().unwrap().pay_mode = PayMode::FailNoDebit;
        let (server, client) = setup(&state).await;
        purchase(&client, &request(4200, 9000)).await.unwrap();
        assert_eq!(state.lock().unwrap().pays, 2);
        let apis = apis(&server);
        assert_eq!(
            apis[apis.len() - 3..],
            [
                "/purchase/order/batch/pay",
                "/purchase/orders/query",
                "/purchase/order/batch/pay"
            ]
        );
    }

    #[tokio::test]
    async fn a_restricted_account_stops_the_purchase() {
        let state = fake(4200);
        state.lock().unwrap().pay_mode = PayMode::Restricted;
        let (_server, client) = setup(&state).await;
        assert_eq!(
            purchase(&client, &request(4200, 9000)).await.unwrap_err(),
            MarketError::AccountRestricted
        );
        assert_eq!(state.lock().unwrap().pays, 1);

        let state = fake(4200);
        state.lock().unwrap().create_code = Some(ACCOUNT_RESTRICTED);
        let (_server, client) = setup(&state).await;
        assert_eq!(
            purchase(&client, &request(4200, 9000)).await.unwrap_err(),
            MarketError::AccountRestricted
        );
    }

    #[tokio::test]
    async fn a_price_change_after_render_creates_nothing_and_the_retry_renders_again() {
        let state = fake(4200);
        state.lock().unwrap().jump_after_render = Some(4250);
        let (_server, client) = setup(&state).await;
        let err = purchase(&client, &request(4250, 9200)).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(state.lock().unwrap().orders.is_empty());
        let p = purchase(&client, &request(4250, 9200)).await.unwrap();
        assert_eq!((p.amount_paid_fen, p.adopted), (9100, false));
    }

    #[tokio::test]
    async fn an_adopted_unpaid_order_above_the_total_is_not_paid() {
        let state = fake(4200);
        state.lock().unwrap().orders.push(FakeOrder {
            id: "TB77".into(),
            outer: "ord-7-L1".into(),
            status: "WAIT_BUYER_P".into(),
            total: 20_000,
        });
        let (_server, client) = setup(&state).await;
        assert_eq!(
            purchase(&client, &request(4200, 9000)).await.unwrap_err(),
            MarketError::PriceAboveTolerance {
                quoted: 20_000,
                max: 9000
            }
        );
        assert_eq!(state.lock().unwrap().pays, 0);
    }

    #[tokio::test]
    async fn a_closed_order_is_reported_not_recreated() {
        let state = fake(4200);
        state.lock().unwrap().orders.push(FakeOrder {
            id: "TB78".into(),
            outer: "ord-7-L1".into(),
            status: "TRADE_CLOSED".into(),
            total: 9000,
        });
        let (_server, client) = setup(&state).await;
        assert!(matches!(
            purchase(&client, &request(4200, 9000)).await,
            Err(MarketError::Rejected { code, .. }) if code == "ORDER_CLOSED"
        ));
        let s = state.lock().unwrap();
        assert_eq!((s.creates, s.pays), (0, 0));
        drop(s);
        let closed =
            TaobaoOrder::from_wire(&json!({"purchase_order_id": 1, "status": "TRADE_CLOSED",
            "total_amount": "9000", "close_reason": "sellerGoodsLack"}))
            .unwrap();
        assert_eq!(closed.closed_error(), MarketError::OutOfStock);
    }

    #[tokio::test]
    async fn reads_products_orders_and_logistics() {
        let state = fake(4200);
        let (_server, client) = setup(&state).await;
        let p = client.product("tb1001").await.unwrap();
        assert_eq!(
            p.skus,
            [TaobaoSku {
                sku_id: "tbs1".into(),
                price_fen: 4200,
                quantity: 300
            }]
        );
        assert_eq!(
            client.product("gone").await.unwrap_err(),
            MarketError::ListingGone
        );
        assert_eq!(client.order_by_outer_id("nope").await.unwrap(), None);
        assert!(
            matches!(client.order("TB1").await, Err(MarketError::Rejected { code, .. }) if code == "ORDER_NOT_FOUND")
        );
        let bought = purchase(&client, &request(4200, 9000)).await.unwrap();
        let o = client.order(&bought.marketplace_order_id).await.unwrap();
        assert_eq!(o.status, TaobaoOrderStatus::WaitSellerSendGoods);
        assert_eq!(o.outer_purchase_id.as_deref(), Some("ord-7-L1"));
        assert_eq!(
            client.logistics("TB5000").await.unwrap(),
            [LogisticsInfo {
                bill_no: "SF123".into(),
                company: "SF".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_is_a_signature_rejection_and_leaks_nothing() {
        let state = fake(4200);
        let s = state.clone();
        let server = MockServer::start(move |req| handle(&s, req)).await;
        let cfg = TaobaoConfig {
            base_url: server.base_url(),
            app_secret: Secret::new("wrong-secret"),
            ..TaobaoConfig::default()
        };
        let err = Taobao::new(cfg).unwrap().order("TB1").await.unwrap_err();
        assert_eq!(err, MarketError::SignatureRejected);
        assert!(!format!("{err} {err:?}").contains("demotaobao-token"));
    }
}

/// `cancel_order` against a fake IOP gateway (the answer shapes are the sandbox contract's;
/// docs/vendors/taobao.md says which parts are assumed).
#[cfg(test)]
mod cancel_tests {
    use super::*;
    use crate::testing::{MockServer, Recorded, Reply};
    use std::sync::{Arc, Mutex};

    struct Fake {
        status: &'static str,
        refund_fen: Option<i64>,
        /// Taobao closes the order at once (else it stays open: processed later).
        closes_at_once: bool,
    }

    fn handle(state: &Mutex<Fake>, req: &Recorded) -> Reply {
        let form = req.form();
        let api_path = req.path().trim_start_matches("/rest").to_string();
        let sign = signing::iop_signature(
            &api_path,
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "demotaobao-secret",
        );
        assert_eq!(form.get("sign"), Some(&sign), "signed");
        let mut s = state.lock().unwrap();
        let data = match api_path.as_str() {
            "/purchase/orders/query" => {
                assert_eq!(form["purchase_order_id"], "tb-9");
                let mut o = json!({"purchase_order_id": "tb-9", "outer_purchase_id": "o-1",
                    "status": s.status, "total_amount": 8400,
                    "lines": [{"item_id": "tb1", "sub_purchase_order_id": "tb-9-1"}]});
                if let Some(r) = s.refund_fen {
                    o["refund_amount"] = json!(r);
                }
                json!({"orders": [o]})
            }
            "/purchase/order/asyn/cancel" => {
                assert_eq!(form["purchase_id"], "tb-9");
                assert_eq!(form["sub_purchase_orderId_list"], r#"["tb-9-1"]"#);
                if !matches!(s.status, "WAIT_BUYER_P" | "WAIT_SELLER_SEND_GOODS") {
                    return Reply::json(
                        200,
                        json!({"code": CANCEL_NOT_ALLOWED, "message": "m", "request_id": "r"})
                            .to_string(),
                    );
                }
                if s.closes_at_once {
                    if s.status == "WAIT_SELLER_SEND_GOODS" {
                        s.refund_fen = Some(8400);
                    }
                    s.status = "TRADE_CLOSED";
                }
                json!({})
            }
            other => panic!("unexpected api {other}"),
        };
        Reply::json(
            200,
            json!({"code": "0", "request_id": "r", "data": data}).to_string(),
        )
    }

    async fn setup(status: &'static str, closes_at_once: bool) -> (MockServer, Taobao) {
        let state = Arc::new(Mutex::new(Fake {
            status,
            refund_fen: None,
            closes_at_once,
        }));
        let server = MockServer::start(move |req| handle(&state, req)).await;
        let cfg = TaobaoConfig {
            base_url: server.base_url(),
            http: crate::testing::quick_http(Some(300)),
            ..TaobaoConfig::default()
        };
        (server, Taobao::new(cfg).unwrap())
    }

    fn cancels(server: &MockServer) -> usize {
        server
            .requests()
            .iter()
            .filter(|r| r.path().ends_with("/asyn/cancel"))
            .count()
    }

    #[tokio::test]
    async fn cancels_unpaid_and_paid_unshipped_orders() {
        let (server, client) = setup("WAIT_BUYER_P", true).await;
        assert_eq!(
            client
                .cancel_order("tb-9", "customer cancelled")
                .await
                .unwrap(),
            CancelOutcome::Cancelled {
                refunded_fen: 0,
                refund_id: None
            }
        );
        let (_s, client) = setup("WAIT_SELLER_SEND_GOODS", true).await;
        assert_eq!(
            client
                .cancel_order("tb-9", "customer cancelled")
                .await
                .unwrap(),
            CancelOutcome::Cancelled {
                refunded_fen: 8400,
                refund_id: None
            }
        );
        // A repeat reads the closed order and asks nothing.
        assert!(matches!(
            client.cancel_order("tb-9", "again").await.unwrap(),
            CancelOutcome::Cancelled {
                refunded_fen: 8400,
                ..
            }
        ));
        assert_eq!(cancels(&server), 1);
    }

    #[tokio::test]
    async fn an_accepted_cancel_not_yet_processed_is_pending() {
        let (_s, client) = setup("WAIT_SELLER_SEND_GOODS", false).await;
        assert_eq!(
            client.cancel_order("tb-9", "x").await.unwrap(),
            CancelOutcome::Pending {
                refund_id: None,
                requested_fen: 8400
            }
        );
    }

    #[tokio::test]
    async fn a_shipped_order_is_too_late() {
        let (server, client) = setup("WAIT_BUYER_CONFIRM_GOODS", true).await;
        assert_eq!(
            client.cancel_order("tb-9", "x").await.unwrap(),
            CancelOutcome::TooLate {
                status: "WAIT_BUYER_CONFIRM_GOODS".into()
            }
        );
        assert_eq!(cancels(&server), 0);
    }
}
