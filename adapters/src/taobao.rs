//! Taobao Global Open Platform (IOP) buyer-side client: product, order render (preview),
//! purchase-order creation (idempotent on our `outer_purchase_id`), batch pay, order and
//! logistics queries, and [`Taobao::cancel_order`] (`/purchase/order/asyn/cancel`). Every call,
//! field, unit and code, with its source, is in docs/vendors/taobao.md; the answers are typed
//! serde shapes read from the answer's text (amounts are fen integers, [`Fen`]). It is a
//! [`BuyerMarketplace`] (the exactly-once purchase is `crate::market::purchase`) and a
//! [`PriceSource`], with the same request, result and error types as every marketplace client
//! (`crate::market`).

use std::sync::Arc;

use procure_domain::{Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::{BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429};
use crate::market::buyer::{OfferPrice, pick_spec};
use crate::market::product::{
    Attribute, ProductDetail, ProductSource, Seller, SkuDetail, distinct, some_text,
};
use crate::market::wire::{Fen, now_ms, sign_form, typed, unreadable};
use crate::market::{
    BuyerMarketplace, BuyerOrder, CancelOutcome, CargoLine, Created, DeliveryAddress,
    LogisticsInfo, MarketError, MarketFuture, OrderState, PayAnswer, PriceSource, PurchaseRequest,
    Quote, QuotedLine,
};
use procure_domain::order::Platform;

pub use assumed::{ACCOUNT_RESTRICTED, CANCEL_NOT_ALLOWED};

/// IOP's success `code` (per SDK: `types/base.go`, `taobao/client.go`).
const CODE_OK: &str = "0";
/// The expired or invalid token code (per SDK: `consts/error.go`).
pub const ILLEGAL_ACCESS_TOKEN: &str = "IllegalAccessToken";
/// Our own code for an order a query does not return (never on the wire).
const ORDER_NOT_FOUND: &str = "ORDER_NOT_FOUND";

/// Assumed (docs/vendors/taobao.md, "Assumed"): every error code and wire value below is ours,
/// not sourced: no Taobao Global page or SDK names them. This is the one place the client does.
pub mod assumed {
    /// A buyer account under risk control.
    pub const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";
    /// `/purchase/order/asyn/cancel` refuses an order it will not cancel (shipped, finished).
    pub const CANCEL_NOT_ALLOWED: &str = "ORDER_CANNOT_CANCEL";
    pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    pub const ITEM_NOT_FOUND: &str = "ITEM_NOT_FOUND";
    /// `purchase_amount` differs from the current total: nothing was created.
    pub const PRICE_CHANGED: &str = "PRICE_CHANGED";
    /// IOP gateway codes, named as the sandbox names them.
    pub const SIGNATURE: [&str; 2] = ["IncompleteSignature", "InvalidSignature"];
    pub const CALL_LIMIT: [&str; 2] = ["ApiCallLimit", "AppCallLimit"];
    pub const TRANSIENT: [&str; 4] = [
        "SystemError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceTimeout",
    ];
    /// `sub_purchase_orders[].close_reason` values that mean the seller had no stock.
    pub const CLOSED_OUT_OF_STOCK: [&str; 2] = ["OUT_OF_STOCK", "sellerGoodsLack"];
    /// The `country` we send in `receiver` / `receiver_address` (the SDK gives no code list).
    pub const COUNTRY: &str = "CN";
}

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

/// The one mapping from IOP and business codes to [`MarketError`].
pub fn classify_code(code: &str, message: &str) -> MarketError {
    match code {
        assumed::ACCOUNT_RESTRICTED => MarketError::AccountRestricted,
        assumed::OUT_OF_STOCK => MarketError::OutOfStock,
        assumed::ITEM_NOT_FOUND => MarketError::ListingGone,
        c if assumed::SIGNATURE.contains(&c) => MarketError::SignatureRejected,
        c if assumed::CALL_LIMIT.contains(&c) => MarketError::RateLimited,
        // purchase_amount no longer matches the current total: nothing was created, and the
        // next attempt renders again (and applies the tolerance to the new price).
        assumed::PRICE_CHANGED => MarketError::Transient(format!("PRICE_CHANGED: {message}")),
        c if assumed::TRANSIENT.contains(&c) => {
            MarketError::Transient(format!("{code}: {message}"))
        }
        c if c.contains("CallLimit") => MarketError::RateLimited,
        _ => MarketError::Rejected {
            code: code.into(),
            message: message.into(),
        },
    }
}

// ---- wire shapes (per SDK Mlegbder/taobao-global `types/*.go`) ----

// A Taobao id or count: an integer in most SDK types, a string in others (the SDK's author
// notes the platform sends either); kept as its text.
use crate::market::wire::IdText as Id;

impl Id {
    fn count(&self) -> i64 {
        self.0.trim().parse().unwrap_or(0)
    }
}

/// `success`: a JSON boolean, or `"true"`/`"false"` (the SDK's batch-pay note).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::String(s) if s == "true" || s == "false" => Ok(Flag(s == "true")),
            other => Err(serde::de::Error::custom(format!(
                "expected success true/false, found {other}"
            ))),
        }
    }
}

/// Every answer: the IOP envelope (`code`, `message` on failure, `request_id`) and the
/// business outcome (`success`, `error_code`, `error_msg`), at the top or under `result`.
#[derive(Deserialize)]
struct Envelope {
    code: Option<Id>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    success: Option<Flag>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_msg: Option<String>,
    #[serde(default)]
    result: Option<Outcome>,
}

#[derive(Deserialize)]
struct Outcome {
    #[serde(default)]
    success: Option<Flag>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_msg: Option<String>,
}

impl Outcome {
    fn error(&self) -> Option<MarketError> {
        (self.success == Some(Flag(false))).then(|| {
            let code = self
                .error_code
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or("UNKNOWN_ERROR");
            classify_code(code, self.error_msg.as_deref().unwrap_or_default())
        })
    }
}

