//! The product cache across API replicas, with the shared level in the machine's Redis
//! (`PROCURE_TEST_REDIS_URL`, started by scripts/bootstrap.sh when missing): what one replica
//! built is served by another without reading the database; a change through either replica
//! reaches every read at once, in process and in Redis; and a Redis that is down or never
//! answers costs reads nothing but the shared level.

mod support;

use procure_api::auth::Role;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn redis_url() -> String {
    std::env::var("PROCURE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A system whose API shares product reads through Redis at `url`, under a prefix of its own
/// (so tests never see each other's keys); its freshness window is one second, so a re-import
/// reads the marketplace again.
async fn spawn_shared(url: &str, prefix: &str) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn_app_configured(fast(), move |cfg| {
        cfg.settings.products.redis_url = Some(url);
        cfg.settings.products.redis_prefix = prefix;
        cfg.settings.products.freshness_s = 1;
    })
    .await
}

/// GET `path` on the API at `base`: status, the level that answered, body.
async fn read(app: &TestApp, base: &str, path: &str) -> (u16, String, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(app.driver.token(Role::Customer, Some("cust-cache")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let level = r
        .headers()
        .get("x-procure-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, level, r.json().await.unwrap_or(Value::Null))
}

async fn import(app: &TestApp, base: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/products/import"))
        .bearer_auth(app.driver.token(Role::Operator, None))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis answers (scripts/bootstrap.sh starts it)")
}

/// The shared entry of a product: its version and price of the first SKU.
async fn shared_entry(prefix: &str, id: &str) -> Option<(i64, i64)> {
    let mut conn = redis().await;
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{prefix}product:{{{id}}}:body"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let raw = raw?;
    let colon = raw.iter().position(|b| *b == b':').unwrap();
    let version: i64 = std::str::from_utf8(&raw[..colon]).unwrap().parse().unwrap();
    let body: Value = serde_json::from_slice(&raw[colon + 1..]).unwrap();
    Some((version, body["skus"][0]["price"]["minor"].as_i64().unwrap()))
}

fn prefix() -> String {
    format!("procure-test-{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn replicas_share_reads_through_redis_and_a_change_reaches_every_read_at_once() {
    let prefix = prefix();
    let mut app = spawn_shared(&redis_url(), &prefix).await;
    let a = app.system.api_url.clone();
    let b = app.system.start_api_replica().await.unwrap();

    let catalogue = app.driver.catalogue().await.unwrap();
    let offer = catalogue.iter().find(|l| l["platform"] == "1688").unwrap()["offer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, p) = import(&app, &a, json!({"platform": "1688", "id": offer})).await;
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    let price = p["skus"][0]["price"]["minor"].as_i64().unwrap();

    // Replica A builds the answer from the database and shares it; replica B, which never
    // read it, is served from Redis; each then answers from its own memory.
    let (status, level, first) = read(&app, &a, &path).await;
    assert_eq!((status, level.as_str()), (200, "store"), "{first}");
    assert_eq!(read(&app, &a, &path).await.1, "memory");
    let (status, level, on_b) = read(&app, &b, &path).await;
    assert_eq!((status, level.as_str()), (200, "shared"), "{on_b}");
    assert_eq!(on_b, first, "the shared answer is the one A built");
    assert_eq!(read(&app, &b, &path).await.1, "memory");
    let (shared_version, shared_price) = shared_entry(&prefix, &id).await.expect("shared");
    assert_eq!(shared_price, price);

    // The marketplace's price moves; a re-import through B (the freshness window has passed)
    // reads it. A's memory and the shared entry drop the old answer at once: no read anywhere
    // shows the old price once the change is seen.
    app.driver
        .set_product(&offer, json!({"price_fen": price + 900}))
        .await
        .unwrap();
    let moved = eventually(Duration::from_secs(10), "the re-import's new price", || {
        let (app, b, offer) = (&app, &b, &offer);
        async move {
            let (status, p) = import(app, b, json!({"platform": "1688", "id": offer})).await;
            (status == 200 && p["skus"][0]["price"]["minor"] == price + 900).then_some(p)
        }
    })
    .await;
    assert_eq!(moved["id"], id);
    eventually(Duration::from_secs(5), "A drops its copy", || {
        let (app, a, path) = (&app, &a, &path);
        async move {
            let r = read(app, a, path).await;
            (r.2["skus"][0]["price"]["minor"] == price + 900).then_some(r)
        }
    })
    .await;
    // Once both replicas have the new answer, every read of either agrees, and Redis holds
    // the new answer with a newer version.
    for base in [&a, &b, &a, &b] {
        let (status, _, now) = read(&app, base, &path).await;
        assert_eq!(status, 200);
        assert_eq!(
            now["skus"][0]["price"]["minor"],
            price + 900,
            "{base}: {now}"
        );
    }
    let (version, shared_price) = shared_entry(&prefix, &id).await.expect("shared again");
    assert_eq!(shared_price, price + 900);
    assert!(version > shared_version, "{version} > {shared_version}");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_replica_starting_after_a_change_it_never_saw_does_not_serve_what_redis_kept() {
    let prefix = prefix();
    let mut app = spawn_shared(&redis_url(), &prefix).await;
    let a = app.system.api_url.clone();
    let (status, p) = import(&app, &a, json!({"platform": "1688", "id": "683461209575"})).await;
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/products/{id}");
    assert_eq!(read(&app, &a, &path).await.1, "store");
    let (version, _) = shared_entry(&prefix, &id).await.expect("shared");

    // What Redis holds when a change was made while no replica ran (a worker's price monitor
    // overnight): an older answer, and no floor above it.
    let mut stale: Value = read(&app, &a, &path).await.2;
    stale["title"] = json!("an answer from before the change");
    let mut conn = redis().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}product:{{{id}}}:body"))
        .arg(format!("{}:{stale}", version - 1))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}product:{{{id}}}:floor"))
        .query_async(&mut conn)
        .await
        .unwrap();

    // A replica starting now catches up on the recent changes before it serves.
    let b = app.system.start_api_replica().await.unwrap();
    let (status, level, body) = read(&app, &b, &path).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["title"], p["title"],
        "not the stale answer (from {level})"
    );
    assert_eq!(level, "store", "{body}");
    app.system.stop().await.unwrap();
}

/// A Redis that accepts connections and never answers.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/0", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    (url, held)
}

#[tokio::test]
async fn reads_go_on_from_the_database_when_redis_is_down_or_never_answers() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}/0", l.local_addr().unwrap())
    };
    let (silent, held) = black_hole().await;
    for (what, url) in [("refusing", closed), ("silent", silent)] {
        let errors_before = shared_errors();
        let app = spawn_shared(&url, &prefix()).await;
        let base = app.system.api_url.clone();
        let (status, p) = import(
            &app,
            &base,
            json!({"platform": "1688", "id": "683461209575"}),
        )
        .await;
        assert_eq!(
            status, 201,
            "{what}: the import does not wait on Redis: {p}"
        );
        let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
        let (status, level, body) = read(&app, &base, &path).await;
        assert_eq!((status, level.as_str()), (200, "store"), "{what}: {body}");
        assert_eq!(body["id"], p["id"]);
        assert_eq!(read(&app, &base, &path).await.1, "memory", "{what}");
        assert!(
            shared_errors() > errors_before,
            "{what}: the failed calls are counted"
        );
        app.system.stop().await.unwrap();
    }
    held.abort();
}

