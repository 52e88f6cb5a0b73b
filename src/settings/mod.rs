//! The one settings tree of every `procure` process, read once at start and passed down as
//! typed values (no library reads the environment). Layers, each overriding the one before:
//!
//! 1. the defaults below (the sandbox on loopback, the demo warehouse, the demo tariff);
//! 2. an optional TOML file, its path from `--config` or `PROCURE_CONFIG`
//!    (`procure.example.toml` names every key with its default);
//! 3. `PROCURE_…` environment variables: a key path in capitals with `__` between its parts
//!    (`PROCURE_ALIBABA__BASE_URL` is `alibaba.base_url`), or one of the older names in
//!    [`ALIASES`] (`PROCURE_1688_URL`), which a nested name overrides;
//! 4. command-line flags.
//!
//! How Temporal is reached starts from the Temporal SDK's own client configuration
//! (`TEMPORAL_ADDRESS`, `TEMPORAL_TLS_…`, `temporal.toml` profiles), which the `temporal.*`
//! keys override (`temporal.rs`).
//!
//! Secrets (credentials, signing and encryption keys, webhook secrets) come only from the
//! environment: the variable itself, or `…_FILE` naming a file that holds it (trimmed). A
//! secret in the TOML file is refused. They are [`Secret`]s, so they never print.
//!
//! Closed by default: [`Settings::deployment`] refuses to start a process whose secrets are
//! missing, or a worker that would have sellers ship to the demo warehouse, naming each key and
//! its variable. Only with `development = true` (`procure dev`, the in-process test systems,
//! or `PROCURE_DEVELOPMENT=true`) do the public development keys and the demo warehouse fill in.

use crate::components::{
    ApiTuning, Database, Deployment, EmailChannel, External, Keys, TemporalTarget, Warehouse,
};
use anyhow::{Context, bail};
use figment::{
    Figment, Profile, Provider,
    providers::{Format, Serialized, Toml},
    value::{Dict, Value},
};
use procure_activities::order::demo_warehouse;
use procure_adapters::{
    AlibabaConfig, CarrierConfig, DeliveryAddress, EcbConfig, HttpConfig, PaymentsConfig,
    PddConfig, SmtpConfig, SmtpTls, TaobaoConfig, TrackingConfig,
};
use procure_api::{OrderTimings, auth::TokenKey};
use procure_domain::{
    Secret,
    quote::{DutyRule, GuaranteeFee, Insurance, ServiceFee},
    shipping::ShippingLine,
};
use procure_domain::{
    seal::Sealer,
    tariff::{Destination, Pricing},
};
use procure_temporal::EncryptionCodec;
use serde::{Deserialize, Deserializer, Serialize};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

mod keys;
mod sources;
mod tariff;
mod temporal;

pub use keys::*;
pub use sources::*;
pub use tariff::*;
pub use temporal::*;

/// The sandbox on loopback: where every vendor is unless configured otherwise.
const SANDBOX_URL: &str = "http://127.0.0.1:8790";

/// The demo tariff, shipped as `config/tariff.toml` and built in.
pub const DEMO_TARIFF: &str = include_str!("../../config/tariff.toml");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Sandbox setups only: a missing secret falls back to its public development value and
    /// the demo warehouse is accepted. `procure dev` turns it on by itself.
    pub development: bool,
    /// Base URL of every external system whose own `base_url` is not set.
    pub external_url: String,
    pub database: DatabaseSettings,
    pub temporal: TemporalSettings,
    pub api: ApiSettings,
    pub outbox: OutboxSettings,
    pub webhooks: WebhookSettings,
    pub email: EmailSettings,
    pub products: ProductSettings,
    pub worker: WorkerTuningSettings,
    pub metrics: MetricsSettings,
    pub keys: KeySettings,
    pub timings: TimingSettings,
    pub monitors: MonitorSettings,
    pub alibaba: MarketplaceSettings,
    pub taobao: MarketplaceSettings,
    pub pinduoduo: PinduoduoSettings,
    pub payments: PaymentsSettings,
    pub tracking: TrackingSettings,
    pub carrier: CarrierSettings,
    pub fx: FxSettings,
    pub warehouse: WarehouseSettings,
    pub tariff: TariffSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Pooled connections per process, by backend.
    pub sqlite_max_connections: u32,
    pub postgres_max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemporalSettings {
    /// `host:port` or a URL; unset: the Temporal client configuration's (`TEMPORAL_ADDRESS`,
    /// the `temporal.toml` profile), else 127.0.0.1:7233.
    pub address: Option<String>,
    /// Unset: the Temporal client configuration's (`TEMPORAL_NAMESPACE`, the profile), else
    /// `default`.
    pub namespace: Option<String>,
    pub task_queue: String,
    /// Origins of the Temporal Web UI allowed to call the codec endpoint (a list, or one
    /// comma-separated string).
    #[serde(deserialize_with = "list")]
    pub ui_origins: Vec<String>,
    /// Secret: an API key, sent as `Authorization: Bearer …` (Temporal Cloud).
    pub api_key: Option<Secret>,
    pub tls: TemporalTlsSettings,
    /// The Temporal SDK's own client configuration, read by [`Settings::load`]; the keys
    /// above override it.
    #[serde(skip)]
    pub client_config: TemporalClientConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiSettings {
    /// Where `procure api` listens.
    pub listen: String,
    /// Copy the sandbox's demo catalogue into the listings at start (demo setups only).
    pub seed_sandbox_catalogue: bool,
    /// How long a quote can be ordered.
    pub quote_ttl_s: u64,
    /// Default price tolerance over the quoted unit price before the customer is asked.
    pub price_tolerance_bps: u32,
    /// Secret: the bearer-token signing key, at least 32 bytes.
    pub jwt_secret: Option<Secret>,
}

/// Imported products (README, "Products"): how fresh a stored product must be to be quoted,
/// the in-process cache of product reads, and how many imports ask the marketplaces at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductSettings {
    pub freshness_s: u64,
    pub cache_ttl_s: u64,
    pub cache_entries: u64,
    pub max_concurrent_imports: u32,
    /// The cache level shared between API replicas: `redis://host:port/db`, or `rediss://…`
    /// over TLS; unset, each replica has its in-process level only.
    pub redis_url: Option<String>,
    /// PEM file: the certificate authorities a `rediss://` server is verified against (a
    /// private CA); unset, the system's roots.
    #[serde(default)]
    pub redis_ca_cert: Option<std::path::PathBuf>,
    /// Put before every key the shared level writes, so several systems can share one Redis.
    pub redis_prefix: String,
    /// Secret: the Redis password (AUTH), when it asks for one.
    pub redis_password: Option<Secret>,
}

