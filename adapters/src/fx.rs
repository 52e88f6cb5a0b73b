//! ECB daily reference rates: fetch `eurofxref-daily.xml`, parse it with a small hand parser,
//! cache it for a configurable time, and lock cross rates through EUR (units per 1 EUR, exact
//! millionths, never floats) recording the ECB date they come from.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use procure_domain::{
    Currency, FxRate,
    money::{RATE_SCALE, parse_rate_e6},
};
use serde::{Deserialize, Serialize};

use super::http::{ApiError, BuildError, HttpClient, HttpConfig, join_url, retry_5xx_429};

/// What a locked rate names as its origin.
pub const ECB_SOURCE: &str = "ECB euro foreign exchange reference rates (eurofxref-daily)";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EcbConfig {
    /// `https://www.ecb.europa.eu` for the real feed.
    pub base_url: String,
    pub path: String,
    /// How long a fetched table is used before fetching again. ECB publishes once per working
    /// day around 16:00 CET.
    pub cache_ttl_s: u64,
    pub http: HttpConfig,
}

impl Default for EcbConfig {
    fn default() -> Self {
        EcbConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            path: "/stats/eurofxref/eurofxref-daily.xml".into(),
            cache_ttl_s: 3_600,
            http: HttpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FxError {
    #[error("fetching ECB rates: {0}")]
    Fetch(ApiError),
    #[error("unreadable ECB rates: {0}")]
    Parse(String),
    #[error("ECB table of {date} has no rate for {currency}")]
    MissingCurrency { currency: Currency, date: String },
}

impl FxError {
    pub fn is_retryable(&self) -> bool {
        match self {
            FxError::Fetch(e) => e.is_retryable(),
            // A half-published or garbled file is worth fetching again later.
            FxError::Parse(_) => true,
            FxError::MissingCurrency { .. } => false,
        }
    }
}

/// One ECB daily table: units of each currency per 1 EUR, in millionths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcbTable {
    /// `YYYY-MM-DD`, the ECB publication date.
    pub date: String,
    pub per_eur_e6: BTreeMap<Currency, u64>,
}

impl EcbTable {
    /// Units of `c` per 1 EUR in millionths; EUR is 1.
    pub fn per_eur_e6(&self, c: Currency) -> Result<u64, FxError> {
        if c == Currency::EUR {
            return Ok(RATE_SCALE);
        }
        self.per_eur_e6
            .get(&c)
            .copied()
            .ok_or_else(|| FxError::MissingCurrency {
                currency: c,
                date: self.date.clone(),
            })
    }

