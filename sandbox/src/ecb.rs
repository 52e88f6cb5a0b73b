//! ECB daily reference rates: `GET /stats/eurofxref/eurofxref-daily.xml` in the real document
//! shape, and `POST /_sandbox/fx` to replace the table.

use crate::{
    Sandbox,
    faults::{Platform, REQUEST_KINDS},
    util::{self, json_response, plain_error, xml_response},
};
use axum::{body::Bytes, extract::State as AxState, http::StatusCode, response::Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// The published table: its date and `currency → units per 1 EUR` as decimal strings.
#[derive(Clone, Debug)]
pub(crate) struct FxTable {
    date: String,
    rates: Vec<(String, String)>,
}

/// A representative ECB fixing (the 30 currencies the ECB publishes, in its order).
const DEMO_RATES: [(&str, &str); 30] = [
    ("USD", "1.0868"),
    ("JPY", "169.45"),
    ("BGN", "1.9558"),
    ("CZK", "24.731"),
    ("DKK", "7.4613"),
    ("GBP", "0.85560"),
    ("HUF", "387.95"),
    ("PLN", "4.2645"),
    ("RON", "4.9771"),
    ("SEK", "11.6110"),
    ("CHF", "0.9887"),
    ("ISK", "150.10"),
    ("NOK", "11.6210"),
    ("TRY", "34.9710"),
    ("AUD", "1.6262"),
    ("BRL", "5.5485"),
    ("CAD", "1.4793"),
    ("CNY", "7.8120"),
    ("HKD", "8.4851"),
    ("IDR", "17341.06"),
    ("ILS", "4.0186"),
    ("INR", "90.6175"),
    ("KRW", "1474.33"),
    ("MXN", "18.0410"),
    ("MYR", "5.1012"),
    ("NZD", "1.7779"),
    ("PHP", "63.302"),
    ("SGD", "1.4624"),
    ("THB", "39.498"),
    ("ZAR", "19.8117"),
];

impl FxTable {
    /// The demo table dated the last working day (Mon–Fri) on or before `now_ms` (UTC).
    pub(crate) fn demo(now_ms: i64) -> Self {
        let mut day = now_ms.div_euclid(86_400_000);
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        while (day + 3).rem_euclid(7) >= 5 {
            day -= 1;
        }
        FxTable {
            date: util::date_string(day),
            rates: DEMO_RATES
                .iter()
                .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
                .collect(),
        }
    }

    fn xml(&self) -> String {
        let mut s = String::with_capacity(2048);
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(
            "<gesmes:Envelope xmlns:gesmes=\"http://www.gesmes.org/xml/2002-08-01\" \
             xmlns=\"http://www.ecb.int/vocabulary/2002-08-01/eurofxref\">\n",
        );
        s.push_str("\t<gesmes:subject>Reference rates</gesmes:subject>\n");
        s.push_str("\t<gesmes:Sender>\n\t\t<gesmes:name>European Central Bank</gesmes:name>\n\t</gesmes:Sender>\n");
        s.push_str("\t<Cube>\n");
        s.push_str(&format!("\t\t<Cube time='{}'>\n", self.date));
        for (c, r) in &self.rates {
            s.push_str(&format!("\t\t\t<Cube currency='{c}' rate='{r}'/>\n"));
        }
        s.push_str("\t\t</Cube>\n\t</Cube>\n</gesmes:Envelope>\n");
        s
    }
}

pub(crate) async fn daily(AxState(sb): AxState<Sandbox>) -> Response {
    let fired = sb
        .enter(
            Platform::Ecb,
            "/stats/eurofxref/eurofxref-daily.xml",
            REQUEST_KINDS,
        )
        .await;
    if fired.rate_limit {
        return xml_response(StatusCode::TOO_MANY_REQUESTS, String::new());
    }
    if fired.error {
        return xml_response(StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    if fired.account_restricted {
        return xml_response(StatusCode::FORBIDDEN, String::new());
    }
    let xml = sb.with(|s| s.fx.xml());
    if let Some(d) = fired.timeout_after_commit {
        sb.sleep(d).await;
    }
    xml_response(StatusCode::OK, xml)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FxBody {
    date: String,
    rates: BTreeMap<String, String>,
}

/// `POST /_sandbox/fx` `{"date":"YYYY-MM-DD","rates":{"USD":"1.0868",…}}` replaces the table.
pub(crate) async fn set_fx(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let req: FxBody = match util::parse_json(&body) {
        Ok(b) => b,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    if !util::valid_date(&req.date) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "date must be YYYY-MM-DD",
        );
    }
    if req.rates.is_empty() || req.rates.len() > 100 {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "rates must hold 1..=100 currencies",
        );
    }
    for (c, r) in &req.rates {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) || c == "EUR" {
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "currencies must be upper-case ISO 4217 codes other than EUR",
            );
        }
        if !procure_domain::money::parse_rate_e6(r).is_ok_and(|v| v > 0) {
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("rate of {c} must be a positive decimal with at most 6 decimals"),
            );
        }
    }
    let n = req.rates.len();
    sb.with(|s| {
        s.fx = FxTable {
            date: req.date.clone(),
            rates: req.rates.into_iter().collect(),
        }
    });
    tracing::info!(date = %req.date, currencies = n, "ECB table replaced");
    json_response(StatusCode::OK, json!({"date": req.date, "currencies": n}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_dated_on_a_weekday() {
        // 2024-05-18 is a Saturday → Friday 2024-05-17.
        let sat = crate::util::days_from_civil(2024, 5, 18) * 86_400_000 + 3_600_000;
        assert_eq!(FxTable::demo(sat).date, "2024-05-17");
        let mon = crate::util::days_from_civil(2024, 5, 20) * 86_400_000;
        assert_eq!(FxTable::demo(mon).date, "2024-05-20");
        let x = FxTable::demo(mon).xml();
        assert!(x.contains("<Cube currency='CNY' rate='7.8120'/>"));
        assert!(x.contains("<Cube time='2024-05-20'>"));
    }
}
