//! What a customer pastes to import a product: a marketplace link (or `{"platform", "id"}`),
//! turned into the platform and the id its product API takes ([`ProductRef`]). Pure: a link
//! that only a network call can expand (a `m.tb.cn` or `p.pinduoduo.com` short link) is a
//! [`LinkError::ShortLink`], never fetched here.
//!
//! Link forms (each has a test below):
//! - 1688: `detail.1688.com/offer/<id>.html`, `m.1688.com/offer/<id>.html`,
//!   `detail.m.1688.com/page/index.html?offerId=<id>` (any `*.1688.com` host with either form);
//! - Taobao / Tmall: `item.taobao.com/item.htm?id=<id>`, `detail.tmall.com/item.htm?id=<id>`,
//!   their mobile hosts (`h5.m.taobao.com/awp/core/detail.htm?id=`, `detail.m.tmall.com`,
//!   `main.m.taobao.com/...?id=`, any `*.taobao.com`, `*.tmall.com`, `*.tmall.hk` host with an
//!   `id` parameter), `world.taobao.com/item/<id>.htm` and `a.m.taobao.com/i<id>.htm`;
//!   tracking parameters (`spm`, `scm`, `ali_trackid`, `skuId`, …) are ignored;
//! - Pinduoduo: `mobile.yangkeduo.com/goods.html?goods_id=<id>` (also `goods1.html`,
//!   `goods2.html`, `yangkeduo.com`, `mobile.pinduoduo.com`): a numeric `goods_id`, which the
//!   detail API no longer takes ([`IdKind::PddGoodsId`], resolve it to a `goods_sign` first); a
//!   promotion link carrying `goods_sign=` names the listing directly.
//!
//! With or without a scheme (`http`, `https`, `//`), surrounding whitespace or share text
//! around the link, any case in the host, percent-encoded parameters, or the whole link
//! percent-encoded once.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::order::Platform;

/// What the id of a [`ProductRef`] is, and so whether the detail API takes it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// A 1688 offer id (`productId` / `offerId`, a Long).
    OfferId,
    /// A Taobao or Tmall item id (`item_id`, a Long).
    ItemId,
    /// A Pinduoduo `goods_sign`: what `pdd.ddk.goods.detail` takes.
    PddGoodsSign,
    /// A Pinduoduo numeric `goods_id`: the detail API no longer takes it; resolve it to a
    /// `goods_sign` first (`adapters::Pdd::resolve_goods_id`).
    PddGoodsId,
}

/// A product on a marketplace, as a link or `{"platform", "id"}` names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProductRef {
    pub platform: Platform,
    /// The id as the marketplace spells it (digits for every kind but a `goods_sign`).
    pub id: String,
    pub kind: IdKind,
}

impl ProductRef {
    /// Whether the id must be resolved before the platform's detail API takes it.
    pub fn needs_resolving(&self) -> bool {
        self.kind == IdKind::PddGoodsId
    }

    /// The product's page in its plain desktop (PDD: mobile) form. Parsing it gives back this
    /// reference.
    pub fn canonical_url(&self) -> String {
        match self.kind {
            IdKind::OfferId => format!("https://detail.1688.com/offer/{}.html", self.id),
            IdKind::ItemId => format!("https://item.taobao.com/item.htm?id={}", self.id),
            IdKind::PddGoodsId => {
                format!(
                    "https://mobile.yangkeduo.com/goods.html?goods_id={}",
                    self.id
                )
            }
            IdKind::PddGoodsSign => format!(
                "https://mobile.yangkeduo.com/duo_coupon_landing.html?goods_sign={}",
                self.id
            ),
        }
    }
}

