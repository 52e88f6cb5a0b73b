//! The contract harness: the vendors' documented samples (`tests/contracts/<vendor>/<api>.json`)
//! checked three ways against code we did not write them for.
//!
//! 1. **The adapter parses the documented response.** [`Recorder`] is a loopback HTTP server
//!    that answers every request with the fixture's `response`, verbatim, and records what the
//!    adapter sent.
//! 2. **The adapter sends the documented request.** [`request_mismatches`] holds the recorded
//!    parameters to the fixture's `request.params`: every parameter is documented (or one of the
//!    vendor's system parameters), every `required` one is present, and a parameter documented as
//!    a JSON object or array is sent as JSON of that nesting.
//! 3. **The sandbox answers in the documented shape.** [`shape_mismatches`] holds a sandbox
//!    answer to the fixture's `response`: every documented field is present with the documented
//!    JSON type, recursively (extra fields are allowed).
//!
//! A fixture file:
//! ```json
//! {
//!   "vendor": "1688", "api": "alibaba.trade.get.buyerView",
//!   "case": "500_2",               // optional: a documented error or variant answer; the file
//!                                  // is then `<api>.<case>.json`
//!   "sources": ["https://open.1688.com/api/apidocdetail.htm?id=…", "…"],
//!   "sample": "verbatim",          // or "per SDK" / "assembled": how `response` was obtained
//!   "notes": ["…"],                // optional: what was adapted and why
//!   "request": {"params": {…}, "required": ["webSite", "orderId"]},
//!   "response": {…}
//! }
//! ```
//! In `response`, `null` documents a field whose type the source does not give: it must be
//! present, of any type.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{Method, StatusCode, Uri},
    response::IntoResponse,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixture {
    pub(crate) vendor: String,
    pub(crate) api: String,
    #[serde(default)]
    pub(crate) case: Option<String>,
    pub(crate) sources: Vec<String>,
    pub(crate) sample: String,
    #[serde(default)]
    pub(crate) notes: Vec<String>,
    pub(crate) request: DocumentedRequest,
    pub(crate) response: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentedRequest {
    pub(crate) params: serde_json::Map<String, Value>,
    #[serde(default)]
    pub(crate) required: Vec<String>,
}

impl Fixture {
    /// The documented response as the vendor would send it.
    pub(crate) fn response_text(&self) -> String {
        self.response.to_string()
    }
}

pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contracts")
}

/// `fixture("1688/alibaba.trade.get.buyerView")`. The response text is kept byte for byte: the
/// adapters read amounts from the literal number text, so `6.15` must stay `6.15`.
pub(crate) fn fixture(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The fixture's response exactly as written in the file (numbers keep their digits).
pub(crate) fn response_literal(name: &str) -> String {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        response: &'a serde_json::value::RawValue,
    }
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let raw: Raw<'_> = serde_json::from_str(&text).expect("fixture");
    raw.response.get().to_owned()
}

/// Every fixture on disk, as `vendor/api` names.
pub(crate) fn all_fixture_names() -> Vec<String> {
    let mut names = Vec::new();
    for vendor in std::fs::read_dir(dir()).expect("tests/contracts") {
        let vendor = vendor.expect("entry").path();
        if !vendor.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&vendor).expect("vendor dir") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e == "json") {
                names.push(format!(
                    "{}/{}",
                    vendor.file_name().unwrap().to_string_lossy(),
                    f.file_stem().unwrap().to_string_lossy()
                ));
            }
        }
    }
    names.sort();
    names
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `actual` differs from the documented shape: a missing field, or a field of another
/// JSON type. Every element of an actual array must have the shape of the documented first
/// element; an actual array that is empty where the sample has elements shows nothing and is
/// reported too.
pub(crate) fn shape_mismatches(documented: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    shape_at("$", documented, actual, &mut out);
    out
}

