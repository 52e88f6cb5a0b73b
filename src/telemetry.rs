//! Logs and traces of a `procure` process, set up once by the binary (`src/main.rs`) from its
//! flags and variables; nothing here reads the environment.
//!
//! - **Logs** go to stderr or to a file (`procure dev` writes `.procure/procure.log` so the
//!   terminal keeps its progress view), as text or as one JSON object per line. A JSON line
//!   carries the fields of every span it was logged in, flattened beside the event's own
//!   (`request_id`, `route`, `order_id`, `workflow_id`, …), and `trace_id` / `span_id` when the
//!   line belongs to a trace.
//! - **Traces** are exported over OTLP/gRPC only when an endpoint is given: then `tracing`
//!   spans (the API's request spans, the dispatcher's, the activities') become OpenTelemetry
//!   spans, the Temporal SDK's OpenTelemetry plugin traces workflow starts, workflow runs and
//!   activities (`procure_temporal::trace_with_opentelemetry`), and W3C trace context links them:
//!   an order's HTTP request and its workflow share one trace. Without an endpoint no layer,
//!   provider or plugin is installed at all.

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use std::{fmt, io, path::PathBuf, sync::Mutex};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{
        FmtContext, FormatEvent, FormattedFields, MakeWriter,
        format::{JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    layer::SubscriberExt as _,
    registry::LookupSpan,
    util::SubscriberInitExt as _,
};

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, span fields in front.
    #[default]
    Text,
    /// For machines: one JSON object per line, span fields flattened into it.
    Json,
}

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    /// Appended to this file (its folder is created).
    File(PathBuf),
}

/// Everything the process's telemetry is built from.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// The filter unless `filter` is set (`RUST_LOG` syntax), e.g. `info`.
    pub default_filter: String,
    /// `RUST_LOG` as the process got it.
    pub filter: Option<String>,
    pub target: LogTarget,
    /// OTLP/gRPC endpoint of a collector (`http://host:4317`); `None`: no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// What must outlive the process's work: the tracer provider, flushed by [`Telemetry::shutdown`].
#[must_use = "call shutdown() before the process exits, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn traces_on(&self) -> bool {
        self.provider.is_some()
    }

    /// Export the spans still buffered and stop the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace export did not finish: {e}");
        }
    }
}

/// Install the process's subscriber (logs, and traces when configured). Call once, inside the
/// Tokio runtime (the OTLP exporter's gRPC channel lives on it).
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let filter = cfg
        .filter
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&cfg.default_filter));
    let (otel, provider) = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            let (layer, provider) = otel_layer(endpoint, &cfg.service_name)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let logs = match &cfg.target {
        LogTarget::Stderr => log_layer(cfg.format, io::stderr, true),
        LogTarget::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("opening the log file {}: {e}", path.display()))?;
            log_layer(cfg.format, Mutex::new(file), false)
        }
    };
    // The filter is the log layer's alone: spans for traces do not depend on the log level.
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))?;
    if provider.is_some() {
        procure_temporal::trace_with_opentelemetry();
    }
    Ok(Telemetry { provider })
}

/// The log layer of `format` writing to `writer` (colours only on a terminal that asked for
/// them). Tests use it with a writer of their own.
pub fn log_layer<S, W>(
    format: LogFormat,
    writer: W,
    colours: bool,
) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colours && io::IsTerminal::is_terminal(&io::stderr()))
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(writer)
            .boxed(),
    }
}

