//! Temporal over TLS, for real: the dev server speaks only plain gRPC, so nginx terminates TLS
//! in front of it, once requiring a client certificate from the test's own CA (mTLS, as
//! Temporal Cloud and most self-hosted clusters do) and once requiring an API key in the
//! `authorization` header over plain TLS (as Temporal Cloud's API keys do). The API and the
//! worker are separate `procure` processes, configured once through `procure`'s own settings
//! and once through the Temporal SDK's variables and `temporal.toml` profile, and an order
//! completes through each proxy. A missing client certificate, a wrong CA and a wrong key each
//! stop `procure worker` at start, naming the setting.
//!
//! Needs `nginx` (Debian package, `scripts/bootstrap.sh` installs it) and `openssl`.

mod support;

use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
};
use procure_domain::OrderState;
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

use support::tls::{make_ca, make_leaf, make_server_leaf, openssl, pki_dir};

const API_KEY: &str = "test-api-key-5d1f0c";

/// The test's PKI: CA `test` signing the proxy's certificate (for `localhost` and 127.0.0.1)
/// and the client's; CA `other`, which signed nothing the proxy shows; and a second client key
/// that belongs to no certificate.
fn make_pki(dir: &Path) {
    make_ca(dir, "test");
    make_ca(dir, "other");
    make_server_leaf(dir, "test", "server");
    make_leaf(
        dir,
        "test",
        "client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "stray.key",
        ],
    );
}

/// nginx, run by the test in `dir`: port `mtls` wants a client certificate of the test CA,
/// port `keyed` wants `Bearer API_KEY`; both pass gRPC to `upstream`. One process
/// (`master_process off`), so killing it (also on drop, when a test fails) leaves no worker
/// process behind.
struct Proxy {
    child: Child,
    mtls: u16,
    keyed: u16,
}