/// `{amount, currency}`, amount in fen (per SDK `types/order_preview.go` `Price`).
#[derive(Deserialize)]
struct Money {
    amount: Fen,
}

#[derive(Deserialize)]
struct ProductAnswer {
    data: ProductData,
}

#[derive(Deserialize)]
struct ProductData {
    #[serde(default)]
    item_id: Option<Id>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    price: Option<Fen>,
    #[serde(default)]
    promotion_price: Option<Fen>,
    #[serde(default)]
    quantity: Option<Id>,
    #[serde(default)]
    sku_list: Vec<ProductSku>,
}

#[derive(Deserialize)]
struct ProductSku {
    sku_id: Id,
    price: Fen,
    #[serde(default)]
    promotion_price: Option<Fen>,
    #[serde(default)]
    quantity: Option<Id>,
}

/// `/product/get`'s answer as the product detail reads it (per SDK `types/product_query.go`,
/// every field the detail needs; docs/vendors/taobao.md, "The product detail").
#[derive(Deserialize)]
struct DetailAnswer {
    data: DetailData,
}

#[derive(Deserialize)]
struct DetailData {
    #[serde(default)]
    item_id: Option<Id>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    pic_urls: Vec<String>,
    #[serde(default)]
    shop_id: Option<Id>,
    #[serde(default)]
    shop_name: Option<String>,
    #[serde(default)]
    user_nick: Option<String>,
    #[serde(default)]
    begin_amount: Option<Id>,
    #[serde(default)]
    price: Option<Fen>,
    #[serde(default)]
    promotion_price: Option<Fen>,
    #[serde(default)]
    quantity: Option<Id>,
    #[serde(default)]
    sku_list: Vec<DetailSku>,
}

#[derive(Deserialize)]
struct DetailSku {
    sku_id: Id,
    price: Fen,
    #[serde(default)]
    promotion_price: Option<Fen>,
    #[serde(default)]
    quantity: Option<Id>,
    #[serde(default)]
    pic_url: Option<String>,
    #[serde(default)]
    properties: Vec<DetailProperty>,
}

#[derive(Deserialize)]
struct DetailProperty {
    #[serde(default)]
    prop_name: Option<String>,
    #[serde(default)]
    value_name: Option<String>,
}

/// An image URL as Taobao gives it (`//img.alicdn.com/…` is made `https:`).
fn taobao_image(raw: &str) -> Option<String> {
    crate::market::product::absolute_url(raw, "https://img.alicdn.com/")
}

impl DetailData {
    fn into_detail(self, asked: &str) -> Result<ProductDetail, MarketError> {
        let mut skus: Vec<SkuDetail> = self
            .sku_list
            .iter()
            .map(|s| SkuDetail {
                spec_id: s.sku_id.0.clone(),
                attributes: s
                    .properties
                    .iter()
                    .filter_map(|p| {
                        Some(Attribute::new(
                            some_text(p.prop_name.as_deref())?,
                            some_text(p.value_name.as_deref())?,
                        ))
                    })
                    .collect(),
                price_fen: current_price(s.price, s.promotion_price),
                stock: Some(s.quantity.as_ref().map_or(0, Id::count)),
                image_url: s.pic_url.as_deref().and_then(taobao_image),
            })
            .collect();
        if skus.is_empty() {
            let price = self
                .price
                .ok_or_else(|| MarketError::invalid_response("/product/get: no price"))?;
            skus.push(SkuDetail {
                spec_id: String::new(),
                attributes: vec![],
                price_fen: current_price(price, self.promotion_price),
                stock: Some(self.quantity.as_ref().map_or(0, Id::count)),
                image_url: None,
            });
        }
        Ok(ProductDetail {
            platform: Platform::Taobao,
            product_id: self.item_id.map_or_else(|| asked.into(), |i| i.0),
            title: self.title,
            image_urls: distinct(self.pic_urls.iter().map(|u| taobao_image(u))),
            // `/product/get` lists no item-level properties.
            attributes: vec![],
            skus,
            min_order_quantity: self
                .begin_amount
                .as_ref()
                .map(Id::count)
                .filter(|&q| q > 0)
                .and_then(|q| u32::try_from(q).ok()),
            seller: Seller {
                id: self
                    .shop_id
                    .map(|i| i.0)
                    .filter(|s| !s.is_empty() && s != "0"),
                name: some_text(self.shop_name.as_deref())
                    .or_else(|| some_text(self.user_nick.as_deref())),
            },
            // The SDK's product types carry no weight or size.
            weight_g: None,
            dimensions: None,
        })
    }
}

/// The price a buyer pays now: the promotion price where there is one (non-zero), else the
/// list price.
fn current_price(price: Fen, promotion: Option<Fen>) -> i64 {
    promotion.filter(|p| p.0 > 0).unwrap_or(price).0
}

#[derive(Deserialize)]
struct RenderAnswer {
    result: RenderResult,
}

#[derive(Deserialize)]
struct RenderResult {
    data: RenderData,
}

#[derive(Deserialize)]
struct RenderData {
    #[serde(default)]
    render_item_list: Vec<RenderItem>,
    #[serde(default)]
    unavailable_sku_list: Vec<UnavailableSku>,
    total_real_pay_price: Money,
}

#[derive(Deserialize)]
struct RenderItem {
    #[serde(default)]
    item_price_infos: Vec<ItemPriceInfo>,
    #[serde(default)]
    mainland_shipping_fee: Option<Money>,
}

#[derive(Deserialize)]
struct ItemPriceInfo {
    item_id: Id,
    #[serde(default)]
    sku_id: Option<Id>,
    quantity: Id,
    origin_price: Money,
}

