//! The deployable artefacts, checked for their structure: this machine has no Docker engine and
//! no Kubernetes cluster, so the image is never built and neither docker/compose.yaml nor
//! deploy/k8s/ is ever brought up here. What can be checked is: every file parses; the services,
//! images, commands and ports fit together; every `PROCURE_…` variable is a real setting
//! (`procure::settings`, so a renamed key fails here); the settings each process is given load
//! and pass the same start-up checks a real start does (secrets, warehouse); health checks and
//! probes name real paths and ports; Prometheus scrapes what runs; the dashboard asks only for
//! series procure exports. What can run here does: the health probe the image uses, and the
//! sandbox exactly as compose starts it.

use procure::settings::{
    ALIASES, CONFIG_VAR, Process, SECRETS, Settings, Sources, env_name, known_keys,
};
use serde_norway::Value;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

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
    assert_eq!(
        get("EXPOSE"),
        ["8080 9464"],
        "the API's port and the metrics port"
    );
    assert!(
        get("ENV").contains(&"PROCURE_API_ADDR=0.0.0.0:8080"),
        "the API listens outside the container's loopback"
    );
    assert!(
        get("ENV").contains(&"PROCURE_METRICS_ADDR=0.0.0.0:9464"),
        "every process serves its metrics outside the container's loopback"
    );
    for (k, a) in &all {
        assert!(
            !(k == "RUN" && a.contains("protobuf-compiler")),
            "the temporal crates build their protos with vendored protox: no protoc"
        );
    }
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

// ---------------------------------------------------------------------------------------------
// Reading the artefacts
// ---------------------------------------------------------------------------------------------

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A YAML file with its merge keys (`<<: *anchor`) applied, as Compose reads it. One
/// `apply_merge` resolves one level: a merged mapping that itself merges another (`worker-1`
/// takes `x-worker`, which takes `x-procure-image`) brings its own `<<` along, so repeat.
fn yaml(path: &str) -> Value {
    fn has_merge_key(v: &Value) -> bool {
        match v {
            Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
            Value::Sequence(items) => items.iter().any(has_merge_key),
            _ => false,
        }
    }
    let mut v: Value =
        serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    for _ in 0..8 {
        if !has_merge_key(&v) {
            return v;
        }
        v.apply_merge()
            .unwrap_or_else(|e| panic!("{path}: merge keys: {e}"));
    }
    panic!("{path}: merge keys nested deeper than 8");
}

/// Every document of a YAML stream (a Kubernetes manifest may hold several).
fn yaml_docs(path: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(&read(path))
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items.iter().map(s).collect(),
        // Compose's shell form; none of our commands quote anything.
        Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| m.keys().map(s).collect())
        .unwrap_or_default()
}

/// `host:port` → port.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} has no port"))
}

/// `http://host:port/path` → (host, port, path).
fn url_parts(url: &str) -> (String, u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url:?} is not http://"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url:?} names no port"));
    (
        host.to_owned(),
        port.parse().expect("a port"),
        path.to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Settings: what a variable sets, and whether the settings given would start a process
// ---------------------------------------------------------------------------------------------

/// The key path a `PROCURE_…` variable sets, as the settings loader reads it (src/settings/):
/// an older name, a secret's older name, a nested name of a key of the tree, or a secret's
/// `…_FILE`. `None`: not a setting of procure at all.
fn setting_of(name: &str) -> Option<String> {
    if let Some((_, key)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some(key.to_string());
    }
    if let Some(secret) = SECRETS.iter().find(|s| s.aliases.contains(&name)) {
        return Some(secret.path.to_owned());
    }
    if let Some(base) = name.strip_suffix("_FILE")
        && let Some(secret) = SECRETS
            .iter()
            .find(|s| env_name(s.path) == base || s.aliases.contains(&base))
    {
        return Some(secret.path.to_owned());
    }
    let known = known_keys();
    known
        .iter()
        .map(String::as_str)
        .chain(SECRETS.iter().map(|s| s.path))
        .find(|key| env_name(key) == name)
        .map(str::to_owned)
}

/// Every `PROCURE_…` name in `env` is a setting (or names the settings file).
fn assert_real_settings(what: &str, env: &[(String, String)]) {
    let unknown: Vec<&str> = env
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("PROCURE_") && *k != CONFIG_VAR && setting_of(k).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "{what}: no such procure settings: {unknown:?} (src/settings/keys.rs)"
    );
}

/// The secrets `process` must be given outside development, by key path.
fn needed_secrets(process: Process) -> Vec<&'static str> {
    SECRETS
        .iter()
        .filter(|s| s.needed_by.contains(&process))
        .map(|s| s.path)
        .collect()
}

/// Each secret `process` needs is set in `env`, by any of its names.
fn assert_secrets_given(what: &str, process: Process, env: &[(String, String)]) {
    let given: BTreeSet<String> = env.iter().filter_map(|(k, _)| setting_of(k)).collect();
    let missing: Vec<&str> = needed_secrets(process)
        .into_iter()
        .filter(|p| !given.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "{what} is not given the secrets {missing:?}"
    );
}

/// The settings `env` gives, checked for `process` exactly as a start checks them.
fn start_checks(env: &[(String, String)], process: Process) -> anyhow::Result<Settings> {
    let settings = Settings::load(&Sources {
        env: env.to_vec(),
        ..Default::default()
    })?;
    settings.deployment(process)?;
    Ok(settings)
}

// ---------------------------------------------------------------------------------------------
// docker/compose.yaml
// ---------------------------------------------------------------------------------------------

const PROCURE_SERVICES: [&str; 5] = ["api", "worker-1", "worker-2", "sandbox", "codec-token"];
const WORKERS: [&str; 2] = ["worker-1", "worker-2"];

struct Compose {
    doc: Value,
}

impl Compose {
    fn load() -> Self {
        Compose {
            doc: yaml("docker/compose.yaml"),
        }
    }

    fn services(&self) -> Vec<String> {
        keys(&self.doc["services"])
    }

    fn service(&self, name: &str) -> &Value {
        let v = &self.doc["services"][name];
        assert!(!v.is_null(), "compose has no service {name}");
        v
    }

    /// A service's command as the container gets it: Compose turns `$$` into `$`.
    fn command(&self, name: &str) -> Vec<String> {
        strings(&self.service(name)["command"])
            .into_iter()
            .map(|a| a.replace("$$", "$"))
            .collect()
    }