impl ProductSettings {
    /// The shared cache level, when `redis_url` names one; a URL procure cannot use is refused
    /// with the reason.
    fn shared_cache(
        &self,
        password: Option<Secret>,
    ) -> anyhow::Result<Option<procure_api::cache::shared::SharedConfig>> {
        let Some(url) = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        if let Some(problem) = procure_api::cache::shared::url_problem(url) {
            bail!("products.redis_url is not usable: {problem}");
        }
        if self.redis_prefix.len() > 64 || self.redis_prefix.chars().any(char::is_whitespace) {
            bail!("products.redis_prefix: at most 64 characters, no spaces");
        }
        let ca_cert_pem = match &self.redis_ca_cert {
            None => None,
            Some(path) => {
                if !procure_api::cache::shared::is_tls(url) {
                    bail!("products.redis_ca_cert is set, but products.redis_url is not rediss://");
                }
                let pem = std::fs::read(path).with_context(|| {
                    format!("products.redis_ca_cert: reading {}", path.display())
                })?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    bail!(
                        "products.redis_ca_cert: {} holds no PEM certificate",
                        path.display()
                    );
                }
                Some(pem)
            }
        };
        Ok(Some(procure_api::cache::shared::SharedConfig {
            url: url.to_owned(),
            ca_cert_pem,
            password,
            prefix: self.redis_prefix.clone(),
            ttl: Duration::from_secs(self.cache_ttl_s.max(1)),
        }))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxSettings {
    /// Deliveries of one row before a transient failure makes it dead (1 to 100000).
    pub max_attempts: u32,
}

/// Delivery of the event log to subscribers' webhook endpoints (README, "Events and
/// webhooks"): the API process delivers. The defaults are production's; tests shorten them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// How often new events and due retries are looked for.
    pub poll_interval_ms: u64,
    /// One request to an endpoint, at most (the specification recommends 15 to 30 s).
    pub request_timeout_ms: u64,
    /// The wait after a delivery's first failure; it doubles per failure up to
    /// `max_retry_interval_ms`, with ±20 % jitter.
    pub first_retry_ms: u64,
    pub max_retry_interval_ms: u64,
    /// How long a delivery is retried from its first failure (3 days), then given up.
    pub retry_for_s: u64,
    /// An endpoint with no successful delivery for this long is disabled with the reason.
    pub disable_after_s: u64,
    /// Requests in flight per endpoint and API process.
    pub concurrency_per_endpoint: u32,
    /// Attempts (and delivered deliveries) are kept this long.
    pub keep_attempts_days: u64,
    /// Endpoints may be on loopback or private networks. Always on in development (tests
    /// receive on loopback); off in production against server-side request forgery.
    pub allow_internal_targets: bool,
}

impl WebhookSettings {
    /// The delivery's configuration, or an error naming the key that is out of range.
    fn checked(
        &self,
        development: bool,
    ) -> anyhow::Result<procure_api::webhook_delivery::DeliveryConfig> {
        let range = |value: u64, min: u64, max: u64, key: &str| {
            anyhow::ensure!(
                (min..=max).contains(&value),
                "webhooks.{key} (PROCURE_WEBHOOKS__{}) must be a whole number from {min} to {max}, not {value}",
                key.to_ascii_uppercase()
            );
            Ok(value)
        };
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        Ok(procure_api::webhook_delivery::DeliveryConfig {
            poll_interval: ms(range(
                self.poll_interval_ms,
                10,
                60_000,
                "poll_interval_ms",
            )?),
            request_timeout: ms(range(
                self.request_timeout_ms,
                100,
                120_000,
                "request_timeout_ms",
            )?),
            first_retry: ms(range(self.first_retry_ms, 1, 86_400_000, "first_retry_ms")?),
            max_retry_interval: ms(range(
                self.max_retry_interval_ms,
                self.first_retry_ms.max(1),
                7 * 86_400_000,
                "max_retry_interval_ms",
            )?),
            retry_for: s(range(self.retry_for_s, 1, 30 * 86_400, "retry_for_s")?),
            disable_after: s(range(
                self.disable_after_s,
                1,
                90 * 86_400,
                "disable_after_s",
            )?),
            concurrency_per_endpoint: range(
                u64::from(self.concurrency_per_endpoint),
                1,
                256,
                "concurrency_per_endpoint",
            )? as usize,
            keep_attempts: s(
                range(self.keep_attempts_days, 1, 3_650, "keep_attempts_days")? * DAY_S,
            ),
            allow_internal_targets: self.allow_internal_targets || development,
        })
    }
}