fn shared_errors() -> f64 {
    procure_metrics::global()
        .render()
        .lines()
        .find(|l| l.starts_with("procure_product_cache_shared_errors_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A Redis of the test's own that speaks only TLS, with a certificate for `localhost` from the
/// test's CA (`test-ca.crt` in `dir`); killed when dropped.
struct TlsRedis {
    _child: tokio::process::Child,
    port: u16,
}

impl TlsRedis {
    async fn start(dir: &std::path::Path) -> TlsRedis {
        use support::tls::{make_ca, make_server_leaf};
        make_ca(dir, "test");
        make_server_leaf(dir, "test", "redis");
        let port = procure::devserver::free_port();
        let child = tokio::process::Command::new("redis-server")
            .current_dir(dir)
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args([
                "--tls-cert-file",
                "redis.crt",
                "--tls-key-file",
                "redis.key",
            ])
            .args([
                "--tls-ca-cert-file",
                "test-ca.crt",
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (scripts/bootstrap.sh installs it)");
        eventually(
            Duration::from_secs(20),
            "the TLS Redis listening",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        TlsRedis {
            _child: child,
            port,
        }
    }
}

/// Over `rediss://` the replicas share reads as over plain TCP, the server verified against the
/// CA named in `products.redis_ca_cert`. Without it the system's roots do not vouch for the
/// test's CA: nothing is shared, every read still answers from the database, and the failures
/// are counted.
#[tokio::test]
async fn over_tls_replicas_share_reads_and_an_unverified_server_is_never_used() {
    let dir = support::tls::pki_dir("redis");
    let redis = TlsRedis::start(&dir).await;
    let url = format!("rediss://localhost:{}/0", redis.port);
    for verified in [true, false] {
        let (url, prefix, ca) = (url.clone(), prefix(), dir.join("test-ca.crt"));
        let mut app = spawn_app_configured(fast(), move |cfg| {
            cfg.settings.products.redis_url = Some(url);
            cfg.settings.products.redis_prefix = prefix;
            cfg.settings.products.redis_ca_cert = verified.then_some(ca);
        })
        .await;
        let a = app.system.api_url.clone();
        let b = app.system.start_api_replica().await.unwrap();
        // A connection (and its handshake) may take longer than a call may wait on a loaded
        // machine; the level is then skipped for a moment. Each look imports a product no
        // replica has read yet, so what B answers from shows the level as it is now.
        let mut next = 683_461_300_000u64;
        if verified {
            eventually(
                Duration::from_secs(30),
                "B served from Redis over TLS",
                || {
                    next += 1;
                    let (app, a, b, id) = (&app, &a, &b, next);
                    async move { (read_fresh(app, a, b, id).await == "shared").then_some(()) }
                },
            )
            .await;
        } else {
            let errors_before = shared_errors();
            eventually(
                Duration::from_secs(30),
                "the refused handshakes counted",
                || {
                    next += 1;
                    let (app, a, b, id) = (&app, &a, &b, next);
                    async move {
                        let level = read_fresh(app, a, b, id).await;
                        assert_eq!(level, "store", "an unverified Redis is never read");
                        (shared_errors() > errors_before).then_some(())
                    }
                },
            )
            .await;
        }
        app.system.stop().await.unwrap();
    }
}

/// Import 1688 product `id` through A, read it on A (from the database) and then on B: the
/// level that answered B. Both answers agree.
async fn read_fresh(app: &TestApp, a: &str, b: &str, id: u64) -> String {
    let (status, p) = import(app, a, json!({"platform": "1688", "id": id.to_string()})).await;
    assert_eq!(status, 201, "{p}");
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let (status, level, first) = read(app, a, &path).await;
    assert_eq!((status, level.as_str()), (200, "store"), "{first}");
    let (status, level, on_b) = read(app, b, &path).await;
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(on_b, first);
    level
}

#[tokio::test]
async fn a_redis_url_procure_cannot_use_is_refused_at_start() {
    let ca = std::env::temp_dir().join(format!(
        "procure-redis-ca-{}.pem",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&ca, "not a certificate").unwrap();
    for (url, ca_cert, why) in [
        (
            "rediss://cache.internal:6380/0#insecure",
            None,
            "name check",
        ),
        (
            "redis://:hunter2@127.0.0.1:6379/0",
            None,
            "carries a password",
        ),
        ("http://127.0.0.1:6379", None, "not usable"),
        ("redis+unix:///run/redis.sock", None, "Unix socket"),
        (
            "redis://127.0.0.1:6379/0",
            Some(ca.clone()),
            "not rediss://",
        ),
        (
            "rediss://127.0.0.1:6379/0",
            Some(ca.clone()),
            "no PEM certificate",
        ),
        (
            "rediss://127.0.0.1:6379/0",
            Some(ca.with_extension("missing")),
            "reading",
        ),
    ] {
        let mut s = procure::settings::Settings {
            development: true,
            ..Default::default()
        };
        s.products.redis_url = Some(url.into());
        s.products.redis_ca_cert = ca_cert;
        let e = format!(
            "{:#}",
            s.deployment(procure::settings::Process::Api).unwrap_err()
        );
        assert!(
            e.contains("products.redis_") && e.contains(why),
            "{url}: {e}"
        );
        assert!(!e.contains("hunter2"), "the password is not repeated: {e}");
    }
}