    fn env(&self, name: &str) -> Vec<(String, String)> {
        match &self.service(name)["environment"] {
            Value::Null => Vec::new(),
            Value::Mapping(m) => m.iter().map(|(k, v)| (s(k), s(v))).collect(),
            Value::Sequence(items) => items
                .iter()
                .map(|i| {
                    let kv = s(i);
                    let (k, v) = kv.split_once('=').expect("K=V");
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            other => panic!("{name}: environment {other:?}"),
        }
    }

    fn var(&self, name: &str, var: &str) -> Option<String> {
        self.env(name)
            .into_iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v)
    }

    /// The environment the process sees: the image's `ENV` lines, then the service's.
    fn process_env(&self, name: &str) -> Vec<(String, String)> {
        let mut env = dockerfile_env();
        for (k, v) in self.env(name) {
            env.retain(|(e, _)| *e != k);
            env.push((k, v));
        }
        env
    }

    /// As `process_env`, with each `…_FILE` pointing at the file in the repository that compose
    /// mounts at that path (every one must be a secret this service is given).
    fn resolved_env(&self, name: &str) -> Vec<(String, String)> {
        let mounted = self.secret_files(name);
        self.process_env(name)
            .into_iter()
            .map(|(k, v)| {
                if !k.ends_with("_FILE") {
                    return (k, v);
                }
                let file = mounted.get(&v).unwrap_or_else(|| {
                    panic!("{name}: {k}={v} is not a secret mounted in this service")
                });
                (k, file.display().to_string())
            })
            .collect()
    }

    /// The secrets a service is given: the path it sees them at, and the repository's file.
    fn secret_files(&self, name: &str) -> BTreeMap<String, PathBuf> {
        strings(&self.service(name)["secrets"])
            .into_iter()
            .map(|secret| {
                let file = s(&self.doc["secrets"][secret.as_str()]["file"]);
                let path = repo("docker").join(file);
                assert!(
                    path.is_file(),
                    "secret {secret}: {} is missing",
                    path.display()
                );
                (format!("/run/secrets/{secret}"), path)
            })
            .collect()
    }

    fn image(&self, name: &str) -> String {
        s(&self.service(name)["image"])
    }

    /// The probe URL of a service's health check that runs `procure probe`.
    fn probe_url(&self, name: &str) -> String {
        let test = strings(&self.service(name)["healthcheck"]["test"]);
        assert_eq!(
            test[..3],
            ["CMD", "/usr/local/bin/procure", "probe"],
            "{name}: its health check is the image's probe: {test:?}"
        );
        test[3].clone()
    }

    /// Host ports published for a container port.
    fn published(&self, name: &str, container: u16) -> Vec<u16> {
        strings(&self.service(name)["ports"])
            .iter()
            .filter_map(|p| {
                let (host, inner) = p.rsplit_once(':')?;
                (inner.parse::<u16>().ok()? == container).then(|| port_of(host))
            })
            .collect()
    }

    fn depends_on(&self, name: &str) -> BTreeMap<String, String> {
        match &self.service(name)["depends_on"] {
            Value::Null => BTreeMap::new(),
            Value::Sequence(items) => items
                .iter()
                .map(|i| (s(i), "service_started".to_owned()))
                .collect(),
            Value::Mapping(m) => m.iter().map(|(k, v)| (s(k), s(&v["condition"]))).collect(),
            other => panic!("{name}: depends_on {other:?}"),
        }
    }

    fn has_healthcheck(&self, name: &str) -> bool {
        let h = &self.service(name)["healthcheck"];
        !h.is_null() && h["disable"] != Value::Bool(true)
    }

    fn stop_grace_s(&self, name: &str) -> u64 {
        let text = s(&self.service(name)["stop_grace_period"]);
        text.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: stop_grace_period {text:?} is not N s"))
    }

    /// A bind mount of the repository's `source` (relative to docker/) in a service: its target.
    fn mount_target(&self, name: &str, source: &str) -> Option<String> {
        strings(&self.service(name)["volumes"])
            .into_iter()
            .find_map(|v| {
                let mut parts = v.split(':');
                let (from, to) = (parts.next()?, parts.next()?);
                (from == source).then(|| to.to_owned())
            })
    }
}

/// The `ENV` lines of the image's runtime stage.
fn dockerfile_env() -> Vec<(String, String)> {
    let all = instructions(&read("docker/Dockerfile"));
    let stages = stages(&all);
    stages[3]
        .1
        .iter()
        .filter(|(k, _)| k == "ENV")
        .map(|(_, a)| {
            let (k, v) = a.split_once('=').expect("ENV K=V");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Which process a compose service runs.
fn process_of(service: &str) -> Process {
    match service {
        "api" => Process::Api,
        "codec-token" => Process::Token,
        w if w.starts_with("worker") => Process::Worker,
        other => panic!("{other} runs no settings-checked process"),
    }
}

/// The settings of a compose service, loaded and checked as its process would at start.
fn compose_settings(c: &Compose, name: &str, process: Process) -> Settings {
    let env = c.resolved_env(name);
    start_checks(&env, process)
        .unwrap_or_else(|e| panic!("compose service {name} would not start: {e:#}"))
}

#[test]
fn compose_runs_temporal_on_postgresql_with_the_ui_and_procure_from_the_built_image() {
    let c = Compose::load();
    let services: BTreeSet<String> = c.services().into_iter().collect();
    for needed in [
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "codec-token",
        "sandbox",
        "api",
        "worker-1",
        "worker-2",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains(needed),
            "compose lacks {needed}: {services:?}"
        );
    }
    // Compose interpolates `$NAME` and `${NAME}` from the host: nothing here depends on the
    // host's environment, every literal `$` is written `$$`.
    let raw = read("docker/compose.yaml").replace("$$", "");
    assert!(
        !raw.contains('$'),
        "docker/compose.yaml interpolates from the host"
    );
    // Every image is pinned, none is Temporal's deprecated all-in-one auto-setup image.
    for name in &services {
        let image = c.image(name);
        let (repo, tag) = image.rsplit_once(':').unwrap_or((&image, ""));
        assert!(
            !tag.is_empty() && tag != "latest",
            "{name}: {image} is not pinned"
        );
        assert_ne!(
            repo, "temporalio/auto-setup",
            "{name}: auto-setup is deprecated"
        );
    }
    // procure's services run the image docker/Dockerfile builds, from the repository root.
    for name in PROCURE_SERVICES {
        let svc = c.service(name);
        assert_eq!(c.image(name), "procure:local", "{name}");
        let context = repo("docker").join(s(&svc["build"]["context"]));
        assert_eq!(
            context.canonicalize().unwrap(),
            repo("").canonicalize().unwrap(),
            "{name}: builds from the repository root"
        );
        assert!(
            context.join(s(&svc["build"]["dockerfile"])).is_file(),
            "{name}"
        );
    }
    assert_eq!(c.command("api")[0], "api");
    for w in WORKERS {
        assert_eq!(c.command(w), ["worker"]);
    }
    // The Temporal server and its admin tools are one release, on the PostgreSQL service.
    let server = c.image("temporal");
    let version = server.strip_prefix("temporalio/server:").expect(&server);
    for tool in ["temporal-schema", "temporal-namespace"] {
        assert_eq!(c.image(tool), format!("temporalio/admin-tools:{version}"));
    }
    assert!(c.image("temporal-ui").starts_with("temporalio/ui:"));
    assert_eq!(c.var("temporal", "DB").as_deref(), Some("postgres12"));
    assert_eq!(
        c.var("temporal", "POSTGRES_SEEDS").as_deref(),
        Some("postgresql")
    );
    assert_eq!(
        c.var("temporal-schema", "POSTGRES_SEEDS").as_deref(),
        Some("postgresql")
    );
    assert!(c.image("postgresql").starts_with("postgres:"));
    // Temporal's databases exist before the schema job runs, and procure has its own.
    let init = read("docker/postgres/init.sql");
    let init_target = c
        .mount_target("postgresql", "./postgres/init.sql")
        .expect("init.sql is mounted");
    assert!(
        init_target.starts_with("/docker-entrypoint-initdb.d/"),
        "{init_target}"
    );
    for db in ["temporal", "temporal_visibility", "procure"] {
        assert!(
            init.contains(&format!("CREATE DATABASE {db}")),
            "init.sql: {db}"
        );
    }
    let schema = read("docker/temporal/setup-schema.sh");
    for (db, dir) in [
        ("temporal", "temporal"),
        ("temporal_visibility", "visibility"),
    ] {
        for step in [
            format!("--db {db} setup-schema -v 0.0"),
            format!("--db {db} update-schema -d \"$schema/{dir}/versioned\""),
        ] {
            assert!(schema.contains(&step), "setup-schema.sh runs {step}");
        }
    }
    let procure_db = c.var("api", "PROCURE_DATABASE_URL").unwrap();
    assert!(
        procure_db.starts_with("postgres://procure:"),
        "{procure_db}"
    );
    assert!(
        procure_db.contains("@postgresql:5432/procure"),
        "{procure_db}"
    );
    // Scripts the admin tools run are the repository's, where the services mount them.
    for tool in ["temporal-schema", "temporal-namespace"] {
        let target = c.mount_target(tool, "./temporal").expect("scripts mounted");
        let script = c.command(tool)[0].clone();
        let local = script
            .strip_prefix(&format!("{target}/"))
            .unwrap_or_else(|| panic!("{tool} runs {script}, outside {target}"));
        assert!(repo("docker/temporal").join(local).is_file(), "{script}");
    }
    let dynamic = c.var("temporal", "DYNAMIC_CONFIG_FILE_PATH").unwrap();
    assert_eq!(
        c.mount_target("temporal", "./temporal/dynamicconfig.yaml"),
        Some(dynamic)
    );
    assert!(yaml("docker/temporal/dynamicconfig.yaml").is_mapping());
}

#[test]
fn compose_creates_procures_namespace_with_its_order_state_search_attribute() {
    let c = Compose::load();
    let namespace = c.var("temporal-namespace", "TEMPORAL_NAMESPACE").unwrap();
    for name in ["api", "worker-1", "worker-2"] {
        let settings = compose_settings(&c, name, process_of(name));
        assert_eq!(
            settings.temporal.namespace.as_deref(),
            Some(namespace.as_str())
        );
        // The frontend is the temporal service's gRPC port.
        let address = settings.temporal.address.clone().unwrap();
        let (host, port) = address.rsplit_once(':').unwrap();
        assert_eq!(host, "temporal");
        assert_eq!(c.published("temporal", port.parse().unwrap()), [7233]);
    }
    assert_eq!(
        c.var("temporal-ui", "TEMPORAL_DEFAULT_NAMESPACE")
            .as_deref(),
        Some(namespace.as_str())
    );
    let script = read("docker/temporal/create-namespace.sh");
    assert!(script.contains("namespace create --namespace \"$TEMPORAL_NAMESPACE\""));
    let register = format!(
        "search-attribute create --namespace \"$TEMPORAL_NAMESPACE\" --name {} --type Keyword",
        procure_workflows::ORDER_STATE_ATTRIBUTE
    );
    assert!(script.contains(&register), "registers {register}");
    assert!(
        script.contains(&format!(
            "grep -qw {}",
            procure_workflows::ORDER_STATE_ATTRIBUTE
        )),
        "registers it only once"
    );
}

#[test]
fn compose_gives_each_procure_process_real_settings_and_every_secret_it_needs() {
    let c = Compose::load();
    assert_real_settings("docker/Dockerfile", &dockerfile_env());
    for name in PROCURE_SERVICES {
        assert_real_settings(&format!("compose service {name}"), &c.process_env(name));
    }
    let demo_secrets: BTreeSet<String> = keys(&c.doc["secrets"]).into_iter().collect();
    for name in PROCURE_SERVICES {
        for secret in strings(&c.service(name)["secrets"]) {
            assert!(
                demo_secrets.contains(&secret),
                "{name}: {secret} is not defined"
            );
        }
    }
    // The same checks a start makes: not development, every secret given (each from its file),
    // the keys well formed, and a worker with a warehouse of its own.
    for (name, process) in [("api", Process::Api), ("codec-token", Process::Token)]
        .into_iter()
        .chain(WORKERS.map(|w| (w, Process::Worker)))
    {
        let env = c.resolved_env(name);
        assert_secrets_given(&format!("compose service {name}"), process, &env);
        let settings = compose_settings(&c, name, process);
        assert!(
            !settings.development,
            "{name} runs closed, as in production"
        );
    }
    // Every vendor is the sandbox service, on the port it listens on.
    let sandbox_port = port_of(&flag(&c.command("sandbox"), "--listen"));
    for name in ["api", "worker-1", "worker-2"] {
        let settings = compose_settings(&c, name, process_of(name));
        assert_eq!(
            settings.external_url,
            format!("http://sandbox:{sandbox_port}"),
            "{name}"
        );
        for own in [
            &settings.alibaba.base_url,
            &settings.taobao.base_url,
            &settings.pinduoduo.base_url,
            &settings.payments.base_url,
            &settings.tracking.base_url,
            &settings.carrier.base_url,
            &settings.fx.base_url,
        ] {
            assert_eq!(own, &None, "{name}: a vendor overrides the sandbox");
        }
    }
    // The vendor credentials are the sandbox's own demo ones, so its checks pass.
    let demo = procure_sandbox::SandboxConfig::default();
    let worker = c.resolved_env("worker-1");
    let secret_of = |var: &str| {
        let path = &worker.iter().find(|(k, _)| k == var).expect(var).1;
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    };
    assert_eq!(
        secret_of("PROCURE_ALIBABA__APP_KEY_FILE"),
        demo.alibaba_app_key
    );
    assert_eq!(
        secret_of("PROCURE_TAOBAO__ACCESS_TOKEN_FILE"),
        demo.taobao_access_token
    );
    assert_eq!(
        secret_of("PROCURE_PAYMENTS__API_KEY_FILE"),
        demo.stripe_api_key
    );
    assert_eq!(
        secret_of("PROCURE_CARRIER__API_KEY_FILE"),
        demo.carrier_api_key
    );
    let api = c.resolved_env("api");
    let webhook = &api
        .iter()
        .find(|(k, _)| k == "PROCURE_PAYMENTS__WEBHOOK_SECRET_FILE")
        .unwrap()
        .1;
    assert_eq!(
        std::fs::read_to_string(webhook).unwrap().trim(),
        demo.stripe_webhook_secret
    );
    // The API and the workers share the payload keys, or no one could read another's payloads.
    let files = |name: &str| c.secret_files(name);
    for w in WORKERS {
        for secret in ["/run/secrets/keys_payload", "/run/secrets/keys_data"] {
            assert_eq!(files("api")[secret], files(w)[secret], "{w}: {secret}");
        }
    }
}

/// The value after `name` in a command line.
fn flag(command: &[String], name: &str) -> String {
    let at = command
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("{command:?} has no {name}"));
    command[at + 1].clone()
}

#[test]
fn compose_health_checks_probe_the_real_paths_and_ports() {
    let c = Compose::load();
    let api = compose_settings(&c, "api", Process::Api);
    let api_port = api.listen_addr().unwrap().port();
    assert_eq!(
        c.probe_url("api"),
        format!("http://127.0.0.1:{api_port}/health/ready")
    );
    assert_eq!(c.published("api", api_port), [8080]);
    let metrics_port = port_of(&c.var("api", "PROCURE_METRICS_ADDR").unwrap());
    for w in WORKERS {
        let own = port_of(&c.var(w, "PROCURE_METRICS_ADDR").unwrap());
        assert_eq!(own, metrics_port);
        assert_eq!(
            c.probe_url(w),
            format!("http://127.0.0.1:{own}/health/ready"),
            "a worker's health is on its metrics port"
        );
    }
    let listen = flag(&c.command("sandbox"), "--listen");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "reachable from other containers"
    );
    assert_eq!(
        c.probe_url("sandbox"),
        format!("http://127.0.0.1:{}/_sandbox/health", port_of(&listen))
    );
    // The Temporal server's check is its frontend's port.
    let test = strings(&c.service("temporal")["healthcheck"]["test"]);
    assert_eq!(test.last().unwrap(), "7233");
}

#[test]
fn compose_starts_each_service_after_what_it_needs() {
    let c = Compose::load();
    let services = c.services();
    // Every dependency exists, waits on a condition it can reach, and there is no cycle.
    for name in &services {
        for (dep, condition) in c.depends_on(name) {
            assert!(services.contains(&dep), "{name} depends on a missing {dep}");
            match condition.as_str() {
                "service_healthy" => assert!(
                    c.has_healthcheck(&dep),
                    "{name} waits for {dep} to be healthy, but it has no health check"
                ),
                "service_completed_successfully" => {
                    let restart = c.service(&dep)["restart"].as_str().unwrap_or("no");
                    assert!(
                        restart == "no" || restart.starts_with("on-failure"),
                        "{name} waits for {dep} to finish, but {dep} restarts ({restart})"
                    );
                }
                "service_started" => {}
                other => panic!("{name} → {dep}: unknown condition {other}"),
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < services.len() {
        let ready: Vec<String> = services
            .iter()
            .filter(|s| !order.contains(s))
            .filter(|s| c.depends_on(s).keys().all(|d| order.contains(d)))
            .cloned()
            .collect();
        assert!(
            !ready.is_empty(),
            "a dependency cycle among {services:?} after {order:?}"
        );
        order.extend(ready);
    }
    let waits = |name: &str, dep: &str, condition: &str| {
        assert_eq!(
            c.depends_on(name).get(dep).map(String::as_str),
            Some(condition),
            "{name} must wait for {dep} ({condition})"
        );
    };
    waits("temporal-schema", "postgresql", "service_healthy");
    waits(
        "temporal",
        "temporal-schema",
        "service_completed_successfully",
    );
    waits("temporal-namespace", "temporal", "service_healthy");
    waits(
        "temporal-ui",
        "temporal-namespace",
        "service_completed_successfully",
    );
    waits(
        "temporal-ui",
        "codec-token",
        "service_completed_successfully",
    );
    waits("api", "postgresql", "service_healthy");
    waits(
        "api",
        "temporal-namespace",
        "service_completed_successfully",
    );
    // It seeds its listings from the sandbox's catalogue at start.
    assert!(
        c.command("api")
            .contains(&"--seed-sandbox-catalogue".to_owned())
    );
    waits("api", "sandbox", "service_healthy");
    for w in WORKERS {
        waits(w, "temporal-namespace", "service_completed_successfully");
        waits(w, "api", "service_healthy");
    }
    waits("grafana", "prometheus", "service_started");
}

#[test]
fn compose_workers_get_longer_to_stop_than_their_activities() {
    let c = Compose::load();
    for w in WORKERS {
        let settings = compose_settings(&c, w, Process::Worker);
        let graceful = settings.worker.graceful_shutdown_s;
        assert!(
            c.stop_grace_s(w) > graceful,
            "{w}: stop_grace_period {} s ≤ worker.graceful_shutdown_s {graceful} s",
            c.stop_grace_s(w)
        );
    }
}

#[test]
fn compose_web_ui_decodes_through_procures_codec_endpoint_with_a_codec_token() {
    let c = Compose::load();
    // The token: decode-only, short-lived, signed with the API's key, left in a volume.
    let token_cmd = c.command("codec-token").join(" ");
    assert!(
        token_cmd.contains("procure token --role codec "),
        "{token_cmd}"
    );
    let ttl: i64 = token_cmd
        .split_whitespace()
        .skip_while(|w| *w != "--ttl-s")
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("--ttl-s");
    assert!(
        ttl <= 24 * 3600,
        "a codec token in a URL lives at most a day: {ttl} s"
    );
    assert_eq!(
        c.secret_files("codec-token")["/run/secrets/api_jwt_secret"],
        c.secret_files("api")["/run/secrets/api_jwt_secret"],
        "the API verifies the token with the key that signed it"
    );
    let volume_of = |name: &str, path: &str| {
        strings(&c.service(name)["volumes"])
            .into_iter()
            .find_map(|v| {
                let mut p = v.split(':');
                let (vol, at) = (p.next()?.to_owned(), p.next()?);
                path.starts_with(at).then_some((vol, at.to_owned()))
            })
            .unwrap_or_else(|| panic!("{name} mounts nothing at {path}"))
    };
    let written = "/var/lib/procure/token";
    assert!(token_cmd.contains(&format!("mv {written}.new {written}")));
    let (volume, _) = volume_of("codec-token", written);
    let ui = c.command("temporal-ui").join(" ");
    let read_at = ui
        .split("$(cat ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the UI reads the token file");
    let (ui_volume, _) = volume_of("temporal-ui", read_at);
    assert_eq!(
        ui_volume, volume,
        "the UI reads the token codec-token wrote"
    );
    assert!(keys(&c.doc["volumes"]).contains(&volume));
    // The browser calls the API's published port, in the codec path form, from an origin the
    // API allows.
    let api = compose_settings(&c, "api", Process::Api);
    let published = c.published("api", api.listen_addr().unwrap().port())[0];
    let endpoint = format!("http://localhost:{published}/api/codec/t/$(cat {read_at})");
    assert!(
        ui.contains(&format!("TEMPORAL_CODEC_ENDPOINT=\"{endpoint}\"")),
        "{ui}"
    );
    let ui_port = c.published("temporal-ui", 8080)[0];
    let origin = format!("http://localhost:{ui_port}");
    assert!(
        api.temporal.ui_origins.contains(&origin),
        "{origin} not in {:?}",
        api.temporal.ui_origins
    );
    assert_eq!(
        c.var("temporal-ui", "TEMPORAL_CORS_ORIGINS").as_deref(),
        Some(origin.as_str())
    );
    assert_eq!(
        c.var("temporal-ui", "TEMPORAL_ADDRESS").as_deref(),
        Some("temporal:7233")
    );
    // The stock UI server is what runs, with its own entrypoint.
    assert!(
        ui.ends_with("exec /home/ui-server/start-ui-server.sh"),
        "{ui}"
    );
}

#[test]
fn compose_sandbox_pushes_its_webhooks_to_the_api_routes() {
    let c = Compose::load();
    let cmd = c.command("sandbox");
    let api = compose_settings(&c, "api", Process::Api);
    let port = api.listen_addr().unwrap().port();
    for (flag_name, path) in [
        ("--payments-webhook", "/api/v1/webhooks/payments"),
        ("--tracking-webhook", "/api/v1/webhooks/tracking"),
    ] {
        assert_eq!(
            url_parts(&flag(&cmd, flag_name)),
            ("api".into(), port, path.into())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana
// ---------------------------------------------------------------------------------------------

#[test]
fn prometheus_scrapes_the_api_and_both_workers_on_their_metrics_port() {
    let c = Compose::load();
    let prom = yaml("docker/prometheus.yml");
    let config = c
        .command("prometheus")
        .into_iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_owned))
        .expect("--config.file");
    assert_eq!(
        c.mount_target("prometheus", "./prometheus.yml"),
        Some(config)
    );
    let jobs: BTreeMap<String, (String, Vec<String>)> = prom["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| {
            let targets = j["static_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|sc| strings(&sc["targets"]))
                .collect();
            let path = j["metrics_path"].as_str().unwrap_or("/metrics").to_owned();
            (s(&j["job_name"]), (path, targets))
        })
        .collect();
    for (job, services) in [
        ("procure-api", vec!["api"]),
        ("procure-worker", WORKERS.to_vec()),
    ] {
        let (path, targets) = jobs
            .get(job)
            .unwrap_or_else(|| panic!("no job {job}: {jobs:?}"));
        assert_eq!(path, "/metrics");
        let want: Vec<String> = services
            .iter()
            .map(|svc| {
                let port = port_of(&c.var(svc, "PROCURE_METRICS_ADDR").unwrap());
                format!("{svc}:{port}")
            })
            .collect();
        assert_eq!(targets, &want, "{job}");
        for svc in services {
            assert!(
                c.depends_on("prometheus").contains_key(svc),
                "prometheus starts after {svc}"
            );
        }
    }
    // Every target is a compose service.
    for (_, targets) in jobs.values() {
        for t in targets {
            let host = t.split(':').next().unwrap();
            assert!(c.services().contains(&host.to_owned()), "{t}");
        }
    }
    let server = &jobs["temporal-server"].1;
    assert_eq!(
        server,
        &[format!(
            "temporal:{}",
            port_of(&c.var("temporal", "PROMETHEUS_ENDPOINT").unwrap())
        )]
    );
}

/// The metric names a PromQL expression reads (functions, label names and ranges left out).
fn promql_metrics(expr: &str) -> Vec<String> {
    const FUNCTIONS: &[&str] = &[
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "rate",
        "irate",
        "increase",
        "histogram_quantile",
        "topk",
        "clamp_min",
        "abs",
    ];
    const KEYWORDS: &[&str] = &[
        "by", "without", "on", "ignoring", "bool", "and", "or", "unless",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, open: char, close: char| {
        let mut depth = 0;
        while *i < chars.len() {
            if chars[*i] == open {
                depth += 1;
            } else if chars[*i] == close {
                depth -= 1;
                if depth == 0 {
                    *i += 1;
                    return;
                }
            } else if chars[*i] == '"' {
                *i += 1;
                while *i < chars.len() && chars[*i] != '"' {
                    *i += 1;
                }
            }
            *i += 1;
        }
        panic!("unbalanced {open}{close} in {expr}");
    };
    while i < chars.len() {
        let ch = chars[i];
        if ch == '{' {
            skip_to(&mut i, '{', '}');
        } else if ch == '[' {
            skip_to(&mut i, '[', ']');
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let call = j < chars.len() && chars[j] == '(';
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                assert!(call, "{word} without a label list: {expr}");
                i = j;
                skip_to(&mut i, '(', ')');
            } else if FUNCTIONS.contains(&word.as_str()) {
                // A function, or an aggregation followed by its `by (…)`.
            } else if call {
                panic!("unknown function {word}: {expr}");
            } else if !KEYWORDS.contains(&word.as_str()) {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The series procure exports, by family; histograms export `_bucket`, `_sum`, `_count`.
const PROCURE_GAUGES_AND_COUNTERS: &[&str] = &[
    "procure_orders",
    "procure_purchase_attempts_total",
    "procure_outbox_backlog",
    "procure_outbox_oldest_age_seconds",
    "procure_outbox_dead_letters",
    "procure_webhook_deliveries_total",
    "procure_event_webhook_endpoints_disabled_total",
    "procure_buyer_accounts",
    "procure_price_monitor_runs_total",
    "procure_price_monitor_alerts_total",
    "procure_product_reads_total",
    "procure_product_cache_shared_errors_total",
];
const PROCURE_HISTOGRAMS: &[&str] = &[
    "procure_order_to_purchase_seconds",
    "procure_adapter_call_seconds",
    "procure_event_webhook_attempt_seconds",
];

/// The metric family of an exported series name, if procure exports it.
fn procure_family(series: &str) -> Option<&'static str> {
    PROCURE_GAUGES_AND_COUNTERS
        .iter()
        .find(|f| **f == series)
        .or_else(|| {
            PROCURE_HISTOGRAMS.iter().find(|f| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series == format!("{f}{suffix}"))
            })
        })
        .copied()
}

#[test]
fn the_promql_reader_finds_metric_names_only() {
    assert_eq!(
        promql_metrics(
            r#"histogram_quantile(0.95, sum by (le, vendor) (rate(procure_adapter_call_seconds_bucket{outcome!="ok"}[$__rate_interval])))"#
        ),
        ["procure_adapter_call_seconds_bucket"]
    );
    assert_eq!(
        promql_metrics("max(procure_outbox_backlog) / on () sum(temporal_sticky_cache_size)"),
        ["procure_outbox_backlog", "temporal_sticky_cache_size"]
    );
    assert_eq!(
        procure_family("procure_order_to_purchase_seconds_count"),
        Some("procure_order_to_purchase_seconds")
    );
    assert_eq!(procure_family("procure_order_to_purchase_seconds"), None);
    assert_eq!(procure_family("procure_orders_total"), None);
}

#[test]
fn the_dashboard_shows_every_procure_series_and_asks_for_nothing_else() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("docker/grafana/dashboards/procure.json")).unwrap();
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let datasources = yaml("docker/grafana/provisioning/datasources/prometheus.yaml");
    let ds = &datasources["datasources"][0];
    assert_eq!(s(&ds["type"]), "prometheus");
    let uid = s(&ds["uid"]);

    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut families = BTreeSet::new();
    let mut temporal = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap();
        assert_eq!(p["datasource"]["uid"], uid.as_str(), "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], uid.as_str(), "{title}");
            let expr = t["expr"].as_str().unwrap();
            let names = promql_metrics(expr);
            assert!(!names.is_empty(), "{title}: {expr} reads no series");
            for name in names {
                if name.starts_with("temporal_") {
                    temporal.insert(name);
                    continue;
                }
                let family = procure_family(&name)
                    .unwrap_or_else(|| panic!("{title}: procure exports no {name}"));
                // A histogram's quantiles come from its buckets.
                if name.ends_with("_bucket") {
                    assert!(expr.starts_with("histogram_quantile("), "{title}: {expr}");
                }
                families.insert(family);
            }
        }
    }
    let all: BTreeSet<&str> = PROCURE_GAUGES_AND_COUNTERS
        .iter()
        .chain(PROCURE_HISTOGRAMS)
        .copied()
        .collect();
    let missing: Vec<_> = all.difference(&families).collect();
    assert!(
        missing.is_empty(),
        "the dashboard has no panel for {missing:?}"
    );
    // The SDK core's own series (prefix temporal_, counters _total, durations in seconds).
    for needed in [
        "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
        "temporal_activity_execution_latency_seconds_bucket",
        "temporal_worker_task_slots_available",
        "temporal_sticky_cache_size",
        "temporal_long_request_failure_total",
    ] {
        assert!(
            temporal.contains(needed),
            "no panel for {needed}: {temporal:?}"
        );
    }
}

#[test]
fn grafana_is_provisioned_with_the_datasource_and_the_dashboard() {
    let c = Compose::load();
    let provisioning = c
        .mount_target("grafana", "./grafana/provisioning")
        .expect("provisioning mounted");
    assert_eq!(provisioning, "/etc/grafana/provisioning");
    let dashboards_at = c
        .mount_target("grafana", "./grafana/dashboards")
        .expect("dashboards mounted");
    let providers = yaml("docker/grafana/provisioning/dashboards/procure.yaml");
    assert_eq!(
        s(&providers["providers"][0]["options"]["path"]),
        dashboards_at
    );
    let home = c
        .var("grafana", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .unwrap();
    let local = home
        .strip_prefix(&format!("{dashboards_at}/"))
        .expect(&home);
    assert!(repo("docker/grafana/dashboards").join(local).is_file());
    let datasources = yaml("docker/grafana/provisioning/datasources/prometheus.yaml");
    let (host, port, _) = url_parts(&s(&datasources["datasources"][0]["url"]));
    assert_eq!(host, "prometheus");
    assert_eq!(c.published("prometheus", port), [9090]);
    assert!(
        c.var("grafana", "GF_SECURITY_ADMIN_PASSWORD__FILE")
            .is_some_and(|f| { c.secret_files("grafana").contains_key(&f) })
    );
}

// ---------------------------------------------------------------------------------------------
// deploy/k8s/
// ---------------------------------------------------------------------------------------------

const K8S: &str = "deploy/k8s";

struct Manifests {
    objects: Vec<(String, Value)>,
    kustomization: Value,
}

impl Manifests {
    fn load() -> Self {
        let kustomization = yaml(&format!("{K8S}/kustomization.yaml"));
        let resources = strings(&kustomization["resources"]);
        let on_disk: BTreeSet<String> = std::fs::read_dir(repo(K8S))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
            .collect();
        assert_eq!(
            resources.iter().cloned().collect::<BTreeSet<_>>(),
            on_disk,
            "kustomization.yaml lists exactly the manifests of {K8S}"
        );
        let objects = resources
            .iter()
            .flat_map(|f| {
                yaml_docs(&format!("{K8S}/{f}"))
                    .into_iter()
                    .map(move |v| (f.clone(), v))
            })
            .collect();
        Manifests {
            objects,
            kustomization,
        }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, v)| v["kind"] == kind)
            .map(|(_, v)| v)
            .collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|v| v["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {K8S}"))
    }

    fn container<'a>(&self, deployment: &'a Value) -> &'a Value {
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap();
        assert_eq!(containers.len(), 1, "one container per pod");
        &containers[0]
    }

    /// The environment a Deployment's container sees: the image's `ENV`, the ConfigMaps it
    /// takes whole, then its own `env`. A value from a Secret key reads as `secret:KEY`.
    fn env(&self, deployment: &Value) -> Vec<(String, String)> {
        let container = self.container(deployment);
        let mut env = dockerfile_env();
        let mut set = |k: String, v: String| {
            env.retain(|(e, _)| *e != k);
            env.push((k, v));
        };
        for from in container["envFrom"].as_sequence().into_iter().flatten() {
            let name = s(&from["configMapRef"]["name"]);
            for (k, v) in self.get("ConfigMap", &name)["data"].as_mapping().unwrap() {
                set(s(k), s(v));
            }
        }
        for e in container["env"].as_sequence().into_iter().flatten() {
            let value = if e["value"].is_null() {
                let r = &e["valueFrom"]["secretKeyRef"];
                assert_eq!(s(&r["name"]), "procure-secrets", "{e:?}");
                format!("secret:{}", s(&r["key"]))
            } else {
                s(&e["value"])
            };
            set(s(&e["name"]), value);
        }
        env
    }

    /// The Secret keys a Deployment mounts, by the path its container reads them at.
    fn mounted_secret_keys(&self, deployment: &Value) -> BTreeMap<String, String> {
        let pod = &deployment["spec"]["template"]["spec"];
        let container = self.container(deployment);
        let mut out = BTreeMap::new();
        for vol in pod["volumes"].as_sequence().into_iter().flatten() {
            if vol["secret"].is_null() {
                continue;
            }
            assert_eq!(s(&vol["secret"]["secretName"]), "procure-secrets");
            let mount = container["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| m["name"] == vol["name"])
                .unwrap_or_else(|| panic!("secret volume {:?} is not mounted", vol["name"]));
            assert_eq!(mount["readOnly"], Value::Bool(true));
            for item in vol["secret"]["items"].as_sequence().unwrap() {
                out.insert(
                    format!("{}/{}", s(&mount["mountPath"]), s(&item["path"])),
                    s(&item["key"]),
                );
            }
        }
        out
    }

    /// Every key of the Secret `procure-secrets` the manifests read.
    fn secret_keys(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for d in self.all("Deployment") {
            keys.extend(self.mounted_secret_keys(d).into_values());
            for (_, v) in self.env(d) {
                if let Some(k) = v.strip_prefix("secret:") {
                    keys.insert(k.to_owned());
                }
            }
        }
        keys
    }
}