/// Why a link or id was refused. [`code`](Self::code) is a stable word for an API answer;
/// `Display` is the reason in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("nothing to import: the link is empty")]
    Empty,
    /// Not something a browser would open (`reason` says what is wrong).
    #[error("not a link: {reason}")]
    NotAUrl { reason: String },
    /// A link to a site that is none of 1688, Taobao, Tmall or Pinduoduo.
    #[error("{host} is not a 1688, Taobao, Tmall or Pinduoduo product page")]
    UnknownHost { host: String },
    /// `{"platform", "id"}` with a platform we do not know.
    #[error("unknown platform {platform:?} (expected 1688, taobao or pinduoduo)")]
    UnknownPlatform { platform: String },
    /// A marketplace link that names no product (a shop, a search, a home page).
    #[error("the {platform} link names no product ({host}{path})")]
    NoProductId {
        platform: &'static str,
        host: String,
        path: String,
    },
    #[error("{platform} product id {id:?} is malformed: {reason}")]
    MalformedId {
        platform: &'static str,
        id: String,
        reason: &'static str,
    },
    /// A share short link: only the marketplace can expand it (a network call), so the
    /// customer is asked for the full link.
    #[error(
        "{host} is a {platform} short link, which only {platform} can expand: open it and paste the product page's full link"
    )]
    ShortLink {
        platform: &'static str,
        host: String,
    },
}

impl LinkError {
    /// A stable machine-readable word for the error.
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Empty | LinkError::NotAUrl { .. } => "not_a_url",
            LinkError::UnknownHost { .. } => "unknown_host",
            LinkError::UnknownPlatform { .. } => "unknown_platform",
            LinkError::NoProductId { .. } => "no_product_id",
            LinkError::MalformedId { .. } => "malformed_id",
            LinkError::ShortLink { .. } => "short_link",
        }
    }
}

/// The longest input we look at (a pasted share text with a link in it is far shorter).
const MAX_INPUT: usize = 4096;
/// The longest numeric id we accept: a Long has at most 19 digits.
const MAX_DIGITS: usize = 19;
/// A `goods_sign`'s length bounds (PDD's samples are 30–50 characters).
const GOODS_SIGN_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Parse a pasted product link.
pub fn parse_link(input: &str) -> Result<ProductRef, LinkError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(LinkError::Empty);
    }
    if trimmed.len() > MAX_INPUT {
        return Err(not_a_url("longer than 4096 bytes"));
    }
    let link = extract_link(trimmed);
    // A link percent-encoded as a whole (copied out of another URL's parameter).
    let decoded;
    let link = if starts_with_ci(link, "http%3a") || starts_with_ci(link, "https%3a") {
        decoded = percent_decode(link, false);
        decoded.as_str()
    } else {
        link
    };
    let url = split_url(link)?;
    route(&url)
}

/// Validate `{"platform", "id"}`: `platform` is `1688`, `taobao` (Tmall items are Taobao's) or
/// `pinduoduo`; `id` the offer / item id, or for Pinduoduo a `goods_sign` or a numeric
/// `goods_id`. Surrounding whitespace is ignored.
pub fn from_platform_id(platform: &str, id: &str) -> Result<ProductRef, LinkError> {
    let name = platform.trim().to_ascii_lowercase();
    let platform = match name.as_str() {
        "1688" | "alibaba1688" | "alibaba" => Platform::Alibaba1688,
        "taobao" | "tmall" => Platform::Taobao,
        "pinduoduo" | "pdd" | "yangkeduo" => Platform::Pinduoduo,
        _ => {
            return Err(LinkError::UnknownPlatform {
                platform: platform.chars().take(32).collect(),
            });
        }
    };
    let id = id.trim();
    match platform {
        Platform::Alibaba1688 => numeric(platform, id, IdKind::OfferId),
        Platform::Taobao => numeric(platform, id, IdKind::ItemId),
        Platform::Pinduoduo if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            numeric(platform, id, IdKind::PddGoodsId)
        }
        Platform::Pinduoduo => goods_sign(id),
    }
}

