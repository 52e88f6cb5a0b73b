//! Logs and traces of the real binary: `procure sandbox`, `procure api` and `procure worker`
//! as separate processes on a Temporal dev server, as in production.
//!
//! - With `PROCURE_LOG_FORMAT=json` every line a process writes to stderr is one JSON object;
//!   an order's request line carries its `request_id` and matched route, the dispatcher's and
//!   the activities' lines its `order_id` and `workflow_id`; a codec request logs its route
//!   template, never the token in its path; each development-key warning appears once.
//! - With `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/gRPC receiver on loopback, the
//!   order's HTTP request span, the dispatcher's, the SDK's workflow start, workflow run and
//!   activity spans and ours arrive in one trace, whose id is in the JSON logs of the request and
//!   of the workflow's activities, across the outbox and both processes. The traced workflow's
//!   history carries the trace context in its header and replays with and without the SDK's
//!   plugin, and so do the recorded histories.
//! - `procure dev` writes its logs to its data directory's `procure.log`, not the terminal,
//!   unless `--logs-to-terminal`.

mod common;
mod support;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
};
use procure_api::auth::Role;
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::AsyncBufReadExt,
    process::{Child, Command},
};

/// A `procure` process and the lines it wrote to stderr so far.
struct Proc {
    name: &'static str,
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit code (bounded wait).
    async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM to {}", self.name);
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} still running 60 s after SIGTERM", self.name))
            .expect("wait");
        // The reader has seen every line once the pipe closed; give it the moment to store it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status.code()
    }
}

/// `procure ARGS` with only `env` among the variables that steer it.
fn procure(name: &'static str, args: &[&str], env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procure"));
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| {
        k.starts_with("PROCURE_") || k.starts_with("OTEL_") || k.starts_with("TEMPORAL_")
    }) {
        cmd.env_remove(k);
    }
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("procure binary starts");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let pipe = child.stderr.take().expect("piped");
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push(l);
        }
    });
    Proc {
        name,
        child,
        stderr,
    }
}

/// Poll `check` until it holds, failing with `what` after `within`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sandbox, API and worker processes on a dev server of their own, every process with `extra`
/// in its environment.
struct Processes {
    temporal: DevServer,
    sandbox: Proc,
    api: Proc,
    worker: Proc,
    api_url: String,
    driver: Driver,
    /// Skus the sandbox sells cheapest on 1688.
    skus: Vec<String>,
}

