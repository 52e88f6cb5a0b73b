//! Pinduoduo open platform client, prices only: PDD has no public buyer-side ordering API, so
//! buying there is an assisted task in the workflow. `pdd.ddk.goods.detail` gives a listing's
//! group-buy and single-buy minimum prices (fen, no stock figure). Every field and code, with
//! its source, is in docs/vendors/pdd.md.
//!
//! A PDD listing is named by its `goods_sign` (PDD's encrypted goods id): the numeric
//! `goods_id` is documented as taken offline as a query key, so our offer id for a PDD listing
//! is its `goods_sign`.

use procure_domain::{Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429};
use crate::market::buyer::OfferPrice;
use crate::market::product::{
    Attribute, ProductDetail, ProductSource, Seller, SkuDetail, absolute_url, distinct, some_text,
};
use crate::market::wire::{
    Fen, IdText, int, need, now_ms, sign_form, status_error, text, typed, unreadable,
};
use crate::market::{MarketError, MarketFuture, PriceSource};
use procure_domain::order::Platform;

/// The router path.
const ROUTER_PATH: &str = "api/router";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PddConfig {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Only some calls need one; `pdd.ddk.goods.detail` does not.
    pub access_token: Option<Secret>,
    pub http: HttpConfig,
}

impl Default for PddConfig {
    fn default() -> Self {
        PddConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            client_id: "demopdd".into(),
            client_secret: Secret::new("demopdd-secret"),
            access_token: None,
            http: HttpConfig::default(),
        }
    }
}

/// A PDD listing's prices (fen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PddGoods {
    /// The listing's `goods_sign`: how PDD names it now, and our offer id.
    pub goods_sign: String,
    /// The numeric `goods_id`, where the answer still carries it (an integer).
    pub goods_id: Option<i64>,
    pub name: String,
    /// Lowest price when buying as part of a group (拼单): PDD's headline price.
    pub min_group_price_fen: i64,
    /// Lowest price when buying alone.
    pub min_normal_price_fen: i64,
}

impl PddGoods {
    /// The price a buyer actually pays: the group price, or the single-buy price when the
    /// listing offers no group price.
    pub fn best_price_fen(&self) -> i64 {
        if self.min_group_price_fen > 0 {
            self.min_group_price_fen
        } else {
            self.min_normal_price_fen
        }
    }
}

/// PDD `error_code`s whose meaning no source confirms (docs/vendors/pdd.md, "Assumed"): the
/// one place they are named. The sandbox models the same assumption in its own single place.
pub mod assumed_codes {
    /// Bad signature.
    pub const BAD_SIGNATURE: i64 = 20004;
    /// Call frequency limits.
    pub const RATE_LIMITED: [i64; 2] = [52101, 70031];
    /// Forbidden / risky caller: an account under risk control.
    pub const RESTRICTED: [i64; 3] = [70032, 70034, 70035];
    /// The access token expired.
    pub const TOKEN_EXPIRED: i64 = 10019;
}

/// The one mapping from PDD `error_code`s to [`MarketError`].
pub fn classify_code(code: i64, message: &str) -> MarketError {
    use assumed_codes::*;
    match code {
        BAD_SIGNATURE => MarketError::SignatureRejected,
        c if RATE_LIMITED.contains(&c) => MarketError::RateLimited,
        c if RESTRICTED.contains(&c) => MarketError::AccountRestricted,
        TOKEN_EXPIRED => MarketError::Rejected {
            code: code.to_string(),
            message: format!("access token expired: {message}"),
        },
        _ => MarketError::Rejected {
            code: code.to_string(),
            message: message.into(),
        },
    }
}