#[derive(Deserialize)]
struct UnavailableSku {
    #[serde(default)]
    item_id: Option<Id>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_msg: Option<String>,
}

#[derive(Deserialize)]
struct CreateAnswer {
    data: CreateData,
}

#[derive(Deserialize)]
struct CreateData {
    #[serde(default)]
    outer_purchase_id: Option<String>,
    #[serde(default)]
    payment_url: Option<String>,
    #[serde(default)]
    success: Option<Flag>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    order_list: Vec<CreatedOrderWire>,
}

#[derive(Deserialize)]
struct CreatedOrderWire {
    purchase_id: Id,
    #[serde(default)]
    order_line_list: Vec<CreatedLineWire>,
}

#[derive(Deserialize)]
struct CreatedLineWire {
    #[serde(default)]
    sub_purchase_order_id: Option<Id>,
}

#[derive(Deserialize)]
struct BatchPayAnswer {
    data: BatchPayData,
}

#[derive(Deserialize)]
struct BatchPayData {
    #[serde(default)]
    pay_failure_purchase_order_ids: Vec<Id>,
    #[serde(default)]
    will_pay_purchase_order_ids: Vec<Id>,
    #[serde(default)]
    pay_failed_results: Vec<PayFailedWire>,
}

#[derive(Deserialize)]
struct PayFailedWire {
    #[serde(default, rename = "gspOrderId")]
    gsp_order_id: Option<Id>,
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default, rename = "errorMessage")]
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    data: QueryData,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(default)]
    purchase_orders: Vec<PurchaseOrderWire>,
}

#[derive(Deserialize)]
struct PurchaseOrderWire {
    purchase_id: Id,
    #[serde(default)]
    outer_purchase_id: Option<String>,
    status: String,
    purchase_amount: Fen,
    #[serde(default)]
    pay_amount: Option<Fen>,
    #[serde(default)]
    pay_time: Option<Id>,
    #[serde(default)]
    sub_purchase_orders: Vec<SubPurchaseOrderWire>,
}

#[derive(Deserialize)]
struct SubPurchaseOrderWire {
    sub_purchase_order_id: Id,
    #[serde(default)]
    close_reason: Option<String>,
    #[serde(default)]
    refund_id: Option<Id>,
}

#[derive(Deserialize)]
struct LogisticsAnswer {
    result: LogisticsResult,
}

#[derive(Deserialize)]
struct LogisticsResult {
    data: LogisticsData,
}

#[derive(Deserialize)]
struct LogisticsData {
    #[serde(default)]
    pnm_logistics_details: Vec<PnmLogisticsDetail>,
}

#[derive(Deserialize)]
struct PnmLogisticsDetail {
    #[serde(default)]
    mail_no: String,
    #[serde(default)]
    logistics_partner: Vec<LogisticsPartner>,
}

#[derive(Deserialize)]
struct LogisticsPartner {
    #[serde(default)]
    company: String,
}

/// Classify any IOP answer: an IOP `code` other than `"0"`, then a business `success: false`
/// (at the top or in `result`), is an error; a success is then read from the body's text.
fn classify_response(resp: &RawResponse) -> Result<(), MarketError> {
    let Ok(env) = serde_json::from_str::<Envelope>(&resp.body) else {
        return Err(unreadable(resp));
    };
    let Some(Id(code)) = env.code else {
        return Err(unreadable(resp));
    };
    if code != CODE_OK {
        return Err(classify_code(&code, env.message.as_deref().unwrap_or("")));
    }
    if !resp.is_success() {
        return Err(MarketError::invalid_response(format!(
            "HTTP {} with code 0",
            resp.status
        )));
    }
    let top = Outcome {
        success: env.success,
        error_code: env.error_code,
        error_msg: env.error_msg,
    };
    if let Some(e) = top.error() {
        return Err(e);
    }
    if let Some(e) = env.result.as_ref().and_then(Outcome::error) {
        return Err(e);
    }
    Ok(())
}

/// A Taobao id as JSON: an integer when it is one (the SDK's `[]int64`, `int64`), else a string.
fn id_json(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) if n.to_string() == id => Value::from(n),
        _ => Value::String(id.to_owned()),
    }
}

/// The address as `receiver_address` (render) and `receiver` (create) carry it (per SDK
/// `Address`, `OrderAddress`). There is no town field: the town leads the street address.
fn address_json(a: &DeliveryAddress) -> Value {
    let street = if a.town.is_empty() {
        a.address.clone()
    } else {
        format!("{} {}", a.town, a.address)
    };
    json!({
        "name": a.full_name,
        "mobile_phone": a.mobile,
        "zip": a.post_code,
        "country": assumed::COUNTRY,
        "state": a.province,
        "city": a.city,
        "district": a.area,
        "address": street,
    })
}

/// `render_item_List` (per SDK `RenderItemReq`): `[{item_id, sku_id, quantity}]`.
fn render_item_list_param(lines: &[CargoLine]) -> String {
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| json!({"item_id": l.offer_id, "sku_id": l.spec_id, "quantity": l.quantity}))
        .collect();
    Value::Array(lines).to_string()
}

fn render_params(req: &PurchaseRequest) -> Vec<(&'static str, String)> {
    vec![
        ("render_item_List", render_item_list_param(&req.lines)),
        ("receiver_address", address_json(&req.address).to_string()),
        ("need_supplychain_service", "false".into()),
    ]
}

/// `order_line_list` (per SDK `OrderLineReq`): `[{item_id, sku_id, quantity, currency, price
/// (unit, fen), order_line_no}]`, the unit prices from the render.
fn order_line_list_param(req: &PurchaseRequest, quote: &Quote) -> String {
    let lines: Vec<Value> = req
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "item_id": l.offer_id,
                "sku_id": l.spec_id,
                "quantity": l.quantity,
                "currency": "CNY",
                "price": quote.unit_price(l).unwrap_or(0),
                "order_line_no": format!("{}-{}", req.out_order_id, i + 1),
            })
        })
        .collect();
    Value::Array(lines).to_string()
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
    /// Unit price, fen (`item_price_infos[].origin_price.amount`).
    pub price_fen: i64,
}