async fn start(dir: &Path, extra: &[(&str, String)]) -> Processes {
    procure::system::install_crypto_provider();
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
    .expect("the Temporal dev server starts");
    let (sandbox_port, api_port) = (free_port(), free_port());
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let api_url = format!("http://127.0.0.1:{api_port}");
    let mut env = vec![
        (
            "PROCURE_DATABASE_URL",
            format!("sqlite://{}", dir.join("app.db").display()),
        ),
        ("PROCURE_TEMPORAL_ADDRESS", temporal.address()),
        (
            "PROCURE_TASK_QUEUE",
            format!("tel-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("PROCURE_EXTERNAL_URL", sandbox_url.clone()),
        ("PROCURE_DEVELOPMENT", "true".into()),
        ("PROCURE_TRACKING_POLL_S", "1".into()),
        ("PROCURE_API_ADDR", format!("127.0.0.1:{api_port}")),
    ];
    env.extend(extra.iter().cloned());
    let sandbox = procure(
        "sandbox",
        &["sandbox", "--port", &sandbox_port.to_string()],
        &env,
    );
    procure::system::wait_http_ok(
        &format!("{sandbox_url}/_sandbox/health"),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let api = procure("api", &["api", "--seed-sandbox-catalogue"], &env);
    // The API migrates the fresh database before a worker opens it.
    procure::system::wait_http_ok(&format!("{api_url}/health/live"), Duration::from_secs(60))
        .await
        .expect("the API is live");
    let worker = procure("worker", &["worker"], &env);
    procure::system::wait_http_ok(&format!("{api_url}/health/ready"), Duration::from_secs(60))
        .await
        .expect("the API is ready");
    let r = reqwest::Client::new()
        .put(format!("{sandbox_url}/_sandbox/webhooks"))
        .json(&json!({"payments": format!("{api_url}/api/v1/webhooks/payments")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let driver = Driver::new(api_url.clone(), sandbox_url.clone());
    let catalogue = driver.catalogue_full().await.unwrap();
    let offers = catalogue["offers"].as_array().unwrap();
    let skus = catalogue["products"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            offers
                .iter()
                .filter(|o| o["sku"] == p["sku"])
                .min_by_key(|o| o["price_fen"].as_i64().unwrap())
                .is_some_and(|best| best["platform"] == "1688")
        })
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect();
    Processes {
        temporal,
        sandbox,
        api,
        worker,
        api_url,
        driver,
        skus,
    }
}

impl Processes {
    /// Place an order for the `i`-th sku with these request headers; the order and the response's
    /// `x-request-id`.
    async fn place(&self, i: usize, headers: &[(&str, &str)]) -> (Value, String) {
        let sku = &self.skus[i % self.skus.len()];
        let quote = self
            .driver
            .quote(&[(sku.clone(), 1)], "US", "USD")
            .await
            .unwrap();
        let customer = format!("tel-{i}");
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/v1/orders", self.api_url))
            .bearer_auth(self.driver.token(Role::Customer, Some(&customer)))
            .header("Idempotency-Key", format!("tel-{}", uuid::Uuid::new_v4()))
            .json(&json!({
                "quote_id": quote["quote_id"],
                "customer_id": customer,
                "shipping_address": {"name": "Test Customer", "line1": "1 Example Street",
                    "city": "Springfield", "postal_code": "12345", "country": "US"}
            }));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let request_id = resp
            .headers()
            .get("x-request-id")
            .expect("the request id is echoed")
            .to_str()
            .unwrap()
            .to_owned();
        (resp.json().await.unwrap(), request_id)
    }

    async fn complete(&self, ids: &[String]) {
        let placed = ids.iter().map(|id| (id.clone(), Instant::now())).collect();
        let outcomes = self
            .driver
            .drive(
                placed,
                Script::HappyPath,
                Duration::from_secs(300),
                |_, _, _, _| {},
            )
            .await
            .unwrap();
        for o in outcomes {
            if o.state != OrderState::Completed {
                let tail = |p: &Proc| {
                    let l = p.lines();
                    l[l.len().saturating_sub(40)..].join("\n")
                };
                panic!(
                    "{} ended {:?}; the API's last lines:\n{}\nthe worker's:\n{}",
                    o.order_id,
                    o.state,
                    tail(&self.api),
                    tail(&self.worker)
                );
            }
        }
    }

    /// SIGTERM every process (each exits 0: its buffered spans are exported on the way out).
    async fn stop(self) -> (Vec<Value>, Vec<Value>) {
        let (api, worker) = (self.api, self.worker);
        let worker_lines = worker.stderr.clone();
        let api_lines = api.stderr.clone();
        let (api_name, worker_name) = (api.name, worker.name);
        assert_eq!(worker.terminate().await, Some(0), "worker exits cleanly");
        assert_eq!(api.terminate().await, Some(0), "api exits cleanly");
        assert_eq!(
            self.sandbox.terminate().await,
            Some(0),
            "sandbox exits cleanly"
        );
        self.temporal.stop().await.unwrap();
        let parse = |name: &str, lines: &Arc<Mutex<Vec<String>>>| -> Vec<Value> {
            lines
                .lock()
                .unwrap()
                .iter()
                .map(|l| match serde_json::from_str::<Value>(l) {
                    Ok(v) if v.is_object() => v,
                    _ => panic!("{name}: a stderr line that is not a JSON object: {l}"),
                })
                .collect()
        };
        (
            parse(api_name, &api_lines),
            parse(worker_name, &worker_lines),
        )
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("procure-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// Each of our development keys is warned about exactly once in `lines` (text or JSON).
fn warned_once_each(what: &str, lines: &[String]) {
    for key in ["api.jwt_secret", "keys.data", "keys.payload"] {
        let needle = format!("{key} is not set: using the public development key");
        let n = lines.iter().filter(|l| l.contains(&needle)).count();
        assert_eq!(n, 1, "{what}: the {key} warning {n} times");
    }
}

#[tokio::test]
async fn json_logs_carry_request_order_and_workflow_ids() {
    let dir = tmp("json-logs");
    let p = start(&dir, &[("PROCURE_LOG_FORMAT", "json".into())]).await;

    let (order, request_id) = p.place(0, &[]).await;
    let id = s(&order, "id").to_owned();
    assert!(
        procure_api::trace::request_id_ok(&request_id),
        "{request_id}"
    );
    // A caller's own request id is kept (and echoed); one that is not a plain id is replaced.
    let own = reqwest::Client::new()
        .get(format!("{}/api/v1/orders/{id}", p.api_url))
        .bearer_auth(p.driver.token(Role::Operator, None))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["x-request-id"], "caller-chosen-42");
    let odd = reqwest::Client::new()
        .get(format!("{}/health/live", p.api_url))
        .header("x-request-id", "has spaces {\"and\": json}")
        .send()
        .await
        .unwrap();
    let replaced = odd.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(procure_api::trace::request_id_ok(&replaced) && replaced != "has spaces");

    // The stock Web UI's form: a codec token in the path.
    let codec_token = p.driver.token(Role::Codec, None);
    let decoded = reqwest::Client::new()
        .post(format!("{}/api/codec/t/{codec_token}/decode", p.api_url))
        .json(&json!({"payloads": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(decoded.status(), 200);

    p.complete(std::slice::from_ref(&id)).await;
    let wf = procure_workflows::order_workflow_id(&id);
    until(
        "a worker line of the order's activities",
        Duration::from_secs(30),
        || p.worker.lines().iter().any(|l| l.contains(&wf)),
    )
    .await;
    warned_once_each("api", &p.api.lines());
    warned_once_each("worker", &p.worker.lines());
    let (api, worker) = p.stop().await;

    let request = api
        .iter()
        .find(|l| s(l, "request_id") == request_id && s(l, "message") == "request served")
        .unwrap_or_else(|| panic!("no request line with request_id {request_id}"));
    assert_eq!(s(request, "route"), "/api/v1/orders", "{request}");
    assert_eq!(s(request, "method"), "POST");
    assert_eq!(request["status"], 201);
    assert_eq!(
        s(request, "order_id"),
        id,
        "the handler recorded the order: {request}"
    );
    assert!(request["latency_ms"].is_u64(), "{request}");
    assert!(
        request.get("trace_id").is_none(),
        "no trace without OTLP: {request}"
    );
    let accepted = api
        .iter()
        .find(|l| s(l, "message") == "order accepted")
        .expect("the order was logged");
    assert_eq!(s(accepted, "request_id"), request_id, "{accepted}");
    assert_eq!(s(accepted, "order_id"), id);
    assert!(
        api.iter().any(|l| s(l, "request_id") == "caller-chosen-42"
            && s(l, "route") == "/api/v1/orders/{id}"
            && s(l, "order_id") == id),
        "the GET's line with the caller's request id and the route template"
    );
    let started = api
        .iter()
        .find(|l| s(l, "message") == "order workflow started" && s(l, "order_id") == id)
        .expect("the dispatcher's line");
    assert_eq!(s(started, "workflow_id"), wf, "{started}");
    let activity = worker
        .iter()
        .filter(|l| s(l, "workflow_id") == wf)
        .find(|l| s(l, "order_id") == id && !s(l, "activity").is_empty())
        .expect("an activity's line with the order and workflow ids");
    assert_eq!(s(activity, "span"), "activity", "{activity}");
    assert!(
        worker
            .iter()
            .any(|l| s(l, "message") == "purchased" && s(l, "workflow_id") == wf),
        "the purchase activity's line carries the workflow id"
    );

    let codec = api
        .iter()
        .find(|l| s(l, "route").starts_with("/api/codec/") && s(l, "message") == "request served")
        .expect("the codec request's line");
    assert_eq!(s(codec, "route"), "/api/codec/t/{token}/{direction}");
    let text = serde_json::to_string(&api).unwrap() + &serde_json::to_string(&worker).unwrap();
    assert!(
        !text.contains(&codec_token),
        "the codec token is in the logs"
    );
    assert!(
        !text.contains(codec_token.split('.').nth(2).unwrap()),
        "the token's signature is in the logs"
    );
    println!(
        "{} API and {} worker JSON lines; samples:\n{request}\n{started}\n{activity}\n{codec}",
        api.len(),
        worker.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The spans a receiver got: (service.name, span).
type Received = Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>;

/// The smallest OTLP/gRPC trace receiver: the collector's TraceService, keeping every span.
#[derive(Clone, Default)]
struct Receiver(Received);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    got.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let spans = receiver.0.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .serve_with_incoming(
                TraceServiceServer::new(receiver),
                tonic::transport::server::TcpIncoming::from(listener),
            )
            .await
            .expect("the OTLP receiver serves");
    });
    (format!("http://{addr}"), spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_orders_request_and_its_workflow_share_one_trace() {
    let dir = tmp("traces");
    let (endpoint, received) = start_receiver().await;
    let p = start(
        &dir,
        &[
            ("PROCURE_LOG_FORMAT", "json".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ],
    )
    .await;

    // One order continues the caller's trace, the other starts one of its own.
    let caller_trace = hex(uuid::Uuid::new_v4().as_bytes());
    let caller_span = &hex(uuid::Uuid::new_v4().as_bytes())[..16];
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let (first, _) = p.place(0, &[("traceparent", &traceparent)]).await;
    let (second, second_request) = p.place(1, &[]).await;
    let (first, second) = (s(&first, "id").to_owned(), s(&second, "id").to_owned());
    p.complete(&[first.clone(), second.clone()]).await;

    // The traced workflow's start event carries the trace context in its header.
    let client = support::test_client_at(&p.temporal.address(), "telemetry-test").await;
    let history =
        support::history_json(&client, &procure_workflows::order_workflow_id(&first), "").await;
    let started: Value = serde_json::from_slice(&history).unwrap();
    let header =
        &started["events"][0]["attributes"]["WorkflowExecutionStartedEventAttributes"]["header"];
    assert!(
        header["fields"].get("_tracer-data").is_some(),
        "the workflow's header carries the trace: {header}"
    );
    let raw: Vec<String> = p.api.lines().into_iter().chain(p.worker.lines()).collect();
    let (api, worker) = p.stop().await;

    // Spans arrive with the caller's trace id, from both processes.
    until("the workflow's spans", Duration::from_secs(30), || {
        let got = received.lock().unwrap();
        got.iter().any(|(_, sp)| {
            sp.name == "RunWorkflow:OrderWorkflow" && hex(&sp.trace_id) == caller_trace
        })
    })
    .await;
    let spans = received.lock().unwrap().clone();
    let in_trace = |trace: &str| -> Vec<(String, String)> {
        spans
            .iter()
            .filter(|(_, sp)| hex(&sp.trace_id) == trace)
            .map(|(svc, sp)| (svc.clone(), sp.name.clone()))
            .collect()
    };
    let first_trace = in_trace(&caller_trace);
    let names: Vec<&str> = first_trace.iter().map(|(_, n)| n.as_str()).collect();
    for name in [
        "POST /api/v1/orders",
        "outbox create_payment",
        "outbox start",
        "StartWorkflow:OrderWorkflow",
        "RunWorkflow:OrderWorkflow",
        "StartActivity:open_order",
        "RunActivity:open_order",
        "open_order",
    ] {
        assert!(
            names.contains(&name),
            "{name} in the caller's trace: {names:?}"
        );
    }
    let request_span = spans
        .iter()
        .find(|(_, sp)| sp.name == "POST /api/v1/orders" && hex(&sp.trace_id) == caller_trace)
        .unwrap();
    assert_eq!(
        hex(&request_span.1.parent_span_id),
        caller_span,
        "the caller's span is the parent"
    );
    assert!(
        first_trace
            .iter()
            .any(|(svc, _)| svc.contains("procure-api")),
        "{first_trace:?}"
    );
    assert!(
        first_trace
            .iter()
            .any(|(svc, _)| svc.contains("procure-worker")),
        "{first_trace:?}"
    );

    // The logs carry the trace id: the request's line and the activities' lines alike.
    let line_of = |lines: &[Value], order: &str, pred: &dyn Fn(&Value) -> bool| -> Option<String> {
        lines
            .iter()
            .find(|l| s(l, "order_id") == order && pred(l))
            .map(|l| s(l, "trace_id").to_owned())
    };
    let served =
        |l: &Value| s(l, "message") == "request served" && s(l, "route") == "/api/v1/orders";
    let in_activity = |l: &Value| s(l, "span") == "activity";
    assert_eq!(
        line_of(&api, &first, &served).as_deref(),
        Some(caller_trace.as_str())
    );
    assert_eq!(
        line_of(&worker, &first, &in_activity).as_deref(),
        Some(caller_trace.as_str())
    );
    let activity_traces: std::collections::BTreeSet<&str> = worker
        .iter()
        .filter(|l| s(l, "order_id") == first && in_activity(l))
        .map(|l| s(l, "trace_id"))
        .collect();
    assert_eq!(
        activity_traces.len(),
        1,
        "every activity line of the order in one trace: {activity_traces:?}"
    );

    // The second order's trace began at its request; its workflow is in it too.
    let second_trace = line_of(&api, &second, &|l| {
        served(l) && s(l, "request_id") == second_request
    })
    .expect("the second request's line has a trace id");
    assert_ne!(second_trace, caller_trace);
    assert_eq!(
        line_of(&worker, &second, &in_activity),
        Some(second_trace.clone())
    );
    until(
        "the second workflow's spans",
        Duration::from_secs(30),
        || {
            received.lock().unwrap().iter().any(|(_, sp)| {
                sp.name == "RunWorkflow:OrderWorkflow" && hex(&sp.trace_id) == second_trace
            })
        },
    )
    .await;

    // Headers are not commands: the traced history replays without the plugin and with it,
    // and so do the recorded ones with it.
    support::replay(&history).await;
    replay_with_plugin(&history).await;
    let recorded = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut n = 0;
    for entry in std::fs::read_dir(recorded).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            replay_with_plugin(&std::fs::read(&path).unwrap()).await;
            n += 1;
        }
    }
    assert!(n >= 6, "the recorded histories were replayed ({n})");
    println!(
        "caller's trace {caller_trace}: {} spans {names:?}; second trace {second_trace}",
        first_trace.len()
    );
    let sample = |what: &str| {
        raw.iter()
            .find(|l| l.contains(&first) && l.contains(what))
            .cloned()
    };
    for what in [
        r#""route":"/api/v1/orders""#,
        "order workflow started",
        r#""message":"purchased""#,
    ] {
        println!("{}", sample(what).unwrap_or_default());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replay a history with the Temporal SDK's OpenTelemetry plugin installed.
async fn replay_with_plugin(json: &[u8]) {
    use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
    let codec = procure_temporal::EncryptionCodec::development();
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .data_converter(codec.data_converter())
            .worker_plugin(temporalio_sdk::opentelemetry::OpenTelemetryPlugin::builder().build())
            .register_workflow::<procure_workflows::OrderWorkflow>()
            .unwrap()
            .register_workflow::<procure_workflows::ParcelWorkflow>()
            .unwrap()
            .register_workflow::<procure_workflows::PriceMonitorWorkflow>()
            .unwrap()
            .build(),
    )
    .unwrap();
    replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from_json(json).unwrap())
        .await
        .expect("the history replays with the tracing plugin");
}

/// `procure dev --exit-when-done` in `dir`; (exit status, stdout, stderr).
async fn dev(dir: &Path, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
    let mut args = vec![
        "dev",
        "--exit-when-done",
        "--data-dir",
        dir.to_str().unwrap(),
        "--api-port",
        &ports[0],
        "--sandbox-port",
        &ports[1],
        "--temporal-port",
        &ports[2],
        "--ui-port",
        &ports[3],
    ];
    args.extend_from_slice(extra);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procure"));
    cmd.args(&args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("PROCURE_") || k.starts_with("OTEL_"))
    {
        cmd.env_remove(k);
    }
    cmd.env_remove("RUST_LOG");
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("procure dev --exit-when-done ends")
        .expect("procure runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A line `tracing`'s text format wrote: a timestamp, then the level.
fn is_log_line(l: &str) -> bool {
    let mut words = l.split_whitespace();
    words
        .next()
        .is_some_and(|t| t.len() > 20 && t.contains('T'))
        && words
            .next()
            .is_some_and(|lv| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&lv))
}

#[tokio::test]
async fn procure_dev_logs_to_its_data_directory_unless_asked_for_the_terminal() {
    let dir = tmp("dev-logs");
    let (status, stdout, stderr) = dev(&dir, &["--demo-orders", "1"]).await;
    assert!(status.success(), "procure dev failed:\n{stdout}\n{stderr}");
    let log = dir.join("procure.log");
    assert!(
        stdout.contains(&format!("Logs         {}", log.display())),
        "the banner names the log file:\n{stdout}"
    );
    assert!(stdout.contains("1/1 orders Completed"), "{stdout}");
    // The terminal holds the banner and the progress view, not one log line.
    let logged: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| is_log_line(l))
        .collect();
    assert!(logged.is_empty(), "log lines on the terminal: {logged:?}");
    let file = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<String> = file.lines().map(str::to_owned).collect();
    assert!(
        lines
            .iter()
            .any(|l| is_log_line(l) && l.contains("worker running")),
        "the worker's start is in the file:\n{file}"
    );
    // API, dispatcher and worker each read the settings; each warning is there once.
    warned_once_each("procure dev's log file", &lines);

    let (status, stdout, stderr) = dev(&dir, &["--logs-to-terminal"]).await;
    assert!(
        status.success(),
        "procure dev --logs-to-terminal failed:\n{stdout}\n{stderr}"
    );
    let err: Vec<String> = stderr.lines().map(str::to_owned).collect();
    assert!(
        err.iter()
            .any(|l| is_log_line(l) && l.contains("worker running")),
        "the logs are on the terminal:\n{stderr}"
    );
    warned_once_each("procure dev --logs-to-terminal", &err);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        file,
        "nothing more went to the file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The trace context rides with its outbox row, in SQLite and in PostgreSQL (the migrations keep
/// the column in step); only a W3C `traceparent` is stored.
#[tokio::test]
async fn an_outbox_row_keeps_its_trace_context_in_both_databases() {
    use procure_store::outbox::OutboxMessage;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for db in [
        common::TestDb::sqlite().await,
        common::TestDb::postgres().await,
    ] {
        let store = procure_store::Store::connect(&db.url).await.unwrap();
        let work = OutboxMessage::TriggerSchedule {};
        store
            .enqueue_traced("traced", &work, Some(traceparent))
            .await
            .unwrap();
        store
            .enqueue_traced("typed", &work, Some("00-not-a-trace-01"))
            .await
            .unwrap();
        store.enqueue("untraced", &work).await.unwrap();
        let due: std::collections::BTreeMap<String, Option<String>> = store
            .outbox_due(10)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.subject, i.trace_parent))
            .collect();
        assert_eq!(due["traced"].as_deref(), Some(traceparent), "{}", db.url);
        assert_eq!(due["typed"], None, "{}", db.url);
        assert_eq!(due["untraced"], None, "{}", db.url);
        store.close().await;
        db.drop_db().await;
    }
}
