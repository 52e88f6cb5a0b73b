//! Stripe-shaped PaymentIntents and refunds, with `Idempotency-Key` semantics and the signed
//! `payment_intent.succeeded` webhook.
//!
//! Idempotency follows Stripe: a key's result is saved once the endpoint has begun executing
//! (successes and execution errors such as `amount_too_large`); requests rejected before that
//! (authentication, parameter validation, injected `rate_limit` / `error` /
//! `account_restricted`, a concurrent duplicate) save nothing, so a retry runs afresh. A replay
//! carries `Idempotent-Replayed: true`.

use crate::{
    Sandbox, State,
    faults::{Platform, REQUEST_KINDS},
    util::{self, json_response, parse_form},
    webhook,
};
use axum::{
    body::Bytes,
    extract::{Path, State as AxState},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::Response,
};
use procure_domain::Currency;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Stripe's maximum charge amount (eight digits of minor units).
const MAX_AMOUNT: i64 = 99_999_999;
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Clone, Debug, Serialize)]
struct PaymentIntent {
    id: String,
    object: &'static str,
    amount: i64,
    amount_capturable: i64,
    amount_received: i64,
    currency: String,
    status: &'static str,
    client_secret: String,
    metadata: BTreeMap<String, String>,
    description: Option<String>,
    created: i64,
    canceled_at: Option<i64>,
    cancellation_reason: Option<String>,
    latest_charge: Option<String>,
    payment_method_types: Vec<String>,
    capture_method: &'static str,
    livemode: bool,
    #[serde(skip)]
    refunded: i64,
}

#[derive(Clone, Debug, Serialize)]
struct Refund {
    id: String,
    object: &'static str,
    amount: i64,
    currency: String,
    payment_intent: String,
    reason: Option<String>,
    metadata: BTreeMap<String, String>,
    status: &'static str,
    created: i64,
}

enum Idem {
    InFlight,
    Done {
        fingerprint: String,
        status: StatusCode,
        body: Value,
    },
}

#[derive(Default)]
pub(crate) struct StripeState {
    intents: HashMap<String, PaymentIntent>,
    refunds: HashMap<String, Refund>,
    idempotency: HashMap<String, Idem>,
}

/// A Stripe error answer. `saved` = the endpoint had begun executing (see module docs).
struct StripeError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    param: Option<String>,
    saved: bool,
}

impl StripeError {
    fn invalid(code: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        StripeError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param: param.map(str::to_owned),
            saved: false,
        }
    }

    fn missing(object: &str, id: &str) -> Self {
        let mut e = Self::invalid(
            "resource_missing",
            format!("No such {object}: '{}'", clip(id)),
            Some("id"),
        );
        e.status = StatusCode::NOT_FOUND;
        e
    }

    /// An error found while executing: saved under the idempotency key.
    fn executed(mut self) -> Self {
        self.saved = true;
        self
    }

    fn body(&self) -> Value {
        let mut e = json!({"type": self.kind, "code": self.code, "message": self.message});
        if let Some(p) = &self.param {
            e["param"] = json!(p);
        }
        json!({"error": e})
    }

    fn response(&self) -> Response {
        json_response(self.status, self.body())
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

type Form = Vec<(String, String)>;

/// Reject parameters this endpoint does not know (Stripe's `parameter_unknown`).
fn allow_only(form: &Form, allowed: &[&str], prefixes: &[&str]) -> Result<(), StripeError> {
    for (k, _) in form {
        let known = allowed.contains(&k.as_str())
            || prefixes
                .iter()
                .any(|p| k.starts_with(p) && k.ends_with(']') && k.len() > p.len() + 1);
        if !known {
            return Err(StripeError::invalid(
                "parameter_unknown",
                format!("Received unknown parameter: {}", clip(k)),
                Some(&clip(k)),
            ));
        }
    }
    let mut keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(StripeError::invalid(
            "parameter_invalid_string",
            format!("Parameter {} given more than once", clip(w[0])),
            Some(&clip(w[0])),
        ));
    }
    Ok(())
}