/// The optional email channel (README, "Events and webhooks", "Email"): customer
/// notifications by SMTP, sent by the API process. Off while `smtp_url` is unset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailSettings {
    /// `smtp://host[:port]` (or `smtps://`); unset: no emails.
    pub smtp_url: Option<String>,
    /// The sender: `procure@shop.example` or `Shop <procure@shop.example>`; needed with
    /// `smtp_url`.
    pub from: Option<String>,
    pub smtp_username: Option<String>,
    /// Secret: the password of `smtp_username` (needed with it, outside development).
    pub smtp_password: Option<Secret>,
    /// `none` (a relay on loopback only), `starttls` (required) or `tls` (implicit, SMTPS).
    pub tls: String,
    /// The storefront's link to an order, `{order_id}` replaced; unset: the ids only.
    pub action_url_base: Option<String>,
    /// Attempts of one message before it is given up and listed as failed.
    pub max_attempts: u32,
    /// The wait after a message's first failure, doubling up to `max_retry_interval_ms`.
    pub first_retry_ms: u64,
    pub max_retry_interval_ms: u64,
    /// How often new events and due retries are looked for.
    pub poll_interval_ms: u64,
    /// One message, connecting to the server's answer after it.
    pub send_timeout_ms: u64,
}

impl Default for EmailSettings {
    fn default() -> Self {
        let e = procure_api::email_delivery::EmailConfig::default();
        EmailSettings {
            smtp_url: None,
            from: None,
            smtp_username: None,
            smtp_password: None,
            tls: "starttls".into(),
            action_url_base: None,
            max_attempts: e.max_attempts,
            first_retry_ms: e.first_retry.as_millis() as u64,
            max_retry_interval_ms: e.max_retry_interval.as_millis() as u64,
            poll_interval_ms: e.poll_interval.as_millis() as u64,
            send_timeout_ms: e.send_timeout.as_millis() as u64,
        }
    }
}

impl EmailSettings {
    /// The channel, `None` when off, or an error naming the key that is wrong.
    fn checked(&self, password: Option<Secret>) -> anyhow::Result<Option<EmailChannel>> {
        let Some(url) = self
            .smtp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let range = |value: u64, min: u64, max: u64, key: &str| {
            anyhow::ensure!(
                (min..=max).contains(&value),
                "email.{key} (PROCURE_EMAIL__{}) must be a whole number from {min} to {max}, not {value}",
                key.to_ascii_uppercase()
            );
            Ok(value)
        };
        let from = self
            .from
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .context(
                "email.from (PROCURE_EMAIL__FROM) must name the sender when email.smtp_url is set",
            )?;
        let tls = match self.tls.trim() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            other => {
                bail!("email.tls (PROCURE_EMAIL__TLS) must be none, starttls or tls, not {other:?}")
            }
        };
        let action_url_base = self
            .action_url_base
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| {
                let host = b
                    .strip_prefix("https://")
                    .or_else(|| b.strip_prefix("http://"))
                    .and_then(|rest| rest.split('/').next())
                    .unwrap_or_default();
                match host {
                    h if !h.is_empty() && !h.contains('{') => Ok(b.to_owned()),
                    _ => Err(anyhow::anyhow!(
                        "email.action_url_base (PROCURE_EMAIL__ACTION_URL_BASE) must be an http(s) URL,                          such as https://shop.example/orders/{{order_id}}"
                    )),
                }
            })
            .transpose()?;
        let ms = Duration::from_millis;
        let send_timeout = ms(range(
            self.send_timeout_ms,
            100,
            600_000,
            "send_timeout_ms",
        )?);
        let smtp = SmtpConfig {
            url: url.to_owned(),
            from: from.to_owned(),
            username: self.smtp_username.clone().filter(|u| !u.is_empty()),
            password,
            tls,
            timeout: send_timeout,
        };
        // The sender and the URL parse as the mailer will read them.
        let mailer =
            procure_adapters::SmtpMailer::new(&smtp).map_err(|e| anyhow::anyhow!("{e}"))?;
        drop(mailer);
        let message_id_domain = from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').to_owned())
            .unwrap_or_else(|| "procure.invalid".into());
        Ok(Some(EmailChannel {
            smtp,
            delivery: procure_api::email_delivery::EmailConfig {
                poll_interval: ms(range(
                    self.poll_interval_ms,
                    10,
                    60_000,
                    "poll_interval_ms",
                )?),
                send_timeout,
                first_retry: ms(range(self.first_retry_ms, 1, 86_400_000, "first_retry_ms")?),
                max_retry_interval: ms(range(
                    self.max_retry_interval_ms,
                    self.first_retry_ms.max(1),
                    7 * 86_400_000,
                    "max_retry_interval_ms",
                )?),
                max_attempts: range(u64::from(self.max_attempts), 1, 100, "max_attempts")? as u32,
                action_url_base,
                message_id_domain,
                ..Default::default()
            },
        }))
    }
}

