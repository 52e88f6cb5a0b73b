//! The deployable artefacts, checked for their structure: this machine has no Docker engine, so
//! the image is never built here. What can run here does: the health probe the image uses.

use std::{path::Path, process::Command};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments
/// dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if let Some((k, rest)) = current.trim().split_once(' ') {
                    out.push((k.to_ascii_uppercase(), rest.trim().to_owned()));
                }
                current.clear();
            }
        }
    }
    out
}

/// The instructions of each stage, by stage name.
fn stages(all: &[(String, String)]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (k, args) in all {
        if k == "FROM" {
            let name = args
                .split_once(" AS ")
                .map(|(_, n)| n.trim().to_owned())
                .unwrap_or_default();
            out.push((name, Vec::new()));
        } else {
            out.last_mut()
                .expect("FROM first")
                .1
                .push((k.clone(), args.clone()));
        }
    }
    out
}

#[test]
fn the_image_caches_dependencies_and_runs_unprivileged_with_a_health_check() {
    let all = instructions(&read("docker/Dockerfile"));
    let stages = stages(&all);
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chef", "planner", "build", "runtime"]);
    // Dependencies are cooked from the recipe before the sources arrive in the build stage.
    let build = &stages[2].1;
    let at = |what: &str| {
        build
            .iter()
            .position(|(k, a)| format!("{k} {a}").contains(what))
            .unwrap_or_else(|| panic!("build stage has no {what:?}: {build:?}"))
    };
    assert!(at("cargo chef cook --release") < at("COPY . ."));
    assert!(at("COPY . .") < at("cargo build --release --locked --bin procure"));
    let chef = &stages[0].1;
    assert!(
        chef.iter()
            .any(|(k, a)| k == "RUN" && a.contains("cargo-chef --locked --version")),
        "cargo-chef is pinned: {chef:?}"
    );

    let runtime = &stages[3].1;
    let get = |key: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let user = get("USER");
    assert_eq!(user.len(), 1, "{runtime:?}");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as non-root: {uid}");
    assert_eq!(get("EXPOSE"), ["8080"]);
    assert!(
        get("ENV").contains(&"PROCURE_API_ADDR=0.0.0.0:8080"),
        "the API listens outside the container's loopback"
    );
    let health = get("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains(
            r#"CMD ["/usr/local/bin/procure", "probe", "http://127.0.0.1:8080/health/live"]"#
        ),
        "{health:?}"
    );
    assert_eq!(get("ENTRYPOINT"), [r#"["/usr/local/bin/procure"]"#]);
    // Only the binary comes from the build stage.
    let copies = get("COPY");
    assert_eq!(
        copies,
        ["--from=build /src/target/release/procure /usr/local/bin/procure"]
    );
}

#[test]
fn the_build_context_leaves_out_build_output_history_and_local_data() {
    let ignore = read(".dockerignore");
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "target/",
        "**/target/",
        ".git/",
        ".procure/",
        "**/*.db",
        "procure.toml",
    ] {
        assert!(
            entries.contains(&needed),
            ".dockerignore lacks {needed}: {entries:?}"
        );
    }
    // Nothing the release build reads is excluded.
    for kept in ["migrations", "config", "Cargo.lock", "src", "api", "domain"] {
        assert!(
            !entries.iter().any(|e| e.trim_end_matches('/') == kept),
            "{kept} is needed by the build"
        );
    }
}

fn probe(url: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_procure"))
        .args(["probe", url])
        .output()
        .expect("procure runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_health_probe_passes_on_2xx_and_fails_otherwise() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that answers 200 on /live and 503 elsewhere, one request per connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let status = if head.starts_with("GET /live ") {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    let live = format!("{base}/live");
    let down = format!("{base}/ready");
    let ((ok, _), (unready, says)) =
        tokio::task::spawn_blocking(move || (probe(&live), probe(&down)))
            .await
            .unwrap();
    assert_eq!(ok, Some(0));
    assert_eq!(unready, Some(1));
    assert!(says.contains("503"), "{says}");
    // Nothing listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/live", l.local_addr().unwrap())
    };
    let (code, says) = tokio::task::spawn_blocking(move || probe(&dead))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(says.contains("probe:"), "{says}");
}