fn not_a_url(reason: &str) -> LinkError {
    LinkError::NotAUrl {
        reason: reason.to_owned(),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The link inside a pasted share text (`【淘宝】https://… 「title」`): from the first
/// `http://` / `https://` to the next whitespace or a full-width bracket. Input without a
/// scheme is taken whole.
fn extract_link(text: &str) -> &str {
    let lower = text.to_ascii_lowercase();
    let start = ["https://", "http://", "https%3a", "http%3a"]
        .iter()
        .filter_map(|p| lower.find(p))
        .min();
    let Some(start) = start else {
        return text;
    };
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || "「」【】，。\"'<>".contains(c))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// A link cut into the parts we read.
struct Url {
    /// Lower case, without a port, user info or a trailing dot.
    host: String,
    /// Percent-decoded.
    path: String,
    /// Percent-decoded `(key, value)` pairs of the query, then of a query inside the fragment
    /// (single-page mobile sites put it there).
    query: Vec<(String, String)>,
}

impl Url {
    /// The values of a parameter (key compared without case).
    fn params<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

fn split_url(link: &str) -> Result<Url, LinkError> {
    let lower = link.to_ascii_lowercase();
    let rest = if let Some(scheme_end) = lower.find("://") {
        let scheme = &lower[..scheme_end];
        if scheme != "http" && scheme != "https" {
            return Err(not_a_url("only http and https links are product pages"));
        }
        &link[scheme_end + 3..]
    } else if let Some(r) = link.strip_prefix("//") {
        r
    } else if lower.split_once(':').is_some_and(|(scheme, after)| {
        !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphabetic())
            && !after.starts_with(|c: char| c.is_ascii_digit())
    }) {
        return Err(not_a_url("only http and https links are product pages"));
    } else {
        link
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let after = &rest[authority_end..];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port
        .split_once(':')
        .map_or(host_port, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host_port
            }
        })
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(not_a_url("no host"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        || !host.contains('.')
        || host.starts_with('.')
        || host.contains("..")
    {
        return Err(not_a_url("the host is not a domain name"));
    }
    let (before_fragment, fragment) = after.split_once('#').unwrap_or((after, ""));
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let mut pairs = parse_query(query);
    if let Some((_, q)) = fragment.split_once('?') {
        pairs.extend(parse_query(q));
    }
    Ok(Url {
        host,
        path: percent_decode(path, false),
        query: pairs,
    })
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decode `%XX` escapes (and `+` as a space in a query); an invalid escape stays as written,
/// and bytes that do not make UTF-8 are replaced.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `host` is `domain` or one of its subdomains.
fn under(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.'))
}

const NAME_1688: &str = "1688";
const NAME_TAOBAO: &str = "Taobao";
const NAME_PDD: &str = "Pinduoduo";

fn route(url: &Url) -> Result<ProductRef, LinkError> {
    let h = url.host.as_str();
    // Share short links first: their hosts sit under the marketplaces' domains too.
    let short = |platform| {
        Err(LinkError::ShortLink {
            platform,
            host: url.host.clone(),
        })
    };
    if under(h, "tb.cn") {
        return short(NAME_TAOBAO);
    }
    if h == "qr.1688.com" {
        return short(NAME_1688);
    }
    if h == "p.pinduoduo.com" || h == "p.yangkeduo.com" {
        return short(NAME_PDD);
    }
    if under(h, "1688.com") {
        return alibaba(url);
    }
    if under(h, "taobao.com") || under(h, "tmall.com") || under(h, "tmall.hk") {
        return taobao(url);
    }
    if under(h, "yangkeduo.com") || under(h, "pinduoduo.com") {
        return pdd(url);
    }
    Err(LinkError::UnknownHost {
        host: url.host.clone(),
    })
}

fn no_id(platform: &'static str, url: &Url) -> LinkError {
    LinkError::NoProductId {
        platform,
        host: url.host.clone(),
        path: url.path.chars().take(80).collect(),
    }
}

/// The one value of a parameter the link gives (repeats must agree), or `None`.
fn one_param<'a>(
    url: &'a Url,
    key: &'a str,
    platform: &'static str,
) -> Result<Option<&'a str>, LinkError> {
    let mut values = url.params(key).map(str::trim).filter(|v| !v.is_empty());
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|v| v != first) {
        return Err(LinkError::MalformedId {
            platform,
            id: first.chars().take(64).collect(),
            reason: "the link names two different products",
        });
    }
    Ok(Some(first))
}

/// The id in a path segment of the form `<prefix><id><suffix>` (`/offer/<id>.html`).
fn path_id<'a>(path: &'a str, prefix: &str, suffixes: &[&str]) -> Option<&'a str> {
    let lower = path.to_ascii_lowercase();
    let at = lower.find(prefix)?;
    let rest = &path[at + prefix.len()..];
    let rest_lower = &lower[at + prefix.len()..];
    suffixes
        .iter()
        .filter_map(|s| rest_lower.find(s))
        .min()
        .map(|end| &rest[..end])
        .filter(|id| !id.contains('/'))
}