    /// 1 `from` = rate `to`, crossed through EUR.
    pub fn rate(&self, from: Currency, to: Currency) -> Result<FxRate, FxError> {
        if from == to {
            return Ok(FxRate::identity(from));
        }
        Ok(FxRate::cross_via_eur(
            from,
            self.per_eur_e6(from)?,
            to,
            self.per_eur_e6(to)?,
        ))
    }
}

/// A rate fixed for a quote (the API's port type); its `date` is the ECB publication date.
pub use procure_domain::ports::LockedRate;

/// Attributes of one tag body (`currency='USD' rate="1.0868"/`), either quote style.
fn attributes(tag: &str) -> Result<Vec<(&str, &str)>, FxError> {
    let mut out = Vec::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() && !rest.starts_with('/') {
        let eq = rest
            .find('=')
            .ok_or_else(|| FxError::Parse(format!("attribute without value in <Cube {tag}>")))?;
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"');
        let quote = quote.ok_or_else(|| FxError::Parse(format!("unquoted attribute {name}")))?;
        let close = after[1..]
            .find(quote)
            .ok_or_else(|| FxError::Parse(format!("unterminated attribute {name}")))?;
        out.push((name, &after[1..1 + close]));
        rest = after[close + 2..].trim_start();
    }
    Ok(out)
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Parse `eurofxref-daily.xml`: the first `<Cube time=…>` block and its `<Cube currency= rate=>`
/// rows. Currencies we do not trade in are skipped.
pub fn parse_eurofxref(xml: &str) -> Result<EcbTable, FxError> {
    let mut date: Option<String> = None;
    let mut rates = BTreeMap::new();
    let mut rest = xml;
    while let Some(pos) = rest.find("<Cube") {
        rest = &rest[pos + "<Cube".len()..];
        if !rest.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/') {
            continue; // another element whose name starts with "Cube"
        }
        let end = rest
            .find('>')
            .ok_or_else(|| FxError::Parse("unterminated <Cube".into()))?;
        let attrs = attributes(&rest[..end])?;
        rest = &rest[end + 1..];
        let get = |k: &str| attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        if let Some(time) = get("time") {
            if date.is_some() {
                break; // a history file: keep the first (newest) day only
            }
            if !is_iso_date(time) {
                return Err(FxError::Parse(format!("bad date {time:?}")));
            }
            date = Some(time.to_owned());
        }
        if let (Some(code), Some(rate)) = (get("currency"), get("rate")) {
            if date.is_none() {
                return Err(FxError::Parse("rate row before the date".into()));
            }
            let Ok(currency) = code.parse::<Currency>() else {
                continue;
            };
            let e6 = parse_rate_e6(rate).map_err(|e| FxError::Parse(format!("{code}: {e}")))?;
            if e6 == 0 {
                return Err(FxError::Parse(format!("{code}: zero rate")));
            }
            rates.insert(currency, e6);
        }
    }
    let date = date.ok_or_else(|| FxError::Parse("no <Cube time=…> in the document".into()))?;
    if rates.is_empty() {
        return Err(FxError::Parse(format!("no rates for {date}")));
    }
    Ok(EcbTable {
        date,
        per_eur_e6: rates,
    })
}

/// ECB client with a cached table. Cheap to clone; clones share the cache.
#[derive(Clone, Debug)]
pub struct EcbFx {
    cfg: EcbConfig,
    http: HttpClient,
    cache: Arc<tokio::sync::Mutex<Option<(Instant, EcbTable)>>>,
}

impl EcbFx {
    pub fn new(cfg: EcbConfig) -> Result<Self, BuildError> {
        let http = HttpClient::new("ecb", &cfg.http, vec![])?;
        Ok(EcbFx {
            cfg,
            http,
            cache: Arc::default(),
        })
    }

