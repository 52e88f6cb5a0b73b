//! The keys of the settings tree: which secrets each process needs, the older variable names
//! that keep working, and the key paths the tree has.

use super::*;

/// Which process is starting: each needs its own secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    Api,
    Worker,
    /// `procure token`: only the signing key.
    Token,
}

/// A secret of the tree: its key path, the older variable names it keeps, and who needs it.
pub struct SecretKey {
    pub path: &'static str,
    pub aliases: &'static [&'static str],
    pub needed_by: &'static [Process],
}

use Process::{Api, Token, Worker};

/// Every secret of the tree.
pub const SECRETS: &[SecretKey] = &[
    SecretKey {
        path: "api.jwt_secret",
        aliases: &["PROCURE_JWT_SECRET"],
        needed_by: &[Api, Token],
    },
    SecretKey {
        path: "keys.data",
        aliases: &["PROCURE_DATA_KEYS"],
        needed_by: &[Api, Worker],
    },
    SecretKey {
        path: "keys.payload",
        aliases: &["PROCURE_PAYLOAD_KEYS"],
        needed_by: &[Api, Worker],
    },
    SecretKey {
        path: "alibaba.app_key",
        aliases: &["PROCURE_1688_APP_KEY"],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "alibaba.app_secret",
        aliases: &["PROCURE_1688_APP_SECRET"],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "alibaba.access_token",
        aliases: &["PROCURE_1688_ACCESS_TOKEN"],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "taobao.app_key",
        aliases: &[],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "taobao.app_secret",
        aliases: &[],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "taobao.access_token",
        aliases: &[],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "pinduoduo.client_id",
        aliases: &[],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "pinduoduo.client_secret",
        aliases: &[],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "pinduoduo.access_token",
        aliases: &[],
        needed_by: &[],
    },
    SecretKey {
        path: "payments.api_key",
        aliases: &["PROCURE_STRIPE_API_KEY"],
        needed_by: &[Api, Worker],
    },
    SecretKey {
        path: "payments.webhook_secret",
        aliases: &["PROCURE_STRIPE_WEBHOOK_SECRET"],
        needed_by: &[Api],
    },
    SecretKey {
        path: "tracking.token",
        aliases: &["PROCURE_17TRACK_TOKEN"],
        needed_by: &[Api, Worker],
    },
    SecretKey {
        path: "carrier.api_key",
        aliases: &["PROCURE_CARRIER_API_KEY"],
        needed_by: &[Worker],
    },
    SecretKey {
        path: "email.smtp_password",
        aliases: &[],
        needed_by: &[],
    },
    SecretKey {
        path: "products.redis_password",
        aliases: &[],
        needed_by: &[],
    },
    SecretKey {
        path: "temporal.api_key",
        aliases: &[],
        needed_by: &[],
    },
    SecretKey {
        path: "temporal.tls.client_key",
        aliases: &[],
        needed_by: &[],
    },
];

/// The older variable names that keep working (a nested name overrides them), and their keys.
pub const ALIASES: &[(&str, &str)] = &[
    ("PROCURE_DATABASE_URL", "database.url"),
    ("PROCURE_TEMPORAL_ADDRESS", "temporal.address"),
    ("PROCURE_TEMPORAL_NAMESPACE", "temporal.namespace"),
    ("PROCURE_TASK_QUEUE", "temporal.task_queue"),
    ("PROCURE_UI_ORIGINS", "temporal.ui_origins"),
    ("PROCURE_API_ADDR", "api.listen"),
    ("PROCURE_METRICS_ADDR", "metrics.listen"),
    (
        "PROCURE_SEED_SANDBOX_CATALOGUE",
        "api.seed_sandbox_catalogue",
    ),
    ("PROCURE_OUTBOX_MAX_ATTEMPTS", "outbox.max_attempts"),
    ("PROCURE_1688_URL", "alibaba.base_url"),
    ("PROCURE_PAYMENTS_URL", "payments.base_url"),
    ("PROCURE_TRACKING_URL", "tracking.base_url"),
    ("PROCURE_CARRIER_URL", "carrier.base_url"),
    ("PROCURE_FX_URL", "fx.base_url"),
    ("PROCURE_PAYMENT_TIMEOUT_S", "timings.payment_timeout_s"),
    ("PROCURE_TRACKING_POLL_S", "timings.tracking_poll_s"),
    (
        "PROCURE_PURCHASER_DEADLINE_S",
        "timings.purchaser_deadline_s",
    ),
    (
        "PROCURE_PRICE_CHANGE_DEADLINE_S",
        "timings.price_change_deadline_s",
    ),
    ("PROCURE_STORAGE_FREE_DAYS", "timings.storage_free_days"),
    (
        "PROCURE_STORAGE_REMINDER_DAYS",
        "timings.storage_reminder_days",
    ),
    ("PROCURE_STORAGE_GRACE_DAYS", "timings.storage_grace_days"),
    (
        "PROCURE_MONITOR_MIN_PERIOD_S",
        "timings.monitor_min_period_s",
    ),
    ("PROCURE_MONITOR_RPS", "monitors.requests_per_second"),
];

/// The variable naming the settings file.
pub const CONFIG_VAR: &str = "PROCURE_CONFIG";

/// The nested variable name of a key path: `alibaba.base_url` → `PROCURE_ALIBABA__BASE_URL`.
pub fn env_name(path: &str) -> String {
    format!("PROCURE_{}", path.replace('.', "__").to_ascii_uppercase())
}

pub(super) fn secret_key(path: &str) -> Option<&'static SecretKey> {
    SECRETS.iter().find(|s| s.path == path)
}

/// How to set a secret, for error messages.
pub(super) fn how_to_set(s: &SecretKey) -> String {
    let var = env_name(s.path);
    let mut names = vec![var.clone()];
    names.extend(s.aliases.iter().map(|a| a.to_string()));
    format!("{} or {var}_FILE", names.join(" or "))
}

/// Every leaf key path of a figment dictionary (`alibaba.http.max_attempts`); an empty table
/// has none.
pub fn key_paths(dict: &Dict) -> BTreeSet<String> {
    fn walk(prefix: &str, dict: &Dict, out: &mut BTreeSet<String>) {
        for (k, v) in dict {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Dict(_, d) => walk(&path, d, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", dict, &mut out);
    out
}

/// The default profile's dictionary of a provider.
pub(super) fn data_of(p: &impl Provider) -> anyhow::Result<Dict> {
    Ok(p.data()?.remove(&Profile::Default).unwrap_or_default())
}

/// The key paths the tree has: its defaults, serialized.
pub fn known_keys() -> BTreeSet<String> {
    key_paths(&data_of(&Serialized::defaults(Settings::default())).expect("defaults serialize"))
}