fn alibaba(url: &Url) -> Result<ProductRef, LinkError> {
    let p = Platform::Alibaba1688;
    if let Some(id) = path_id(&url.path, "/offer/", &[".html", ".htm"]) {
        return numeric(p, id, IdKind::OfferId);
    }
    for key in ["offerId", "offer_id", "productId"] {
        if let Some(id) = one_param(url, key, NAME_1688)? {
            return numeric(p, id, IdKind::OfferId);
        }
    }
    Err(no_id(NAME_1688, url))
}

fn taobao(url: &Url) -> Result<ProductRef, LinkError> {
    let p = Platform::Taobao;
    // `id` only: tracking parameters (`skuId`, `spm`, `scm`, `ali_trackid`) name no item.
    for key in ["id", "itemId", "item_id", "num_iid"] {
        let value = url
            .query
            .iter()
            .filter(|(k, _)| k == key || (key != "id" && k.eq_ignore_ascii_case(key)))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>();
        if let Some(first) = value.first() {
            if value.iter().any(|v| v != first) {
                return Err(LinkError::MalformedId {
                    platform: NAME_TAOBAO,
                    id: first.chars().take(64).collect(),
                    reason: "the link names two different products",
                });
            }
            return numeric(p, first, IdKind::ItemId);
        }
    }
    if let Some(id) = path_id(&url.path, "/item/", &[".htm"]) {
        return numeric(p, id, IdKind::ItemId);
    }
    // `a.m.taobao.com/i<id>.htm`: only digits after the `i` (`/item.htm` is not this form).
    if let Some(id) = path_id(&url.path, "/i", &[".htm"])
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    {
        return numeric(p, id, IdKind::ItemId);
    }
    Err(no_id(NAME_TAOBAO, url))
}

fn pdd(url: &Url) -> Result<ProductRef, LinkError> {
    if let Some(sign) = one_param(url, "goods_sign", NAME_PDD)? {
        return goods_sign(sign);
    }
    if let Some(id) = one_param(url, "goods_id", NAME_PDD)? {
        return numeric(Platform::Pinduoduo, id, IdKind::PddGoodsId);
    }
    Err(no_id(NAME_PDD, url))
}

fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Alibaba1688 => NAME_1688,
        Platform::Taobao => NAME_TAOBAO,
        Platform::Pinduoduo => NAME_PDD,
    }
}

/// A Long id: 1 to 19 digits, not starting with 0.
fn numeric(platform: Platform, id: &str, kind: IdKind) -> Result<ProductRef, LinkError> {
    let bad = |reason| LinkError::MalformedId {
        platform: platform_name(platform),
        id: id.chars().take(64).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("it is not a number"));
    }
    if id.len() > MAX_DIGITS || id.parse::<i64>().is_err() {
        return Err(bad("it has more digits than a product id has"));
    }
    if id.starts_with('0') {
        return Err(bad("it starts with 0"));
    }
    Ok(ProductRef {
        platform,
        id: id.to_owned(),
        kind,
    })
}