/// Whether a label selector (`matchLabels` and `matchExpressions`) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels[k].as_str().map(str::to_owned);
    let plain = selector["matchLabels"]
        .as_mapping()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(&s(k)) == Some(s(v)));
    let expressions = selector["matchExpressions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .all(|e| {
            let have = label(&s(&e["key"]));
            let values = strings(&e["values"]);
            match s(&e["operator"]).as_str() {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => !have.is_some_and(|h| values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                other => panic!("unknown operator {other}"),
            }
        });
    !selector["matchLabels"].is_null() && plain && expressions
}

/// A Service's selector (a plain map) selects `labels`.
fn service_selects(service: &Value, labels: &Value) -> bool {
    let selector = service["spec"]["selector"]
        .as_mapping()
        .expect("a selector");
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels[s(k).as_str()].as_str() == Some(s(v).as_str()))
}

/// The Dockerfile's `USER` uid.
fn image_uid() -> i64 {
    let all = instructions(&read("docker/Dockerfile"));
    let user = stages(&all)[3]
        .1
        .iter()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .unwrap();
    user.split(':').next().unwrap().parse().unwrap()
}

fn k8s_process(deployment: &Value) -> Process {
    match deployment["metadata"]["labels"]["app.kubernetes.io/component"].as_str() {
        Some("api") => Process::Api,
        Some("worker") => Process::Worker,
        other => panic!("unknown component {other:?}"),
    }
}

