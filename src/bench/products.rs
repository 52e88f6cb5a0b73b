//! `procure bench products`: imports against the sandbox, then product reads measured by an
//! independent load generator (`wrk`, installed by the bootstrap's `wrk` step when missing)
//! against the running API process.
//!
//! 1. **Imports.** `products_imports` links (a third each of 1688, Taobao and Pinduoduo, every
//!    one a different product the sandbox generates) imported through `POST
//!    /api/v1/products/import`, `products.max_concurrent_imports` at a time: imports per second.
//! 2. **Cached reads.** `wrk` against `GET /api/v1/products/{id}`, cycling over the imported
//!    products with a customer's bearer token: every read after the first is an in-process
//!    cache hit.
//! 3. **Cold reads.** The same against a second `procure api` process on the same database with
//!    the cache off (`products.cache_entries = 0`): every read goes to the store.
//! 4. **Shared-level reads.** The same against a third process with its in-process cache off
//!    and the shared level on (`products.redis_url`, the machine's Redis at
//!    `PROCURE_TEST_REDIS_URL` or 127.0.0.1:6379; skipped when none answers): after the warm-up
//!    every read is answered from Redis.
//!
//! The vendors' request pacing is lifted against the sandbox (as in every phase), so the import
//! rate is procure's own; the real budgets are the marketplaces' (docs/vendors/).

use super::{BenchConfig, results::RunInfo, system::Launched};
use anyhow::Context;
use futures_util::{StreamExt, stream};
use procure_api::auth::Role;
use serde::{Deserialize, Serialize};
use std::{path::Path, time::Instant};

/// What `wrk` measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadRun {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers and socket errors wrk counted.
    pub errors: u64,
    pub threads: u32,
    pub connections: u32,
    pub distinct_products: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductsResult {
    pub run: RunInfo,
    pub imports: usize,
    pub import_failures: usize,
    pub import_seconds: f64,
    pub imports_per_s: f64,
    pub import_concurrency: usize,
    pub cached: ReadRun,
    pub cold: ReadRun,
    /// `None` when no Redis answered.
    #[serde(default)]
    pub shared: Option<ReadRun>,
}

/// The links of the import step: distinct generated products, platforms interleaved.
fn links(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!(
                "https://detail.1688.com/offer/{}.html",
                683_000_000_000u64 + i as u64
            ),
            1 => format!(
                "https://item.taobao.com/item.htm?id={}",
                695_000_000_000u64 + i as u64
            ),
            _ => format!(
                "https://mobile.yangkeduo.com/goods.html?goods_id={}",
                428_000_000_000u64 + i as u64
            ),
        })
        .collect()
}

pub async fn run(cfg: &BenchConfig) -> anyhow::Result<ProductsResult> {
    ensure_wrk()?;
    let (mut r, run) = cfg
        .measured("products", vec![], async |system| {
            measure(cfg, system).await
        })
        .await?;
    r.run = run;
    Ok(r)
}