/// `/purchase/order/render`: what the order would cost now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedOrder {
    /// `total_real_pay_price.amount`: the `purchase_amount` a create must carry.
    pub total_amount_fen: i64,
    /// The sum of `render_item_list[].mainland_shipping_fee.amount`.
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
    /// Not in the SDK's status list; read if it comes.
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

/// One `data.purchase_orders[]` entry of `/purchase/orders/query`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaobaoOrder {
    /// `purchase_id`.
    pub purchase_order_id: String,
    pub outer_purchase_id: Option<String>,
    pub status: TaobaoOrderStatus,
    /// `purchase_amount` (fen).
    pub total_amount_fen: i64,
    /// `pay_amount` (fen).
    #[serde(default)]
    pub pay_amount_fen: i64,
    /// `pay_time` was set (non-zero): the order was paid at some point.
    #[serde(default)]
    pub was_paid: bool,
    /// Why a closed order was closed (`sub_purchase_orders[].close_reason`), when Taobao says.
    pub close_reason: Option<String>,
    /// `sub_purchase_orders[].sub_purchase_order_id`: the lines a cancellation names and the
    /// logistics query takes (`purchase_order_line_id`).
    #[serde(default)]
    pub sub_order_ids: Vec<String>,
    /// `sub_purchase_orders[].refund_id` (the first non-zero one).
    #[serde(default)]
    pub refund_id: Option<String>,
}