/// The OpenTelemetry layer exporting our own spans over OTLP/gRPC, and its provider (set as
/// the global one, which the Temporal SDK's plugin uses). Workflow spans get replay-safe ids
/// and are not exported again when a workflow replays (the SDK's id generator and processor).
fn otel_layer<S>(
    endpoint: &str,
    service_name: &str,
) -> anyhow::Result<(
    Box<dyn Layer<S> + Send + Sync + 'static>,
    opentelemetry_sdk::trace::SdkTracerProvider,
)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use temporalio_sdk::opentelemetry::{WorkflowIdGenerator, WorkflowSpanProcessor};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("OTLP exporter for {endpoint}: {e}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_id_generator(WorkflowIdGenerator::default())
        .with_span_processor(WorkflowSpanProcessor::new(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
        ))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // Only our spans and events (the API's request spans among them), at info and above: the
    // SDK's and the drivers' own tracing spans stay out of the traces, whatever the log level.
    let ours = tracing_subscriber::filter::filter_fn(|m| {
        m.target().starts_with("procure") && *m.level() <= tracing::Level::INFO
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("procure"))
        .with_filter(ours)
        .boxed();
    Ok((layer, provider))
}

/// One JSON object per event: `timestamp`, `level`, `target`, `message`, then the fields of
/// every span it is in (the outermost first, an inner span's value winning) and its own,
/// `span` (the innermost span's name), and `trace_id` / `span_id` of the active OpenTelemetry
/// span when there is one.
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(recorded) = ext.get::<FormattedFields<JsonFields>>()
                    && let Ok(Value::Object(recorded)) = serde_json::from_str::<Value>(recorded)
                {
                    // `otel.name` and `otel.kind` name the exported span; they are not news.
                    fields.extend(
                        recorded
                            .into_iter()
                            .filter(|(k, _)| !k.starts_with("otel.")),
                    );
                }
                innermost = Some(span.name());
            }
        }
        event.record(&mut Fields(&mut fields));
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let message = fields.remove("message");
        let mut line = Line::default();
        line.put("timestamp", &Value::String(ts));
        line.put("level", &Value::String(meta.level().to_string()));
        line.put("target", &Value::String(meta.target().to_owned()));
        if let Some(m) = &message {
            line.put("message", m);
        }
        for (k, v) in &fields {
            if RESERVED.contains(&k.as_str()) {
                line.put(&format!("field.{k}"), v);
            } else {
                line.put(k, v);
            }
        }
        if let Some(name) = innermost {
            line.put("span", &Value::String(name.to_owned()));
        }
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            line.put("trace_id", &Value::String(sc.trace_id().to_string()));
            line.put("span_id", &Value::String(sc.span_id().to_string()));
        }
        line.0.push('}');
        writeln!(writer, "{}", line.0)
    }
}

/// The keys a line sets itself; a field of the same name is written as `field.<name>`.
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "span",
    "trace_id",
    "span_id",
];

/// A JSON object written key by key, in the order given (the fixed keys first, for people
/// reading the file).
#[derive(Default)]
struct Line(String);

impl Line {
    fn put(&mut self, key: &str, value: &Value) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&Value::String(key.to_owned()).to_string());
        self.0.push(':');
        self.0.push_str(&value.to_string());
    }
}

/// Records an event's fields into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_flattens_its_spans_fields() {
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::registry().with(log_layer(
            LogFormat::Json,
            move || sink.clone(),
            false,
        ));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "http_request",
                request_id = "r-1",
                order_id = tracing::field::Empty
            );
            let _o = outer.enter();
            outer.record("order_id", "ord_1");
            let inner =
                tracing::info_span!("activity", workflow_id = "order-ord_1", attempt = 2u64);
            let _i = inner.enter();
            tracing::info!(total = 12, ok = true, "order \"accepted\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].starts_with(r#"{"timestamp":"#)
                && lines[0].contains(r#""target":"procure::telemetry::tests","message":"#),
            "the fixed keys come first: {}",
            lines[0]
        );
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["order_id"], "ord_1");
        assert_eq!(v["workflow_id"], "order-ord_1");
        assert_eq!(v["attempt"], 2);
        assert_eq!(v["total"], 12);
        assert_eq!(v["ok"], true);
        assert_eq!(v["message"], "order \"accepted\"");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["span"], "activity");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{v}"
        );
        assert!(
            v.get("trace_id").is_none(),
            "no trace without OpenTelemetry: {v}"
        );
    }
}