async fn measure(cfg: &BenchConfig, system: &Launched) -> anyhow::Result<ProductsResult> {
    let driver = crate::demo::Driver::new(system.api_url.clone(), system.sandbox_url.clone());
    let token = driver.token(Role::Customer, Some("cust-bench"));
    let http = reqwest::Client::new();
    let concurrency = procure_api::ProductsConfig::default().max_concurrent_imports;
    let started = Instant::now();
    let answers: Vec<anyhow::Result<String>> = stream::iter(links(cfg.products_imports))
        .map(|link| {
            let (http, token, api) = (http.clone(), token.clone(), system.api_url.clone());
            async move {
                let r = http
                    .post(format!("{api}/api/v1/products/import"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"url": link}))
                    .send()
                    .await?;
                let status = r.status();
                let body: serde_json::Value = r.json().await?;
                anyhow::ensure!(status.is_success(), "{link}: {status} {body}");
                body["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("an imported product has an id")
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let import_seconds = started.elapsed().as_secs_f64();
    let failures: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    if let Some(first) = failures.first() {
        eprintln!("bench: {} import(s) failed, e.g. {first}", failures.len());
    }
    let ids: Vec<String> = answers.into_iter().filter_map(Result::ok).collect();
    anyhow::ensure!(!ids.is_empty(), "no product was imported");
    eprintln!(
        "bench: imported {} products in {import_seconds:.1} s; reading them with wrk …",
        ids.len()
    );
    let script = system.dir.join("products.lua");
    std::fs::write(&script, lua(&ids, &token))?;
    let cached = wrk(cfg, &system.api_url, &script, ids.len()).await?;
    eprintln!(
        "bench: cached reads {:.0}/s, P99 {:.2} ms; a second API with the cache off …",
        cached.requests_per_s, cached.p99_ms
    );
    let cold = reads_through(
        cfg,
        system,
        "api-cold",
        &[("PROCURE_PRODUCTS__CACHE_ENTRIES".into(), "0".into())],
        &script,
        ids.len(),
    )
    .await?;
    let shared = shared_reads(cfg, system, &script, ids.len()).await?;
    Ok(ProductsResult {
        run: RunInfo::default(),
        imports: ids.len(),
        import_failures: failures.len(),
        import_seconds,
        imports_per_s: ids.len() as f64 / import_seconds.max(1e-9),
        import_concurrency: concurrency,
        cached,
        cold,
        shared,
    })
}

/// Reads through a replica whose only cache is the shared level (module docs, step 4).
async fn shared_reads(
    cfg: &BenchConfig,
    system: &Launched,
    script: &Path,
    distinct: usize,
) -> anyhow::Result<Option<ReadRun>> {
    let redis = std::env::var("PROCURE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let hostport = redis
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if tokio::net::TcpStream::connect(&hostport).await.is_err() {
        eprintln!("bench: no Redis answers at {redis}; shared-level reads skipped");
        return Ok(None);
    }
    eprintln!("bench: a third API reading through Redis only …");
    let prefix = format!("procure-bench-{}:", uuid::Uuid::new_v4().simple());
    let env = [
        ("PROCURE_PRODUCTS__CACHE_ENTRIES".into(), "0".into()),
        ("PROCURE_PRODUCTS__REDIS_URL".into(), redis),
        ("PROCURE_PRODUCTS__REDIS_PREFIX".into(), prefix),
    ];
    reads_through(cfg, system, "api-shared", &env, script, distinct)
        .await
        .map(Some)
}

/// `wrk` against another `procure api` process on the same database, started with `env`
/// and stopped after.
async fn reads_through(
    cfg: &BenchConfig,
    system: &Launched,
    name: &str,
    env: &[(String, String)],
    script: &Path,
    distinct: usize,
) -> anyhow::Result<ReadRun> {
    let port = crate::devserver::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("PROCURE_API_ADDR".into(), format!("127.0.0.1:{port}")));
    let mut api = system.spawn_with(&cfg.exe, name, &["api"], &env)?;
    let run = async {
        crate::system::wait_http_ok(
            &format!("{url}/health/ready"),
            std::time::Duration::from_secs(60),
        )
        .await
        .with_context(|| format!("{name} did not become ready"))?;
        wrk(cfg, &url, script, distinct).await
    }
    .await;
    let _ = api.kill().await;
    run
}

/// The wrk script: each request reads the next product, with the bearer token.
fn lua(ids: &[String], token: &str) -> String {
    let list: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "local ids = {{{}}}\nlocal n = 0\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         request = function()\n  n = n + 1\n  \
         return wrk.format(\"GET\", \"/api/v1/products/\" .. ids[(n % #ids) + 1])\nend\n\
         done = function(summary, latency, requests)\n  \
         io.write(string.format(\"procure-errors %d\\n\", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n\
         for _, p in pairs({{50, 90, 99}}) do\n    \
         io.write(string.format(\"procure-p%d %.3f\\n\", p, latency:percentile(p) / 1000.0))\n  end\nend\n",
        list.join(", ")
    )
}

fn ensure_wrk() -> anyhow::Result<()> {
    if which("wrk") {
        return Ok(());
    }
    eprintln!("bench: wrk is missing; installing it (scripts/bootstrap.sh, step wrk) …");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/bootstrap.sh"))
        .env("PROCURE_BOOTSTRAP_STEPS", "wrk")
        .status()
        .context("running scripts/bootstrap.sh")?;
    anyhow::ensure!(
        status.success() && which("wrk"),
        "wrk could not be installed"
    );
    Ok(())
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn wrk(
    cfg: &BenchConfig,
    base: &str,
    script: &Path,
    distinct: usize,
) -> anyhow::Result<ReadRun> {
    let (threads, connections) = (cfg.products_wrk_threads, cfg.products_wrk_connections);
    // A short warm-up fills the cache (and the connection pools), then the measured run.
    for (seconds, measured) in [(2, false), (cfg.products_seconds, true)] {
        let out = tokio::process::Command::new("wrk")
            .args([
                &format!("-t{threads}"),
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "-s",
                &script.display().to_string(),
                base,
            ])
            .output()
            .await
            .context("running wrk")?;
        anyhow::ensure!(
            out.status.success(),
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if measured {
            let text = String::from_utf8_lossy(&out.stdout);
            return parse_wrk(&text, threads, connections, distinct);
        }
    }
    unreachable!("the measured run returns")
}

fn parse_wrk(
    text: &str,
    threads: u32,
    connections: u32,
    distinct: usize,
) -> anyhow::Result<ReadRun> {
    let value = |key: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    // "  123456 requests in 15.00s, 98.12MB read"
    let (requests, seconds) = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let (n, rest) = l.split_once(" requests in ")?;
            let secs = rest.split('s').next()?.parse::<f64>().ok()?;
            Some((n.parse::<u64>().ok()?, secs))
        })
        .with_context(|| format!("wrk's output has no request count:\n{text}"))?;
    Ok(ReadRun {
        requests,
        seconds,
        requests_per_s: value("Requests/sec:").unwrap_or(requests as f64 / seconds.max(1e-9)),
        p50_ms: value("procure-p50").unwrap_or_default(),
        p90_ms: value("procure-p90").unwrap_or_default(),
        p99_ms: value("procure-p99").unwrap_or_default(),
        errors: value("procure-errors").unwrap_or_default() as u64,
        threads,
        connections,
        distinct_products: distinct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_report() {
        let out = "Running 15s test @ http://127.0.0.1:8080\n  2 threads and 64 connections\n  \
                   480000 requests in 15.00s, 1.20GB read\nRequests/sec:  32000.12\n\
                   Transfer/sec:     81.9MB\nprocure-errors 3\nprocure-p50 1.250\nprocure-p90 2.500\nprocure-p99 4.750\n";
        let r = parse_wrk(out, 2, 64, 300).unwrap();
        assert_eq!((r.requests, r.seconds, r.errors), (480_000, 15.0, 3));
        assert_eq!(
            (r.requests_per_s, r.p50_ms, r.p99_ms),
            (32000.12, 1.25, 4.75)
        );
        assert!(parse_wrk("nothing", 1, 1, 1).is_err());
        let l = links(6);
        assert!(l[0].contains("1688.com") && l[1].contains("taobao") && l[2].contains("yangkeduo"));
        assert_eq!(l.iter().collect::<std::collections::HashSet<_>>().len(), 6);
    }
}