impl TaobaoOrder {
    fn from_wire(o: PurchaseOrderWire) -> Self {
        let nonzero = |id: &Option<Id>| id.as_ref().filter(|i| i.count() != 0).map(|i| i.0.clone());
        TaobaoOrder {
            purchase_order_id: o.purchase_id.0,
            outer_purchase_id: o.outer_purchase_id.filter(|s| !s.is_empty()),
            status: TaobaoOrderStatus::from_wire(&o.status),
            total_amount_fen: o.purchase_amount.0,
            pay_amount_fen: o.pay_amount.map_or(0, |f| f.0),
            was_paid: o.pay_time.is_some_and(|t| t.count() > 0),
            close_reason: o
                .sub_purchase_orders
                .iter()
                .find_map(|s| s.close_reason.clone().filter(|r| !r.is_empty())),
            refund_id: o
                .sub_purchase_orders
                .iter()
                .find_map(|s| nonzero(&s.refund_id)),
            sub_order_ids: o
                .sub_purchase_orders
                .into_iter()
                .map(|s| s.sub_purchase_order_id.0)
                .collect(),
        }
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

    /// What a closed order refunded (assumed: a closed order that was paid refunds its
    /// `pay_amount` in full).
    pub fn refunded_fen(&self) -> i64 {
        if self.status.is_closed() && self.was_paid {
            self.pay_amount_fen
        } else {
            0
        }
    }

    fn closed_error(&self) -> MarketError {
        match self.close_reason.as_deref() {
            Some(r) if assumed::CLOSED_OUT_OF_STOCK.contains(&r) => MarketError::OutOfStock,
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
    /// `data.order_list[0].purchase_id`.
    pub purchase_order_id: String,
    pub outer_purchase_id: Option<String>,
    pub payment_url: Option<String>,
    /// `data.order_list[0].order_line_list[].sub_purchase_order_id`.
    pub sub_order_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaobaoPayOutcome {
    /// Listed in `will_pay_purchase_order_ids` (also for an order that was paid already).
    Paid,
    /// Listed in `pay_failure_purchase_order_ids`; the code and message of its
    /// `pay_failed_results` entry.
    Failed { reason: String, message: String },
}

/// The outcome of a cancellation from the order's state alone; `None` while Taobao may still
/// cancel it (unpaid, or paid and not shipped).
fn cancel_decided(o: &TaobaoOrder) -> Option<CancelOutcome> {
    match o.status {
        TaobaoOrderStatus::Building
        | TaobaoOrderStatus::WaitBuyerPay
        | TaobaoOrderStatus::WaitSellerSendGoods => None,
        TaobaoOrderStatus::TradeClosed => Some(CancelOutcome::Cancelled {
            refunded_fen: o.refunded_fen(),
            refund_id: o.refund_id.clone(),
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

    /// One signed call; the answer's text once neither IOP nor the business outcome failed.
    async fn call(
        &self,
        api_path: &'static str,
        params: Vec<(&'static str, String)>,
        effect: Effect,
    ) -> Result<String, MarketError> {
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
        classify_response(&resp)?;
        Ok(resp.body)
    }

    /// `/product/get` `item_id`: the item's skus with their current price (fen) and stock. An
    /// item without `sku_list` is one sku with an empty id at the item's price and stock.
    pub async fn product(&self, item_id: &str) -> Result<TaobaoProduct, MarketError> {
        let body = self
            .call(
                "/product/get",
                vec![("item_id", item_id.into())],
                Effect::Read,
            )
            .await?;
        let data = typed::<ProductAnswer>(&body, "/product/get")?.data;
        let mut skus: Vec<TaobaoSku> = data
            .sku_list
            .iter()
            .map(|s| TaobaoSku {
                sku_id: s.sku_id.0.clone(),
                price_fen: current_price(s.price, s.promotion_price),
                quantity: s.quantity.as_ref().map_or(0, Id::count),
            })
            .collect();
        if skus.is_empty()
            && let Some(price) = data.price
        {
            skus.push(TaobaoSku {
                sku_id: String::new(),
                price_fen: current_price(price, data.promotion_price),
                quantity: data.quantity.as_ref().map_or(0, Id::count),
            });
        }
        Ok(TaobaoProduct {
            item_id: data.item_id.map_or_else(|| item_id.into(), |i| i.0),
            title: data.title,
            skus,
        })
    }

    /// The whole item (`/product/get`, read for every field the detail needs). An item Taobao
    /// no longer has is [`MarketError::ListingGone`] (`ITEM_NOT_FOUND`, assumed).
    pub async fn product_detail(&self, item_id: &str) -> Result<ProductDetail, MarketError> {
        let body = self
            .call(
                "/product/get",
                vec![("item_id", item_id.into())],
                Effect::Read,
            )
            .await?;
        typed::<DetailAnswer>(&body, "/product/get")?
            .data
            .into_detail(item_id)
    }

    /// Price the order as it stands now (goods + postage), creating nothing. A line Taobao
    /// lists in `unavailable_sku_list` fails the render with its code.
    pub async fn render(&self, req: &PurchaseRequest) -> Result<RenderedOrder, MarketError> {
        req.validate()?;
        let body = self
            .call("/purchase/order/render", render_params(req), Effect::Read)
            .await?;
        let data = typed::<RenderAnswer>(&body, "/purchase/order/render")?
            .result
            .data;
        if let Some(u) = data.unavailable_sku_list.first() {
            let code = u
                .error_code
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or("SKU_UNAVAILABLE");
            let message = u.reason.clone().or(u.error_msg.clone()).unwrap_or_default();
            tracing::info!(item_id = ?u.item_id, code, "Taobao render: sku unavailable");
            return Err(classify_code(code, &message));
        }
        let mut lines = Vec::new();
        let mut postage_fen = 0i64;
        for item in &data.render_item_list {
            postage_fen += item
                .mainland_shipping_fee
                .as_ref()
                .map_or(0, |m| m.amount.0);
            for p in &item.item_price_infos {
                lines.push(RenderedLine {
                    item_id: p.item_id.0.clone(),
                    sku_id: p.sku_id.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
                    quantity: p.quantity.count(),
                    price_fen: p.origin_price.amount.0,
                });
            }
        }
        Ok(RenderedOrder {
            total_amount_fen: data.total_real_pay_price.amount.0,
            postage_fen,
            lines,
        })
    }

    /// Create the purchase order for the render's total `purchase_amount` (fen; it must equal
    /// the current total, or Taobao answers `PRICE_CHANGED`, assumed), the lines at the
    /// render's unit prices. A repeat with the same `outer_purchase_id` returns the first
    /// order. A timeout here means "maybe created": look it up with
    /// [`Taobao::order_by_outer_id`] before creating again.
    pub async fn create(
        &self,
        req: &PurchaseRequest,
        quote: &Quote,
    ) -> Result<CreatedPurchase, MarketError> {
        req.validate()?;
        let params = vec![
            ("outer_purchase_id", req.out_order_id.clone()),
            ("purchase_amount", quote.total_fen.to_string()),
            ("order_line_list", order_line_list_param(req, quote)),
            ("receiver", address_json(&req.address).to_string()),
        ];
        let body = self
            .call("/purchase/order/create", params, Effect::Write)
            .await?;
        let data = typed::<CreateAnswer>(&body, "/purchase/order/create")?.data;
        if data.success == Some(Flag(false)) {
            let code = data.error_code.as_deref().unwrap_or("UNKNOWN_ERROR");
            return Err(classify_code(
                code,
                data.error_message.as_deref().unwrap_or_default(),
            ));
        }
        if data.order_list.len() > 1 {
            tracing::warn!(
                outer_purchase_id = %req.out_order_id,
                count = data.order_list.len(),
                "Taobao split one purchase into several orders; following the first"
            );
        }
        let Some(first) = data.order_list.into_iter().next() else {
            return Err(MarketError::invalid_response(
                "/purchase/order/create: order_list is empty",
            ));
        };
        Ok(CreatedPurchase {
            purchase_order_id: first.purchase_id.0,
            outer_purchase_id: data.outer_purchase_id,
            payment_url: data.payment_url.filter(|u| !u.is_empty()),
            sub_order_ids: first
                .order_line_list
                .into_iter()
                .filter_map(|l| l.sub_purchase_order_id.map(|i| i.0))
                .collect(),
        })
    }

    /// Pay one purchase order (`purchaseOrderIdList`). Paying a paid order is listed as to be
    /// paid again (assumed). A timeout here means "maybe paid": re-read the order before
    /// paying again.
    pub async fn pay(&self, purchase_order_id: &str) -> Result<TaobaoPayOutcome, MarketError> {
        let ids = Value::Array(vec![id_json(purchase_order_id)]).to_string();
        let body = self
            .call(
                "/purchase/order/batch/pay",
                vec![("purchaseOrderIdList", ids)],
                Effect::Write,
            )
            .await?;
        let data = typed::<BatchPayAnswer>(&body, "/purchase/order/batch/pay")?.data;
        let ours = |i: &Id| i.0 == purchase_order_id;
        if data.pay_failure_purchase_order_ids.iter().any(ours) {
            let detail = data
                .pay_failed_results
                .iter()
                .find(|f| f.gsp_order_id.as_ref().is_some_and(ours))
                .or(data.pay_failed_results.first());
            return Ok(TaobaoPayOutcome::Failed {
                reason: detail
                    .and_then(|d| d.error_code.clone())
                    .unwrap_or_else(|| "PAY_FAILED".into()),
                message: detail
                    .and_then(|d| d.error_message.clone())
                    .unwrap_or_else(|| "no reason given".into()),
            });
        }
        if data.will_pay_purchase_order_ids.iter().any(ours) {
            return Ok(TaobaoPayOutcome::Paid);
        }
        Err(MarketError::invalid_response(format!(
            "batch pay lists {purchase_order_id} neither as paying nor as failed"
        )))
    }

    async fn query(&self, param: (&'static str, String)) -> Result<Vec<TaobaoOrder>, MarketError> {
        let body = self
            .call("/purchase/orders/query", vec![param], Effect::Read)
            .await?;
        let data = typed::<QueryAnswer>(&body, "/purchase/orders/query")?.data;
        Ok(data
            .purchase_orders
            .into_iter()
            .map(TaobaoOrder::from_wire)
            .collect())
    }

    /// Find the order made for our external id (after a timeout, before creating or paying).
    pub async fn order_by_outer_id(
        &self,
        outer_purchase_id: &str,
    ) -> Result<Option<TaobaoOrder>, MarketError> {
        let mut found = self
            .query(("outer_purchase_id", outer_purchase_id.to_owned()))
            .await?;
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

    /// The order by its `purchase_id` (`purchase_ids`, a JSON array).
    pub async fn order(&self, purchase_order_id: &str) -> Result<TaobaoOrder, MarketError> {
        let ids = Value::Array(vec![id_json(purchase_order_id)]).to_string();
        self.query(("purchase_ids", ids))
            .await?
            .into_iter()
            .find(|o| o.purchase_order_id == purchase_order_id)
            .ok_or_else(|| MarketError::Rejected {
                code: ORDER_NOT_FOUND.into(),
                message: format!("no Taobao order {purchase_order_id}"),
            })
    }

    /// `/logistics/detail/get` for one line (`purchase_order_line_id` = a
    /// `sub_purchase_order_id`): its parcels (empty until the seller ships).
    pub async fn line_logistics(
        &self,
        purchase_order_line_id: &str,
    ) -> Result<Vec<LogisticsInfo>, MarketError> {
        let body = self
            .call(
                "/logistics/detail/get",
                vec![("purchase_order_line_id", purchase_order_line_id.into())],
                Effect::Read,
            )
            .await?;
        let data = typed::<LogisticsAnswer>(&body, "/logistics/detail/get")?
            .result
            .data;
        Ok(data
            .pnm_logistics_details
            .into_iter()
            .filter(|d| !d.mail_no.is_empty())
            .map(|d| LogisticsInfo {
                bill_no: d.mail_no,
                company: d
                    .logistics_partner
                    .into_iter()
                    .map(|p| p.company)
                    .find(|c| !c.is_empty())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Domestic shipments of the order: the order's lines read from the query, then each
    /// line's parcels, one entry per tracking number (empty until the seller ships).
    pub async fn logistics(
        &self,
        purchase_order_id: &str,
    ) -> Result<Vec<LogisticsInfo>, MarketError> {
        let order = self.order(purchase_order_id).await?;
        let mut out: Vec<LogisticsInfo> = Vec::new();
        for line in &order.sub_order_ids {
            for parcel in self.line_logistics(line).await? {
                if !out.iter().any(|p| p.bill_no == parcel.bill_no) {
                    out.push(parcel);
                }
            }
        }
        Ok(out)
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
                now.pay_amount_fen.max(now.total_amount_fen)
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
            let created = Taobao::create(self, req, quote).await?;
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

    /// Batch pay takes no attempt key: paying a paid order is not a second debit.
    fn pay<'a>(
        &'a self,
        order: &'a BuyerOrder,
        _attempt_key: &'a str,
    ) -> MarketFuture<'a, PayAnswer> {
        Box::pin(async move {
            match Taobao::pay(self, &order.order_id).await? {
                TaobaoPayOutcome::Paid => Ok(PayAnswer::Paid),
                TaobaoPayOutcome::Failed { reason, message } => {
                    match classify_code(&reason, &message) {
                        MarketError::Rejected { .. } => {
                            Ok(PayAnswer::Declined(MarketError::Transient(format!(
                                "Taobao pay failed: {reason}: {message}"
                            ))))
                        }
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

    /// The order's `status` from `/purchase/orders/query`, as the wire spells it.
    fn status_word<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, String> {
        Box::pin(async move { Ok(self.order(order_id).await?.status.wire().to_owned()) })
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

impl ProductSource for Taobao {
    fn product<'a>(&'a self, product_id: &'a str) -> MarketFuture<'a, ProductDetail> {
        Box::pin(self.product_detail(product_id))
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
        assert!(
            classify_response(&raw(200, r#"{"code":"0","request_id":"r","data":{"x":1}}"#)).is_ok()
        );
        assert_eq!(
            classify_response(&raw(
                200,
                r#"{"code":"ApiCallLimit","message":"slow down","request_id":"r"}"#
            )),
            Err(MarketError::RateLimited)
        );
        // A business failure at the top (create, query, pay, cancel) and under `result`
        // (render, logistics).
        assert_eq!(
            classify_response(&raw(
                200,
                r#"{"code":"0","request_id":"r","success":false,"error_code":"OUT_OF_STOCK","error_msg":"m"}"#
            )),
            Err(MarketError::OutOfStock)
        );
        assert_eq!(
            classify_response(&raw(
                200,
                r#"{"code":"0","request_id":"r","result":{"success":"false","error_code":"ITEM_NOT_FOUND","error_msg":"m"}}"#
            )),
            Err(MarketError::ListingGone)
        );
        assert!(matches!(
            classify_response(&raw(200, r#"{"code":"IllegalAccessToken","request_id":"r"}"#)),
            Err(MarketError::Rejected { code, .. }) if code == ILLEGAL_ACCESS_TOKEN
        ));
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
    fn ids_and_amounts_are_read_exactly_however_they_are_typed() {
        let o: PurchaseOrderWire = typed(
            r#"{"purchase_id":200078283966,"status":"WAIT_BUYER_P","purchase_amount":"9000",
                "pay_amount":0,"sub_purchase_orders":[{"sub_purchase_order_id":"2912066688476065752"}]}"#,
            "t",
        )
        .unwrap();
        let o = TaobaoOrder::from_wire(o);
        assert_eq!(o.purchase_order_id, "200078283966");
        assert_eq!(o.total_amount_fen, 9000);
        assert_eq!(o.sub_order_ids, ["2912066688476065752"]);
        // Fen have no fraction; an id is no float.
        assert!(
            typed::<PurchaseOrderWire>(
                r#"{"purchase_id":1,"status":"x","purchase_amount":90.5}"#,
                "t"
            )
            .is_err()
        );
        assert!(
            typed::<PurchaseOrderWire>(
                r#"{"purchase_id":1.5,"status":"x","purchase_amount":90}"#,
                "t"
            )
            .is_err()
        );
        assert_eq!(id_json("200078851363"), json!(200078851363u64));
        assert_eq!(id_json("tb-9"), json!("tb-9"));
        assert_eq!(id_json("007"), json!("007"));
    }

    #[test]
    fn builds_request_params_as_json_strings() {
        let req = request(4200, 9000);
        let p = render_params(&req);
        assert_eq!(p[0].0, "render_item_List");
        let lines: Value = serde_json::from_str(&p[0].1).unwrap();
        assert_eq!(
            lines,
            json!([{"item_id": "tb1001", "sku_id": "tbs1", "quantity": 2}])
        );
        let receiver: Value = serde_json::from_str(&p[1].1).unwrap();
        assert_eq!(receiver["name"], "Wang Wei");
        assert_eq!(receiver["city"], "深圳市");
        assert_eq!(receiver["mobile_phone"], "13800000000");
        let quote = Quote {
            lines: vec![QuotedLine {
                offer_id: "tb1001".into(),
                spec_id: "tbs1".into(),
                unit_price_fen: 4200,
            }],
            total_fen: 9000,
        };
        let lines: Value = serde_json::from_str(&order_line_list_param(&req, &quote)).unwrap();
        assert_eq!(
            lines,
            json!([{"item_id": "tb1001", "sku_id": "tbs1", "quantity": 2, "currency": "CNY",
                    "price": 4200, "order_line_no": "ord-7-L1-1"}])
        );
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

    // ---- a fake IOP behind the mock server (the shapes of tests/contracts/taobao/) ----

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

    /// A success: the IOP envelope around `body`'s fields.
    fn ok(mut body: Value) -> Reply {
        body["code"] = json!("0");
        body["request_id"] = json!("req-1");
        Reply::json(200, body.to_string())
    }

    fn fail(code: &str) -> Reply {
        Reply::json(
            200,
            json!({"code": code, "message": "m", "request_id": "req-1"}).to_string(),
        )
    }

    fn biz_fail(code: &str) -> Reply {
        ok(json!({"success": false, "error_code": code, "error_msg": "m"}))
    }

    fn order_json(o: &FakeOrder) -> Value {
        let paid = o.status != "WAIT_BUYER_P";
        json!({"purchase_id": o.id.parse::<u64>().unwrap(), "outer_purchase_id": o.outer,
               "status": o.status, "purchase_amount": o.total,
               "pay_amount": if paid { o.total } else { 0 }, "pay_time": if paid { 1 } else { 0 },
               "sub_purchase_orders": [{"sub_purchase_order_id": format!("{}01", o.id), "item_id": "tb1001"}]})
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
                    json!({"success": true, "data": {"item_id": "tb1001", "title": "Mug",
                    "price": s.unit_price_fen + 100,
                    "sku_list": [{"sku_id": "tbs1", "price": s.unit_price_fen + 100,
                                  "promotion_price": s.unit_price_fen, "quantity": 300}]}}),
                ),
                _ => biz_fail("ITEM_NOT_FOUND"),
            },
            "/purchase/order/render" => {
                let lines: Value = serde_json::from_str(&form["render_item_List"]).unwrap();
                assert_eq!(lines[0]["item_id"], "tb1001");
                let receiver: Value = serde_json::from_str(&form["receiver_address"]).unwrap();
                assert_eq!(receiver["name"], "Wang Wei");
                let reply = ok(json!({"result": {"success": true, "data": {
                    "render_item_list": [{
                        "item_price_infos": [{"item_id": "tb1001", "sku_id": "tbs1", "quantity": 2,
                            "origin_price": {"amount": s.unit_price_fen, "currency": "CNY"}}],
                        "mainland_shipping_fee": {"amount": POSTAGE, "currency": "CNY"}}],
                    "unavailable_sku_list": [],
                    "total_real_pay_price": {"amount": s.total(), "currency": "CNY"}}}}));
                if let Some(p) = s.jump_after_render.take() {
                    s.unit_price_fen = p;
                }
                reply
            }
            "/purchase/order/create" => {
                s.creates += 1;
                if let Some(code) = s.create_code {
                    return biz_fail(code);
                }
                let lines: Value = serde_json::from_str(&form["order_line_list"]).unwrap();
                assert_eq!(lines[0]["order_line_no"], "ord-7-L1-1");
                let outer = form["outer_purchase_id"].clone();
                let existing = s.orders.iter().find(|o| o.outer == outer).cloned();
                let order = match existing {
                    Some(o) => o,
                    None => {
                        if form["purchase_amount"] != s.total().to_string() {
                            return biz_fail("PRICE_CHANGED");
                        }
                        let o = FakeOrder {
                            id: format!("{}", 5000 + s.orders.len()),
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
                    json!({"success": true, "data": {"outer_purchase_id": order.outer,
                    "payment_url": "https://pay.example/1",
                    "order_list": [{"purchase_id": order.id.parse::<u64>().unwrap(),
                        "order_line_list": [{"sub_purchase_order_id": format!("{}01", order.id)}]}]}}),
                )
            }
            "/purchase/order/batch/pay" => {
                let ids: Vec<u64> = serde_json::from_str(&form["purchaseOrderIdList"]).unwrap();
                s.pays += 1;
                let first = s.pays == 1;
                let mode = s.pay_mode.clone();
                let o = s
                    .orders
                    .iter_mut()
                    .find(|o| o.id == ids[0].to_string())
                    .unwrap();
                let paid = o.status != "WAIT_BUYER_P";
                let success = json!({"success": true, "data": {"will_pay_purchase_order_ids": [o.id],
                    "pay_failure_purchase_order_ids": [], "pay_failed_results": []}});
                let failure = |reason: &str| {
                    json!({"success": true, "data": {
                    "will_pay_purchase_order_ids": [], "pay_failure_purchase_order_ids": [o.id],
                    "pay_failed_results": [{"gspOrderId": ids[0], "errorCode": reason, "errorMessage": "m"}]}})
                };
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
                let by_id: Option<Vec<u64>> = form
                    .get("purchase_ids")
                    .map(|p| serde_json::from_str(p).unwrap());
                let orders: Vec<Value> = s
                    .orders
                    .iter()
                    .filter(|o| {
                        form.get("outer_purchase_id") == Some(&o.outer)
                            || by_id
                                .as_ref()
                                .is_some_and(|ids| ids.iter().any(|i| i.to_string() == o.id))
                    })
                    .map(order_json)
                    .collect();
                ok(json!({"success": true, "data": {"purchase_orders": orders}}))
            }
            "/logistics/detail/get" => {
                assert_eq!(form["purchase_order_line_id"], "500001");
                ok(
                    json!({"result": {"success": true, "data": {"pnm_logistics_details": [
                    {"mail_no": "SF123", "logistics_partner": [{"company": "SF"}]},
                    {"mail_no": "SF123", "logistics_partner": [{"company": "SF"}]},
                    {"mail_no": "", "logistics_partner": [{"company": "no number"}]}]}}}),
                )
            }
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
                marketplace_order_id: "5000".into(),
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
            id: "77".into(),
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
            id: "78".into(),
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
        let closed = TaobaoOrder::from_wire(
            typed(
                r#"{"purchase_id": 1, "status": "TRADE_CLOSED", "purchase_amount": "9000",
                    "sub_purchase_orders": [{"sub_purchase_order_id": 101, "close_reason": "sellerGoodsLack"}]}"#,
                "t",
            )
            .unwrap(),
        );
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
            matches!(client.order("1").await, Err(MarketError::Rejected { code, .. }) if code == "ORDER_NOT_FOUND")
        );
        let bought = purchase(&client, &request(4200, 9000)).await.unwrap();
        let o = client.order(&bought.marketplace_order_id).await.unwrap();
        assert_eq!(o.status, TaobaoOrderStatus::WaitSellerSendGoods);
        assert_eq!(o.outer_purchase_id.as_deref(), Some("ord-7-L1"));
        assert_eq!(
            client.logistics("5000").await.unwrap(),
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
        let err = Taobao::new(cfg).unwrap().order("1").await.unwrap_err();
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
        /// Paid at some point (`pay_time`, `pay_amount`).
        paid: bool,
        refund_id: i64,
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
        let body = match api_path.as_str() {
            "/purchase/orders/query" => {
                assert_eq!(form["purchase_ids"], "[9]");
                let paid = s.paid;
                json!({"success": true, "data": {"purchase_orders": [{
                    "purchase_id": 9, "outer_purchase_id": "o-1", "status": s.status,
                    "purchase_amount": 8400, "pay_amount": if paid { 8400 } else { 0 },
                    "pay_time": if paid { 1_700_000_000_000i64 } else { 0 },
                    "sub_purchase_orders": [{"sub_purchase_order_id": 901, "item_id": "tb1",
                        "refund_id": s.refund_id}]}]}})
            }
            "/purchase/order/asyn/cancel" => {
                assert_eq!(form["purchase_id"], "9");
                assert_eq!(form["sub_purchase_orderId_list"], r#"["901"]"#);
                if !matches!(s.status, "WAIT_BUYER_P" | "WAIT_SELLER_SEND_GOODS") {
                    json!({"success": false, "error_code": CANCEL_NOT_ALLOWED, "error_msg": "m"})
                } else {
                    if s.closes_at_once {
                        if s.status == "WAIT_SELLER_SEND_GOODS" {
                            s.refund_id = 77;
                        }
                        s.status = "TRADE_CLOSED";
                    }
                    json!({"success": true, "error_code": "", "error_msg": ""})
                }
            }
            other => panic!("unexpected api {other}"),
        };
        let mut body = body;
        body["code"] = json!("0");
        body["request_id"] = json!("r");
        Reply::json(200, body.to_string())
    }

    async fn setup(status: &'static str, closes_at_once: bool) -> (MockServer, Taobao) {
        let state = Arc::new(Mutex::new(Fake {
            status,
            paid: status != "WAIT_BUYER_P",
            refund_id: 0,
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
                .cancel_order("9", "customer cancelled")
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
                .cancel_order("9", "customer cancelled")
                .await
                .unwrap(),
            CancelOutcome::Cancelled {
                refunded_fen: 8400,
                refund_id: Some("77".into())
            }
        );
        // A repeat reads the closed order and asks nothing.
        assert!(matches!(
            client.cancel_order("9", "again").await.unwrap(),
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
            client.cancel_order("9", "x").await.unwrap(),
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
            client.cancel_order("9", "x").await.unwrap(),
            CancelOutcome::TooLate {
                status: "WAIT_BUYER_CONFIRM_GOODS".into()
            }
        );
        assert_eq!(cancels(&server), 0);
    }
}