fn get<'a>(form: &'a Form, key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn metadata(form: &Form) -> Result<BTreeMap<String, String>, StripeError> {
    let mut m = BTreeMap::new();
    for (k, v) in form {
        if let Some(inner) = k
            .strip_prefix("metadata[")
            .and_then(|r| r.strip_suffix(']'))
        {
            if inner.is_empty() || inner.len() > 40 || v.chars().count() > 500 {
                return Err(StripeError::invalid(
                    "parameter_invalid_string",
                    "metadata keys must be 1..=40 characters and values at most 500",
                    Some("metadata"),
                ));
            }
            m.insert(inner.to_owned(), v.clone());
        }
    }
    if m.len() > 50 {
        return Err(StripeError::invalid(
            "parameter_invalid_string",
            "at most 50 metadata keys",
            Some("metadata"),
        ));
    }
    Ok(m)
}

fn amount_param(form: &Form, required: bool) -> Result<Option<i64>, StripeError> {
    match get(form, "amount") {
        None if required => Err(StripeError::invalid(
            "parameter_missing",
            "Missing required param: amount.",
            Some("amount"),
        )),
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(a) if (1..=MAX_AMOUNT).contains(&a) => Ok(Some(a)),
            Ok(a) if a > MAX_AMOUNT => Err(StripeError::invalid(
                "amount_too_large",
                format!("Amount must be no more than {MAX_AMOUNT}"),
                Some("amount"),
            )),
            _ => Err(StripeError::invalid(
                "parameter_invalid_integer",
                "Invalid positive integer: amount",
                Some("amount"),
            )),
        },
    }
}

fn authenticate(sb: &Sandbox, headers: &HeaderMap) -> Result<(), StripeError> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match key {
        Some(k) if procure_domain::signing::signatures_equal(k, &sb.config().stripe_api_key) => Ok(()),
        Some(_) => Err(StripeError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: "api_key_invalid",
            message: "Invalid API Key provided.".into(),
            param: None,
            saved: false,
        }),
        None => Err(StripeError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: "api_key_missing",
            message: "You did not provide an API key. Provide it as a Bearer token in the Authorization header."
                .into(),
            param: None,
            saved: false,
        }),
    }
}

/// Errors the injected faults produce before the endpoint begins executing.
fn fault_error(fired: &crate::faults::Fired) -> Option<StripeError> {
    let mk = |status, kind, code, message: &str| StripeError {
        status,
        kind,
        code,
        message: message.to_owned(),
        param: None,
        saved: false,
    };
    if fired.rate_limit {
        return Some(mk(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request_error",
            "rate_limit",
            "Too many requests hit the API too quickly.",
        ));
    }
    if fired.error {
        return Some(mk(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "api_error",
            "An unexpected error occurred (injected fault).",
        ));
    }
    if fired.account_restricted {
        // Sandbox choice: Stripe has no single public code for a restricted platform account.
        return Some(mk(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "account_restricted",
            "This account cannot currently make live charges.",
        ));
    }
    None
}

/// What a committed request asks to happen after the lock is released.
enum After {
    Nothing,
    Webhook(Vec<u8>, String),
}

type Exec = Box<dyn FnOnce(&mut State, i64) -> Result<(Value, After), StripeError> + Send>;

/// Removes an in-flight idempotency marker if the request is dropped before it completes
/// (e.g. the client hung up during an injected delay), so the key does not stay locked.
struct InFlightGuard {
    sb: Sandbox,
    key: Option<String>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.sb.with(|s| {
                if matches!(s.stripe.idempotency.get(&k), Some(Idem::InFlight)) {
                    s.stripe.idempotency.remove(&k);
                }
            });
        }
    }
}

