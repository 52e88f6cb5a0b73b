//! 1688 Open Platform (AOP) buyer-side client: product info, order preview, cross-border order
//! creation (idempotent on our `outOrderId`), protocol pay, order and logistics queries, and
//! [`Alibaba1688::cancel_order`], which cancels an unpaid order or asks for the refund of a paid
//! one the seller has not shipped. It is a [`BuyerMarketplace`] (the exactly-once purchase is
//! `crate::market::purchase`) and a [`PriceSource`].
//!
//! Every call, parameter, field, unit and code is 1688's documented one (docs/vendors/1688.md,
//! which cites the source of each); answers are deserialized from their text into the typed
//! `Wire*` shapes below, yuan amounts through [`Yuan`] and fen through [`Fen`], never through an
//! `f64`. What 1688 does not publish is modelled in [`assumed`] and nowhere else.

use std::sync::Arc;

use procure_domain::{Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::{BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429};
use crate::market::buyer::{OfferPrice, pick_spec};
use crate::market::product::{
    Attribute, Dimensions, ProductDetail, ProductSource, Seller, SkuDetail,
};
use crate::market::wire::{
    Fen, IdText, Yuan, list, need, now_ms, server_error, sign_form, status_error, text, typed,
    unreadable,
};
use crate::market::{
    BuyerMarketplace, BuyerOrder, CancelOutcome, Created, DeliveryAddress, LogisticsInfo,
    MarketError, MarketFuture, OrderState, PayAnswer, PriceSource, PurchaseRequest, Quote,
    QuotedLine,
};
use procure_domain::order::Platform;

/// What 1688 does not publish and we therefore model (docs/vendors/1688.md, "Assumed"). The
/// sandbox models the same codes in its own one place (`sandbox/src/aop.rs`, `assumed`).
pub mod assumed {
    /// Business code for a restricted buyer account: 1688 publishes none.
    pub const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";
    /// `alibaba.trade.pay.protocolPay.preparePay` for an order that is already paid: the API's
    /// page says its error codes are not known ("该接口目前返回错误码不详").
    pub const ORDER_ALREADY_PAID: &str = "ORDER_ALREADY_PAID";
}
pub use assumed::ACCOUNT_RESTRICTED;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlibabaConfig {
    pub base_url: String,
    pub app_key: Secret,
    pub app_secret: Secret,
    pub access_token: Secret,
    pub http: HttpConfig,
    /// Pay requests per `purchase` call before handing back to the activity's retry.
    pub max_pay_attempts: u32,
}

impl Default for AlibabaConfig {
    fn default() -> Self {
        AlibabaConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            app_key: Secret::new("demo1688"),
            app_secret: Secret::new("demo1688-secret"),
            access_token: Secret::new("demo1688-token"),
            http: HttpConfig::default(),
            max_pay_attempts: 3,
        }
    }
}

/// `webSite` of the calls that take it: the 1688 site (the other value, `alibaba`, is the
/// international one).
const WEB_SITE: &str = "1688";
/// `alibaba.createOrder.preview`: a SKU's stock is short.
const PREVIEW_OUT_OF_STOCK: &str = "500_004";
/// `alibaba.createOrder.preview`: the offer cannot be traded online (cannot be bought).
const PREVIEW_NOT_TRADABLE: &str = "500_001";
/// `alibaba.trade.getLogisticsInfos.buyerView`: the seller has not shipped yet, ask later.
const LOGISTICS_NOT_YET: &str = "500_2";
/// `alibaba.trade.cancel`: the order is no longer waiting for payment (1688 cancels unpaid
/// orders only).
const ORDER_STATUS_ERROR: &str = "ORDER_STATUS_ERROR";
/// `alibaba.trade.cancel` less than ten seconds after the order was created.
const CLOSE_ORDER_TOO_FAST: &str = "CLOSE_ORDER_TOO_FAST";
/// `alibaba.trade.createRefund`: the refund does not fit the order's state (shipped meanwhile,
/// or a refund is already open).
const REFUND_STATE_ERROR: &str = "5010";
/// `goodsStatus` of a paid order the seller has not shipped (售中等待卖家发货).
const GOODS_WAIT_SELLER_SEND: &str = "refundWaitSellerSend";
/// `cancelReason`: the buyer cancels (the other values are `sellerGoodsLack` and `other`).
const CANCEL_REASON_BUYER: &str = "buyerCancel";
/// `refundStatus` of a refund the seller has paid out.
const REFUND_SUCCESS: &str = "refundsuccess";
/// `refundStatus` of a refund the seller refused or that was closed.
const REFUND_CLOSED: &str = "refundclose";

/// The one mapping from 1688 gateway (`error_code`) and business (`errorCode` / `code`) codes
/// to [`MarketError`].
pub fn classify_code(code: &str, message: &str) -> MarketError {
    match code {
        assumed::ACCOUNT_RESTRICTED => MarketError::AccountRestricted,
        PREVIEW_OUT_OF_STOCK => MarketError::OutOfStock,
        PREVIEW_NOT_TRADABLE => MarketError::ListingGone,
        "gw.SignatureInvalid" => MarketError::SignatureRejected,
        // A cancel within ten seconds of the order's creation: the same call succeeds later.
        CLOSE_ORDER_TOO_FAST => MarketError::Transient(format!("{code}: {message}")),
        "gw.QosAppFrequencyLimit" | "gw.QosApiFrequencyLimit" => MarketError::RateLimited,
        "gw.ServiceUnavailable" | "gw.InternalError" | "gw.RequestTimeout" => {
            MarketError::Transient(format!("{code}: {message}"))
        }
        c if c.starts_with("gw.") && c.contains("Signature") => MarketError::SignatureRejected,
        c if c.contains("FrequencyLimit") => MarketError::RateLimited,
        _ => MarketError::Rejected {
            code: code.into(),
            message: message.into(),
        },
    }
}

/// A JSON `success` flag, which some answers send as a string (`buyerView` documents
/// `success` as a String).
fn flag(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The first of `keys` that holds a non-empty code or message.
fn first_text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| text(v, k))
        .find(|s| !s.is_empty())
}

/// Turn any 1688 answer into its text and JSON envelope, or a classified error. Gateway errors
/// carry `error_code` / `error_message`; business errors `success:false` with `errorCode` and
/// `errorMsg` or `errorMessage` (or, on `createCrossOrder`, `code` / `message`).
fn classify_response(resp: &RawResponse) -> Result<Value, MarketError> {
    let parsed: Option<Value> = serde_json::from_str(&resp.body).ok();
    let Some(body) = parsed.filter(Value::is_object) else {
        return Err(unreadable(resp));
    };
    if let Some(code) = first_text(&body, &["error_code"]) {
        let message = first_text(&body, &["error_message"]).unwrap_or_default();
        return Err(classify_code(&code, &message));
    }
    if let Some(e) = server_error(resp) {
        return Err(e);
    }
    let biz_code = first_text(&body, &["errorCode"]);
    if flag(&body, "success") == Some(false) || biz_code.is_some() {
        let code = biz_code
            .or_else(|| first_text(&body, &["code"]))
            .unwrap_or_else(|| "UNKNOWN".into());
        let message =
            first_text(&body, &["errorMsg", "errorMessage", "message"]).unwrap_or_default();
        return Err(classify_code(&code, &message));
    }
    match status_error(resp) {
        Some(e) => Err(e),
        None => Ok(body),
    }
}

/// A classified 1688 answer: its text (for the typed reading) and its envelope.
struct Answer {
    text: String,
    body: Value,
}

impl Answer {
    fn typed<T: serde::de::DeserializeOwned>(&self, api: &str) -> Result<T, MarketError> {
        typed(&self.text, api)
    }
}

/// An id as the JSON value a `Long` parameter takes: a number when it is all digits.
fn long_param(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(id),
    }
}

impl DeliveryAddress {
    /// `addressParam` (`alibaba.trade.fast.address`) with text province, city and area.
    fn to_param(&self) -> String {
        json!({
            "fullName": self.full_name,
            "mobile": self.mobile,
            "postCode": self.post_code,
            "provinceText": self.province,
            "cityText": self.city,
            "areaText": self.area,
            "townText": self.town,
            "address": self.address,
        })
        .to_string()
    }
}