/// Check any PDD answer for its error envelope (a success is then read from the body's literal
/// text, see [`typed`]).
fn classify_response(resp: &RawResponse) -> Result<(), MarketError> {
    let parsed: Option<Value> = serde_json::from_str(&resp.body).ok();
    let Some(body) = parsed.filter(Value::is_object) else {
        return Err(unreadable(resp));
    };
    if let Some(err) = body.get("error_response") {
        let code = need(int(err, "error_code"), "error_response.error_code")?;
        let mut message = text(err, "error_msg").unwrap_or_default();
        for key in ["sub_code", "sub_msg"] {
            if let Some(extra) = text(err, key).filter(|s| !s.is_empty()) {
                message.push_str(&format!(" [{extra}]"));
            }
        }
        return Err(classify_code(code, &message));
    }
    match status_error(resp) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `pdd.ddk.goods.detail`'s answer, as documented.
#[derive(Deserialize)]
struct DetailAnswer {
    goods_detail_response: DetailResponse,
}

#[derive(Deserialize)]
struct DetailResponse {
    #[serde(default)]
    goods_details: Vec<WireGoods>,
}

#[derive(Deserialize)]
struct WireGoods {
    #[serde(default)]
    goods_sign: Option<String>,
    #[serde(default)]
    goods_id: Option<i64>,
    #[serde(default)]
    goods_name: String,
    min_group_price: Fen,
    min_normal_price: Fen,
}

impl WireGoods {
    fn into_goods(self, asked: &str) -> PddGoods {
        PddGoods {
            goods_sign: self.goods_sign.unwrap_or_else(|| asked.to_owned()),
            goods_id: self.goods_id,
            name: self.goods_name,
            min_group_price_fen: self.min_group_price.0,
            min_normal_price_fen: self.min_normal_price.0,
        }
    }
}

/// `pdd.ddk.goods.detail`'s answer as the product detail reads it (asked with
/// `need_sku_info=true`; docs/vendors/pdd.md, "The product detail").
#[derive(Deserialize)]
struct FullAnswer {
    goods_detail_response: FullResponse,
}

#[derive(Deserialize)]
struct FullResponse {
    #[serde(default)]
    goods_details: Vec<FullGoods>,
}

#[derive(Deserialize)]
struct FullGoods {
    #[serde(default)]
    goods_sign: Option<String>,
    #[serde(default)]
    goods_name: String,
    #[serde(default)]
    goods_image_url: Option<String>,
    #[serde(default)]
    goods_gallery_urls: Option<Vec<String>>,
    #[serde(default)]
    mall_id: Option<IdText>,
    #[serde(default)]
    mall_name: Option<String>,
    min_group_price: Fen,
    min_normal_price: Fen,
    #[serde(default)]
    sku_list: Option<Vec<WireSku>>,
}

#[derive(Deserialize)]
struct WireSku {
    #[serde(default)]
    is_onsale: Option<i64>,
    /// Fen ("最小成团价，单位分").
    #[serde(default)]
    min_group_price: Option<Fen>,
    #[serde(default)]
    sku_thumb_url: Option<String>,
    #[serde(default)]
    spec_list: Vec<WireSpec>,
}

#[derive(Deserialize)]
struct WireSpec {
    #[serde(default)]
    spec_id: Option<IdText>,
    #[serde(default)]
    parent_spec_value: Option<String>,
    #[serde(default)]
    spec_value: Option<String>,
}

/// PDD's image URLs are absolute; a scheme-relative one gets `https:`.
fn pdd_image(raw: &str) -> Option<String> {
    absolute_url(raw, "https://img.pddpic.com/")
}

impl FullGoods {
    fn into_detail(self, asked: &str) -> ProductDetail {
        let best = if self.min_group_price.0 > 0 {
            self.min_group_price.0
        } else {
            self.min_normal_price.0
        };
        let mut skus: Vec<SkuDetail> = self
            .sku_list
            .unwrap_or_default()
            .into_iter()
            .map(|s| SkuDetail {
                spec_id: s
                    .spec_list
                    .iter()
                    .filter_map(|p| p.spec_id.as_ref().map(|i| i.0.clone()))
                    .collect::<Vec<_>>()
                    .join("_"),
                attributes: s
                    .spec_list
                    .iter()
                    .filter_map(|p| {
                        Some(Attribute::new(
                            some_text(p.parent_spec_value.as_deref())?,
                            some_text(p.spec_value.as_deref())?,
                        ))
                    })
                    .collect(),
                price_fen: s.min_group_price.map_or(best, |p| p.0),
                // No stock figure: only whether the SKU is on sale.
                stock: (s.is_onsale == Some(0)).then_some(0),
                image_url: s.sku_thumb_url.as_deref().and_then(pdd_image),
            })
            .collect();
        if skus.is_empty() {
            skus.push(SkuDetail {
                spec_id: String::new(),
                attributes: vec![],
                price_fen: best,
                stock: None,
                image_url: None,
            });
        }
        let gallery = self.goods_gallery_urls.unwrap_or_default();
        ProductDetail {
            platform: Platform::Pinduoduo,
            product_id: self.goods_sign.unwrap_or_else(|| asked.to_owned()),
            title: self.goods_name,
            image_urls: distinct(
                self.goods_image_url
                    .iter()
                    .chain(gallery.iter())
                    .map(|u| pdd_image(u)),
            ),
            attributes: vec![],
            skus,
            min_order_quantity: None,
            seller: Seller {
                id: self.mall_id.map(|i| i.0).filter(|s| !s.is_empty()),
                name: some_text(self.mall_name.as_deref()),
            },
            weight_g: None,
            dimensions: None,
        }
    }
}

/// `pdd.ddk.goods.search`'s answer, as far as resolving a `goods_id` needs it.
#[derive(Deserialize)]
struct SearchAnswer {
    goods_search_response: SearchResponse,
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(default)]
    goods_list: Vec<SearchGoods>,
}