/// The shared life of a Stripe POST: auth → parse → idempotency → faults → execute → answer.
async fn post_flow(
    sb: Sandbox,
    headers: HeaderMap,
    path: String,
    body: Bytes,
    validate: impl FnOnce(&Form) -> Result<Exec, StripeError>,
) -> Response {
    if let Err(e) = authenticate(&sb, &headers) {
        return e.response();
    }
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(m) => return StripeError::invalid("parameter_invalid_string", m, None).response(),
    };
    let exec = match validate(&form) {
        Ok(x) => x,
        Err(e) => return e.response(),
    };
    let key = match headers.get("idempotency-key").map(HeaderValue::to_str) {
        None => None,
        Some(Ok(k)) if util::valid_token(k, MAX_IDEMPOTENCY_KEY) => Some(k.to_owned()),
        Some(_) => {
            return StripeError::invalid(
                "idempotency_key_invalid",
                "Idempotency-Key must be 1..=255 printable characters",
                None,
            )
            .response();
        }
    };
    let fingerprint = {
        let mut sorted = form.clone();
        sorted.sort();
        let mut fp = format!("POST {path}");
        for (k, v) in sorted {
            fp.push_str(&format!("&{}={}", k.len(), k));
            fp.push_str(&format!("={}:{}", v.len(), v));
        }
        fp
    };
    let mut guard = InFlightGuard {
        sb: sb.clone(),
        key: None,
    };
    if let Some(k) = &key {
        let early = sb.with(|s| match s.stripe.idempotency.get(k) {
            Some(Idem::Done { fingerprint: f, status, body }) if *f == fingerprint => {
                let mut r = json_response(*status, body.clone());
                r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                Some(r)
            }
            Some(Idem::Done { .. }) | Some(Idem::InFlight) => {
                let in_flight = matches!(s.stripe.idempotency.get(k), Some(Idem::InFlight));
                let e = if in_flight {
                    StripeError {
                        status: StatusCode::CONFLICT,
                        kind: "idempotency_error",
                        code: "idempotency_key_in_use",
                        message: "There is currently another in-progress request using this Idempotency-Key. \
                                  Try again later."
                            .into(),
                        param: None,
                        saved: false,
                    }
                } else {
                    StripeError {
                        status: StatusCode::BAD_REQUEST,
                        kind: "idempotency_error",
                        code: "idempotency_key_reused",
                        message: "Keys for idempotent requests can only be used with the same parameters they \
                                  were first used with."
                            .into(),
                        param: None,
                        saved: false,
                    }
                };
                Some(e.response())
            }
            None => {
                s.stripe.idempotency.insert(k.clone(), Idem::InFlight);
                None
            }
        });
        if let Some(r) = early {
            return r;
        }
        guard.key = Some(k.clone());
    }

    let fired = sb.enter(Platform::Stripe, &path, REQUEST_KINDS).await;
    if let Some(e) = fault_error(&fired) {
        return e.response(); // the guard releases the key
    }

    let now_s = util::now_ms() / 1000;
    let (status, answer, after) = sb.with(|s| {
        let (status, answer, after, saved) = match exec(s, now_s) {
            Ok((v, after)) => (StatusCode::OK, v, after, true),
            Err(e) => (e.status, e.body(), After::Nothing, e.saved),
        };
        if let Some(k) = guard.key.take() {
            if saved {
                s.stripe.idempotency.insert(
                    k,
                    Idem::Done {
                        fingerprint,
                        status,
                        body: answer.clone(),
                    },
                );
            } else {
                s.stripe.idempotency.remove(&k);
            }
        }
        (status, answer, after)
    });
    if let After::Webhook(body, what) = after {
        webhook::dispatch(&sb, webhook::Target::Payments, body, what);
    }
    if let Some(d) = fired.timeout_after_commit {
        tracing::info!(path = %path, delay_ms = d.as_millis() as u64, "stripe answer held back after commit (fault)");
        sb.sleep(d).await;
    }
    json_response(status, answer)
}

pub(crate) async fn create(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post_flow(sb, headers, "/v1/payment_intents".into(), body, |form| {
        allow_only(
            form,
            &["amount", "currency", "description", "automatic_payment_methods[enabled]", "capture_method"],
            &["metadata[", "payment_method_types["],
        )?;
        let amount = amount_param(form, true)?.unwrap_or_default();
        let currency = get(form, "currency")
            .ok_or_else(|| StripeError::invalid("parameter_missing", "Missing required param: currency.", Some("currency")))?
            .to_ascii_lowercase();
        if currency.len() != 3 || currency.to_ascii_uppercase().parse::<Currency>().is_err() {
            return Err(StripeError::invalid(
                "parameter_invalid_string",
                format!("Invalid currency: {}", clip(&currency)),
                Some("currency"),
            ));
        }
        if get(form, "capture_method").is_some_and(|c| c != "automatic") {
            return Err(StripeError::invalid(
                "parameter_invalid_string",
                "The sandbox supports capture_method=automatic only",
                Some("capture_method"),
            ));
        }
        let description = get(form, "description").map(str::to_owned);
        if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            return Err(StripeError::invalid("parameter_invalid_string", "description too long", Some("description")));
        }
        let metadata = metadata(form)?;
        let mut types: Vec<String> = form
            .iter()
            .filter(|(k, _)| k.starts_with("payment_method_types["))
            .map(|(_, v)| v.clone())
            .collect();
        if types.is_empty() {
            types.push("card".into());
        }
        Ok(Box::new(move |s: &mut State, now_s: i64| {
            let id = loop {
                let id = util::random_id("pi_", 24);
                if !s.stripe.intents.contains_key(&id) {
                    break id;
                }
            };
            let pi = PaymentIntent {
                client_secret: format!("{id}_secret_{}", util::random_id("", 24)),
                id: id.clone(),
                object: "payment_intent",
                amount,
                amount_capturable: 0,
                amount_received: 0,
                currency,
                status: "requires_payment_method",
                metadata,
                description,
                created: now_s,
                canceled_at: None,
                cancellation_reason: None,
                latest_charge: None,
                payment_method_types: types,
                capture_method: "automatic",
                livemode: false,
                refunded: 0,
            };
            tracing::info!(payment_intent = %id, amount, currency = %pi.currency, "stripe payment intent created");
            let v = serde_json::to_value(&pi).unwrap_or(Value::Null);
            s.stripe.intents.insert(id, pi);
            Ok((v, After::Nothing))
        }) as Exec)
    })
    .await
}

