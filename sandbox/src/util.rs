//! Small helpers: form decoding, clocks and calendar formatting, identifiers, JSON answers.

use axum::{
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Decode `application/x-www-form-urlencoded` (body or query string) into ordered pairs.
/// Independent of the request's content type, so a missing header never turns into a 415.
pub(crate) fn parse_form(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let k = decode_component(k)?;
        if k.is_empty() {
            return Err("empty parameter name".into());
        }
        out.push((k, decode_component(v)?));
    }
    Ok(out)
}

fn decode_component(s: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or("truncated percent escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "invalid percent escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid percent escape")?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "parameter is not UTF-8".into())
}

/// Parse a JSON body; the error message is short and never echoes the body.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        let mut m = e.to_string();
        m.truncate(200);
        format!("invalid JSON body: {m}")
    })
}

pub(crate) use procure_domain::clock::now_ms;

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Strict `YYYY-MM-DD` check (a real calendar date).
pub(crate) fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !s
        .bytes()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let days = days_from_civil(i64::from(y), m, d);
    civil_from_days(days) == (i64::from(y), m, d)
}

/// RFC 3339 UTC timestamp of epoch milliseconds: `2024-05-17T10:30:00Z`.
pub(crate) fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date_string(days),
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// 1688's time format, China Standard Time: `20240517183000000+0800`.
pub(crate) fn aop_time(ms: i64) -> String {
    let local = ms + 8 * 3_600_000;
    let secs = local.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}{:03}+0800",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        local.rem_euclid(1000)
    )
}

/// `prefix` + `n` random alphanumeric characters (Stripe-style object ids).
pub(crate) fn random_id(prefix: &str, n: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + n);
    s.push_str(prefix);
    for _ in 0..n {
        s.push(fastrand::alphanumeric());
    }
    s
}

/// `n` random decimal digits, the first non-zero.
pub(crate) fn random_digits(n: usize) -> String {
    let mut s = String::with_capacity(n);
    s.push(fastrand::char('1'..='9'));
    for _ in 1..n {
        s.push(fastrand::char('0'..='9'));
    }
    s
}

/// Fen as a yuan decimal string: 4550 → "45.50".
pub(crate) fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A printable-ASCII identifier of bounded length (idempotency keys, external references).
pub(crate) fn valid_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=UTF-8"),
    );
    r
}

/// The sandbox's own error shape (control endpoints, carrier, unknown routes).
pub(crate) fn plain_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// A buyer access token of our app: the configured token itself, or one of the buyer accounts
/// authorised under it (`<token>-<account>`), so a pool of accounts can be exercised.
pub(crate) fn buyer_token_ok(given: Option<&str>, app_token: &str) -> bool {
    given.is_some_and(|t| {
        t == app_token
            || t.strip_prefix(app_token)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|acct| valid_token(acct, 64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let v = parse_form(b"a=1&b=x+y%2Fz&c=&d&&e=%E4%B8%AD").unwrap();
        assert_eq!(
            v,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y/z".into()),
                ("c".into(), "".into()),
                ("d".into(), "".into()),
                ("e".into(), "中".into()),
            ]
        );
        assert!(parse_form(b"a=%zz").is_err());
        assert!(parse_form(b"a=%4").is_err());
        assert!(parse_form(b"=1").is_err());
        assert!(parse_form(b"a=%FF").is_err());
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2023-02-29"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("2024-1-01"));
        assert!(!valid_date("+024-01-01"));
        assert_eq!(iso_utc(1_715_941_800_000), "2024-05-17T10:30:00Z");
        assert_eq!(aop_time(1_715_941_800_123), "20240517183000123+0800");
        assert_eq!(yuan(4550), "45.50");
        assert_eq!(yuan(5), "0.05");
    }
}