#[derive(Deserialize)]
struct SearchGoods {
    #[serde(default)]
    goods_sign: Option<String>,
    /// Not in the current SDK's search answer; read where an answer still carries it.
    #[serde(default)]
    goods_id: Option<IdText>,
}

fn now_s() -> i64 {
    now_ms() / 1000
}

/// The signed form of one call: `type`, `client_id`, `timestamp` (unix s), `data_type`,
/// `access_token` when configured, the call's params, and `sign`.
fn signed_params(
    api_type: &str,
    params: &[(&'static str, String)],
    cfg: &PddConfig,
    timestamp_s: i64,
) -> Vec<(&'static str, String)> {
    let mut all = vec![
        ("type", api_type.to_owned()),
        ("client_id", cfg.client_id.clone()),
        ("timestamp", timestamp_s.to_string()),
        ("data_type", "JSON".to_owned()),
    ];
    if let Some(token) = &cfg.access_token {
        all.push(("access_token", token.expose().to_owned()));
    }
    all.extend(params.iter().cloned());
    sign_form(all, "sign", |form| {
        signing::pdd_signature(form, cfg.client_secret.expose())
    })
}

/// Pinduoduo price client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Pdd {
    cfg: PddConfig,
    http: HttpClient,
}

impl Pdd {
    pub fn new(cfg: PddConfig) -> Result<Self, BuildError> {
        let mut secrets = vec![cfg.client_secret.clone()];
        secrets.extend(cfg.access_token.clone());
        let http = HttpClient::new("pinduoduo", &cfg.http, secrets)?;
        Ok(Pdd { cfg, http })
    }

    /// Every call we make is a read: 5xx, 429 and rate-limit answers are retried in the call.
    async fn call(
        &self,
        api_type: &'static str,
        params: Vec<(&'static str, String)>,
    ) -> Result<String, MarketError> {
        let url = join_url(&self.cfg.base_url, ROUTER_PATH);
        let make = |c: &reqwest::Client| {
            let form = signed_params(api_type, &params, &self.cfg, now_s());
            c.post(&url).form(&form)
        };
        let retry_on = |r: &RawResponse| {
            retry_5xx_429(r) || matches!(classify_response(r), Err(MarketError::RateLimited))
        };
        let resp = self
            .http
            .execute(api_type, make, retry_on)
            .await
            .map_err(MarketError::from_transport)?;
        classify_response(&resp)?;
        Ok(resp.body)
    }

    /// A listing's prices by its `goods_sign`; `Ok(None)` when PDD no longer knows it (removed
    /// or unknown).
    pub async fn goods_detail(&self, goods_sign: &str) -> Result<Option<PddGoods>, MarketError> {
        let body = self
            .call(
                "pdd.ddk.goods.detail",
                vec![("goods_sign", goods_sign.to_owned())],
            )
            .await?;
        let answer: DetailAnswer = typed(&body, "pdd.ddk.goods.detail")?;
        let mut details = answer.goods_detail_response.goods_details;
        // Prefer the entry for our listing; a single answer is ours even if PDD re-spells it.
        let at = details
            .iter()
            .position(|g| g.goods_sign.as_deref() == Some(goods_sign))
            .or((details.len() == 1).then_some(0));
        Ok(at.map(|i| details.swap_remove(i).into_goods(goods_sign)))
    }

    /// The whole listing by its `goods_sign` (`pdd.ddk.goods.detail` with
    /// `need_sku_info=true`). A listing PDD no longer knows is [`MarketError::ListingGone`].
    pub async fn product_detail(&self, goods_sign: &str) -> Result<ProductDetail, MarketError> {
        const API: &str = "pdd.ddk.goods.detail";
        let body = self
            .call(
                API,
                vec![
                    ("goods_sign", goods_sign.to_owned()),
                    ("need_sku_info", "true".to_owned()),
                ],
            )
            .await?;
        let answer: FullAnswer = typed(&body, API)?;
        let mut details = answer.goods_detail_response.goods_details;
        let at = details
            .iter()
            .position(|g| g.goods_sign.as_deref() == Some(goods_sign))
            .or((details.len() == 1).then_some(0))
            .ok_or(MarketError::ListingGone)?;
        Ok(details.swap_remove(at).into_detail(goods_sign))
    }

    /// The `goods_sign` of a numeric `goods_id` (what a `mobile.yangkeduo.com/goods.html`
    /// link names): `pdd.ddk.goods.search` with the id as its `keyword`, which the SDK
    /// documents as accepting a goods_id or a PDD link. The entry carrying the same
    /// `goods_id` wins, else a single entry; none is [`MarketError::ListingGone`], several
    /// without an id to tell them apart a rejection.
    pub async fn resolve_goods_id(&self, goods_id: &str) -> Result<String, MarketError> {
        const API: &str = "pdd.ddk.goods.search";
        let body = self
            .call(API, vec![("keyword", goods_id.to_owned())])
            .await?;
        let answer: SearchAnswer = typed(&body, API)?;
        let list: Vec<SearchGoods> = answer
            .goods_search_response
            .goods_list
            .into_iter()
            .filter(|g| g.goods_sign.as_deref().is_some_and(|s| !s.is_empty()))
            .collect();
        let found = list
            .iter()
            .find(|g| g.goods_id.as_ref().is_some_and(|i| i.0 == goods_id))
            .or(match list.as_slice() {
                [only] => Some(only),
                _ => None,
            });
        match found {
            Some(g) => Ok(g.goods_sign.clone().unwrap_or_default()),
            None if list.is_empty() => Err(MarketError::ListingGone),
            None => Err(MarketError::Rejected {
                code: "AMBIGUOUS_GOODS_ID".into(),
                message: format!(
                    "pdd.ddk.goods.search for goods_id {goods_id} answered {} listings",
                    list.len()
                ),
            }),
        }
    }
}

impl ProductSource for Pdd {
    fn product<'a>(&'a self, product_id: &'a str) -> MarketFuture<'a, ProductDetail> {
        Box::pin(self.product_detail(product_id))
    }
}

/// A listing bought as a whole (a seeded offer, no `spec_id`) is priced by its group-buy price
/// ([`PddGoods::best_price_fen`]). One SKU of an imported listing (`spec_id`, the variant's spec
/// ids joined with `_` as [`Pdd::product_detail`] names them) is priced by that SKU's
/// `min_group_price` from the detail with `need_sku_info`; a SKU the listing no longer has, or a
/// listing PDD no longer knows, is `None`, and a listing without variants is priced as a whole.
/// PDD reports no stock either way.
impl PriceSource for Pdd {
    fn offer_price<'a>(
        &'a self,
        offer_id: &'a str,
        spec_id: &'a str,
    ) -> MarketFuture<'a, Option<OfferPrice>> {
        Box::pin(async move {
            if spec_id.is_empty() {
                return Ok(self
                    .goods_detail(offer_id)
                    .await?
                    .map(|g| (g.best_price_fen(), None)));
            }
            match self.product_detail(offer_id).await {
                // A listing without variants (no `sku_list`) is bought as a whole, whatever
                // spec the offer was stored with.
                Ok(detail) => Ok(detail
                    .skus
                    .iter()
                    .find(|s| s.spec_id == spec_id)
                    .or(match detail.skus.as_slice() {
                        [only] if only.spec_id.is_empty() => Some(only),
                        _ => None,
                    })
                    .map(|s| (s.price_fen, None))),
                Err(MarketError::ListingGone) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Recorded, Reply};
    use serde_json::json;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    fn error_body(code: i64) -> String {
        json!({"error_response": {"error_code": code, "error_msg": "m", "sub_code": "s"}})
            .to_string()
    }

    #[test]
    fn signs_every_param_but_the_signature() {
        let cfg = PddConfig {
            client_id: "1".into(),
            client_secret: Secret::new("testSecret"),
            access_token: Some(Secret::new("asd78172s8ds9a921j9qqwda12312w1w21211")),
            ..PddConfig::default()
        };
        let form = signed_params(
            "pdd.order.number.list.get",
            &[
                ("order_status", "1".into()),
                ("page", "1".into()),
                ("page_size", "10".into()),
            ],
            &cfg,
            1_480_411_125,
        );
        // The published vector uses data_type=XML; ours is always JSON, so check the scheme
        // against the vector and our form against the same function.
        let kat: Vec<(&str, &str)> = form
            .iter()
            .filter(|(k, _)| *k != "sign")
            .map(|(k, v)| (*k, if *k == "data_type" { "XML" } else { v.as_str() }))
            .collect();
        assert_eq!(
            signing::pdd_signature(kat, "testSecret"),
            "E4DE3ED21002510DED352819E7AE6775"
        );
        let keys: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "type",
                "client_id",
                "timestamp",
                "data_type",
                "access_token",
                "order_status",
                "page",
                "page_size",
                "sign"
            ]
        );
        let unsigned = form.iter().filter(|(k, _)| *k != "sign");
        assert_eq!(
            form.last().unwrap().1,
            signing::pdd_signature(unsigned.map(|(k, v)| (*k, v.as_str())), "testSecret")
        );
        let no_token = signed_params("t", &[], &PddConfig::default(), 1);
        assert!(!no_token.iter().any(|(k, _)| *k == "access_token"));
    }

    #[test]
    fn maps_error_codes() {
        let c = |code| classify_code(code, "m");
        assert_eq!(c(20004), MarketError::SignatureRejected);
        assert_eq!(c(52101), MarketError::RateLimited);
        assert_eq!(c(70031), MarketError::RateLimited);
        for code in [70032, 70034, 70035] {
            assert_eq!(c(code), MarketError::AccountRestricted);
        }
        assert!(
            matches!(c(10019), MarketError::Rejected { code, message } if code == "10019" && message.contains("expired"))
        );
        assert!(matches!(c(10000), MarketError::Rejected { code, .. } if code == "10000"));
        assert_eq!(
            classify_response(&raw(200, &error_body(20004))),
            Err(MarketError::SignatureRejected)
        );
        assert_eq!(
            classify_response(&raw(
                200,
                r#"{"error_response":{"error_code":"70031","error_msg":"m"}}"#
            )),
            Err(MarketError::RateLimited)
        );
        assert!(matches!(
            classify_response(&raw(503, "down")),
            Err(MarketError::Transient(_))
        ));
        assert!(matches!(classify_response(&raw(200, "<xml/>")), Err(e) if e.is_retryable()));
    }

    fn handle(req: &Recorded) -> Reply {
        let form = req.form();
        assert_eq!(req.path(), "/api/router");
        let sign = signing::pdd_signature(
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            "demopdd-secret",
        );
        let ts_ok = form
            .get("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| (now_s() - t).abs() <= 600);
        if form.get("sign") != Some(&sign)
            || form.get("client_id").map(String::as_str) != Some("demopdd")
            || form.get("data_type").map(String::as_str) != Some("JSON")
            || form.get("type").map(String::as_str) != Some("pdd.ddk.goods.detail")
            || !ts_ok
        {
            return Reply::json(200, error_body(20004));
        }
        assert!(!form.contains_key("goods_id_list"), "taken offline");
        match form["goods_sign"].as_str() {
            "pdd2001" => Reply::json(
                200,
                json!({"goods_detail_response": {"goods_details": [
                    {"goods_sign": "pdd2001", "goods_id": 2001, "goods_name": "Mug", "min_group_price": 3900, "min_normal_price": 4500}
                ]}})
                .to_string(),
            ),
            "pdd-fraction" => Reply::json(
                200,
                r#"{"goods_detail_response":{"goods_details":[{"goods_sign":"pdd-fraction","min_group_price":39.5,"min_normal_price":4500}]}}"#,
            ),
            "pdd-skus" if form.get("need_sku_info").map(String::as_str) == Some("true") => {
                Reply::json(200, PDD_SKUS.to_owned())
            }
            "pdd-limited" => Reply::json(200, error_body(52101)),
            "pdd-risky" => Reply::json(200, error_body(70034)),
            _ => Reply::json(
                200,
                r#"{"goods_detail_response":{"goods_details":[]}}"#,
            ),
        }
    }

    async fn setup(secret: &str) -> (MockServer, Pdd) {
        let server = MockServer::start(handle).await;
        let mut cfg = PddConfig {
            base_url: server.base_url(),
            client_secret: Secret::new(secret),
            ..PddConfig::default()
        };
        cfg.http = crate::testing::quick_http(None);
        (server, Pdd::new(cfg).unwrap())
    }

    #[tokio::test]
    async fn reads_prices_and_reports_a_gone_listing_as_none() {
        let (_server, pdd) = setup("demopdd-secret").await;
        let g = pdd.goods_detail("pdd2001").await.unwrap().unwrap();
        assert_eq!(
            g,
            PddGoods {
                goods_sign: "pdd2001".into(),
                goods_id: Some(2001),
                name: "Mug".into(),
                min_group_price_fen: 3900,
                min_normal_price_fen: 4500
            }
        );
        assert_eq!(g.best_price_fen(), 3900);
        assert_eq!(pdd.goods_detail("pdd-removed").await.unwrap(), None);
        // Fen have no fraction: a price that is not whole fen is an unreadable answer.
        let err = pdd.goods_detail("pdd-fraction").await.unwrap_err();
        assert!(
            err.to_string().contains(
                "goods_detail_response.goods_details[0].min_group_price: amount \"39.5\" is finer"
            ),
            "{err}"
        );
    }

    /// A listing with two SKUs (spec ids 1215 / 10001 and 1215 / 10002), in the detail's shape
    /// with `need_sku_info` (tests/contracts/pdd/pdd.ddk.goods.detail.sku.json).
    const PDD_SKUS: &str = r#"{"goods_detail_response":{"goods_details":[{"goods_sign":"pdd-skus",
        "goods_id":3001,"goods_name":"Cup","min_group_price":3900,"min_normal_price":4500,
        "sku_list":[
          {"sku_id":1,"is_onsale":1,"min_group_price":3900,"spec_list":[{"parent_spec_id":1215,"parent_spec_value":"颜色","spec_id":10001,"spec_value":"白色"}]},
          {"sku_id":2,"is_onsale":1,"min_group_price":4600,"spec_list":[{"parent_spec_id":1215,"parent_spec_value":"颜色","spec_id":10002,"spec_value":"黑色"}]}]}]}}"#;

    #[tokio::test]
    async fn one_sku_of_an_imported_listing_is_priced_by_its_own_price() {
        let (server, pdd) = setup("demopdd-secret").await;
        let detail = pdd.product_detail("pdd-skus").await.unwrap();
        let black = detail.skus.iter().find(|s| s.price_fen == 4600).unwrap();
        assert_eq!(
            pdd.offer_price("pdd-skus", &black.spec_id).await.unwrap(),
            Some((4600, None)),
            "the black SKU's price, not the listing's lowest"
        );
        assert_eq!(
            pdd.offer_price("pdd-skus", "1215_99999").await.unwrap(),
            None,
            "a SKU the listing no longer has"
        );
        assert_eq!(
            pdd.offer_price("pdd-removed", &black.spec_id)
                .await
                .unwrap(),
            None
        );
        // A listing without variants is priced as a whole, whatever spec the offer carries.
        assert_eq!(
            pdd.offer_price("pdd2001", "seeded-spec").await.unwrap(),
            Some((3900, None))
        );
        // Without a spec the listing is priced as a whole, without asking for SKUs.
        assert_eq!(
            pdd.offer_price("pdd2001", "").await.unwrap(),
            Some((3900, None))
        );
        let last = server.requests().last().cloned().unwrap();
        assert!(!last.form().contains_key("need_sku_info"));
    }

    #[tokio::test]
    async fn maps_errors_and_retries_rate_limits_in_the_call() {
        let (server, pdd) = setup("demopdd-secret").await;
        assert_eq!(
            pdd.goods_detail("pdd-limited").await.unwrap_err(),
            MarketError::RateLimited
        );
        assert_eq!(server.requests().len(), 3, "max_attempts");
        assert_eq!(
            pdd.goods_detail("pdd-risky").await.unwrap_err(),
            MarketError::AccountRestricted
        );
        assert_eq!(server.requests().len(), 4, "not retried");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_a_signature_rejection_and_leaks_nothing() {
        let (_server, pdd) = setup("wrong-secret").await;
        let err = pdd.goods_detail("pdd2001").await.unwrap_err();
        assert_eq!(err, MarketError::SignatureRejected);
        assert!(!format!("{err:?}").contains("wrong-secret"));
    }
}