pub(crate) async fn retrieve(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authenticate(&sb, &headers) {
        return e.response();
    }
    let fired = sb
        .enter(
            Platform::Stripe,
            &format!("/v1/payment_intents/{id}"),
            REQUEST_KINDS,
        )
        .await;
    if let Some(e) = fault_error(&fired) {
        return e.response();
    }
    let pi = sb.with(|s| s.stripe.intents.get(&id).cloned());
    match pi {
        Some(pi) => json_response(
            StatusCode::OK,
            serde_json::to_value(&pi).unwrap_or(Value::Null),
        ),
        None => StripeError::missing("payment_intent", &id).response(),
    }
}

pub(crate) async fn retrieve_refund(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authenticate(&sb, &headers) {
        return e.response();
    }
    let fired = sb
        .enter(
            Platform::Stripe,
            &format!("/v1/refunds/{id}"),
            REQUEST_KINDS,
        )
        .await;
    if let Some(e) = fault_error(&fired) {
        return e.response();
    }
    match sb.with(|s| s.stripe.refunds.get(&id).cloned()) {
        Some(r) => json_response(
            StatusCode::OK,
            serde_json::to_value(&r).unwrap_or(Value::Null),
        ),
        None => StripeError::missing("refund", &id).response(),
    }
}

fn unexpected_state(pi: &PaymentIntent, action: &str) -> StripeError {
    StripeError::invalid(
        "payment_intent_unexpected_state",
        format!(
            "You cannot {action} this PaymentIntent because it has a status of {}.",
            pi.status
        ),
        None,
    )
    .executed()
}

pub(crate) async fn confirm(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/confirm");
    post_flow(sb, headers, path, body, move |form| {
        allow_only(
            form,
            &["payment_method", "return_url", "receipt_email"],
            &[],
        )?;
        Ok(Box::new(move |s: &mut State, now_s: i64| {
            let pi = s
                .stripe
                .intents
                .get_mut(&id)
                .ok_or_else(|| StripeError::missing("payment_intent", &id))?;
            if !matches!(
                pi.status,
                "requires_payment_method" | "requires_confirmation"
            ) {
                return Err(unexpected_state(pi, "confirm"));
            }
            pi.status = "succeeded";
            pi.amount_received = pi.amount;
            pi.latest_charge = Some(util::random_id("ch_", 24));
            let pi = pi.clone();
            let reference = pi
                .metadata
                .get("order_id")
                .cloned()
                .unwrap_or_else(|| pi.id.clone());
            s.record(
                "charge",
                "stripe",
                &reference,
                &pi.id,
                pi.amount,
                &pi.currency.to_ascii_uppercase(),
            );
            let pi_json = serde_json::to_value(&pi).unwrap_or(Value::Null);
            let event_id = util::random_id("evt_", 24);
            let event = json!({
                "id": event_id,
                "object": "event",
                "api_version": "2024-06-20",
                "type": "payment_intent.succeeded",
                "created": now_s,
                "livemode": false,
                "pending_webhooks": 1,
                "data": {"object": pi_json},
            });
            let body = serde_json::to_vec(&event).unwrap_or_default();
            Ok((
                pi_json,
                After::Webhook(
                    body,
                    format!("{event_id} payment_intent.succeeded {}", pi.id),
                ),
            ))
        }) as Exec)
    })
    .await
}

