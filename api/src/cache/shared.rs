//! The shared level of the product cache: Redis, between the in-process level of each API
//! replica and the store (`products.redis_url`; optional). A replica that misses in process asks
//! Redis before the store, so a product one replica built is served by every other without
//! reading the store again.
//!
//! Every entry carries the product's version (`products.version`, one more on every change).
//! Beside each product's answer (`{prefix}product:{id}:body`, `"{version}:{json}"`) Redis keeps
//! a floor (`{prefix}product:{id}:floor`): the newest version any replica has seen change. Both
//! keys share the hash tag `{id}`, so the scripts below also run on a Redis Cluster.
//!
//! - A replica that sees a change (its own write, or the change feed) raises the floor and drops
//!   the answer older than it, in one script ([`SharedLevel::drop_below`]).
//! - An answer is written only if it is not older than the floor or the answer there
//!   ([`SharedLevel::put`]): a replica that read the store just before a change cannot put the
//!   old answer back after the change was announced.
//! - A read takes the answer with the floor in one round trip and refuses an answer below it.
//!
//! Entries expire on the cache's TTL, floors on twice that, so a floor outlives every answer it
//! guards. Redis is a cache here, never the record: a failed or slow call (at most
//! [`CALL_TIMEOUT`]) is counted, logged once, and the read goes on to the store; the level is
//! then skipped for [`BACKOFF`] so an unreachable Redis costs reads nothing.
//!
//! `rediss://` speaks TLS (rustls), verifying the server against `products.redis_ca_cert` when
//! set, else against the system's roots; hostname checks cannot be turned off (`#insecure` is
//! refused).

use axum::body::Bytes;
use procure_domain::Secret;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a call to Redis may take before the read goes on without it.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the shared level is skipped after a failed call.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// KEYS: body, floor. ARGV: version, the entry, TTL (ms). Writes the entry unless the floor or
/// the entry there is newer; answers 1 when written.
const PUT: &str = r"
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local v = tonumber(ARGV[1])
if v < floor then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cv = tonumber(string.match(cur, '^(%d+):'))
  if cv and cv > v then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// KEYS: body, floor. ARGV: version, floor TTL (ms). Raises the floor to the version and drops
/// an entry older than it.
const DROP_BELOW: &str = r"
local v = tonumber(ARGV[1])
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if v > floor then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cv = tonumber(string.match(cur, '^(%d+):'))
  if (not cv) or cv < v then redis.call('DEL', KEYS[1]) end
end
return 1
";

/// Where a shared entry lives and how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedConfig {
    /// `redis://host:port/db`, or `rediss://…` over TLS (the password is not in it, see
    /// `password`).
    pub url: String,
    /// PEM: the certificate authorities a `rediss://` server is verified against, instead of
    /// the system's roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Sent with AUTH (`requirepass`, or an ACL user's password with the URL's user).
    pub password: Option<Secret>,
    /// Put before every key, so several systems can share one Redis.
    pub prefix: String,
    pub ttl: Duration,
}

pub struct SharedLevel {
    conn: ConnectionManager,
    prefix: String,
    ttl_ms: u64,
    put: Script,
    drop_below: Script,
    started: Instant,
    /// Milliseconds after `started` until which the level is skipped.
    skip_until_ms: AtomicU64,
    /// Whether the last call failed (so a failure is logged once, and the recovery too).
    failing: AtomicBool,
}

/// Refused settings: the URL does not parse.
#[derive(Debug, thiserror::Error)]
#[error("products.redis_url is not a Redis URL: {0}")]
pub struct BadUrl(String);

/// Why a Redis URL is refused, if it is: the password is a secret of its own, and a TLS
/// connection always checks the server's name.
pub fn url_problem(url: &str) -> Option<String> {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    match url.into_connection_info() {
        Err(e) => Some(described(&e)),
        Ok(info) if info.redis_settings().password().is_some() => {
            Some("it carries a password; put it in products.redis_password instead".into())
        }
        Ok(info) => match info.addr() {
            ConnectionAddr::TcpTls { insecure: true, .. } => Some(
                "#insecure turns off the server's name check; give its CA in \
                 products.redis_ca_cert instead"
                    .into(),
            ),
            ConnectionAddr::Unix(_) => Some("a Unix socket; give redis:// or rediss://".into()),
            _ => None,
        },
    }
}

/// A client error as an operator reads it: its kind and the detail (never the URL).
fn described(e: &redis::RedisError) -> String {
    format!("{} ({})", e.category(), e.detail().unwrap_or("no detail"))
}

/// Whether `url` asks for TLS.
pub fn is_tls(url: &str) -> bool {
    url.trim_start()
        .to_ascii_lowercase()
        .starts_with("rediss://")
}