impl Proxy {
    async fn start(dir: &Path, upstream: &str) -> Proxy {
        let (mtls, keyed) = (free_port(), free_port());
        let d = dir.display();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("nginx-tmp").join(sub)).unwrap();
        }
        let conf = format!(
            r#"
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/nginx-tmp/client_body;
    proxy_temp_path {d}/nginx-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tmp/scgi;
    ssl_certificate {d}/server.crt;
    ssl_certificate_key {d}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    grpc_read_timeout 300s;
    grpc_send_timeout 300s;
    client_body_timeout 300s;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{mtls} ssl http2;
        ssl_client_certificate {d}/test-ca.crt;
        ssl_verify_client on;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
    server {{
        listen 127.0.0.1:{keyed} ssl http2;
        location / {{
            if ($http_authorization != "Bearer {API_KEY}") {{ return 403; }}
            grpc_pass grpc://{upstream};
        }}
    }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx runs (scripts/bootstrap.sh installs it)");
        let mut proxy = Proxy { child, mtls, keyed };
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [mtls, keyed] {
            loop {
                if let Some(status) = proxy.child.try_wait().unwrap() {
                    let log =
                        std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
                    panic!("nginx exited ({status}): {log}");
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                assert!(Instant::now() < deadline, "nginx did not listen on {port}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        proxy
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// `procure ARGS` with `env` (and none of the test's own `PROCURE_…`/`TEMPORAL_…` variables).
fn procure_cmd(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procure"));
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .stdin(Stdio::null());
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("PROCURE_") || k.starts_with("TEMPORAL_"))
    {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn spawn(args: &[&str], env: &[(String, String)], log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    procure_cmd(args, env)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("procure binary starts")
}

/// procure's own mTLS settings: the client certificate, the key `key` (as a `_FILE` secret),
/// the CA `ca` the server's certificate must chain to, and the name on that certificate.
fn procure_tls(dir: &Path, key: &str, ca: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "PROCURE_TEMPORAL__TLS__CLIENT_CERT",
            path(dir, "client.crt"),
        ),
        ("PROCURE_TEMPORAL__TLS__CLIENT_KEY_FILE", path(dir, key)),
        ("PROCURE_TEMPORAL__TLS__SERVER_CA_CERT", path(dir, ca)),
        ("PROCURE_TEMPORAL__TLS__SERVER_NAME", "localhost".into()),
    ]
}

fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Start the sandbox, the API (`api_env`) and one worker (`worker_env`), all sharing `common`;
/// place one order and drive it to its end; the state it ended in.
async fn one_order(
    dir: &Path,
    tag: &str,
    common: &[(String, String)],
    api_env: &[(String, String)],
    worker_env: &[(String, String)],
) -> OrderState {
    let (sandbox_port, api_port) = (free_port(), free_port());
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let api_url = format!("http://127.0.0.1:{api_port}");
    let mut base = common.to_vec();
    base.extend(vars(&[
        (
            "PROCURE_DATABASE_URL",
            format!("sqlite://{}", dir.join(format!("{tag}.db")).display()),
        ),
        (
            "PROCURE_TASK_QUEUE",
            format!("tls-{tag}-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("PROCURE_EXTERNAL_URL", sandbox_url.clone()),
        ("PROCURE_DEVELOPMENT", "true".into()),
        ("PROCURE_TRACKING_POLL_S", "1".into()),
        ("PROCURE_API_ADDR", format!("127.0.0.1:{api_port}")),
    ]));
    let with = |extra: &[(String, String)]| {
        let mut v = base.clone();
        v.extend(extra.iter().cloned());
        v
    };
    let _sandbox = spawn(
        &["sandbox", "--port", &sandbox_port.to_string()],
        &base,
        &dir.join(format!("{tag}-sandbox.log")),
    );
    procure::system::wait_http_ok(
        &format!("{sandbox_url}/_sandbox/health"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let _api = spawn(
        &["api", "--seed-sandbox-catalogue"],
        &with(api_env),
        &dir.join(format!("{tag}-api.log")),
    );
    procure::system::wait_http_ok(&format!("{api_url}/health"), Duration::from_secs(30))
        .await
        .unwrap();
    let mut worker = spawn(
        &["worker"],
        &with(worker_env),
        &dir.join(format!("{tag}-worker.log")),
    );
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{sandbox_url}/_sandbox/webhooks"))
        .json(&serde_json::json!({"payments": format!("{api_url}/api/v1/webhooks/payments")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let driver = Driver::new(api_url.clone(), sandbox_url.clone());
    let v: serde_json::Value = reqwest::get(format!("{sandbox_url}/_sandbox/catalogue"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sku = v["products"][0]["sku"].as_str().unwrap().to_owned();
    let quote = driver.quote(&[(sku, 1)], "US", "USD").await.unwrap();
    let o = driver
        .place_order(
            quote["quote_id"].as_str().unwrap(),
            "c1",
            "US",
            &format!("tls-{tag}"),
        )
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_owned();
    let outcomes = driver
        .drive(
            vec![(id.clone(), Instant::now())],
            Script::HappyPath,
            Duration::from_secs(180),
            |_, _, _, _| {},
        )
        .await
        .unwrap();
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker is still running: {}",
        std::fs::read_to_string(dir.join(format!("{tag}-worker.log"))).unwrap_or_default()
    );
    let state = outcomes[0].state;
    if state != OrderState::Completed {
        for p in ["api", "worker"] {
            eprintln!(
                "--- {tag}-{p}.log\n{}",
                std::fs::read_to_string(dir.join(format!("{tag}-{p}.log"))).unwrap_or_default()
            );
        }
    }
    state
}

/// One dev server, one proxy: an order completes over mTLS and over an API key.
#[tokio::test]
async fn orders_complete_through_mtls_and_through_an_api_key() {
    procure::system::install_crypto_provider();
    let dir = pki_dir("orders");
    make_pki(&dir);
    let temporal = DevServer::start(DevServerOptions {
        db_file: None,
        port: None,
        ui_port: None,
        ui: false,
        namespace: "default".into(),
        search_attributes: vec![("OrderState".into(), "Keyword".into())],
        log_file: Some(dir.join("temporal.log")),
        ui_codec_endpoint: None,
    })
    .await
    .unwrap();
    let proxy = Proxy::start(&dir, &temporal.address()).await;

    // mTLS: the API through procure's own settings (the key as a `_FILE` secret), the worker
    // through the Temporal SDK's variables, as the `temporal` CLI reads them.
    let mut api_env = vec![(
        "PROCURE_TEMPORAL_ADDRESS",
        format!("127.0.0.1:{}", proxy.mtls),
    )];
    api_env.extend(procure_tls(&dir, "client.key", "test-ca.crt"));
    let api_env = vars(&api_env);
    let worker_env = vars(&[
        ("TEMPORAL_ADDRESS", format!("127.0.0.1:{}", proxy.mtls)),
        ("TEMPORAL_NAMESPACE", "default".into()),
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", path(&dir, "client.crt")),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", path(&dir, "client.key")),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            path(&dir, "test-ca.crt"),
        ),
        ("TEMPORAL_TLS_SERVER_NAME", "localhost".into()),
    ]);
    let mtls = one_order(&dir, "mtls", &[], &api_env, &worker_env).await;
    assert_eq!(mtls, OrderState::Completed, "the order over mTLS");
    let access = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap();
    assert!(
        access.contains("/temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue")
            && access.contains(
                "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution"
            ),
        "the API and the worker went through the proxy:\n{access}"
    );

    // API key over TLS without a client certificate: the API with procure's secret, the worker
    // with a `temporal.toml` profile chosen by TEMPORAL_PROFILE.
    std::fs::write(dir.join("api.key"), format!("{API_KEY}\n")).unwrap();
    std::fs::write(
        dir.join("temporal.toml"),
        format!(
            "[profile.keyed]\naddress = \"127.0.0.1:{}\"\nnamespace = \"default\"\n\
             api_key = \"{API_KEY}\"\n[profile.keyed.tls]\nserver_ca_cert_path = \"{}\"\n\
             server_name = \"localhost\"\n",
            proxy.keyed,
            path(&dir, "test-ca.crt")
        ),
    )
    .unwrap();
    let api_env = vars(&[
        (
            "PROCURE_TEMPORAL_ADDRESS",
            format!("127.0.0.1:{}", proxy.keyed),
        ),
        ("PROCURE_TEMPORAL__API_KEY_FILE", path(&dir, "api.key")),
        (
            "PROCURE_TEMPORAL__TLS__SERVER_CA_CERT",
            path(&dir, "test-ca.crt"),
        ),
        ("PROCURE_TEMPORAL__TLS__SERVER_NAME", "localhost".into()),
    ]);
    let worker_env = vars(&[
        ("TEMPORAL_CONFIG_FILE", path(&dir, "temporal.toml")),
        ("TEMPORAL_PROFILE", "keyed".into()),
    ]);
    let keyed = one_order(&dir, "keyed", &[], &api_env, &worker_env).await;
    assert_eq!(keyed, OrderState::Completed, "the order over an API key");
    let access = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap();
    assert!(
        !access.contains(" 403 "),
        "no call was refused for its key:\n{access}"
    );
    for log in [
        "mtls-api.log",
        "mtls-worker.log",
        "keyed-api.log",
        "keyed-worker.log",
    ] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(!text.contains(API_KEY), "{log} shows the API key");
        assert!(!text.contains("PRIVATE KEY"), "{log} shows a private key");
    }
    proxy.stop().await;
    temporal.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `procure worker` with `env` (development keys, a database of its own) to its end: its exit
/// status and stderr.
async fn worker_exits(dir: &Path, env: &[(&str, String)]) -> (std::process::ExitStatus, String) {
    procure_exits(dir, "worker", env).await
}

/// `procure COMMAND` likewise.
async fn procure_exits(
    dir: &Path,
    command: &str,
    env: &[(&str, String)],
) -> (std::process::ExitStatus, String) {
    let mut all = vars(&[
        ("PROCURE_DEVELOPMENT", "true".into()),
        (
            "PROCURE_DATABASE_URL",
            format!(
                "sqlite://{}",
                dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
                    .display()
            ),
        ),
    ]);
    all.extend(vars(env));
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        procure_cmd(&[command], &all).stdout(Stdio::null()).output(),
    )
    .await
    .expect("a refused start ends at once")
    .expect("procure binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A missing client certificate, a wrong CA and a wrong key each stop the worker at start,
/// naming the setting to fix; an API key the server refuses names the API key.
#[tokio::test]
async fn bad_tls_settings_fail_the_start_naming_the_setting() {
    let dir = pki_dir("bad");
    make_pki(&dir);
    // The handshake fails before anything is passed on: no Temporal behind the proxy.
    let proxy = Proxy::start(&dir, &format!("127.0.0.1:{}", free_port())).await;
    let mtls = format!("127.0.0.1:{}", proxy.mtls);

    let (status, stderr) = worker_exits(
        &dir,
        &[
            ("TEMPORAL_ADDRESS", mtls.clone()),
            (
                "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                path(&dir, "test-ca.crt"),
            ),
            ("TEMPORAL_TLS_SERVER_NAME", "localhost".into()),
        ],
    )
    .await;
    eprintln!("missing client certificate:\n{stderr}");
    assert!(!status.success(), "started without a client certificate");
    assert!(
        stderr.contains("wants a client certificate")
            && stderr.contains("temporal.tls.client_cert"),
        "{stderr}"
    );

    let (status, stderr) = worker_exits(
        &dir,
        &[("PROCURE_TEMPORAL__ADDRESS", mtls.clone())]
            .into_iter()
            .chain(procure_tls(&dir, "client.key", "other-ca.crt"))
            .collect::<Vec<_>>(),
    )
    .await;
    eprintln!("wrong CA:\n{stderr}");
    assert!(!status.success(), "started trusting the wrong CA");
    assert!(
        stderr.contains("not trusted") && stderr.contains("temporal.tls.server_ca_cert"),
        "{stderr}"
    );

    // The API too, though it starts while Temporal is merely unreachable.
    let (status, stderr) = procure_exits(
        &dir,
        "api",
        &[
            ("PROCURE_API_ADDR", format!("127.0.0.1:{}", free_port())),
            ("PROCURE_TEMPORAL__ADDRESS", mtls.clone()),
        ]
        .into_iter()
        .chain(procure_tls(&dir, "client.key", "other-ca.crt"))
        .collect::<Vec<_>>(),
    )
    .await;
    eprintln!("wrong CA (api):\n{stderr}");
    assert!(!status.success(), "the API started trusting the wrong CA");
    assert!(
        stderr.contains("not trusted") && stderr.contains("temporal.tls.server_ca_cert"),
        "{stderr}"
    );

    let (status, stderr) = worker_exits(
        &dir,
        &[("PROCURE_TEMPORAL__ADDRESS", mtls.clone())]
            .into_iter()
            .chain(procure_tls(&dir, "stray.key", "test-ca.crt"))
            .collect::<Vec<_>>(),
    )
    .await;
    eprintln!("wrong key:\n{stderr}");
    assert!(
        !status.success(),
        "started with a key that is not the certificate's"
    );
    assert!(
        stderr.contains("temporal.tls.client_key") && stderr.contains("is not the private key"),
        "{stderr}"
    );
    let stray = std::fs::read_to_string(dir.join("stray.key")).unwrap();
    let body: String = stray.lines().nth(1).unwrap().to_owned();
    assert!(
        !stderr.contains(&body),
        "the key itself is not shown: {stderr}"
    );

    let (status, stderr) = worker_exits(
        &dir,
        &[
            ("TEMPORAL_ADDRESS", format!("127.0.0.1:{}", proxy.keyed)),
            ("TEMPORAL_API_KEY", "wrong-key-8c2e".into()),
            (
                "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                path(&dir, "test-ca.crt"),
            ),
            ("TEMPORAL_TLS_SERVER_NAME", "localhost".into()),
        ],
    )
    .await;
    eprintln!("wrong API key:\n{stderr}");
    assert!(
        !status.success(),
        "started with an API key the server refuses"
    );
    assert!(
        stderr.contains("temporal.api_key") && !stderr.contains("wrong-key-8c2e"),
        "{stderr}"
    );
    proxy.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