/// The metrics port of `procure api` and `procure worker` (docs/observability.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSettings {
    /// `host:port` serving `/metrics`, `/health/live` and `/health/ready`; unset: none.
    pub listen: Option<String>,
}

impl MetricsSettings {
    /// The parsed address, or an error naming the setting.
    pub fn addr(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        self.listen
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse().with_context(|| {
                    format!(
                        "metrics.listen (PROCURE_METRICS__LISTEN or PROCURE_METRICS_ADDR): {l:?} is not host:port"
                    )
                })
            })
            .transpose()
    }
}

/// How one `procure worker` takes work (docs/production.md, "Worker tuning").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerTuningSettings {
    /// Workflows kept in memory between their tasks (the sticky cache).
    pub max_cached_workflows: usize,
    /// Workflow tasks, activities and local activities run at once.
    pub max_concurrent_workflow_tasks: usize,
    pub max_concurrent_activities: usize,
    pub max_concurrent_local_activities: usize,
    /// Concurrent long polls for workflow tasks (at least 2 with a sticky cache) and activity
    /// tasks.
    pub workflow_task_pollers: usize,
    pub activity_task_pollers: usize,
    /// Activities per second the server dispatches on the task queue, for every worker on it;
    /// 0: unlimited.
    pub task_queue_activities_per_second: f64,
    /// After SIGTERM or Ctrl-C: seconds running activities may take to finish before they are
    /// cancelled.
    pub graceful_shutdown_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeySettings {
    /// Secret: keys sealing data at rest (buyer-account credentials), `kid:hex32,…`; the
    /// first seals, every one opens.
    pub data: Option<Secret>,
    /// Secret: keys encrypting every Temporal payload, same form.
    pub payload: Option<Secret>,
}

/// Every deadline and period of the long-running processes; they reach each workflow through
/// its start input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimingSettings {
    pub payment_timeout_s: u64,
    pub inbound_timeout_s: u64,
    pub tracking_poll_s: u64,
    pub purchaser_deadline_s: u64,
    pub price_change_deadline_s: u64,
    pub storage_free_days: u64,
    pub storage_reminder_days: u64,
    pub storage_grace_days: u64,
    pub parcel_polls_per_run: u32,
    pub monitor_min_period_s: u64,
    pub seller_ship_poll_s: u64,
    pub seller_ship_deadline_s: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorSettings {
    /// Price-monitor lookups per second on each marketplace (apart from purchasing's pace).
    pub requests_per_second: u32,
}