/// A value of the right shape for a secret, so the start checks can parse it.
fn sample_secret(path: &str) -> String {
    match path {
        "keys.data" | "keys.payload" => format!("t1:{}", "ab".repeat(32)),
        "api.jwt_secret" => "a-test-signing-key-of-more-than-32-bytes".into(),
        _ => format!("test-{path}"),
    }
}

/// A Deployment's environment with every Secret key filled in: `…_FILE` paths point at files in
/// `dir` holding sample values, `secretKeyRef`s get sample values.
fn k8s_resolved_env(m: &Manifests, d: &Value, dir: &Path) -> Vec<(String, String)> {
    let mounted = m.mounted_secret_keys(d);
    m.env(d)
        .into_iter()
        .map(|(k, v)| {
            if let Some(key) = v.strip_prefix("secret:") {
                assert_eq!(
                    key, "database.url",
                    "{k}: only the database URL comes by value"
                );
                return (k, "postgres://procure:x@db.example:5432/procure".into());
            }
            if !k.ends_with("_FILE") {
                return (k, v);
            }
            let key = mounted
                .get(&v)
                .unwrap_or_else(|| panic!("{k}={v}: no Secret key is mounted there"));
            let path = setting_of(&k).unwrap();
            assert_eq!(
                key, &path,
                "{k} reads the Secret key named after its setting"
            );
            let file = dir.join(key);
            std::fs::write(&file, sample_secret(&path)).unwrap();
            (k, file.display().to_string())
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("procure-artefacts-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn k8s_manifests_are_all_listed_and_live_in_procures_namespace() {
    let m = Manifests::load();
    let ns = m.get("Namespace", "procure");
    assert_eq!(ns["apiVersion"], "v1");
    assert_eq!(m.kustomization["namespace"], "procure");
    for (file, v) in &m.objects {
        if v["kind"] != "Namespace" {
            assert_eq!(v["metadata"]["namespace"], "procure", "{file}");
        }
    }
    let kinds: BTreeSet<String> = m.objects.iter().map(|(_, v)| s(&v["kind"])).collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        assert!(kinds.contains(kind), "{K8S} has no {kind}");
    }
    // No Secret with values in the repository: it is created by hand (docs/production.md).
    assert!(m.all("Secret").is_empty());
}

#[test]
fn k8s_deployments_run_the_image_unprivileged_with_requests_and_limits() {
    let m = Manifests::load();
    let image = s(&m.kustomization["images"][0]["name"]);
    for (name, args) in [("procure-api", "api"), ("procure-worker", "worker")] {
        let d = m.get("Deployment", name);
        assert_eq!(d["apiVersion"], "apps/v1");
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&d["spec"]["selector"], pod_labels),
            "{name}: its selector matches its pods"
        );
        let c = m.container(d);
        assert_eq!(
            s(&c["image"]),
            image,
            "{name} runs the image kustomize names"
        );
        assert_eq!(strings(&c["args"]), [args]);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_i64(),
            Some(image_uid())
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{name}");
        assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
        for level in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][level][resource].is_null(),
                    "{name}: no {level}.{resource}"
                );
            }
        }
    }
    assert_eq!(
        m.get("Deployment", "procure-worker")["spec"]["replicas"].as_i64(),
        Some(2)
    );
}