/// A `goods_sign`: 8 to 128 letters, digits, `_` or `-`, not all digits (that is a goods_id).
fn goods_sign(id: &str) -> Result<ProductRef, LinkError> {
    let bad = |reason| LinkError::MalformedId {
        platform: NAME_PDD,
        id: id.chars().take(64).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("a goods_sign has only letters, digits, _ and -"));
    }
    if !GOODS_SIGN_LEN.contains(&id.len()) {
        return Err(bad("a goods_sign has 8 to 128 characters"));
    }
    if id.bytes().all(|b| b.is_ascii_digit()) {
        return numeric(Platform::Pinduoduo, id, IdKind::PddGoodsId);
    }
    Ok(ProductRef {
        platform: Platform::Pinduoduo,
        id: id.to_owned(),
        kind: IdKind::PddGoodsSign,
    })
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(link: &str) -> (Platform, String, IdKind) {
        let r = parse_link(link).unwrap_or_else(|e| panic!("{link}: {e}"));
        (r.platform, r.id, r.kind)
    }

    fn err(link: &str) -> LinkError {
        parse_link(link).expect_err(link)
    }

    use IdKind::*;
    use Platform::*;

    #[test]
    fn reads_every_1688_form() {
        for link in [
            "https://detail.1688.com/offer/623718945102.html",
            "detail.1688.com/offer/623718945102.html",
            "http://detail.1688.com/offer/623718945102.html?spm=a26352.13672862.offerlist.5.1&cosite=-&tracelog=p4p",
            "  https://DETAIL.1688.COM/offer/623718945102.html#top \n",
            "https://m.1688.com/offer/623718945102.html?spm=a26g8.7664812.0.0",
            "https://detail.m.1688.com/page/index.html?offerId=623718945102&sortType=&pageId=",
            "https://detail.m.1688.com/page/index.html?offerid=623718945102",
            "//detail.1688.com/offer/623718945102.htm",
            "https://detail.1688.com:443/offer/623718945102.html",
            "https%3A%2F%2Fdetail.1688.com%2Foffer%2F623718945102.html",
        ] {
            assert_eq!(
                ok(link),
                (Alibaba1688, "623718945102".into(), OfferId),
                "{link}"
            );
        }
    }

    #[test]
    fn reads_every_taobao_and_tmall_form() {
        for link in [
            "https://item.taobao.com/item.htm?id=718204563391",
            "item.taobao.com/item.htm?id=718204563391",
            "https://item.taobao.com/item.htm?spm=a21n57.1.0.0.4b1c523c&id=718204563391&ns=1&abbucket=11",
            "https://item.taobao.com/item.htm?ali_refid=a3_430583_1006:1&ali_trackid=162_abc&id=718204563391&skuId=5102938475610",
            "https://detail.tmall.com/item.htm?id=718204563391&scm=1007.40986.276750.0&pvid=x",
            "HTTPS://DETAIL.TMALL.COM/item.htm?id=718204563391",
            "https://detail.m.tmall.com/item.htm?id=718204563391",
            "https://h5.m.taobao.com/awp/core/detail.htm?id=718204563391&ut_sk=1.x",
            "https://main.m.taobao.com/security-h5-detail/home?id=718204563391",
            "https://item.taobao.com/item.htm?id=%37%31%38%32%30%34%35%36%33%33%39%31",
            "https://chaoshi.detail.tmall.com/item.htm?id=718204563391",
            "https://detail.tmall.hk/hk/item.htm?id=718204563391",
            "https://world.taobao.com/item/718204563391.htm",
            "https://a.m.taobao.com/i718204563391.htm",
            "https://market.m.taobao.com/app/x/index.html#/detail?id=718204563391",
            "【淘宝】https://item.taobao.com/item.htm?id=718204563391 「Ceramic mug」 点击链接直接打开",
        ] {
            assert_eq!(ok(link), (Taobao, "718204563391".into(), ItemId), "{link}");
        }
    }

    #[test]
    fn reads_every_pinduoduo_form() {
        for link in [
            "https://mobile.yangkeduo.com/goods.html?goods_id=279384713802",
            "mobile.yangkeduo.com/goods.html?goods_id=279384713802",
            "https://mobile.yangkeduo.com/goods2.html?goods_id=279384713802&_oak_rcto=x&refer_page_name=index",
            "https://mobile.yangkeduo.com/goods1.html?_wvx=10&goods_id=279384713802",
            "https://yangkeduo.com/goods.html?goods_id=279384713802",
            "http://MOBILE.YANGKEDUO.COM/goods.html?goods_id=279384713802",
            "https://mobile.pinduoduo.com/goods.html?goods_id=279384713802",
        ] {
            let r = parse_link(link).unwrap();
            assert_eq!(
                (r.platform, r.id.as_str(), r.kind),
                (Pinduoduo, "279384713802", PddGoodsId),
                "{link}"
            );
            assert!(r.needs_resolving());
        }
        let sign = ok(
            "https://mobile.yangkeduo.com/duo_coupon_landing.html?goods_sign=Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B&pid=1_2",
        );
        assert_eq!(
            sign,
            (
                Pinduoduo,
                "Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B".into(),
                PddGoodsSign
            )
        );
    }

    #[test]
    fn each_refusal_says_why() {
        let cases: &[(&str, &str)] = &[
            ("", "not_a_url"),
            ("   ", "not_a_url"),
            ("ftp://detail.1688.com/offer/1.html", "not_a_url"),
            ("javascript:alert(1)", "not_a_url"),
            ("mug", "not_a_url"),
            ("https:///offer/1.html", "not_a_url"),
            ("https://exa mple.com/x", "not_a_url"),
            ("https://www.amazon.com/dp/B00X", "unknown_host"),
            (
                "https://evil1688.com/offer/623718945102.html",
                "unknown_host",
            ),
            (
                "https://detail.1688.com.evil.io/offer/623718945102.html",
                "unknown_host",
            ),
            ("https://m.tb.cn/h.5Xyz?tk=abc", "short_link"),
            ("https://qr.1688.com/s/abcd", "short_link"),
            ("https://p.pinduoduo.com/abcd", "short_link"),
            ("https://shop123.1688.com/", "no_product_id"),
            ("https://s.taobao.com/search?q=mug", "no_product_id"),
            (
                "https://item.taobao.com/item.htm?spm=x&skuId=5102938475610",
                "no_product_id",
            ),
            ("https://mobile.yangkeduo.com/goods.html", "no_product_id"),
            ("https://item.taobao.com/item.htm?id=", "no_product_id"),
            ("https://detail.1688.com/offer/12ab.html", "malformed_id"),
            ("https://item.taobao.com/item.htm?id=abc", "malformed_id"),
            ("https://item.taobao.com/item.htm?id=1&id=2", "malformed_id"),
            (
                "https://item.taobao.com/item.htm?id=99999999999999999999",
                "malformed_id",
            ),
            (
                "https://mobile.yangkeduo.com/goods.html?goods_id=-5",
                "malformed_id",
            ),
            (
                "https://mobile.yangkeduo.com/goods.html?goods_id=0123",
                "malformed_id",
            ),
        ];
        for (link, code) in cases {
            let e = err(link);
            assert_eq!(e.code(), *code, "{link}: {e}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            err("https://m.tb.cn/h.5Xyz").to_string(),
            "m.tb.cn is a Taobao short link, which only Taobao can expand: open it and paste the product page's full link"
        );
        assert!(
            err("https://item.taobao.com/item.htm?id=abc")
                .to_string()
                .contains("\"abc\" is malformed: it is not a number")
        );
    }

    #[test]
    fn validates_platform_and_id() {
        let r = from_platform_id("1688", " 623718945102 ").unwrap();
        assert_eq!((r.platform, r.kind), (Alibaba1688, OfferId));
        assert_eq!(
            from_platform_id("TAOBAO", "718204563391").unwrap().kind,
            ItemId
        );
        assert_eq!(
            from_platform_id("tmall", "718204563391").unwrap().platform,
            Taobao
        );
        assert_eq!(
            from_platform_id("pinduoduo", "279384713802").unwrap().kind,
            PddGoodsId
        );
        assert_eq!(
            from_platform_id("pinduoduo", "Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B")
                .unwrap()
                .kind,
            PddGoodsSign
        );
        for (platform, id, code) in [
            ("amazon", "1", "unknown_platform"),
            ("", "1", "unknown_platform"),
            ("1688", "", "malformed_id"),
            ("1688", "abc", "malformed_id"),
            ("taobao", "12 34", "malformed_id"),
            ("pinduoduo", "short", "malformed_id"),
            ("pinduoduo", "has space in it", "malformed_id"),
            ("pinduoduo", "", "malformed_id"),
        ] {
            assert_eq!(
                from_platform_id(platform, id).unwrap_err().code(),
                code,
                "{platform} {id}"
            );
        }
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        "[1-9][0-9]{5,15}"
    }

    fn tracking() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("spm".to_owned()),
                    Just("scm".to_owned()),
                    Just("ali_trackid".to_owned()),
                    Just("skuId".to_owned()),
                    Just("pvid".to_owned()),
                    "[a-z_]{1,8}".prop_filter("not an id key", |k| ![
                        "id",
                        "itemid",
                        "item_id",
                        "num_iid",
                        "offerid",
                        "offer_id",
                        "productid",
                        "goods_id",
                        "goods_sign"
                    ]
                    .contains(&k.as_str())),
                ],
                "[A-Za-z0-9._%-]{0,12}",
            ),
            0..5,
        )
    }

    fn query(id_key: &str, id: &str, extra: &[(String, String)], at: usize) -> String {
        let mut parts: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.insert(at.min(parts.len()), format!("{id_key}={id}"));
        parts.join("&")
    }

    fn dress(link: &str, scheme: usize, upper: bool, pad: bool) -> String {
        let (host, rest) = link.split_once('/').unwrap();
        let host = if upper {
            host.to_ascii_uppercase()
        } else {
            host.to_owned()
        };
        let scheme = ["", "http://", "https://", "//", "HTTPS://"][scheme % 5];
        let s = format!("{scheme}{host}/{rest}");
        if pad { format!(" \t{s}\n ") } else { s }
    }

    proptest! {
        #[test]
        fn any_dressing_of_a_link_gives_its_id(
            id in id_strategy(),
            extra in tracking(),
            at in 0usize..6,
            form in 0usize..7,
            scheme in 0usize..5,
            upper: bool,
            pad: bool,
        ) {
            let (link, platform, kind) = match form {
                0 => (format!("detail.1688.com/offer/{id}.html?{}", query("spm", "x", &extra, at)), Alibaba1688, OfferId),
                1 => (format!("detail.m.1688.com/page/index.html?{}", query("offerId", &id, &extra, at)), Alibaba1688, OfferId),
                2 => (format!("item.taobao.com/item.htm?{}", query("id", &id, &extra, at)), Taobao, ItemId),
                3 => (format!("detail.tmall.com/item.htm?{}", query("id", &id, &extra, at)), Taobao, ItemId),
                4 => (format!("h5.m.taobao.com/awp/core/detail.htm?{}", query("id", &id, &extra, at)), Taobao, ItemId),
                5 => (format!("mobile.yangkeduo.com/goods.html?{}", query("goods_id", &id, &extra, at)), Pinduoduo, PddGoodsId),
                _ => (format!("mobile.yangkeduo.com/goods2.html?{}", query("goods_id", &id, &extra, at)), Pinduoduo, PddGoodsId),
            };
            let dressed = dress(&link, scheme, upper, pad);
            let r = parse_link(&dressed).map_err(|e| TestCaseError::fail(format!("{dressed}: {e}")))?;
            prop_assert_eq!(r, ProductRef { platform, id, kind });
        }

        #[test]
        fn the_canonical_url_parses_back(id in id_strategy(), which in 0usize..3) {
            let platform = [Alibaba1688, Taobao, Pinduoduo][which];
            let r = from_platform_id(platform.as_str(), &id).unwrap();
            prop_assert_eq!(parse_link(&r.canonical_url()).unwrap(), r);
        }

        #[test]
        fn a_goods_sign_parses_back(sign in "[A-Za-z][A-Za-z0-9_-]{7,60}") {
            let r = from_platform_id("pinduoduo", &sign).unwrap();
            prop_assert_eq!(r.kind, PddGoodsSign);
            prop_assert_eq!(parse_link(&r.canonical_url()).unwrap(), r);
        }

        #[test]
        fn anything_else_is_refused_never_a_panic(input in "\\PC{0,80}") {
            if let Ok(r) = parse_link(&input) {
                prop_assert!(!r.id.is_empty());
            }
        }

        #[test]
        fn a_malformed_id_is_refused(id in "[0-9]{0,3}[a-z!$*]{1,4}[0-9]{0,3}", form in 0usize..3) {
            let link = match form {
                0 => format!("https://detail.1688.com/offer/{id}.html"),
                1 => format!("https://item.taobao.com/item.htm?id={id}"),
                _ => format!("https://mobile.yangkeduo.com/goods.html?goods_id={id}"),
            };
            prop_assert_eq!(parse_link(&link).unwrap_err().code(), "malformed_id");
        }
    }
}