/// 1688 and Taobao Global: app credentials, the default buyer account's token, the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketplaceSettings {
    /// Unset: `external_url`.
    pub base_url: Option<String>,
    pub app_key: Option<Secret>,
    pub app_secret: Option<Secret>,
    pub access_token: Option<Secret>,
    /// Pay requests per purchase before handing back to the activity's retry.
    pub max_pay_attempts: u32,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinduoduoSettings {
    pub base_url: Option<String>,
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
    /// Optional: only some calls need one.
    pub access_token: Option<Secret>,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentsSettings {
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    /// Signed webhooks older than this are refused (replay protection).
    pub webhook_tolerance_s: i64,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackingSettings {
    pub base_url: Option<String>,
    /// 17TRACK's API token; it also signs 17TRACK's webhooks.
    pub token: Option<Secret>,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarrierSettings {
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FxSettings {
    pub base_url: Option<String>,
    pub path: String,
    /// How long a fetched rate table is used before fetching again.
    pub cache_ttl_s: u64,
    pub http: HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarehouseSettings {
    /// The carrier service our parcels are booked with.
    pub shipping_service: String,
    /// Where sellers ship to. The default is the demo warehouse, refused outside development.
    pub address: DeliveryAddress,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TariffSettings {
    /// A tariff file in the form of `config/tariff.toml`; unset: that demo tariff.
    pub file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        let timings = OrderTimings::default();
        let api = ApiTuning::default();
        let (alibaba, taobao) = (AlibabaConfig::default(), TaobaoConfig::default());
        let (payments, fx) = (PaymentsConfig::default(), EcbConfig::default());
        Settings {
            development: false,
            external_url: SANDBOX_URL.into(),
            database: DatabaseSettings {
                url: "sqlite://.procure/procure.db".into(),
                sqlite_max_connections: 8,
                postgres_max_connections: 16,
                acquire_timeout_s: 30,
            },
            temporal: TemporalSettings {
                address: None,
                namespace: None,
                task_queue: procure_workflows::TASK_QUEUE.into(),
                ui_origins: vec![
                    "http://127.0.0.1:8233".into(),
                    "http://localhost:8233".into(),
                ],
                api_key: None,
                tls: TemporalTlsSettings::default(),
                client_config: TemporalClientConfig::default(),
            },
            api: ApiSettings {
                listen: "127.0.0.1:8080".into(),
                seed_sandbox_catalogue: false,
                quote_ttl_s: api.quote_ttl.as_secs(),
                price_tolerance_bps: api.price_tolerance_bps,
                jwt_secret: None,
            },
            outbox: OutboxSettings {
                max_attempts: api.outbox_max_attempts,
            },
            email: EmailSettings::default(),
            products: {
                let p = procure_api::ProductsConfig::default();
                ProductSettings {
                    freshness_s: p.freshness.as_secs(),
                    cache_ttl_s: p.cache_ttl.as_secs(),
                    cache_entries: p.cache_entries,
                    max_concurrent_imports: p.max_concurrent_imports as u32,
                    redis_url: None,
                    redis_ca_cert: None,
                    redis_prefix: "procure:".into(),
                    redis_password: None,
                }
            },
            webhooks: {
                let w = procure_api::webhook_delivery::DeliveryConfig::default();
                WebhookSettings {
                    poll_interval_ms: w.poll_interval.as_millis() as u64,
                    request_timeout_ms: w.request_timeout.as_millis() as u64,
                    first_retry_ms: w.first_retry.as_millis() as u64,
                    max_retry_interval_ms: w.max_retry_interval.as_millis() as u64,
                    retry_for_s: w.retry_for.as_secs(),
                    disable_after_s: w.disable_after.as_secs(),
                    concurrency_per_endpoint: w.concurrency_per_endpoint as u32,
                    keep_attempts_days: w.keep_attempts.as_secs() / DAY_S,
                    allow_internal_targets: w.allow_internal_targets,
                }
            },
            worker: {
                let w = procure_worker::WorkerSettings::default();
                WorkerTuningSettings {
                    max_cached_workflows: w.max_cached_workflows,
                    max_concurrent_workflow_tasks: w.max_concurrent_workflow_tasks,
                    max_concurrent_activities: w.max_concurrent_activities,
                    max_concurrent_local_activities: w.max_concurrent_local_activities,
                    workflow_task_pollers: w.workflow_task_pollers,
                    activity_task_pollers: w.activity_task_pollers,
                    task_queue_activities_per_second: w
                        .task_queue_activities_per_second
                        .unwrap_or(0.0),
                    graceful_shutdown_s: w.graceful_shutdown.as_secs(),
                }
            },
            metrics: MetricsSettings::default(),
            keys: KeySettings {
                data: None,
                payload: None,
            },
            timings: TimingSettings {
                payment_timeout_s: timings.payment_timeout.as_secs(),
                inbound_timeout_s: timings.inbound_timeout.as_secs(),
                tracking_poll_s: timings.tracking_poll.as_secs(),
                purchaser_deadline_s: timings.purchaser_deadline.as_secs(),
                price_change_deadline_s: timings.price_change_deadline.as_secs(),
                storage_free_days: timings.storage_free.as_secs() / DAY_S,
                storage_reminder_days: timings.storage_reminder.as_secs() / DAY_S,
                storage_grace_days: timings.storage_grace.as_secs() / DAY_S,
                parcel_polls_per_run: timings.parcel_polls_per_run,
                monitor_min_period_s: timings.monitor_min_period.as_secs(),
                seller_ship_poll_s: timings.seller_ship_poll.as_secs(),
                seller_ship_deadline_s: timings.seller_ship_deadline.as_secs(),
            },
            monitors: MonitorSettings {
                requests_per_second: crate::components::DEFAULT_MONITOR_REQUESTS_PER_SECOND,
            },
            alibaba: MarketplaceSettings {
                base_url: None,
                app_key: None,
                app_secret: None,
                access_token: None,
                max_pay_attempts: alibaba.max_pay_attempts,
                http: alibaba.http,
            },
            taobao: MarketplaceSettings {
                base_url: None,
                app_key: None,
                app_secret: None,
                access_token: None,
                max_pay_attempts: taobao.max_pay_attempts,
                http: taobao.http,
            },
            pinduoduo: PinduoduoSettings {
                base_url: None,
                client_id: None,
                client_secret: None,
                access_token: None,
                http: PddConfig::default().http,
            },
            payments: PaymentsSettings {
                base_url: None,
                api_key: None,
                webhook_secret: None,
                webhook_tolerance_s: payments.webhook_tolerance_s,
                http: payments.http,
            },
            tracking: TrackingSettings {
                base_url: None,
                token: None,
                http: TrackingConfig::default().http,
            },
            carrier: CarrierSettings {
                base_url: None,
                api_key: None,
                http: CarrierConfig::default().http,
            },
            fx: FxSettings {
                base_url: None,
                path: fx.path,
                cache_ttl_s: fx.cache_ttl_s,
                http: fx.http,
            },
            warehouse: WarehouseSettings {
                shipping_service: Warehouse::demo().shipping_service,
                address: demo_warehouse(),
            },
            tariff: TariffSettings::default(),
        }
    }
}

const DAY_S: u64 = 24 * 3600;

/// A list from a TOML array or from one comma-separated string (an environment variable).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

impl Settings {
    /// Defaults with `development` on: what the in-process test systems run on.
    pub fn development() -> Self {
        Settings {
            development: true,
            ..Settings::default()
        }
    }

    /// Defaults, then the file, then the environment, then the flags.
    pub fn load(sources: &Sources) -> anyhow::Result<Settings> {
        let known = known_keys();
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let file = sources.file.clone().or_else(|| {
            sources
                .env
                .iter()
                .find(|(k, v)| k == CONFIG_VAR && !v.trim().is_empty())
                .map(|(_, v)| PathBuf::from(v.trim()))
        });
        if let Some(path) = file {
            figment = figment.merge(settings_file(&path, &known)?);
        }
        for (key, value) in env_layer(&sources.env, &known)? {
            figment = figment.merge(Serialized::default(&key, value));
        }
        for (key, value) in &sources.flags {
            figment = figment.merge(Serialized::default(key, value.clone()));
        }
        let mut settings = figment
            .extract_lossy::<Settings>()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        settings.temporal.client_config = TemporalClientConfig::load(&sources.env)?;
        Ok(settings)
    }

    /// The checked values `process` is built from. Outside development a missing secret or
    /// the demo warehouse (for a worker) is an error naming every such key.
    pub fn deployment(&self, process: Process) -> anyhow::Result<Deployment> {
        let mut missing = Vec::new();
        // The configured value, or `None`: use the development value (refused, and so
        // recorded, where this process needs the secret and this is not development).
        let mut secret = |value: &Option<Secret>, path: &str| -> Option<Secret> {
            let key = secret_key(path).expect("every secret is listed in SECRETS");
            match value {
                Some(v) if !v.expose().is_empty() => Some(v.clone()),
                _ => {
                    if !self.development && key.needed_by.contains(&process) {
                        missing.push(format!("{path} (set {})", how_to_set(key)));
                    }
                    None
                }
            }
        };
        let dev_ext = External::default();
        let base = |own: &Option<String>| own.clone().unwrap_or_else(|| self.external_url.clone());

        let alibaba = AlibabaConfig {
            base_url: base(&self.alibaba.base_url),
            app_key: secret(&self.alibaba.app_key, "alibaba.app_key")
                .unwrap_or(dev_ext.alibaba.app_key),
            app_secret: secret(&self.alibaba.app_secret, "alibaba.app_secret")
                .unwrap_or(dev_ext.alibaba.app_secret),
            access_token: secret(&self.alibaba.access_token, "alibaba.access_token")
                .unwrap_or(dev_ext.alibaba.access_token),
            http: self.alibaba.http.clone(),
            max_pay_attempts: self.alibaba.max_pay_attempts.max(1),
        };
        let taobao = TaobaoConfig {
            base_url: base(&self.taobao.base_url),
            app_key: secret(&self.taobao.app_key, "taobao.app_key")
                .unwrap_or(dev_ext.taobao.app_key),
            app_secret: secret(&self.taobao.app_secret, "taobao.app_secret")
                .unwrap_or(dev_ext.taobao.app_secret),
            access_token: secret(&self.taobao.access_token, "taobao.access_token")
                .unwrap_or(dev_ext.taobao.access_token),
            http: self.taobao.http.clone(),
            max_pay_attempts: self.taobao.max_pay_attempts.max(1),
        };
        let pdd = PddConfig {
            base_url: base(&self.pinduoduo.base_url),
            client_id: secret(&self.pinduoduo.client_id, "pinduoduo.client_id")
                .unwrap_or_else(|| Secret::new(dev_ext.pdd.client_id.clone()))
                .expose()
                .to_owned(),
            client_secret: secret(&self.pinduoduo.client_secret, "pinduoduo.client_secret")
                .unwrap_or(dev_ext.pdd.client_secret),
            access_token: self.pinduoduo.access_token.clone(),
            http: self.pinduoduo.http.clone(),
        };
        let payments = PaymentsConfig {
            base_url: base(&self.payments.base_url),
            api_key: secret(&self.payments.api_key, "payments.api_key")
                .unwrap_or(dev_ext.payments.api_key),
            webhook_secret: secret(&self.payments.webhook_secret, "payments.webhook_secret")
                .unwrap_or(dev_ext.payments.webhook_secret),
            webhook_tolerance_s: self.payments.webhook_tolerance_s,
            http: self.payments.http.clone(),
        };
        let tracking = TrackingConfig {
            base_url: base(&self.tracking.base_url),
            token: secret(&self.tracking.token, "tracking.token").unwrap_or(dev_ext.tracking.token),
            http: self.tracking.http.clone(),
        };
        let carrier = CarrierConfig {
            base_url: base(&self.carrier.base_url),
            api_key: secret(&self.carrier.api_key, "carrier.api_key")
                .unwrap_or(dev_ext.carrier.api_key),
            http: self.carrier.http.clone(),
        };
        let fx = EcbConfig {
            base_url: base(&self.fx.base_url),
            path: self.fx.path.clone(),
            cache_ttl_s: self.fx.cache_ttl_s,
            http: self.fx.http.clone(),
        };
        let jwt = secret(&self.api.jwt_secret, "api.jwt_secret");
        let data = secret(&self.keys.data, "keys.data");
        let payload = secret(&self.keys.payload, "keys.payload");
        let smtp_password = secret(&self.email.smtp_password, "email.smtp_password");
        let redis_password = secret(&self.products.redis_password, "products.redis_password");
        let email_on = self
            .email
            .smtp_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        let email_user = self
            .email
            .smtp_username
            .as_deref()
            .is_some_and(|u| !u.is_empty());
        if !self.development && email_on && email_user && smtp_password.is_none() {
            missing.push(format!(
                "email.smtp_password (email.smtp_username is set; set {})",
                how_to_set(secret_key("email.smtp_password").expect("listed"))
            ));
        }
        if !self.development
            && process == Process::Worker
            && self.warehouse.address == demo_warehouse()
        {
            missing.push(
                "warehouse.address (the demo warehouse: sellers would ship to it; set \
                 [warehouse.address] in the settings file or PROCURE_WAREHOUSE__ADDRESS__…)"
                    .to_owned(),
            );
        }
        if !missing.is_empty() {
            bail!(
                "missing settings, refusing to start (the public development values are used \
                 only by `procure dev` or with PROCURE_DEVELOPMENT=true):\n  - {}",
                missing.join("\n  - ")
            );
        }

        let dev = Keys::development();
        let development_keys: Vec<&'static str> = [
            ("api.jwt_secret", jwt.is_none()),
            ("keys.data", data.is_none()),
            ("keys.payload", payload.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, fell_back)| fell_back.then_some(key))
        .collect();
        warn_development_keys_once(&development_keys);
        let keys = Keys {
            tokens: match jwt {
                None => dev.tokens,
                Some(jwt) => {
                    anyhow::ensure!(
                        jwt.expose().len() >= 32,
                        "api.jwt_secret ({}) must be at least 32 bytes",
                        how_to_set(secret_key("api.jwt_secret").expect("listed"))
                    );
                    TokenKey::new(jwt)
                }
            },
            data: match data {
                None => dev.data,
                Some(spec) => Sealer::from_spec(spec.expose()).map_err(|e| {
                    anyhow::anyhow!("keys.data (PROCURE_KEYS__DATA or PROCURE_DATA_KEYS): {e}")
                })?,
            },
            payload: match payload {
                None => dev.payload,
                Some(spec) => {
                    EncryptionCodec::new(Sealer::from_spec(spec.expose()).map_err(|e| {
                        anyhow::anyhow!(
                            "keys.payload (PROCURE_KEYS__PAYLOAD or PROCURE_PAYLOAD_KEYS): {e}"
                        )
                    })?)
                }
            },
        };
        anyhow::ensure!(
            (1..=100_000).contains(&self.outbox.max_attempts),
            "outbox.max_attempts (PROCURE_OUTBOX__MAX_ATTEMPTS or PROCURE_OUTBOX_MAX_ATTEMPTS) \
             must be a whole number from 1 to 100000"
        );
        let worker = self.worker.checked(&self.temporal.task_queue)?;
        let webhooks = self.webhooks.checked(self.development)?;
        let email = self.email.checked(smtp_password)?;
        let db = &self.database;
        let sqlite = db.url.starts_with("sqlite:");
        Ok(Deployment {
            worker,
            metrics_listen: self.metrics.addr()?,
            database: Database {
                url: db.url.clone(),
                max_connections: if sqlite {
                    db.sqlite_max_connections
                } else {
                    db.postgres_max_connections
                }
                .max(1),
                acquire_timeout: Duration::from_secs(db.acquire_timeout_s.max(1)),
            },
            external: External {
                alibaba,
                taobao,
                pdd,
                payments,
                tracking,
                carrier,
                fx,
                monitor_requests_per_second: self.monitors.requests_per_second,
            },
            temporal: TemporalTarget {
                connection: self.temporal.connection()?,
                task_queue: self.temporal.task_queue.clone(),
                ui_origins: self.temporal.ui_origins.clone(),
            },
            timings: self.timings.order_timings(),
            webhooks,
            email,
            keys,
            warehouse: Warehouse {
                address: self.warehouse.address.clone(),
                shipping_service: self.warehouse.shipping_service.clone(),
            },
            pricing: self.tariff.load()?,
            api: ApiTuning {
                quote_ttl: Duration::from_secs(self.api.quote_ttl_s.max(1)),
                price_tolerance_bps: self.api.price_tolerance_bps,
                outbox_max_attempts: self.outbox.max_attempts,
                products: procure_api::ProductsConfig {
                    freshness: Duration::from_secs(self.products.freshness_s.max(1)),
                    cache_ttl: Duration::from_secs(self.products.cache_ttl_s.max(1)),
                    cache_entries: self.products.cache_entries,
                    max_concurrent_imports: self.products.max_concurrent_imports.clamp(1, 1024)
                        as usize,
                    shared: self.products.shared_cache(redis_password)?,
                },
            },
        })
    }

    /// Where `procure api` listens.
    pub fn listen_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.api.listen.parse().with_context(|| {
            format!(
                "api.listen (PROCURE_API__LISTEN or PROCURE_API_ADDR): {:?} is not host:port",
                self.api.listen
            )
        })
    }
}

/// Our own keys that fell back to their public development values get one warning each per
/// process, however many components (API, dispatcher, worker) read the settings.
fn warn_development_keys_once(keys: &[&'static str]) {
    static WARNED: std::sync::Mutex<BTreeSet<&'static str>> =
        std::sync::Mutex::new(BTreeSet::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    for key in keys {
        if warned.insert(key) {
            let how = secret_key(key).map(how_to_set).unwrap_or_default();
            tracing::warn!(
                key = *key,
                "{key} is not set: using the public development key, which protects nothing \
                 (development only; set {how})"
            );
        }
    }
}

impl WorkerTuningSettings {
    /// The worker's settings on `task_queue`, or an error naming the key that is out of range.
    fn checked(&self, task_queue: &str) -> anyhow::Result<procure_worker::WorkerSettings> {
        let at_least = |value: usize, min: usize, key: &str, var: &str| {
            anyhow::ensure!(
                (min..=100_000).contains(&value),
                "worker.{key} (PROCURE_WORKER__{var}) must be a whole number from {min} to 100000, not {value}"
            );
            Ok(value)
        };
        let rate = self.task_queue_activities_per_second;
        anyhow::ensure!(
            rate.is_finite() && rate >= 0.0,
            "worker.task_queue_activities_per_second (PROCURE_WORKER__TASK_QUEUE_ACTIVITIES_PER_SECOND) \
             must be 0 (unlimited) or a positive number, not {rate}"
        );
        anyhow::ensure!(
            self.graceful_shutdown_s <= 3_600,
            "worker.graceful_shutdown_s (PROCURE_WORKER__GRACEFUL_SHUTDOWN_S) must be at most 3600"
        );
        Ok(procure_worker::WorkerSettings {
            task_queue: task_queue.to_owned(),
            max_cached_workflows: at_least(
                self.max_cached_workflows,
                0,
                "max_cached_workflows",
                "MAX_CACHED_WORKFLOWS",
            )?,
            max_concurrent_workflow_tasks: at_least(
                self.max_concurrent_workflow_tasks,
                2,
                "max_concurrent_workflow_tasks",
                "MAX_CONCURRENT_WORKFLOW_TASKS",
            )?,
            max_concurrent_activities: at_least(
                self.max_concurrent_activities,
                1,
                "max_concurrent_activities",
                "MAX_CONCURRENT_ACTIVITIES",
            )?,
            max_concurrent_local_activities: at_least(
                self.max_concurrent_local_activities,
                1,
                "max_concurrent_local_activities",
                "MAX_CONCURRENT_LOCAL_ACTIVITIES",
            )?,
            workflow_task_pollers: at_least(
                self.workflow_task_pollers,
                2,
                "workflow_task_pollers",
                "WORKFLOW_TASK_POLLERS",
            )?,
            activity_task_pollers: at_least(
                self.activity_task_pollers,
                1,
                "activity_task_pollers",
                "ACTIVITY_TASK_POLLERS",
            )?,
            task_queue_activities_per_second: (rate > 0.0).then_some(rate),
            graceful_shutdown: Duration::from_secs(self.graceful_shutdown_s),
        })
    }
}

impl TimingSettings {
    pub fn order_timings(&self) -> OrderTimings {
        OrderTimings {
            payment_timeout: Duration::from_secs(self.payment_timeout_s.max(1)),
            inbound_timeout: Duration::from_secs(self.inbound_timeout_s.max(1)),
            tracking_poll: Duration::from_secs(self.tracking_poll_s.max(1)),
            purchaser_deadline: Duration::from_secs(self.purchaser_deadline_s.max(1)),
            price_change_deadline: Duration::from_secs(self.price_change_deadline_s.max(1)),
            storage_free: Duration::from_secs(self.storage_free_days.max(1) * DAY_S),
            storage_reminder: Duration::from_secs(self.storage_reminder_days * DAY_S),
            storage_grace: Duration::from_secs(self.storage_grace_days.max(1) * DAY_S),
            parcel_polls_per_run: self.parcel_polls_per_run.max(1),
            monitor_min_period: Duration::from_secs(self.monitor_min_period_s),
            seller_ship_poll: Duration::from_secs(self.seller_ship_poll_s.max(1)),
            seller_ship_deadline: Duration::from_secs(self.seller_ship_deadline_s.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Sources {
        Sources {
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn nested_names_override_older_ones_and_flags_override_both() {
        let mut s = env(&[
            ("PROCURE_1688_URL", "http://old"),
            ("PROCURE_ALIBABA__BASE_URL", "http://new"),
            ("PROCURE_TRACKING_POLL_S", "5"),
            ("PROCURE_UI_ORIGINS", "http://a, http://b"),
            ("PROCURE_ALIBABA__HTTP__MAX_ATTEMPTS", "7"),
        ]);
        assert_eq!(
            Settings::load(&s).unwrap().alibaba.base_url.as_deref(),
            Some("http://new")
        );
        s.flag("alibaba.base_url", "http://flag");
        let loaded = Settings::load(&s).unwrap();
        assert_eq!(loaded.alibaba.base_url.as_deref(), Some("http://flag"));
        assert_eq!(loaded.timings.tracking_poll_s, 5);
        assert_eq!(loaded.alibaba.http.max_attempts, 7);
        assert_eq!(loaded.temporal.ui_origins, ["http://a", "http://b"]);
    }

    #[test]
    fn a_misspelt_nested_name_is_refused() {
        let e = Settings::load(&env(&[("PROCURE_ALIBABA__BASE_ULR", "x")])).unwrap_err();
        assert!(e.to_string().contains("PROCURE_ALIBABA__BASE_ULR"), "{e}");
    }
}