fn shape_at(path: &str, doc: &Value, actual: &Value, out: &mut Vec<String>) {
    match (doc, actual) {
        (Value::Null, _) => {}
        (Value::Object(d), Value::Object(a)) => {
            for (k, dv) in d {
                match a.get(k) {
                    Some(av) => shape_at(&format!("{path}.{k}"), dv, av, out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if let Some(first) = d.first() {
                if a.is_empty() {
                    out.push(format!("{path}: empty, the sample has elements"));
                }
                for (i, av) in a.iter().enumerate() {
                    shape_at(&format!("{path}[{i}]"), first, av, out);
                }
            }
        }
        (d, a) if kind(d) == kind(a) => {}
        (d, a) => out.push(format!(
            "{path}: documented {} ({d}), found {} ({a})",
            kind(d),
            kind(a)
        )),
    }
}

/// Where a request the adapter sent differs from the documented parameters. `sent` holds the
/// parameters as they went on the wire (form, query or JSON body, all values as text);
/// `system` names the vendor's envelope parameters (signature, timestamp, key, token), which
/// the fixture does not list. A documented object or array parameter must be sent as JSON text
/// whose keys are documented, recursively, with the documented JSON types.
pub(crate) fn request_mismatches(
    fixture: &Fixture,
    sent: &BTreeMap<String, String>,
    system: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for name in &fixture.request.required {
        if !sent.contains_key(name) {
            out.push(format!("{name}: required, not sent"));
        }
    }
    for (name, value) in sent {
        if system.contains(&name.as_str()) {
            continue;
        }
        let Some(doc) = fixture.request.params.get(name) else {
            out.push(format!("{name}: sent, not documented"));
            continue;
        };
        match doc {
            Value::Object(_) | Value::Array(_) => match serde_json::from_str::<Value>(value) {
                Ok(v) => keys_at(name, doc, &v, &mut out),
                Err(e) => out.push(format!(
                    "{name}: documented as JSON {}, sent {value:?} ({e})",
                    kind(doc)
                )),
            },
            Value::Number(_) if value.parse::<f64>().is_err() => {
                out.push(format!("{name}: documented as a number, sent {value:?}"))
            }
            Value::Bool(_) if value != "true" && value != "false" => {
                out.push(format!("{name}: documented as a boolean, sent {value:?}"))
            }
            _ => {}
        }
    }
    out
}

/// Inside a JSON parameter: every sent key is documented and of the documented type.
fn keys_at(path: &str, doc: &Value, sent: &Value, out: &mut Vec<String>) {
    match (doc, sent) {
        (Value::Null, _) => {}
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get(k) {
                    Some(dv) => keys_at(&format!("{path}.{k}"), dv, sv, out),
                    None => out.push(format!("{path}.{k}: sent, not documented")),
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => {
            if let Some(first) = d.first() {
                for (i, sv) in s.iter().enumerate() {
                    keys_at(&format!("{path}[{i}]"), first, sv, out);
                }
            }
        }
        (d, s) if kind(d) == kind(s) => {}
        (d, s) => out.push(format!(
            "{path}: documented {} ({d}), sent {} ({s})",
            kind(d),
            kind(s)
        )),
    }
}

/// One request as the recorder received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Query and form parameters, merged (a JSON object body is flattened into it too, its
    /// values as JSON text unless they are strings).
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) body: String,
}

type Reply = Arc<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
struct RecorderState {
    seen: Arc<Mutex<Vec<Received>>>,
    reply: Reply,
}

/// A loopback stand-in for a vendor endpoint that answers from a fixture and records requests.
pub(crate) struct Recorder {
    pub(crate) base_url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Answer every request with HTTP 200 and `body`.
    pub(crate) async fn answering(body: String) -> Recorder {
        Recorder::start(move |_| (200, body.clone())).await
    }

    pub(crate) async fn start(
        reply: impl Fn(&Received) -> (u16, String) + Send + Sync + 'static,
    ) -> Recorder {
        // The adapters' HTTP clients need the process's TLS provider, even for plain HTTP.
        procure::system::install_crypto_provider();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = RecorderState {
            seen: seen.clone(),
            reply: Arc::new(reply),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("recorder");
        });
        Recorder {
            base_url,
            seen,
            task,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// The one request the adapter sent (panics on none or several).
    pub(crate) fn only(&self) -> Received {
        let seen = self.received();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen.into_iter().next().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(s.as_bytes()).into_owned()
}

async fn record(
    State(state): State<RecorderState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> impl IntoResponse {
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut params: BTreeMap<String, String> =
        uri.query().map(form_pairs).into_iter().flatten().collect();
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(map)) => {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(k, text);
            }
        }
        _ => params.extend(form_pairs(&body)),
    }
    let received = Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        params,
        body,
    };
    let (status, text) = (state.reply)(&received);
    state.seen.lock().unwrap().push(received);
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json;charset=UTF-8")],
        text,
    )
}