#[test]
fn k8s_probes_use_named_ports_and_the_real_health_paths() {
    let m = Manifests::load();
    let dir = scratch("probes");
    for d in m.all("Deployment") {
        let name = s(&d["metadata"]["name"]);
        let c = m.container(d);
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| (s(&p["name"]), p["containerPort"].as_u64().unwrap() as u16))
            .collect();
        let env = k8s_resolved_env(&m, d, &dir);
        let metrics = port_of(
            &env.iter()
                .find(|(k, _)| k == "PROCURE_METRICS_ADDR")
                .unwrap()
                .1,
        );
        assert_eq!(ports.get("metrics"), Some(&metrics), "{name}: metrics port");
        // The API serves /health/* on its HTTP port, a worker on its metrics port.
        let health_port = match k8s_process(d) {
            Process::Api => {
                let settings = start_checks(&env, Process::Api).unwrap();
                let http = settings.listen_addr().unwrap().port();
                assert_eq!(ports.get("http"), Some(&http), "{name}: http port");
                "http"
            }
            _ => "metrics",
        };
        for (probe, path) in [
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(s(&get["path"]), path, "{name} {probe}");
            let port = s(&get["port"]);
            assert_eq!(port, health_port, "{name} {probe} on a named port");
            assert!(ports.contains_key(&port), "{name} {probe}: no port {port}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn k8s_pods_get_real_settings_and_every_secret_they_need() {
    let m = Manifests::load();
    let dir = scratch("settings");
    for d in m.all("Deployment") {
        let name = s(&d["metadata"]["name"]);
        let process = k8s_process(d);
        let env = k8s_resolved_env(&m, d, &dir);
        assert_real_settings(&name, &env);
        assert_secrets_given(&name, process, &env);
        match process {
            Process::Api => {
                let settings = start_checks(&env, process)
                    .unwrap_or_else(|e| panic!("{name} would not start: {e:#}"));
                assert!(!settings.development);
                assert!(settings.database.url.starts_with("postgres://"));
            }
            _ => {
                // Closed by default: the only thing left to the operator is the warehouse.
                let refused = start_checks(&env, process).unwrap_err().to_string();
                assert!(refused.contains("warehouse.address"), "{refused}");
                assert_eq!(refused.matches("\n  - ").count(), 1, "{refused}");
                let mut own = env.clone();
                own.push((
                    "PROCURE_WAREHOUSE__ADDRESS__FULL_NAME".into(),
                    "Our warehouse".into(),
                ));
                start_checks(&own, process)
                    .unwrap_or_else(|e| panic!("{name} would not start: {e:#}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn k8s_workers_outlive_their_graceful_shutdown_and_keep_one_through_disruptions() {
    let m = Manifests::load();
    let dir = scratch("grace");
    let d = m.get("Deployment", "procure-worker");
    let mut env = k8s_resolved_env(&m, d, &dir);
    env.push((
        "PROCURE_WAREHOUSE__ADDRESS__FULL_NAME".into(),
        "Ours".into(),
    ));
    let settings = start_checks(&env, Process::Worker).unwrap();
    let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > settings.worker.graceful_shutdown_s,
        "the kubelet kills a worker after {grace} s, before its {} s graceful shutdown ends",
        settings.worker.graceful_shutdown_s
    );
    let pdb = m.get("PodDisruptionBudget", "procure-worker");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert!(selects(
        &pdb["spec"]["selector"],
        &d["spec"]["template"]["metadata"]["labels"]
    ));
    let min = pdb["spec"]["minAvailable"].as_i64().unwrap();
    let replicas = d["spec"]["replicas"].as_i64().unwrap();
    assert!(
        (1..replicas).contains(&min),
        "minAvailable {min} of {replicas}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn k8s_services_and_the_service_monitor_reach_the_pods_metrics_ports() {
    let m = Manifests::load();
    let monitor = m.get("ServiceMonitor", "procure");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert!(
        strings(&monitor["spec"]["namespaceSelector"]["matchNames"]).contains(&"procure".into())
    );
    let endpoints = monitor["spec"]["endpoints"].as_sequence().unwrap();
    for (service, deployment) in [
        ("procure-api", "procure-api"),
        ("procure-worker", "procure-worker"),
    ] {
        let svc = m.get("Service", service);
        let d = m.get("Deployment", deployment);
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(
            service_selects(svc, pod_labels),
            "{service} selects {deployment}'s pods"
        );
        let container_ports: Vec<String> = m.container(d)["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| s(&p["name"]))
            .collect();
        let ports = svc["spec"]["ports"].as_sequence().unwrap();
        for p in ports {
            let target = s(&p["targetPort"]);
            assert!(
                container_ports.contains(&target),
                "{service}: no container port {target}"
            );
        }
        assert!(
            selects(&monitor["spec"]["selector"], &svc["metadata"]["labels"]),
            "the ServiceMonitor selects {service}"
        );
        for e in endpoints {
            let port = s(&e["port"]);
            assert!(
                ports.iter().any(|p| s(&p["name"]) == port),
                "{service} has no port {port} for the ServiceMonitor"
            );
            assert_eq!(s(&e["path"]), "/metrics");
        }
    }
    assert_eq!(
        m.get("Service", "procure-worker")["spec"]["clusterIP"],
        "None"
    );
    // Nothing else is selected by the monitor.
    let selected: Vec<String> = m
        .all("Service")
        .into_iter()
        .filter(|svc| selects(&monitor["spec"]["selector"], &svc["metadata"]["labels"]))
        .map(|svc| s(&svc["metadata"]["name"]))
        .collect();
    assert_eq!(selected, ["procure-api", "procure-worker"]);
}

#[test]
fn the_docs_create_every_secret_key_the_manifests_read() {
    let m = Manifests::load();
    let docs = read("docs/production.md");
    let create = docs
        .split("kubectl -n procure create secret generic procure-secrets")
        .nth(1)
        .expect("docs/production.md shows how to create the Secret")
        .split("```")
        .next()
        .unwrap();
    let documented: BTreeSet<String> = create
        .split_whitespace()
        .filter_map(|w| {
            w.strip_prefix("--from-file=")
                .or_else(|| w.strip_prefix("--from-literal="))
        })
        .map(|kv| kv.split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        documented,
        m.secret_keys(),
        "the kubectl command and the manifests"
    );
}

// ---------------------------------------------------------------------------------------------
// The sandbox as compose starts it
// ---------------------------------------------------------------------------------------------

/// Starts `procure sandbox ARGS`, returns the child and the URL it says it listens on.
async fn start_sandbox(args: &[String]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_procure"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("procure runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the sandbox says where it listens within 30 s")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("sandbox listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (child, url)
}

#[tokio::test]
async fn the_sandbox_listens_where_told_and_pushes_webhooks_where_compose_says() {
    procure::system::install_crypto_provider();
    let c = Compose::load();
    // Compose's command line, on an ephemeral loopback port instead of 0.0.0.0:8790.
    let mut args = c.command("sandbox");
    let at = args.iter().position(|a| a == "--listen").unwrap();
    args[at + 1] = "127.0.0.1:0".into();
    let (mut child, url) = start_sandbox(&args).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let http = reqwest::Client::new();
    let hooks: serde_json::Value = http
        .get(format!("{url}/_sandbox/webhooks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        hooks["payments"],
        flag(&args, "--payments-webhook").as_str()
    );
    assert_eq!(
        hooks["tracking"],
        flag(&args, "--tracking-webhook").as_str()
    );
    child.kill().await.unwrap();

    // `--port` keeps meaning 127.0.0.1:PORT.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, url) =
        start_sandbox(&["sandbox".into(), "--port".into(), port.to_string()]).await;
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let health = http
        .get(format!("{url}/_sandbox/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    child.kill().await.unwrap();

    // Refused before anything listens: both forms at once, a webhook that is not http(s).
    for (bad, says) in [
        (
            vec!["--listen", "127.0.0.1:0", "--port", "1"],
            "cannot be used with",
        ),
        (
            vec!["--payments-webhook", "ftp://api/hook"],
            "not an http(s) URL",
        ),
        (vec!["--listen", "localhost"], "invalid socket address"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_procure"))
            .arg("sandbox")
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad:?}: {err}");
    }
}