impl PurchaseRequest {
    /// `cargoParamList` (`alibaba.trade.fast.cargo[]`): `offerId` is a Long.
    fn cargo_param(&self) -> String {
        let cargo: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                json!({"offerId": long_param(&l.offer_id), "specId": l.spec_id, "quantity": l.quantity})
            })
            .collect();
        Value::Array(cargo).to_string()
    }

    fn order_params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("flow", "general".into()),
            ("addressParam", self.address.to_param()),
            ("cargoParamList", self.cargo_param()),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuInfo {
    pub spec_id: String,
    pub price_fen: i64,
    pub amount_on_sale: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductInfo {
    pub product_id: String,
    pub subject: String,
    /// `published` when buyable.
    pub status: String,
    pub skus: Vec<SkuInfo>,
}

/// A count (`amountOnSale`, documented Integer or Double): a JSON number or numeric string.
fn count(v: &Option<Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.floor() as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// `alibaba.cross.productInfo`'s answer.
#[derive(Deserialize)]
struct WireProductAnswer {
    #[serde(rename = "productInfo")]
    product_info: Option<WireProduct>,
}

#[derive(Deserialize)]
struct WireProduct {
    #[serde(rename = "productID")]
    product_id: Option<IdText>,
    subject: Option<String>,
    status: Option<String>,
    #[serde(rename = "skuInfos", default)]
    sku_infos: Vec<WireSku>,
}

#[derive(Deserialize)]
struct WireSku {
    #[serde(rename = "specId")]
    spec_id: Option<String>,
    /// Yuan (Double).
    price: Yuan,
    #[serde(rename = "amountOnSale")]
    amount_on_sale: Option<Value>,
}

/// Where 1688's relative image paths live (`image.images`: "使用相对路径，需要增加域名").
const IMAGE_BASE: &str = "https://cbu01.alicdn.com/";

/// `alibaba.cross.productInfo`'s answer as the product detail reads it: the whole
/// `AlibabaProductProductInfo` model (docs/vendors/1688.md, "The product detail").
#[derive(Deserialize)]
struct WireDetailAnswer {
    #[serde(rename = "productInfo")]
    product_info: Option<WireDetail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDetail {
    #[serde(rename = "productID")]
    product_id: Option<IdText>,
    subject: Option<String>,
    status: Option<String>,
    #[serde(default)]
    attributes: Vec<WireAttribute>,
    image: Option<WireImages>,
    #[serde(default)]
    sku_infos: Vec<WireDetailSku>,
    sale_info: Option<WireSaleInfo>,
    shipping_info: Option<WireShipping>,
    supplier_user_id: Option<IdText>,
    supplier_login_id: Option<String>,
    seller_login_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttribute {
    attribute_name: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct WireImages {
    #[serde(default)]
    images: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDetailSku {
    spec_id: Option<String>,
    /// Yuan (Double); absent where the offer is priced by quantity (`quoteType` 2).
    price: Option<Yuan>,
    amount_on_sale: Option<Value>,
    #[serde(default)]
    attributes: Vec<WireSkuAttribute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSkuAttribute {
    attribute_name: Option<String>,
    attribute_display_name: Option<String>,
    attribute_value: Option<String>,
    sku_image_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSaleInfo {
    #[serde(default)]
    price_ranges: Vec<WirePriceRange>,
    amount_on_sale: Option<Value>,
    min_order_quantity: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePriceRange {
    start_quantity: Option<Value>,
    /// Yuan (Double).
    price: Yuan,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireShipping {
    /// Double, kg (docs/vendors/1688.md, Assumed).
    unit_weight: Option<Value>,
    /// Double, cm (docs/vendors/1688.md, Assumed).
    length: Option<Value>,
    width: Option<Value>,
    height: Option<Value>,
}

/// A positive measure (a JSON number or numeric string) times `scale`, rounded: weights and
/// sizes are not money, and a reading off by a fraction of a gram changes nothing.
fn measure(v: &Option<Value>, scale: f64) -> Option<u32> {
    let x = match v.as_ref()? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    let scaled = (x * scale).round();
    (scaled >= 1.0 && scaled <= f64::from(u32::MAX)).then_some(scaled as u32)
}

impl WireDetail {
    fn into_detail(self, asked: &str) -> Result<ProductDetail, MarketError> {
        use crate::market::product::{absolute_url, distinct, some_text};
        let sale = self.sale_info.as_ref();
        // The tier price at the smallest quantity: the price of an offer priced by quantity.
        let tier_price = sale.and_then(|s| {
            s.price_ranges
                .iter()
                .min_by_key(|r| count(&r.start_quantity))
                .map(|r| r.price.0)
        });
        let min_order_quantity = sale
            .map(|s| count(&s.min_order_quantity))
            .filter(|&q| q > 0)
            .or_else(|| {
                sale.and_then(|s| {
                    s.price_ranges
                        .iter()
                        .map(|r| count(&r.start_quantity))
                        .min()
                })
                .filter(|&q| q > 0)
            })
            .and_then(|q| u32::try_from(q).ok());
        let mut skus = Vec::with_capacity(self.sku_infos.len().max(1));
        for s in &self.sku_infos {
            let spec_id = s.spec_id.clone().unwrap_or_default();
            let price_fen = s.price.map(|p| p.0).or(tier_price).ok_or_else(|| {
                MarketError::invalid_response(format!(
                    "alibaba.cross.productInfo: no price for spec {spec_id:?}"
                ))
            })?;
            skus.push(SkuDetail {
                attributes: s
                    .attributes
                    .iter()
                    .filter_map(|a| {
                        let name = some_text(a.attribute_display_name.as_deref())
                            .or_else(|| some_text(a.attribute_name.as_deref()))?;
                        Some(Attribute::new(
                            name,
                            some_text(a.attribute_value.as_deref())?,
                        ))
                    })
                    .collect(),
                image_url: s
                    .attributes
                    .iter()
                    .find_map(|a| absolute_url(a.sku_image_url.as_deref()?, IMAGE_BASE)),
                spec_id,
                price_fen,
                stock: Some(count(&s.amount_on_sale)),
            });
        }
        if skus.is_empty() {
            // An offer without specs (`quoteType` 0): one SKU at the tier price.
            let price_fen = tier_price.ok_or_else(|| {
                MarketError::invalid_response("alibaba.cross.productInfo: no price")
            })?;
            skus.push(SkuDetail {
                spec_id: String::new(),
                attributes: vec![],
                price_fen,
                stock: Some(sale.map_or(0, |s| count(&s.amount_on_sale))),
                image_url: None,
            });
        }
        let ship = self.shipping_info.as_ref();
        let dimensions = ship.and_then(|s| {
            Some(Dimensions {
                l_mm: measure(&s.length, 10.0)?,
                w_mm: measure(&s.width, 10.0)?,
                h_mm: measure(&s.height, 10.0)?,
            })
        });
        Ok(ProductDetail {
            platform: Platform::Alibaba1688,
            product_id: self.product_id.map_or_else(|| asked.into(), |i| i.0),
            title: self.subject.unwrap_or_default(),
            image_urls: distinct(
                self.image
                    .iter()
                    .flat_map(|i| i.images.iter())
                    .map(|u| absolute_url(u, IMAGE_BASE)),
            ),
            attributes: self
                .attributes
                .iter()
                .filter_map(|a| {
                    Some(Attribute::new(
                        some_text(a.attribute_name.as_deref())?,
                        some_text(a.value.as_deref())?,
                    ))
                })
                .collect(),
            skus,
            min_order_quantity,
            seller: Seller {
                id: self
                    .supplier_user_id
                    .map(|i| i.0)
                    .filter(|s| !s.is_empty())
                    .or_else(|| some_text(self.seller_login_id.as_deref())),
                name: some_text(self.seller_login_id.as_deref())
                    .or_else(|| some_text(self.supplier_login_id.as_deref())),
            },
            weight_g: ship.and_then(|s| measure(&s.unit_weight, 1000.0)),
            dimensions,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewCargo {
    pub offer_id: String,
    pub spec_id: String,
    /// `cargoList[].amount` (yuan on the wire).
    pub amount_fen: i64,
    /// `cargoList[].finalUnitPrice` (yuan on the wire).
    pub final_unit_price_fen: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPreview {
    /// `sumPayment` (fen): what the order costs, carriage included.
    pub sum_payment_fen: i64,
    /// `sumCarriage` (fen), already inside `sumPayment`.
    pub sum_carriage_fen: i64,
    /// `sumPaymentNoCarriage` (fen): the goods.
    pub sum_goods_fen: i64,
    pub cargo: Vec<PreviewCargo>,
}

impl OrderPreview {
    /// What the order will cost: `sumPayment`, which includes the carriage (documented sample
    /// 4400 = 3600 + 800).
    pub fn total_fen(&self) -> i64 {
        self.sum_payment_fen
    }

    /// The preview as the purchase protocol checks it.
    pub fn quote(&self) -> Quote {
        Quote {
            lines: self
                .cargo
                .iter()
                .map(|c| QuotedLine {
                    offer_id: c.offer_id.clone(),
                    spec_id: c.spec_id.clone(),
                    unit_price_fen: c.final_unit_price_fen,
                })
                .collect(),
            total_fen: self.total_fen(),
        }
    }
}

/// `alibaba.createOrder.preview`'s answer (`orderPreviewResuslt` [sic]).
#[derive(Deserialize)]
struct WirePreviewAnswer {
    #[serde(rename = "orderPreviewResuslt")]
    results: Option<Vec<WirePreview>>,
}

#[derive(Deserialize)]
struct WirePreview {
    #[serde(rename = "sumPayment")]
    sum_payment: Fen,
    #[serde(rename = "sumCarriage")]
    sum_carriage: Option<Fen>,
    #[serde(rename = "sumPaymentNoCarriage")]
    sum_payment_no_carriage: Option<Fen>,
    #[serde(rename = "cargoList", default)]
    cargo_list: Vec<WireCargo>,
}

#[derive(Deserialize)]
struct WireCargo {
    #[serde(rename = "offerId")]
    offer_id: IdText,
    #[serde(rename = "specId")]
    spec_id: Option<String>,
    /// Yuan (Double).
    amount: Option<Yuan>,
    /// Yuan (Double).
    #[serde(rename = "finalUnitPrice")]
    final_unit_price: Yuan,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedOrder {
    pub order_id: String,
    /// `totalSuccessAmount` (fen).
    pub total_success_amount_fen: i64,
    /// `postFee` (fen).
    pub post_fee_fen: i64,
    /// Offers the marketplace could not add (partial order), as it reported them.
    pub failed_offers: Vec<String>,
}

/// `alibaba.trade.createCrossOrder`'s answer: `result.{success, code, message, orderId,
/// totalSuccessAmount, postFee, failedOfferList, orderList}`.
#[derive(Deserialize)]
struct WireCreateAnswer {
    result: Option<WireCreate>,
}

#[derive(Deserialize)]
struct WireCreate {
    success: Option<bool>,
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "orderId")]
    order_id: Option<IdText>,
    #[serde(rename = "totalSuccessAmount")]
    total_success_amount: Option<Fen>,
    #[serde(rename = "postFee")]
    post_fee: Option<Fen>,
    #[serde(rename = "failedOfferList", default)]
    failed_offer_list: Option<Vec<WireFailedOffer>>,
    #[serde(rename = "orderList", default)]
    order_list: Option<Vec<WireSimpleOrder>>,
}

#[derive(Deserialize)]
struct WireFailedOffer {
    #[serde(rename = "offerId")]
    offer_id: Option<IdText>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

#[derive(Deserialize)]
struct WireSimpleOrder {
    #[serde(rename = "orderId")]
    order_id: Option<IdText>,
    #[serde(rename = "orderAmmount")]
    order_ammount: Option<Fen>,
    #[serde(rename = "postFee")]
    post_fee: Option<Fen>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayOutcome {
    Paid,
    /// `paySuccess=false`: possibly debited anyway (documented pitfall): re-query the order.
    NotConfirmed,
    /// Already paid ([`assumed::ORDER_ALREADY_PAID`]): counts as paid.
    AlreadyPaid,
}

/// `alibaba.trade.pay.protocolPay.preparePay`'s answer:
/// `result.{success, code, message, result.{payChannel, paySuccess}}`.
#[derive(Deserialize)]
struct WirePayAnswer {
    result: Option<WirePayResult>,
}

#[derive(Deserialize)]
struct WirePayResult {
    success: Option<bool>,
    code: Option<String>,
    message: Option<String>,
    result: Option<WirePaid>,
}

#[derive(Deserialize)]
struct WirePaid {
    #[serde(rename = "paySuccess")]
    pay_success: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketOrderStatus {
    #[serde(rename = "waitbuyerpay")]
    WaitBuyerPay,
    #[serde(rename = "waitsellersend")]
    WaitSellerSend,
    #[serde(rename = "waitbuyerreceive")]
    WaitBuyerReceive,
    ConfirmGoods,
    Success,
    Cancel,
    Terminated,
    #[serde(other)]
    Unknown,
}

impl MarketOrderStatus {
    fn from_wire(s: &str) -> Self {
        serde_json::from_value(Value::String(s.to_ascii_lowercase()))
            .unwrap_or(MarketOrderStatus::Unknown)
    }

    /// The buyer's payment has gone through.
    pub fn is_paid(&self) -> bool {
        matches!(
            self,
            MarketOrderStatus::WaitSellerSend
                | MarketOrderStatus::WaitBuyerReceive
                | MarketOrderStatus::ConfirmGoods
                | MarketOrderStatus::Success
        )
    }

    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            MarketOrderStatus::Cancel | MarketOrderStatus::Terminated
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketOrder {
    pub order_id: String,
    pub out_order_id: Option<String>,
    pub status: MarketOrderStatus,
    /// `baseInfo.totalAmount` (yuan on the wire): goods plus carriage.
    pub total_amount_fen: i64,
    /// Why a closed order was closed (`sellerGoodsLack` = out of stock).
    pub close_reason: Option<String>,
}

/// `baseInfo` of `alibaba.trade.get.buyerView` and `alibaba.trade.getBuyerOrderList`.
#[derive(Deserialize)]
struct WireBaseInfo {
    id: Option<IdText>,
    #[serde(rename = "idOfStr")]
    id_of_str: Option<IdText>,
    #[serde(rename = "outOrderId")]
    out_order_id: Option<String>,
    status: String,
    /// Yuan (BigDecimal).
    #[serde(rename = "totalAmount")]
    total_amount: Yuan,
    /// Yuan (BigDecimal): the goods.
    #[serde(rename = "sumProductPayment")]
    sum_product_payment: Option<Yuan>,
    #[serde(rename = "closeReason")]
    close_reason: Option<String>,
    #[serde(rename = "refundStatus")]
    refund_status: Option<String>,
    /// A Long without a documented unit; read as fen like the refund request's amounts
    /// (docs/vendors/1688.md, "Assumed").
    #[serde(rename = "refundPayment")]
    refund_payment: Option<Fen>,
}

#[derive(Deserialize)]
struct WireProductItem {
    #[serde(rename = "subItemID")]
    sub_item_id: Option<IdText>,
    #[serde(rename = "subItemIDString")]
    sub_item_id_string: Option<String>,
    /// Yuan (BigDecimal).
    #[serde(rename = "itemAmount")]
    item_amount: Option<Yuan>,
}

/// One `TradeInfo` (`result` of the buyer view, an element of the order list's `result`).
#[derive(Deserialize)]
struct WireTradeInfo {
    #[serde(rename = "baseInfo")]
    base_info: WireBaseInfo,
    #[serde(rename = "productItems", default)]
    product_items: Option<Vec<WireProductItem>>,
}

#[derive(Deserialize)]
struct WireBuyerViewAnswer {
    result: Option<WireTradeInfo>,
}

#[derive(Deserialize)]
struct WireOrderListAnswer {
    #[serde(default)]
    result: Option<Vec<WireTradeInfo>>,
}

impl MarketOrder {
    fn from_wire(b: &WireBaseInfo) -> Result<Self, MarketError> {
        let id = b
            .id_of_str
            .clone()
            .filter(|i| !i.0.is_empty())
            .or_else(|| b.id.clone());
        Ok(MarketOrder {
            order_id: need(id, "baseInfo.idOfStr")?.0,
            out_order_id: b.out_order_id.clone().filter(|s| !s.is_empty()),
            status: MarketOrderStatus::from_wire(&b.status),
            total_amount_fen: b.total_amount.0,
            close_reason: b.close_reason.clone().filter(|s| !s.is_empty()),
        })
    }

    /// The order as the purchase protocol sees it.
    pub fn buyer_order(&self) -> BuyerOrder {
        let state = match &self.status {
            s if s.is_paid() => OrderState::Paid,
            s if s.is_closed() => OrderState::Closed(self.closed_error()),
            MarketOrderStatus::WaitBuyerPay => OrderState::AwaitingPayment,
            other => OrderState::Other(format!("{other:?}")),
        };
        BuyerOrder {
            order_id: self.order_id.clone(),
            state,
            total_fen: self.total_amount_fen,
        }
    }

    fn closed_error(&self) -> MarketError {
        match self.close_reason.as_deref() {
            Some("sellerGoodsLack") => MarketError::OutOfStock,
            reason => MarketError::Rejected {
                code: "ORDER_CLOSED".into(),
                message: format!(
                    "order {} is closed ({})",
                    self.order_id,
                    reason.unwrap_or("no reason given")
                ),
            },
        }
    }
}

/// `alibaba.trade.getLogisticsInfos.buyerView`'s answer.
#[derive(Deserialize)]
struct WireLogisticsAnswer {
    #[serde(default)]
    result: Option<Vec<WireLogistics>>,
}

#[derive(Deserialize)]
struct WireLogistics {
    #[serde(rename = "logisticsBillNo")]
    logistics_bill_no: Option<String>,
    #[serde(rename = "logisticsCompanyName")]
    logistics_company_name: Option<String>,
}

/// 1688 buyer-side client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Alibaba1688 {
    cfg: AlibabaConfig,
    http: HttpClient,
}

/// The signed form of one call: the call's params plus `access_token`, `_aop_timestamp` and
/// `_aop_signature` over `url_path` (`param2/1/{namespace}/{api}/{appKey}`).
fn signed_params(
    url_path: &str,
    params: &[(&'static str, String)],
    access_token: &Secret,
    app_secret: &Secret,
    timestamp_ms: i64,
) -> Vec<(&'static str, String)> {
    let mut all = params.to_vec();
    all.push(("access_token", access_token.expose().to_owned()));
    all.push(("_aop_timestamp", timestamp_ms.to_string()));
    sign_form(all, "_aop_signature", |form| {
        signing::aop_signature(url_path, form, app_secret.expose())
    })
}

impl Alibaba1688 {
    pub fn new(cfg: AlibabaConfig) -> Result<Self, BuildError> {
        let secrets = vec![
            cfg.app_secret.clone(),
            cfg.access_token.clone(),
            cfg.app_key.clone(),
        ];
        let http = HttpClient::new("1688", &cfg.http, secrets)?;
        Ok(Alibaba1688 { cfg, http })
    }

    fn url_path(&self, namespace: &str, api: &str) -> String {
        format!("param2/1/{namespace}/{api}/{}", self.cfg.app_key.expose())
    }

    async fn call(
        &self,
        namespace: &str,
        api: &'static str,
        params: Vec<(&'static str, String)>,
    ) -> Result<Answer, MarketError> {
        let url_path = self.url_path(namespace, api);
        let url = join_url(&self.cfg.base_url, &format!("openapi/{url_path}"));
        let make = |c: &reqwest::Client| {
            let form = signed_params(
                &url_path,
                &params,
                &self.cfg.access_token,
                &self.cfg.app_secret,
                now_ms(),
            );
            c.post(&url).form(&form)
        };
        let retry_on = |r: &RawResponse| {
            retry_5xx_429(r)
                || (r.status == 400
                    && matches!(classify_response(r), Err(MarketError::RateLimited)))
        };
        let resp = self
            .http
            .execute(api, make, retry_on)
            .await
            .map_err(MarketError::from_transport)?;
        let body = classify_response(&resp)?;
        Ok(Answer {
            text: resp.body,
            body,
        })
    }

    pub async fn product_info(&self, offer_id: &str) -> Result<ProductInfo, MarketError> {
        const API: &str = "alibaba.cross.productInfo";
        let answer = match self
            .call(
                "com.alibaba.product",
                API,
                vec![("productId", offer_id.into())],
            )
            .await
        {
            // Its documented failures are messages: no listing relation (没有该商品的查询权限)
            // or no such product (商品[…]不存在): either way not buyable through us.
            Err(MarketError::Rejected { code, message }) => {
                tracing::info!(offer_id, %code, %message, "1688 product not available");
                return Err(MarketError::ListingGone);
            }
            other => other?,
        };
        let wire: WireProductAnswer = answer.typed(API)?;
        let info = need(wire.product_info, "productInfo")?;
        Ok(ProductInfo {
            product_id: info.product_id.map_or_else(|| offer_id.into(), |i| i.0),
            subject: info.subject.unwrap_or_default(),
            status: info.status.unwrap_or_default(),
            skus: info
                .sku_infos
                .iter()
                .map(|s| SkuInfo {
                    spec_id: s.spec_id.clone().unwrap_or_default(),
                    price_fen: s.price.0,
                    amount_on_sale: count(&s.amount_on_sale),
                })
                .collect(),
        })
    }

    /// The whole product (`alibaba.cross.productInfo`, read for every field the detail
    /// needs). A withdrawn offer (a `status` other than `published`) and the documented "no such
    /// product" / "no listing relation" answers are [`MarketError::ListingGone`]; any other
    /// failure is the vendor's error.
    pub async fn product_detail(&self, offer_id: &str) -> Result<ProductDetail, MarketError> {
        const API: &str = "alibaba.cross.productInfo";
        let answer = match self
            .call(
                "com.alibaba.product",
                API,
                vec![("productId", offer_id.into())],
            )
            .await
        {
            Err(MarketError::Rejected { code, message }) if is_product_gone(&message) => {
                tracing::info!(offer_id, %code, %message, "1688 product not available");
                return Err(MarketError::ListingGone);
            }
            other => other?,
        };
        let wire: WireDetailAnswer = answer.typed(API)?;
        let info = need(wire.product_info, "productInfo")?;
        if info
            .status
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != "published")
        {
            return Err(MarketError::ListingGone);
        }
        info.into_detail(offer_id)
    }

    pub async fn preview(&self, req: &PurchaseRequest) -> Result<OrderPreview, MarketError> {
        const API: &str = "alibaba.createOrder.preview";
        req.validate()?;
        let answer = self
            .call("com.alibaba.trade", API, req.order_params())
            .await?;
        let wire: WirePreviewAnswer = answer.typed(API)?;
        let results = need(wire.results, "orderPreviewResuslt")?;
        let mut preview = OrderPreview {
            sum_payment_fen: 0,
            sum_carriage_fen: 0,
            sum_goods_fen: 0,
            cargo: Vec::new(),
        };
        let overflow = || MarketError::invalid_response(format!("{API}: amounts overflow"));
        for r in &results {
            let carriage = r.sum_carriage.map_or(0, |f| f.0);
            preview.sum_payment_fen = preview
                .sum_payment_fen
                .checked_add(r.sum_payment.0)
                .ok_or_else(overflow)?;
            preview.sum_carriage_fen += carriage;
            preview.sum_goods_fen += r
                .sum_payment_no_carriage
                .map_or(r.sum_payment.0 - carriage, |f| f.0);
            for c in &r.cargo_list {
                preview.cargo.push(PreviewCargo {
                    offer_id: c.offer_id.0.clone(),
                    spec_id: c.spec_id.clone().unwrap_or_default(),
                    amount_fen: c.amount.map_or(0, |a| a.0),
                    final_unit_price_fen: c.final_unit_price.0,
                });
            }
        }
        Ok(preview)
    }

    /// Create the order; a repeat with the same `outOrderId` returns the same order.
    pub async fn create_order(&self, req: &PurchaseRequest) -> Result<CreatedOrder, MarketError> {
        const API: &str = "alibaba.trade.createCrossOrder";
        req.validate()?;
        let mut params = req.order_params();
        params.push(("outOrderId", req.out_order_id.clone()));
        let answer = self.call("com.alibaba.trade", API, params).await?;
        let wire: WireCreateAnswer = answer.typed(API)?;
        let result = need(wire.result, "result")?;
        if result.success == Some(false) {
            return Err(classify_code(
                result.code.as_deref().unwrap_or("UNKNOWN"),
                result.message.as_deref().unwrap_or_default(),
            ));
        }
        let orders = result.order_list.unwrap_or_default();
        // One supplier per order: 1688 splits only in special cases, and then lists the orders
        // in `orderList` with `orderId` empty.
        let (order_id, total, post_fee) = match (result.order_id, orders.as_slice()) {
            (Some(id), _) if !id.0.is_empty() => (
                id.0,
                result.total_success_amount.map_or(0, |f| f.0),
                result.post_fee.map_or(0, |f| f.0),
            ),
            (_, [only]) => (
                need(only.order_id.clone(), "result.orderList.orderId")?.0,
                only.order_ammount.map_or(0, |f| f.0),
                only.post_fee.map_or(0, |f| f.0),
            ),
            (_, []) => return Err(MarketError::invalid_response("missing result.orderId")),
            (_, several) => {
                return Err(MarketError::Rejected {
                    code: "ORDER_SPLIT".into(),
                    message: format!("1688 split the order into {} orders", several.len()),
                });
            }
        };
        let failed_offers = result
            .failed_offer_list
            .unwrap_or_default()
            .iter()
            .map(|f| match (&f.offer_id, &f.error_code) {
                (Some(id), Some(code)) => format!("{} ({code})", id.0),
                (Some(id), None) => id.0.clone(),
                (None, code) => code.clone().unwrap_or_else(|| "?".into()),
            })
            .collect();
        Ok(CreatedOrder {
            order_id,
            total_success_amount_fen: total,
            post_fee_fen: post_fee,
            failed_offers,
        })
    }

    /// Protocol pay: the one parameter `tradeWithholdPreparePayParam` (JSON `{orderId,
    /// payAmount (fen), opRequestId}`). Repeating `op_request_id` returns the first answer, so a
    /// new pay attempt after a definitive `paySuccess=false` needs a new id.
    pub async fn pay(
        &self,
        order_id: &str,
        amount_fen: i64,
        op_request_id: &str,
    ) -> Result<PayOutcome, MarketError> {
        const API: &str = "alibaba.trade.pay.protocolPay.preparePay";
        let param = json!({
            "orderId": long_param(order_id),
            "payAmount": amount_fen,
            "opRequestId": op_request_id,
        });
        let answer = self
            .call(
                "com.alibaba.trade",
                API,
                vec![("tradeWithholdPreparePayParam", param.to_string())],
            )
            .await?;
        let wire: WirePayAnswer = answer.typed(API)?;
        let result = need(wire.result, "result")?;
        if result.success == Some(false) {
            let code = result.code.as_deref().unwrap_or("UNKNOWN");
            if code == assumed::ORDER_ALREADY_PAID {
                return Ok(PayOutcome::AlreadyPaid);
            }
            return Err(classify_code(
                code,
                result.message.as_deref().unwrap_or_default(),
            ));
        }
        let paid = result.result.and_then(|r| r.pay_success);
        Ok(if paid == Some(true) {
            PayOutcome::Paid
        } else {
            PayOutcome::NotConfirmed
        })
    }

    /// Find the order made for our external id (after a timeout, before creating).
    pub async fn order_by_out_id(
        &self,
        out_order_id: &str,
    ) -> Result<Option<MarketOrder>, MarketError> {
        const API: &str = "alibaba.trade.getBuyerOrderList";
        let answer = self
            .call(
                "com.alibaba.trade",
                API,
                vec![("outOrderId", out_order_id.into())],
            )
            .await?;
        let wire: WireOrderListAnswer = answer.typed(API)?;
        let mut found = wire
            .result
            .unwrap_or_default()
            .iter()
            .map(|o| MarketOrder::from_wire(&o.base_info))
            .collect::<Result<Vec<_>, _>>()?;
        // Never adopt someone else's order if the filter is ignored upstream.
        found.retain(|o| {
            o.out_order_id
                .as_deref()
                .is_none_or(|id| id == out_order_id)
        });
        if found.len() > 1 {
            tracing::warn!(
                out_order_id,
                count = found.len(),
                "several 1688 orders carry one outOrderId"
            );
        }
        Ok(found.into_iter().next())
    }

    pub async fn order_status(&self, order_id: &str) -> Result<MarketOrder, MarketError> {
        Ok(self.order_detail(order_id).await?.order)
    }

    /// Domestic shipments of the order: empty until the seller ships (1688 answers `500_2`,
    /// "not shipped yet, ask later", which is no rejection).
    pub async fn logistics(&self, order_id: &str) -> Result<Vec<LogisticsInfo>, MarketError> {
        const API: &str = "alibaba.trade.getLogisticsInfos.buyerView";
        let answer = match self
            .call(
                "com.alibaba.logistics",
                API,
                vec![("webSite", WEB_SITE.into()), ("orderId", order_id.into())],
            )
            .await
        {
            Err(MarketError::Rejected { code, .. }) if code == LOGISTICS_NOT_YET => {
                return Ok(Vec::new());
            }
            other => other?,
        };
        let wire: WireLogisticsAnswer = answer.typed(API)?;
        Ok(wire
            .result
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| {
                Some(LogisticsInfo {
                    bill_no: l.logistics_bill_no.filter(|b| !b.trim().is_empty())?,
                    company: l.logistics_company_name.unwrap_or_default(),
                })
            })
            .collect())
    }
}

/// One order as the buyer view shows it, with what a cancellation or refund needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetail {
    pub order: MarketOrder,
    /// `baseInfo.status` as 1688 wrote it.
    pub status_text: String,
    /// `baseInfo.sumProductPayment` (yuan on the wire): the goods, without carriage, in fen.
    pub goods_fen: i64,
    /// `productItems[].subItemIDString` / `subItemID`: the sub-orders a refund names.
    pub entry_ids: Vec<String>,
    /// `baseInfo.refundStatus`: the in-sale refund's state, when there is one.
    pub refund_status: Option<String>,
    /// `baseInfo.refundPayment`: the amount refunded (fen), when there is one.
    pub refund_fen: Option<i64>,
}

/// One of `alibaba.trade.getRefundReasonList`'s reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReason {
    pub id: String,
    pub name: String,
    pub need_voucher: bool,
    pub no_refund_carriage: bool,
}

/// The answer of the refund APIs, which nest their own `{success, code, message, result}`
/// inside the top-level `result`. Codes `4xxx` are 1688-side failures (transient); the rest
/// are the caller's (permanent), classified like every other code.
fn refund_result(body: &Value) -> Result<&Value, MarketError> {
    let inner = need(body.get("result"), "result")?;
    if flag(inner, "success") == Some(true) {
        return Ok(inner.get("result").unwrap_or(&Value::Null));
    }
    let code = text(inner, "code").unwrap_or_else(|| "UNKNOWN".into());
    let message = text(inner, "message").unwrap_or_default();
    Err(if code.len() == 4 && code.starts_with('4') {
        MarketError::Transient(format!("{code}: {message}"))
    } else {
        classify_code(&code, &message)
    })
}

/// The reason a refund of an unshipped order gives: one that needs no voucher upload, the
/// buyer's own change of mind where 1688 offers one (its names are Chinese), else the first.
fn pick_reason(reasons: &[RefundReason]) -> Option<&RefundReason> {
    let usable: Vec<&RefundReason> = reasons.iter().filter(|r| !r.need_voucher).collect();
    usable
        .iter()
        .find(|r| r.name.contains("不想要") || r.name.contains("拍错"))
        .or(usable.first())
        .copied()
}

impl Alibaba1688 {
    /// `alibaba.trade.get.buyerView` (`webSite=1688`): one order with its sub-orders and refund
    /// state.
    pub async fn order_detail(&self, order_id: &str) -> Result<OrderDetail, MarketError> {
        const API: &str = "alibaba.trade.get.buyerView";
        let answer = self
            .call(
                "com.alibaba.trade",
                API,
                vec![("webSite", WEB_SITE.into()), ("orderId", order_id.into())],
            )
            .await?;
        let wire: WireBuyerViewAnswer = answer.typed(API)?;
        let result = need(wire.result, "result")?;
        let base = &result.base_info;
        let order = MarketOrder::from_wire(base)?;
        let items = result.product_items.unwrap_or_default();
        let entry_ids = items
            .iter()
            .filter_map(|i| {
                i.sub_item_id_string
                    .clone()
                    .filter(|s| !s.is_empty())
                    .or_else(|| i.sub_item_id.clone().map(|i| i.0))
            })
            .collect();
        let goods_fen = match base.sum_product_payment {
            Some(g) => g.0,
            None => items
                .iter()
                .filter_map(|i| i.item_amount)
                .map(|a| a.0)
                .sum(),
        };
        Ok(OrderDetail {
            status_text: base.status.clone(),
            goods_fen,
            entry_ids,
            refund_status: base.refund_status.clone().filter(|s| !s.is_empty()),
            refund_fen: base.refund_payment.map(|f| f.0),
            order,
        })
    }

    /// `alibaba.trade.cancel`: close an order that waits for payment.
    pub async fn trade_cancel(&self, order_id: &str, remark: &str) -> Result<(), MarketError> {
        self.call(
            "com.alibaba.trade",
            "alibaba.trade.cancel",
            vec![
                ("webSite", "1688".into()),
                ("tradeID", order_id.into()),
                ("cancelReason", CANCEL_REASON_BUYER.into()),
                ("remark", remark.into()),
            ],
        )
        .await
        .map(|_| ())
    }

    /// `alibaba.trade.getRefundReasonList` for the whole order in one goods status.
    pub async fn refund_reasons(
        &self,
        order_id: &str,
        entry_ids: &[String],
        goods_status: &str,
    ) -> Result<Vec<RefundReason>, MarketError> {
        let body = self
            .call(
                "com.alibaba.trade",
                "alibaba.trade.getRefundReasonList",
                vec![
                    ("orderId", order_id.into()),
                    ("orderEntryIds", entry_ids_param(entry_ids)),
                    ("goodsStatus", goods_status.into()),
                ],
            )
            .await?
            .body;
        let result = refund_result(&body)?;
        list(result, "reasons")
            .iter()
            .map(|r| {
                Ok(RefundReason {
                    id: need(text(r, "id"), "reasons.id")?,
                    name: text(r, "name").unwrap_or_default(),
                    need_voucher: r.get("needVoucher").is_some_and(truthy),
                    no_refund_carriage: r.get("noRefundCarriage").is_some_and(truthy),
                })
            })
            .collect()
    }

    /// `alibaba.trade.createRefund` (`disputeRequest=refund`, refund only) for a paid order the
    /// seller has not shipped: `applyPayment` must be the goods' full payment. Returns the
    /// refund id.
    pub async fn create_refund(
        &self,
        detail: &OrderDetail,
        reason: &RefundReason,
        carriage_fen: i64,
        description: &str,
    ) -> Result<String, MarketError> {
        let body = self
            .call(
                "com.alibaba.trade",
                "alibaba.trade.createRefund",
                vec![
                    ("orderId", detail.order.order_id.clone()),
                    ("orderEntryIds", entry_ids_param(&detail.entry_ids)),
                    ("disputeRequest", "refund".into()),
                    ("applyPayment", detail.goods_fen.to_string()),
                    ("applyCarriage", carriage_fen.to_string()),
                    ("applyReasonId", reason.id.clone()),
                    ("description", description.into()),
                    ("goodsStatus", GOODS_WAIT_SELLER_SEND.into()),
                ],
            )
            .await?
            .body;
        need(
            text(refund_result(&body)?, "refundId"),
            "result.result.refundId",
        )
    }

    /// Cancel our order at 1688 as far as 1688 allows, however often this is called:
    /// - waiting for payment: `alibaba.trade.cancel` (nothing was paid, nothing to refund);
    /// - paid, not shipped (`waitsellersend`): 1688's cancel refuses paid orders
    ///   (`ORDER_STATUS_ERROR`), so ask for a full refund with `alibaba.trade.createRefund`
    ///   (goods and carriage); it is final once the seller agrees (`refundStatus`
    ///   `refundsuccess`, the order closes), [`CancelOutcome::Pending`] until then; an open
    ///   refund is never asked for twice;
    /// - closed already: `Cancelled` with whatever was refunded;
    /// - anything else (shipped, received, finished, a refused refund): `TooLate`.
    ///
    /// `remark` (2 to 150 characters, no personal data) is the cancel remark and the refund
    /// description.
    #[tracing::instrument(skip(self, remark))]
    pub async fn cancel_order(
        &self,
        order_id: &str,
        remark: &str,
    ) -> Result<CancelOutcome, MarketError> {
        let mut detail = self.order_detail(order_id).await?;
        // The order may move under us (paid or shipped between our read and our request):
        // decide again on its new state, a bounded number of times.
        let mut refused = None;
        for _ in 0..3 {
            match self.cancel_step(&detail, remark).await {
                Err(MarketError::Rejected { code, message })
                    if code == ORDER_STATUS_ERROR || code == REFUND_STATE_ERROR =>
                {
                    detail = self.order_detail(order_id).await?;
                    tracing::info!(order_id, status = %detail.status_text, %code, "1688 order changed during cancel; deciding again");
                    refused = Some(MarketError::Rejected { code, message });
                }
                other => return other,
            }
        }
        Err(refused.unwrap_or_else(|| MarketError::Transient("cancel not decided".into())))
    }

    async fn cancel_step(
        &self,
        detail: &OrderDetail,
        remark: &str,
    ) -> Result<CancelOutcome, MarketError> {
        let order_id = detail.order.order_id.as_str();
        match decide(detail) {
            Step::Done(outcome) => Ok(outcome),
            Step::CancelUnpaid => {
                self.trade_cancel(order_id, remark).await?;
                tracing::info!(order_id, "1688 unpaid order cancelled");
                Ok(CancelOutcome::Cancelled {
                    refunded_fen: 0,
                    refund_id: None,
                })
            }
            Step::RequestRefund => {
                if detail.entry_ids.is_empty() {
                    return Err(MarketError::invalid_response(format!(
                        "order {order_id} lists no sub-orders to refund"
                    )));
                }
                let reasons = self
                    .refund_reasons(order_id, &detail.entry_ids, GOODS_WAIT_SELLER_SEND)
                    .await?;
                let reason = pick_reason(&reasons).ok_or_else(|| MarketError::Rejected {
                    code: "NO_REFUND_REASON".into(),
                    message: format!(
                        "1688 offers no refund reason without a voucher for order {order_id}"
                    ),
                })?;
                let carriage_fen = if reason.no_refund_carriage {
                    0
                } else {
                    (detail.order.total_amount_fen - detail.goods_fen).max(0)
                };
                let refund_id = self
                    .create_refund(detail, reason, carriage_fen, remark)
                    .await?;
                let requested_fen = detail.goods_fen + carriage_fen;
                tracing::info!(order_id, %refund_id, requested_fen, "1688 refund requested");
                let now = self.order_detail(order_id).await?;
                Ok(match decide(&now) {
                    Step::Done(CancelOutcome::Cancelled { refunded_fen, .. }) => {
                        CancelOutcome::Cancelled {
                            refunded_fen,
                            refund_id: Some(refund_id),
                        }
                    }
                    _ => CancelOutcome::Pending {
                        refund_id: Some(refund_id),
                        requested_fen,
                    },
                })
            }
        }
    }
}

/// What to do with an order, from its state alone.
enum Step {
    Done(CancelOutcome),
    CancelUnpaid,
    RequestRefund,
}

fn decide(d: &OrderDetail) -> Step {
    let refunded = || CancelOutcome::Cancelled {
        refunded_fen: d.refund_fen.unwrap_or(0),
        refund_id: None,
    };
    match (&d.order.status, d.refund_status.as_deref()) {
        (MarketOrderStatus::WaitBuyerPay, _) => Step::CancelUnpaid,
        (s, _) if s.is_closed() => Step::Done(refunded()),
        (_, Some(REFUND_SUCCESS)) => Step::Done(refunded()),
        (MarketOrderStatus::WaitSellerSend, None) => Step::RequestRefund,
        (MarketOrderStatus::WaitSellerSend, Some(REFUND_CLOSED)) => {
            Step::Done(CancelOutcome::TooLate {
                status: format!("{}/{REFUND_CLOSED}", d.status_text),
            })
        }
        (MarketOrderStatus::WaitSellerSend, Some(_)) => Step::Done(CancelOutcome::Pending {
            refund_id: None,
            requested_fen: d.order.total_amount_fen,
        }),
        _ => Step::Done(CancelOutcome::TooLate {
            status: d.status_text.clone(),
        }),
    }
}

/// `orderEntryIds` (`Long[]`) as a JSON array of numbers; ids that are not numbers stay
/// strings.
fn entry_ids_param(ids: &[String]) -> String {
    let v: Vec<Value> = ids
        .iter()
        .map(|id| match id.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(id),
        })
        .collect();
    Value::Array(v).to_string()
}

/// A JSON boolean that may come as `true` or `"true"`.
fn truthy(v: &Value) -> bool {
    v.as_bool() == Some(true) || v.as_str() == Some("true")
}

impl BuyerMarketplace for Alibaba1688 {
    fn name(&self) -> &'static str {
        "1688"
    }

    fn find_by_external_id<'a>(
        &'a self,
        out_order_id: &'a str,
    ) -> MarketFuture<'a, Option<BuyerOrder>> {
        Box::pin(async move {
            let found = self.order_by_out_id(out_order_id).await?;
            Ok(found.map(|o| o.buyer_order()))
        })
    }

    fn preview<'a>(&'a self, req: &'a PurchaseRequest) -> MarketFuture<'a, Quote> {
        Box::pin(async move { Ok(Alibaba1688::preview(self, req).await?.quote()) })
    }

    fn create<'a>(
        &'a self,
        req: &'a PurchaseRequest,
        _quote: &'a Quote,
    ) -> MarketFuture<'a, Created> {
        Box::pin(async move {
            let created = self.create_order(req).await?;
            Ok(Created {
                order_id: created.order_id,
                failed_offers: created.failed_offers,
            })
        })
    }

    fn read<'a>(
        &'a self,
        order_id: &'a str,
        _out_order_id: &'a str,
    ) -> MarketFuture<'a, BuyerOrder> {
        Box::pin(async move { Ok(self.order_status(order_id).await?.buyer_order()) })
    }

    fn pay<'a>(
        &'a self,
        order: &'a BuyerOrder,
        attempt_key: &'a str,
    ) -> MarketFuture<'a, PayAnswer> {
        Box::pin(async move {
            Ok(
                match Alibaba1688::pay(self, &order.order_id, order.total_fen, attempt_key).await? {
                    PayOutcome::Paid | PayOutcome::AlreadyPaid => PayAnswer::Paid,
                    PayOutcome::NotConfirmed => PayAnswer::Declined(MarketError::Transient(
                        "protocolPay answered paySuccess=false".into(),
                    )),
                },
            )
        })
    }

    fn max_pay_attempts(&self) -> u32 {
        self.cfg.max_pay_attempts
    }

    fn logistics<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, Vec<LogisticsInfo>> {
        Box::pin(Alibaba1688::logistics(self, order_id))
    }

    /// `baseInfo.status` of `alibaba.trade.get.buyerView`, as the wire spells it.
    fn status_word<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, String> {
        Box::pin(async move {
            let order = self.order_status(order_id).await?;
            Ok(serde_json::to_value(&order.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", order.status)))
        })
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
        Ok(Arc::new(Alibaba1688::new(cfg)?))
    }
}

impl PriceSource for Alibaba1688 {
    fn offer_price<'a>(
        &'a self,
        offer_id: &'a str,
        spec_id: &'a str,
    ) -> MarketFuture<'a, Option<OfferPrice>> {
        Box::pin(async move {
            let info = self.product_info(offer_id).await?;
            // 1688 lists withdrawn offers with another status; a missing status is buyable.
            if !info.status.is_empty() && info.status != "published" {
                return Ok(None);
            }
            let skus: Vec<_> = info.skus.iter().map(|s| (s.spec_id.as_str(), s)).collect();
            Ok(pick_spec(&skus, spec_id).map(|s| (s.price_fen, Some(s.amount_on_sale))))
        })
    }
}

/// `alibaba.cross.productInfo`'s documented failures (messages, no codes): no such product
/// (商品[…]不存在) and no listing relation (没有该商品的查询权限).
fn is_product_gone(message: &str) -> bool {
    message.contains("不存在") || message.contains("查询权限")
}

impl ProductSource for Alibaba1688 {
    fn product<'a>(&'a self, product_id: &'a str) -> MarketFuture<'a, ProductDetail> {
        Box::pin(self.product_detail(product_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{CargoLine, Purchased, check_quote, purchase};
    use crate::testing::{MockServer, Recorded, Reply};
    use std::sync::Mutex;

    /// Refuse a preview whose unit prices or total exceed what the request tolerates.
    fn check_preview(req: &PurchaseRequest, preview: &OrderPreview) -> Result<(), MarketError> {
        let quote = preview.quote();
        check_quote(req, |l| quote.unit_price(l), quote.total_fen)
    }

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn classifies_gateway_and_business_errors() {
        let gw = |code: &str| {
            raw(
                400,
                &format!(r#"{{"error_code":"{code}","error_message":"m"}}"#),
            )
        };
        assert_eq!(
            classify_response(&gw("gw.SignatureInvalid")),
            Err(MarketError::SignatureRejected)
        );
        assert_eq!(
            classify_response(&gw("gw.QosAppFrequencyLimit")),
            Err(MarketError::RateLimited)
        );
        assert!(
            matches!(classify_response(&gw("gw.APIACLDecline")), Err(MarketError::Rejected { code, .. }) if code == "gw.APIACLDecline")
        );
        // The documented business envelopes: `errorCode` with `errorMsg` (preview) or
        // `errorMessage` (buyer view, cancel, logistics); `code` / `message` (createCrossOrder).
        let biz = |code: &str| {
            raw(
                200,
                &format!(r#"{{"success":false,"errorCode":"{code}","errorMsg":"m"}}"#),
            )
        };
        assert_eq!(
            classify_response(&biz("500_004")),
            Err(MarketError::OutOfStock)
        );
        assert_eq!(
            classify_response(&biz("500_001")),
            Err(MarketError::ListingGone)
        );
        assert_eq!(
            classify_response(&biz(ACCOUNT_RESTRICTED)),
            Err(MarketError::AccountRestricted)
        );
        assert!(matches!(
            classify_response(&raw(200, r#"{"success":"false","errorCode":"500_2","errorMessage":"m"}"#)),
            Err(MarketError::Rejected { code, message }) if code == "500_2" && message == "m"
        ));
        assert!(matches!(
            classify_response(&raw(200, r#"{"success":false,"code":"400","message":"AddressId invalid"}"#)),
            Err(MarketError::Rejected { code, .. }) if code == "400"
        ));
        // An answer that names no error is no error, whatever else it carries.
        assert!(
            classify_response(&raw(
                200,
                r#"{"result":{},"errorCode":null,"success":"true"}"#
            ))
            .is_ok()
        );
        assert!(classify_response(&raw(200, r#"{"result":{},"errorCode":""}"#)).is_ok());
        assert!(matches!(
            classify_response(&raw(502, "<html>bad gateway</html>")),
            Err(MarketError::Transient(_))
        ));
        assert_eq!(
            classify_response(&raw(429, "")),
            Err(MarketError::RateLimited)
        );
        assert!(matches!(classify_response(&raw(200, "not json")), Err(e) if e.is_retryable()));
        assert_eq!(
            classify_response(&raw(200, r#"{"success":true,"x":1}"#)).unwrap()["x"],
            1
        );
    }

    #[test]
    fn retryability() {
        assert!(MarketError::Timeout.is_retryable());
        assert!(MarketError::RateLimited.is_retryable());
        assert!(!MarketError::OutOfStock.is_retryable());
        assert!(!MarketError::SignatureRejected.is_retryable());
        assert!(!MarketError::AccountRestricted.is_retryable());
        assert!(!MarketError::PriceAboveTolerance { quoted: 2, max: 1 }.is_retryable());
    }

    #[test]
    fn reads_order_amounts_in_yuan_exactly() {
        let order = |base: &str| {
            typed::<WireBuyerViewAnswer>(&format!(r#"{{"result":{{"baseInfo":{base}}}}}"#), "t")
                .and_then(|a| MarketOrder::from_wire(&a.result.unwrap().base_info))
        };
        let o = order(r#"{"id":58218860983545944,"idOfStr":"58218860983545941","status":"waitbuyerpay","totalAmount":6.15}"#).unwrap();
        assert_eq!(o.total_amount_fen, 615);
        assert_eq!(o.order_id, "58218860983545941", "idOfStr, not the long id");
        let o = order(r#"{"id":196965465451498520,"status":"cancel","totalAmount":18}"#).unwrap();
        assert_eq!(
            (o.order_id.as_str(), o.total_amount_fen),
            ("196965465451498520", 1800)
        );
        for bad in ["6.155", "-1", "\"abc\"", "null"] {
            let err =
                order(&format!(r#"{{"id":1,"status":"x","totalAmount":{bad}}}"#)).unwrap_err();
            assert!(
                err.to_string().contains("alibaba") || err.to_string().contains("t:"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn signs_every_param_but_the_signature() {
        let params = vec![("orderId", "42".to_string())];
        let form = signed_params(
            "param2/1/com.alibaba.trade/alibaba.trade.get.buyerView/demo1688",
            &params,
            &Secret::new("tok"),
            &Secret::new("sec"),
            1_700_000_000_000,
        );
        let keys: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "orderId",
                "access_token",
                "_aop_timestamp",
                "_aop_signature"
            ]
        );
        let expected = signing::aop_signature(
            "param2/1/com.alibaba.trade/alibaba.trade.get.buyerView/demo1688",
            [
                ("orderId", "42"),
                ("access_token", "tok"),
                ("_aop_timestamp", "1700000000000"),
            ],
            "sec",
        );
        assert_eq!(form[3].1, expected);
    }

    fn request(max_unit: i64, max_total: i64) -> PurchaseRequest {
        PurchaseRequest {
            out_order_id: "ord-1-line-1".into(),
            lines: vec![CargoLine {
                offer_id: "610001".into(),
                spec_id: "s1".into(),
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

    #[test]
    fn builds_order_params_as_json_strings() {
        let p = request(5000, 10_000).order_params();
        assert_eq!(p[0], ("flow", "general".to_string()));
        let addr: Value = serde_json::from_str(&p[1].1).unwrap();
        assert_eq!(addr["fullName"], "Wang Wei");
        assert_eq!(addr["cityText"], "深圳市");
        let cargo: Value = serde_json::from_str(&p[2].1).unwrap();
        assert_eq!(
            cargo,
            json!([{"offerId":610001,"specId":"s1","quantity":2}])
        );
    }

    #[test]
    fn address_debug_hides_personal_data() {
        let dbg = format!("{:?}", request(1, 1));
        assert!(!dbg.contains("Wang") && !dbg.contains("1380"), "{dbg}");
    }

    #[test]
    fn preview_check_refuses_prices_above_tolerance() {
        let preview = |unit: i64| OrderPreview {
            sum_payment_fen: unit * 2 + 800,
            sum_carriage_fen: 800,
            sum_goods_fen: unit * 2,
            cargo: vec![PreviewCargo {
                offer_id: "610001".into(),
                spec_id: "s1".into(),
                amount_fen: unit * 2,
                final_unit_price_fen: unit,
            }],
        };
        assert_eq!(check_preview(&request(4550, 9900), &preview(4550)), Ok(()));
        assert_eq!(
            check_preview(&request(4550, 99_999), &preview(4551)),
            Err(MarketError::PriceAboveTolerance {
                quoted: 4551,
                max: 4550
            })
        );
        assert_eq!(
            check_preview(&request(4550, 9899), &preview(4550)),
            Err(MarketError::PriceAboveTolerance {
                quoted: 9900,
                max: 9899
            })
        );
        let other = OrderPreview {
            cargo: vec![],
            ..preview(1)
        };
        assert!(
            matches!(check_preview(&request(1, 1), &other), Err(MarketError::Rejected { code, .. }) if code == "PREVIEW_INCOMPLETE")
        );
    }

    #[test]
    fn parses_order_base_info() {
        let base = |json: &str| {
            MarketOrder::from_wire(&typed::<WireBaseInfo>(json, "baseInfo").unwrap()).unwrap()
        };
        let o = base(
            r#"{"id": 123, "outOrderId": "x", "status": "waitbuyerpay", "totalAmount": "99.00"}"#,
        );
        assert_eq!(o.order_id, "123");
        assert_eq!(o.status, MarketOrderStatus::WaitBuyerPay);
        assert_eq!(o.total_amount_fen, 9900);
        let closed = base(
            r#"{"id": "1", "status": "cancel", "totalAmount": 0.01, "closeReason": "sellerGoodsLack"}"#,
        );
        assert!(closed.status.is_closed());
        assert_eq!(closed.closed_error(), MarketError::OutOfStock);
        assert_eq!(
            MarketOrderStatus::from_wire("confirm_goods"),
            MarketOrderStatus::ConfirmGoods
        );
        assert_eq!(
            MarketOrderStatus::from_wire("somethingnew"),
            MarketOrderStatus::Unknown
        );
    }

    #[test]
    fn builds_the_pay_param_as_one_json_object() {
        assert_eq!(long_param("9000"), json!(9000));
        assert_eq!(long_param("x-1"), json!("x-1"));
        let p = request(5000, 10_000).cargo_param();
        assert_eq!(
            serde_json::from_str::<Value>(&p).unwrap(),
            json!([{"offerId": 610001, "specId": "s1", "quantity": 2}])
        );
    }

    // ---- a fake 1688 behind the mock server ----

    #[derive(Clone, Copy, PartialEq)]
    enum PayMode {
        Normal,
        /// First pay debits but answers paySuccess=false (the documented pitfall).
        FalseAfterDebit,
        /// First pay debits, then never answers.
        HangAfterDebit,
        /// First pay answers paySuccess=false without debiting.
        FalseNoDebit,
    }

    struct Fake {
        unit_price_fen: i64,
        orders: Vec<(String, String, String, i64)>, // id, outOrderId, status, total
        pay_mode: PayMode,
        hang_create_after_commit: bool,
        pays: Vec<String>, // opRequestIds seen
    }

    fn fake(unit_price_fen: i64) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake {
            unit_price_fen,
            orders: vec![],
            pay_mode: PayMode::Normal,
            hang_create_after_commit: false,
            pays: vec![],
        }))
    }

    /// Fen as the yuan JSON number 1688 writes (`99` or `6.15`).
    fn yuan(fen: i64) -> String {
        if fen % 100 == 0 {
            (fen / 100).to_string()
        } else {
            format!("{}.{:02}", fen / 100, fen % 100)
        }
    }

    fn base_info(o: &(String, String, String, i64)) -> String {
        format!(
            r#"{{"id":{},"idOfStr":"{}","outOrderId":"{}","status":"{}","totalAmount":{}}}"#,
            o.0,
            o.0,
            o.1,
            o.2,
            yuan(o.3)
        )
    }

    fn ok(body: String) -> Reply {
        Reply::json(200, body)
    }

    fn pay_answer(success: bool) -> Reply {
        ok(format!(
            r#"{{"result":{{"success":true,"code":null,"message":null,"result":{{"payChannel":"alipay","paySuccess":{success}}}}}}}"#
        ))
    }

    fn handle(state: &Mutex<Fake>, req: &Recorded) -> Reply {
        let form = req.form();
        // Verify the signature exactly as the real gateway would.
        let url_path = req.path().trim_start_matches("/openapi/").to_string();
        let sig = signing::aop_signature(
            &url_path,
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "demo1688-secret",
        );
        if form.get("_aop_signature") != Some(&sig)
            || form.get("access_token").map(String::as_str) != Some("demo1688-token")
        {
            return Reply::json(
                400,
                r#"{"error_code":"gw.SignatureInvalid","error_message":"bad"}"#,
            );
        }
        let api = url_path.split('/').nth(3).unwrap_or_default().to_string();
        let mut s = state.lock().unwrap();
        let total = s.unit_price_fen * 2 + 800;
        match api.as_str() {
            "alibaba.trade.getBuyerOrderList" => {
                let out = &form["outOrderId"];
                let list: Vec<String> = s
                    .orders
                    .iter()
                    .filter(|o| &o.1 == out)
                    .map(|o| format!(r#"{{"baseInfo":{}}}"#, base_info(o)))
                    .collect();
                ok(format!(
                    r#"{{"result":[{}],"totalRecord":{}}}"#,
                    list.join(","),
                    list.len()
                ))
            }
            "alibaba.createOrder.preview" => {
                let goods = s.unit_price_fen * 2;
                ok(format!(
                    r#"{{"orderPreviewResuslt":[{{"sumPayment":{},"sumCarriage":800,"sumPaymentNoCarriage":{goods},
                    "cargoList":[{{"offerId":610001,"specId":"s1","amount":{},"finalUnitPrice":{}}}]}}],"success":true}}"#,
                    goods + 800,
                    yuan(goods),
                    yuan(s.unit_price_fen)
                ))
            }
            "alibaba.trade.createCrossOrder" => {
                let out = form["outOrderId"].clone();
                let id = match s.orders.iter().find(|o| o.1 == out) {
                    Some(o) => o.0.clone(),
                    None => {
                        let id = format!("{}", 9000 + s.orders.len());
                        s.orders
                            .push((id.clone(), out, "waitbuyerpay".into(), total));
                        id
                    }
                };
                if s.hang_create_after_commit {
                    s.hang_create_after_commit = false;
                    return Reply::Hang;
                }
                ok(format!(
                    r#"{{"result":{{"success":true,"orderId":"{id}","totalSuccessAmount":{total},"postFee":800,"failedOfferList":[]}},"success":true}}"#
                ))
            }
            "alibaba.trade.get.buyerView" => {
                assert_eq!(form["webSite"], "1688", "webSite is required");
                match s.orders.iter().find(|o| o.0 == form["orderId"]) {
                    Some(o) => ok(format!(r#"{{"result":{{"baseInfo":{}}}}}"#, base_info(o))),
                    None => Reply::json(
                        200,
                        r#"{"success":"false","errorCode":"ORDER_NOT_EXIST","errorMessage":"no"}"#,
                    ),
                }
            }
            "alibaba.trade.pay.protocolPay.preparePay" => {
                assert!(
                    !form.contains_key("orderId") && !form.contains_key("payAmount"),
                    "one JSON parameter"
                );
                let p: Value = serde_json::from_str(&form["tradeWithholdPreparePayParam"]).unwrap();
                let op = p["opRequestId"].as_str().unwrap().to_owned();
                let first = s.pays.is_empty();
                s.pays.push(op);
                let mode = s.pay_mode;
                let o = s
                    .orders
                    .iter_mut()
                    .find(|o| p["orderId"] == json!(o.0.parse::<u64>().unwrap()))
                    .unwrap();
                assert_eq!(p["payAmount"], json!(o.3), "payAmount is the total in fen");
                if o.2 != "waitbuyerpay" {
                    return ok(
                        r#"{"result":{"success":false,"code":"ORDER_ALREADY_PAID","message":"paid"}}"#
                            .into(),
                    );
                }
                match (mode, first) {
                    (PayMode::FalseNoDebit, true) => pay_answer(false),
                    (PayMode::FalseAfterDebit, true) => {
                        o.2 = "waitsellersend".into();
                        pay_answer(false)
                    }
                    (PayMode::HangAfterDebit, true) => {
                        o.2 = "waitsellersend".into();
                        Reply::Hang
                    }
                    _ => {
                        o.2 = "waitsellersend".into();
                        pay_answer(true)
                    }
                }
            }
            other => panic!("unexpected api {other}"),
        }
    }

    async fn setup(state: &Arc<Mutex<Fake>>) -> (MockServer, Alibaba1688) {
        let s = state.clone();
        let server = MockServer::start(move |req| handle(&s, req)).await;
        let mut cfg = AlibabaConfig {
            base_url: server.base_url(),
            ..AlibabaConfig::default()
        };
        cfg.http = crate::testing::quick_http(Some(300));
        (server, Alibaba1688::new(cfg).unwrap())
    }

    fn apis(server: &MockServer) -> Vec<String> {
        server
            .requests()
            .iter()
            .map(|r| r.path().split('/').nth(5).unwrap_or_default().to_string())
            .collect()
    }

    #[tokio::test]
    async fn purchases_once_and_a_repeat_adopts() {
        let state = fake(4550);
        let (server, client) = setup(&state).await;
        let first = purchase(&client, &request(4550, 9900)).await.unwrap();
        assert_eq!(
            first,
            Purchased {
                marketplace_order_id: "9000".into(),
                amount_paid_fen: 9900,
                adopted: false
            }
        );
        let again = purchase(&client, &request(4550, 9900)).await.unwrap();
        assert_eq!(
            again,
            Purchased {
                adopted: true,
                ..first
            }
        );
        assert_eq!(state.lock().unwrap().pays.len(), 1, "paid exactly once");
        assert_eq!(
            apis(&server),
            [
                "alibaba.trade.getBuyerOrderList",
                "alibaba.createOrder.preview",
                "alibaba.trade.createCrossOrder",
                "alibaba.trade.get.buyerView",
                "alibaba.trade.pay.protocolPay.preparePay",
                "alibaba.trade.getBuyerOrderList",
                "alibaba.trade.get.buyerView",
            ]
        );
    }

    #[tokio::test]
    async fn refuses_a_price_above_tolerance_before_creating() {
        let state = fake(4600);
        let (server, client) = setup(&state).await;
        let err = purchase(&client, &request(4550, 99_999)).await.unwrap_err();
        assert_eq!(
            err,
            MarketError::PriceAboveTolerance {
                quoted: 4600,
                max: 4550
            }
        );
        assert!(
            !apis(&server)
                .iter()
                .any(|a| a == "alibaba.trade.createCrossOrder")
        );
    }

    #[tokio::test]
    async fn a_create_that_timed_out_after_commit_is_adopted() {
        let state = fake(4550);
        state.lock().unwrap().hang_create_after_commit = true;
        let (_server, client) = setup(&state).await;
        let p = purchase(&client, &request(4550, 9900)).await.unwrap();
        assert!(p.adopted);
        assert_eq!(state.lock().unwrap().orders.len(), 1);
        assert_eq!(state.lock().unwrap().pays.len(), 1);
    }

    #[tokio::test]
    async fn pay_false_after_debit_is_not_paid_twice() {
        let state = fake(4550);
        state.lock().unwrap().pay_mode = PayMode::FalseAfterDebit;
        let (_server, client) = setup(&state).await;
        let p = purchase(&client, &request(4550, 9900)).await.unwrap();
        assert_eq!(p.amount_paid_fen, 9900);
        assert_eq!(
            state.lock().unwrap().pays.len(),
            1,
            "the re-read shows it paid: no second pay"
        );
    }

    #[tokio::test]
    async fn pay_timeout_after_debit_is_not_paid_twice() {
        let state = fake(4550);
        state.lock().unwrap().pay_mode = PayMode::HangAfterDebit;
        let (_server, client) = setup(&state).await;
        let p = purchase(&client, &request(4550, 9900)).await.unwrap();
        assert_eq!(p.amount_paid_fen, 9900);
        assert_eq!(state.lock().unwrap().pays.len(), 1);
    }

    #[tokio::test]
    async fn pay_false_without_debit_pays_again_with_a_new_op_id() {
        let state = fake(4550);
        state.lock().unwrap().pay_mode = PayMode::FalseNoDebit;
        let (_server, client) = setup(&state).await;
        purchase(&client, &request(4550, 9900)).await.unwrap();
        let pays = state.lock().unwrap().pays.clone();
        assert_eq!(pays.len(), 2);
        assert_ne!(pays[0], pays[1]);
        assert!(
            pays.iter().all(|p| p.starts_with("pay-") && p.len() <= 64),
            "gateway limit: {pays:?}"
        );
    }

    #[tokio::test]
    async fn an_adopted_unpaid_order_above_the_total_is_not_paid() {
        let state = fake(4550);
        state.lock().unwrap().orders.push((
            "77".into(),
            "ord-1-line-1".into(),
            "waitbuyerpay".into(),
            20_000,
        ));
        let (_server, client) = setup(&state).await;
        let err = purchase(&client, &request(4550, 9900)).await.unwrap_err();
        assert_eq!(
            err,
            MarketError::PriceAboveTolerance {
                quoted: 20_000,
                max: 9900
            }
        );
        assert!(state.lock().unwrap().pays.is_empty());
    }

    #[tokio::test]
    async fn a_wrong_secret_is_a_signature_rejection_and_leaks_nothing() {
        let state = fake(4550);
        let s = state.clone();
        let server = MockServer::start(move |req| handle(&s, req)).await;
        let cfg = AlibabaConfig {
            base_url: server.base_url(),
            app_secret: Secret::new("wrong-secret"),
            ..AlibabaConfig::default()
        };
        let err = Alibaba1688::new(cfg)
            .unwrap()
            .order_status("1")
            .await
            .unwrap_err();
        assert_eq!(err, MarketError::SignatureRejected);
        assert!(!format!("{err} {err:?}").contains("demo1688-token"));
    }
}

/// `cancel_order` against the vendor's documented answers (docs/vendors/1688.md).
#[cfg(test)]
mod cancel_tests {
    use super::*;
    use crate::testing::{MockServer, Recorded, Reply};
    use std::sync::{Arc, Mutex};

    /// `alibaba.trade.createRefund`'s documented sample answer.
    const CREATE_REFUND_SAMPLE: &str =
        r#"{"result":{"result":{"refundId":"TQ34931008034741532"},"success":true}}"#;
    /// `alibaba.trade.cancel`'s documented answers.
    const CANCEL_OK_SAMPLE: &str = r#"{"success":true}"#;
    const CANCEL_REFUSED_SAMPLE: &str =
        r#"{"success":false,"errorCode":"ORDER_STATUS_ERROR","errorMessage":"订单状态错误"}"#;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn reads_the_vendor_samples() {
        let body = classify_response(&raw(200, CREATE_REFUND_SAMPLE)).unwrap();
        assert_eq!(
            text(refund_result(&body).unwrap(), "refundId").as_deref(),
            Some("TQ34931008034741532")
        );
        assert!(classify_response(&raw(200, CANCEL_OK_SAMPLE)).is_ok());
        assert!(matches!(
            classify_response(&raw(200, CANCEL_REFUSED_SAMPLE)),
            Err(MarketError::Rejected { code, .. }) if code == ORDER_STATUS_ERROR
        ));
        let too_fast = r#"{"success":false,"errorCode":"CLOSE_ORDER_TOO_FAST","errorMessage":"m"}"#;
        assert!(classify_response(&raw(200, too_fast)).is_err_and(|e| e.is_retryable()));
        let nested =
            |code: &str| json!({"result": {"success": false, "code": code, "message": "m"}});
        assert!(matches!(
            refund_result(&nested("5010")),
            Err(MarketError::Rejected { code, .. }) if code == "5010"
        ));
        assert!(refund_result(&nested("4001")).is_err_and(|e| e.is_retryable()));
        assert!(refund_result(&nested("5011")).is_err_and(|e| !e.is_retryable()));
    }

    #[test]
    fn picks_a_reason_without_a_voucher() {
        let r = |id: &str, name: &str, need_voucher: bool| RefundReason {
            id: id.into(),
            name: name.into(),
            need_voucher,
            no_refund_carriage: false,
        };
        let reasons = [
            r("1", "质量问题", true),
            r("2", "其他", false),
            r("3", "我不想要了", false),
        ];
        assert_eq!(pick_reason(&reasons).unwrap().id, "3");
        assert_eq!(pick_reason(&reasons[..2]).unwrap().id, "2");
        assert_eq!(pick_reason(&reasons[..1]), None);
        assert_eq!(entry_ids_param(&["12".into(), "x".into()]), r#"[12,"x"]"#);
    }

    /// One 1688 order: status, refund state, and whether the seller agrees to refunds.
    struct Fake {
        status: &'static str,
        refund_status: Option<&'static str>,
        refund_fen: Option<i64>,
        seller_agrees: bool,
        /// The order moves to this status just before the next write answers (a race).
        ships_meanwhile: bool,
    }

    fn handle(state: &Mutex<Fake>, req: &Recorded) -> Reply {
        let form = req.form();
        let url_path = req.path().trim_start_matches("/openapi/").to_string();
        let sig = signing::aop_signature(
            &url_path,
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "demo1688-secret",
        );
        assert_eq!(form.get("_aop_signature"), Some(&sig), "signed");
        let api = url_path.split('/').nth(3).unwrap_or_default().to_string();
        let mut s = state.lock().unwrap();
        let body = match api.as_str() {
            "alibaba.trade.get.buyerView" => {
                assert_eq!(form["orderId"], "777");
                assert_eq!(form["webSite"], "1688");
                // Documented units: totalAmount and sumProductPayment in yuan, refundPayment a
                // Long (fen).
                let mut base = json!({"id": 777, "idOfStr": "777", "status": s.status, "totalAmount": 99,
                                      "sumProductPayment": 91});
                if let Some(r) = s.refund_status {
                    base["refundStatus"] = json!(r);
                }
                if let Some(f) = s.refund_fen {
                    base["refundPayment"] = json!(f);
                }
                json!({"success": true, "result": {"baseInfo": base,
                       "productItems": [{"subItemID": 7771, "subItemIDString": "7771", "itemAmount": 91}]}})
                .to_string()
            }
            "alibaba.trade.cancel" => {
                assert_eq!(form["webSite"], "1688");
                assert_eq!(form["tradeID"], "777");
                assert_eq!(form["cancelReason"], "buyerCancel");
                if s.ships_meanwhile {
                    s.status = "waitsellersend";
                    s.ships_meanwhile = false;
                }
                if s.status == "waitbuyerpay" {
                    s.status = "cancel";
                    CANCEL_OK_SAMPLE.into()
                } else {
                    CANCEL_REFUSED_SAMPLE.into()
                }
            }
            "alibaba.trade.getRefundReasonList" => {
                assert_eq!(form["orderEntryIds"], "[7771]");
                assert_eq!(form["goodsStatus"], "refundWaitSellerSend");
                json!({"result": {"success": true, "result": {"reasons": [
                    {"id": 20001, "name": "质量问题", "needVoucher": true, "noRefundCarriage": false},
                    {"id": 20003, "name": "我不想要了", "needVoucher": false, "noRefundCarriage": false}]}}})
                .to_string()
            }
            "alibaba.trade.createRefund" => {
                assert_eq!(form["disputeRequest"], "refund");
                assert_eq!(form["applyPayment"], "9100");
                assert_eq!(form["applyCarriage"], "800");
                assert_eq!(form["applyReasonId"], "20003");
                if s.ships_meanwhile {
                    s.status = "waitbuyerreceive";
                    return Reply::json(
                        200,
                        r#"{"result":{"success":false,"code":"5010","message":"退货状态错误"}}"#,
                    );
                }
                if s.seller_agrees {
                    s.status = "cancel";
                    s.refund_status = Some("refundsuccess");
                    s.refund_fen = Some(9900);
                } else {
                    s.refund_status = Some("waitselleragree");
                }
                CREATE_REFUND_SAMPLE.into()
            }
            other => panic!("unexpected api {other}"),
        };
        Reply::json(200, body)
    }

    fn fake(status: &'static str) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake {
            status,
            refund_status: None,
            refund_fen: None,
            seller_agrees: true,
            ships_meanwhile: false,
        }))
    }

    async fn setup(state: &Arc<Mutex<Fake>>) -> (MockServer, Alibaba1688) {
        let s = state.clone();
        let server = MockServer::start(move |req| handle(&s, req)).await;
        let cfg = AlibabaConfig {
            base_url: server.base_url(),
            http: crate::testing::quick_http(Some(300)),
            ..AlibabaConfig::default()
        };
        (server, Alibaba1688::new(cfg).unwrap())
    }

    fn apis(server: &MockServer) -> Vec<String> {
        server
            .requests()
            .iter()
            .map(|r| r.path().split('/').nth(5).unwrap_or_default().to_string())
            .collect()
    }

    #[tokio::test]
    async fn an_unpaid_order_is_cancelled_without_a_refund() {
        let state = fake("waitbuyerpay");
        let (server, client) = setup(&state).await;
        let out = client
            .cancel_order("777", "customer cancelled")
            .await
            .unwrap();
        assert_eq!(
            out,
            CancelOutcome::Cancelled {
                refunded_fen: 0,
                refund_id: None
            }
        );
        assert_eq!(
            apis(&server),
            ["alibaba.trade.get.buyerView", "alibaba.trade.cancel"]
        );
    }

    #[tokio::test]
    async fn a_paid_unshipped_order_is_refunded_in_full_once() {
        let state = fake("waitsellersend");
        let (server, client) = setup(&state).await;
        let out = client
            .cancel_order("777", "customer cancelled")
            .await
            .unwrap();
        assert_eq!(
            out,
            CancelOutcome::Cancelled {
                refunded_fen: 9900,
                refund_id: Some("TQ34931008034741532".into())
            }
        );
        let again = client
            .cancel_order("777", "customer cancelled")
            .await
            .unwrap();
        assert!(matches!(
            again,
            CancelOutcome::Cancelled {
                refunded_fen: 9900,
                ..
            }
        ));
        let refunds = apis(&server)
            .iter()
            .filter(|a| *a == "alibaba.trade.createRefund")
            .count();
        assert_eq!(refunds, 1, "asked once: {:?}", apis(&server));
    }

    #[tokio::test]
    async fn a_refund_the_seller_has_not_agreed_to_is_pending_and_not_asked_twice() {
        let state = fake("waitsellersend");
        state.lock().unwrap().seller_agrees = false;
        let (server, client) = setup(&state).await;
        let out = client
            .cancel_order("777", "customer cancelled")
            .await
            .unwrap();
        assert_eq!(
            out,
            CancelOutcome::Pending {
                refund_id: Some("TQ34931008034741532".into()),
                requested_fen: 9900
            }
        );
        let again = client
            .cancel_order("777", "customer cancelled")
            .await
            .unwrap();
        assert!(matches!(again, CancelOutcome::Pending { .. }));
        assert_eq!(
            apis(&server)
                .iter()
                .filter(|a| *a == "alibaba.trade.createRefund")
                .count(),
            1
        );
        state.lock().unwrap().refund_status = Some("refundclose");
        assert_eq!(
            client.cancel_order("777", "x").await.unwrap(),
            CancelOutcome::TooLate {
                status: "waitsellersend/refundclose".into()
            }
        );
    }

    #[tokio::test]
    async fn a_shipped_order_is_too_late_and_nothing_is_asked() {
        let state = fake("waitbuyerreceive");
        let (server, client) = setup(&state).await;
        assert_eq!(
            client.cancel_order("777", "x").await.unwrap(),
            CancelOutcome::TooLate {
                status: "waitbuyerreceive".into()
            }
        );
        assert_eq!(apis(&server), ["alibaba.trade.get.buyerView"]);
    }

    #[tokio::test]
    async fn an_order_that_moves_during_the_cancel_is_decided_on_its_new_state() {
        // Paid between our read and our cancel: the refund is asked for instead.
        let state = fake("waitbuyerpay");
        state.lock().unwrap().ships_meanwhile = true;
        let (server, client) = setup(&state).await;
        assert_eq!(
            client.cancel_order("777", "x").await.unwrap(),
            CancelOutcome::Cancelled {
                refunded_fen: 9900,
                refund_id: Some("TQ34931008034741532".into())
            }
        );
        assert_eq!(
            apis(&server),
            [
                "alibaba.trade.get.buyerView",
                "alibaba.trade.cancel",
                "alibaba.trade.get.buyerView",
                "alibaba.trade.getRefundReasonList",
                "alibaba.trade.createRefund",
                "alibaba.trade.get.buyerView"
            ]
        );
        // Shipped between our read and our refund request: too late.
        let state = fake("waitsellersend");
        state.lock().unwrap().ships_meanwhile = true;
        let (_server, client) = setup(&state).await;
        assert_eq!(
            client.cancel_order("777", "x").await.unwrap(),
            CancelOutcome::TooLate {
                status: "waitbuyerreceive".into()
            }
        );
    }
}