pub(crate) async fn cancel(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/cancel");
    post_flow(sb, headers, path, body, move |form| {
        allow_only(form, &["cancellation_reason"], &[])?;
        let reason = get(form, "cancellation_reason").map(str::to_owned);
        if reason
            .as_deref()
            .is_some_and(|r| !matches!(r, "duplicate" | "fraudulent" | "requested_by_customer" | "abandoned"))
        {
            return Err(StripeError::invalid(
                "parameter_invalid_string",
                "cancellation_reason must be duplicate, fraudulent, requested_by_customer or abandoned",
                Some("cancellation_reason"),
            ));
        }
        Ok(Box::new(move |s: &mut State, now_s: i64| {
            let pi = s.stripe.intents.get_mut(&id).ok_or_else(|| StripeError::missing("payment_intent", &id))?;
            if !matches!(pi.status, "requires_payment_method" | "requires_confirmation" | "requires_action") {
                return Err(unexpected_state(pi, "cancel"));
            }
            pi.status = "canceled";
            pi.canceled_at = Some(now_s);
            pi.cancellation_reason = reason;
            tracing::info!(payment_intent = %pi.id, "stripe payment intent canceled");
            Ok((serde_json::to_value(&*pi).unwrap_or(Value::Null), After::Nothing))
        }) as Exec)
    })
    .await
}

pub(crate) async fn refund(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    post_flow(sb, headers, "/v1/refunds".into(), body, move |form| {
        allow_only(form, &["payment_intent", "amount", "reason"], &["metadata["])?;
        let pi_id = get(form, "payment_intent")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                StripeError::invalid("parameter_missing", "Missing required param: payment_intent.", Some("payment_intent"))
            })?
            .to_owned();
        let amount = amount_param(form, false)?;
        let reason = get(form, "reason").map(str::to_owned);
        if reason.as_deref().is_some_and(|r| !matches!(r, "duplicate" | "fraudulent" | "requested_by_customer")) {
            return Err(StripeError::invalid(
                "parameter_invalid_string",
                "reason must be duplicate, fraudulent or requested_by_customer",
                Some("reason"),
            ));
        }
        let metadata = metadata(form)?;
        Ok(Box::new(move |s: &mut State, now_s: i64| {
            let Some(pi) = s.stripe.intents.get_mut(&pi_id) else {
                let mut e = StripeError::missing("payment_intent", &pi_id);
                e.status = StatusCode::BAD_REQUEST;
                e.param = Some("payment_intent".into());
                return Err(e);
            };
            if pi.status != "succeeded" {
                return Err(StripeError::invalid(
                    "payment_intent_unexpected_state",
                    format!("This PaymentIntent has no successful charge to refund (status {}).", pi.status),
                    Some("payment_intent"),
                )
                .executed());
            }
            let remaining = pi.amount_received - pi.refunded;
            if remaining <= 0 {
                return Err(StripeError::invalid(
                    "charge_already_refunded",
                    format!("Charge for PaymentIntent {} has already been refunded.", pi.id),
                    None,
                )
                .executed());
            }
            let amount = amount.unwrap_or(remaining);
            if amount > remaining {
                return Err(StripeError::invalid(
                    "amount_too_large",
                    format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
                    Some("amount"),
                )
                .executed());
            }
            pi.refunded += amount;
            let currency = pi.currency.clone();
            let id = loop {
                let id = util::random_id("re_", 24);
                if !s.stripe.refunds.contains_key(&id) {
                    break id;
                }
            };
            let refund = Refund {
                id: id.clone(),
                object: "refund",
                amount,
                currency: currency.clone(),
                payment_intent: pi_id.clone(),
                reason,
                metadata,
                status: "succeeded",
                created: now_s,
            };
            let reference = idem_key.clone().unwrap_or_else(|| id.clone());
            s.record("refund", "stripe", &reference, &id, amount, &currency.to_ascii_uppercase());
            let v = serde_json::to_value(&refund).unwrap_or(Value::Null);
            s.stripe.refunds.insert(id, refund);
            Ok((v, After::Nothing))
        }) as Exec)
    })
    .await
}