impl SharedLevel {
    /// The level, connecting lazily: a Redis that is down at start is retried by later calls,
    /// and reads go to the store meanwhile.
    pub fn new(cfg: &SharedConfig) -> Result<SharedLevel, BadUrl> {
        use redis::IntoConnectionInfo;
        if let Some(problem) = url_problem(&cfg.url) {
            return Err(BadUrl(problem));
        }
        let mut info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| BadUrl(e.category().into()))?;
        if let Some(password) = &cfg.password {
            let redis = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(redis);
        }
        let client = match (&cfg.ca_cert_pem, is_tls(&cfg.url)) {
            (Some(pem), true) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            (Some(_), false) => {
                return Err(BadUrl(
                    "products.redis_ca_cert is set but the URL is not rediss://".into(),
                ));
            }
            (None, _) => redis::Client::open(info),
        }
        .map_err(|e| BadUrl(described(&e)))?;
        let manager_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_cfg)
            .map_err(|e| BadUrl(e.category().into()))?;
        Ok(SharedLevel {
            conn,
            prefix: cfg.prefix.clone(),
            ttl_ms: cfg.ttl.as_millis().max(1) as u64,
            put: Script::new(PUT),
            drop_below: Script::new(DROP_BELOW),
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        })
    }

    fn keys(&self, id: &str) -> (String, String) {
        (
            format!("{}product:{{{id}}}:body", self.prefix),
            format!("{}product:{{{id}}}:floor", self.prefix),
        )
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs one call within [`CALL_TIMEOUT`], unless the level is being skipped; a failure is
    /// counted, logged when it starts, and skips the level for [`BACKOFF`].
    async fn call<T, F>(&self, what: &'static str, f: F) -> Option<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let failure = match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the shared product cache answers again");
                }
                return Some(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", CALL_TIMEOUT.as_millis()),
        };
        procure_metrics::global().product_cache_shared_error();
        self.skip_until_ms.store(
            self.now_ms() + BACKOFF.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                call = what,
                error = %failure,
                "the shared product cache failed; reads go to the store"
            );
        }
        None
    }

    /// The shared answer of `id`, if Redis holds one not older than its floor (nor `floor`,
    /// what this replica has seen).
    pub async fn get(&self, id: &str, floor: i64) -> Option<(i64, Bytes)> {
        let (body, floor_key) = self.keys(id);
        let mut conn = self.conn.clone();
        let got: Vec<Option<Vec<u8>>> = self
            .call("get", async move {
                redis::cmd("MGET")
                    .arg(&body)
                    .arg(&floor_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut got = got.into_iter();
        let entry = got.next().flatten()?;
        let shared_floor = got
            .next()
            .flatten()
            .and_then(|f| std::str::from_utf8(&f).ok()?.parse::<i64>().ok())
            .unwrap_or(0);
        let (version, json) = decode(&entry)?;
        (version >= floor.max(shared_floor)).then(|| (version, Bytes::copy_from_slice(json)))
    }

    /// Share the answer built from `version`, unless a newer one or a newer change is known.
    pub async fn put(&self, id: &str, version: i64, json: &[u8]) {
        let (body, floor) = self.keys(id);
        let mut entry = format!("{version}:").into_bytes();
        entry.extend_from_slice(json);
        let mut conn = self.conn.clone();
        let ttl = self.ttl_ms;
        let mut invocation = self.put.key(&body);
        invocation.key(&floor).arg(version).arg(entry).arg(ttl);
        let _: Option<i64> = self
            .call(
                "put",
                async move { invocation.invoke_async(&mut conn).await },
            )
            .await;
    }

    /// `id` changed to `version`: no replica may take a shared answer older than it. Answers
    /// whether Redis took it; one that did not (down, slow, skipped) must be asked again, or a
    /// replica without this change in its own floors could take the old answer.
    pub async fn drop_below(&self, id: &str, version: i64) -> bool {
        let (body, floor) = self.keys(id);
        let mut conn = self.conn.clone();
        let ttl = self.ttl_ms.saturating_mul(2);
        let mut invocation = self.drop_below.key(&body);
        invocation.key(&floor).arg(version).arg(ttl);
        let done: Option<i64> = self
            .call(
                "drop",
                async move { invocation.invoke_async(&mut conn).await },
            )
            .await;
        done.is_some()
    }

    /// Whether Redis answers now (for the start log).
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        self.call("ping", async move {
            let _: () = conn.ping().await?;
            Ok(())
        })
        .await
        .is_some()
    }
}

/// `"{version}:{json}"` into its parts.
fn decode(entry: &[u8]) -> Option<(i64, &[u8])> {
    let colon = entry.iter().position(|b| *b == b':')?;
    let version = std::str::from_utf8(&entry[..colon]).ok()?.parse().ok()?;
    Some((version, &entry[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_its_version_and_its_answer() {
        assert_eq!(decode(b"12:{\"a\":1}"), Some((12, &b"{\"a\":1}"[..])));
        assert_eq!(decode(b"{\"a\":1}"), None);
        assert_eq!(decode(b"x:{}"), None);
    }
}