    /// The current table: cached, or fetched when the cache is older than the TTL. Concurrent
    /// callers wait for one fetch rather than each making their own.
    pub async fn table(&self) -> Result<EcbTable, FxError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, table)) = cache.as_ref()
            && at.elapsed() < Duration::from_secs(self.cfg.cache_ttl_s)
        {
            return Ok(table.clone());
        }
        let url = join_url(&self.cfg.base_url, &self.cfg.path);
        let resp = self
            .http
            .execute("eurofxref-daily", |c| c.get(&url), retry_5xx_429)
            .await
            .map_err(|t| FxError::Fetch(ApiError::from_transport(t)))?;
        if !resp.is_success() {
            return Err(FxError::Fetch(ApiError::from_status(
                &resp,
                format!("http_{}", resp.status),
                resp.snippet(),
            )));
        }
        let table = parse_eurofxref(&resp.body)?;
        tracing::info!(date = %table.date, currencies = table.per_eur_e6.len(), "ECB rates loaded");
        *cache = Some((Instant::now(), table.clone()));
        Ok(table)
    }

    /// Lock the rate 1 `from` = ? `to` from the current ECB table.
    pub async fn locked_rate(&self, from: Currency, to: Currency) -> Result<LockedRate, FxError> {
        let table = self.table().await?;
        Ok(LockedRate {
            rate: table.rate(from, to)?,
            date: table.date,
            source: ECB_SOURCE.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Reply};
    use procure_domain::Money;

    const DAILY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender>
		<gesmes:name>European Central Bank</gesmes:name>
	</gesmes:Sender>
	<Cube>
		<Cube time='2025-03-14'>
			<Cube currency='USD' rate='1.0868'/>
			<Cube currency='JPY' rate='162.47'/>
			<Cube currency='IDR' rate='17822.51'/>
			<Cube rate="7.8120" currency="CNY" />
		</Cube>
	</Cube>
</gesmes:Envelope>"#;

    #[test]
    fn parses_the_daily_document() {
        let t = parse_eurofxref(DAILY).unwrap();
        assert_eq!(t.date, "2025-03-14");
        assert_eq!(t.per_eur_e6(Currency::USD), Ok(1_086_800));
        assert_eq!(
            t.per_eur_e6(Currency::CNY),
            Ok(7_812_000),
            "double quotes and any attribute order"
        );
        assert_eq!(t.per_eur_e6(Currency::EUR), Ok(RATE_SCALE));
        assert_eq!(t.per_eur_e6.len(), 3, "IDR is not a currency we trade in");
    }

    #[test]
    fn crosses_through_eur() {
        let t = parse_eurofxref(DAILY).unwrap();
        let r = t.rate(Currency::CNY, Currency::USD).unwrap();
        assert_eq!(
            Money::new(10_000, Currency::CNY).convert(&r).unwrap(),
            Money::new(1391, Currency::USD)
        );
        let eur = t.rate(Currency::EUR, Currency::CNY).unwrap();
        assert_eq!(
            Money::new(100, Currency::EUR).convert(&eur).unwrap(),
            Money::new(781, Currency::CNY)
        );
        assert_eq!(
            t.rate(Currency::USD, Currency::USD).unwrap(),
            FxRate::identity(Currency::USD)
        );
        assert_eq!(
            t.rate(Currency::CNY, Currency::GBP),
            Err(FxError::MissingCurrency {
                currency: Currency::GBP,
                date: "2025-03-14".into()
            })
        );
        assert_eq!(
            FxError::MissingCurrency {
                currency: Currency::GBP,
                date: "2025-03-14".into()
            }
            .to_string(),
            "ECB table of 2025-03-14 has no rate for GBP"
        );
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(matches!(
            parse_eurofxref("<html>maintenance</html>"),
            Err(FxError::Parse(_))
        ));
        assert!(matches!(
            parse_eurofxref("<Cube time='2025-03-14'></Cube>"),
            Err(FxError::Parse(_))
        ));
        assert!(
            parse_eurofxref("<Cube time='14.03.2025'><Cube currency='USD' rate='1'/></Cube>")
                .is_err()
        );
        assert!(
            parse_eurofxref("<Cube time='2025-03-14'><Cube currency='USD' rate='1,08'/></Cube>")
                .is_err()
        );
        assert!(
            parse_eurofxref("<Cube time='2025-03-14'><Cube currency='USD' rate='1.08/></Cube>")
                .is_err()
        );
        assert!(
            parse_eurofxref("<Cube time='2025-03-14'><Cube currency='USD' rate='0'/></Cube>")
                .is_err()
        );
    }

    #[test]
    fn keeps_only_the_newest_day_of_a_history_file() {
        let hist = "<Cube><Cube time='2025-03-14'><Cube currency='USD' rate='1.1'/></Cube>\
                    <Cube time='2025-03-13'><Cube currency='USD' rate='1.2'/><Cube currency='CNY' rate='7.9'/></Cube></Cube>";
        let t = parse_eurofxref(hist).unwrap();
        assert_eq!((t.date.as_str(), t.per_eur_e6.len()), ("2025-03-14", 1));
        assert_eq!(t.per_eur_e6(Currency::USD), Ok(1_100_000));
    }

    async fn fx(server: &MockServer, ttl_s: u64) -> EcbFx {
        EcbFx::new(EcbConfig {
            base_url: server.base_url(),
            cache_ttl_s: ttl_s,
            ..EcbConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn caches_for_the_ttl() {
        let server = MockServer::start(|_| Reply::xml(DAILY)).await;
        let cached = fx(&server, 3_600).await;
        let l = cached
            .locked_rate(Currency::CNY, Currency::USD)
            .await
            .unwrap();
        assert_eq!(
            (l.date.as_str(), l.source.as_str()),
            ("2025-03-14", ECB_SOURCE)
        );
        cached
            .locked_rate(Currency::CNY, Currency::JPY)
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 1);
        assert_eq!(
            server.requests()[0].path(),
            "/stats/eurofxref/eurofxref-daily.xml"
        );
        let uncached = fx(&server, 0).await;
        uncached.table().await.unwrap();
        uncached.table().await.unwrap();
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_retryable() {
        let server = MockServer::start(|_| Reply::json(503, "")).await;
        let err = fx(&server, 3_600).await.table().await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}
