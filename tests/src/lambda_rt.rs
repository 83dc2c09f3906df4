//! A minimal AWS Lambda Runtime API, so the tests run the real release binaries the way Lambda
//! runs them.
//!
//! One [`LambdaEnv`] is one execution environment: a Runtime API server on `127.0.0.1` and the
//! function's process started with `AWS_LAMBDA_RUNTIME_API` pointing at it. The process polls
//! `GET /2018-06-01/runtime/invocation/next`, answers with `POST .../invocation/{id}/response` or
//! `.../error` (or `POST .../init/error`). As in Lambda, one environment runs one invocation at a
//! time; a process that exits, is killed, or overruns the deadline fails its invocation and the
//! environment starts a fresh process (a cold start) on the next one. Everything the process
//! writes on stdout and stderr goes to a [`LogBuffer`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

const API_PREFIX: &str = "/2018-06-01/runtime";
/// The `AWS_SESSION_TOKEN` every function gets (what a role's credentials look like; the tests
/// check that it is never logged).
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessionTokenOfTheExecutionRole";
/// Account id in the ARNs the environment hands out.
pub const ACCOUNT_ID: &str = "123456789012";

/// Where the release binaries are: `E2E_BIN_DIR`, else the directory holding this test
/// executable's `deps/` (`target/release`), else `$CARGO_TARGET_DIR/release`, else the workspace's
/// `target/release`.
pub fn release_binary(name: &str) -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(d) = std::env::var("E2E_BIN_DIR") {
        candidates.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/release/deps/pipeline-xxxx -> target/release
        if let Some(dir) = exe.parent().and_then(Path::parent) {
            candidates.push(dir.to_path_buf());
        }
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release"));
    }
    candidates.push(crate::repo_path("target/release"));
    for dir in &candidates {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the release binary `{name}` was not found (looked in {}). Build it first: \
         `cargo build --release --workspace` (scripts/test.sh does this), or point \
         E2E_BIN_DIR at the directory that holds it",
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Newest modification time of the files under `dir` (recursively).
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = meta.modified() {
                newest = Some(newest.map_or(m, |n: SystemTime| n.max(m)));
            }
        }
    }
    newest
}

/// Fails when `binary` is older than the sources it is built from (a stale binary would test
/// yesterday's code): `functions/<name>/` and `core/src/`.
pub fn assert_fresh(binary: &Path, function_dir: &str) {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let sources = [
        crate::repo_path(function_dir),
        crate::repo_path("core/src"),
        crate::repo_path("Cargo.lock"),
    ];
    for s in sources {
        let newest = if s.is_dir() {
            newest_mtime(&s)
        } else {
            std::fs::metadata(&s).and_then(|m| m.modified()).ok()
        };
        if let Some(n) = newest {
            assert!(
                n <= built,
                "{} is older than the sources in {}: rebuild it with \
                 `cargo build --release --workspace` before running the end-to-end tests",
                binary.display(),
                s.display()
            );
        }
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One captured line.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Capture order across all processes writing to the buffer.
    pub seq: u64,
    /// The environment, e.g. `worker-2`.
    pub source: String,
    pub stream: Stream,
    pub text: String,
}

/// Captured output of every process of a run (cheap to clone: shared).
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<Vec<LogLine>>>,
    seq: Arc<AtomicU64>,
}

impl LogBuffer {
    pub fn new() -> LogBuffer {
        LogBuffer::default()
    }

    pub fn push(&self, source: &str, stream: Stream, text: String) {
        if std::env::var_os("E2E_ECHO_LOGS").is_some() {
            eprintln!("[{source}] {text}");
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(LogLine {
                seq,
                source: source.to_string(),
                stream,
                text,
            });
    }

    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lines as JSON objects (the functions log JSON lines); other lines are skipped.
    pub fn json_lines(&self) -> Vec<(LogLine, serde_json::Value)> {
        self.lines()
            .into_iter()
            .filter_map(|l| {
                let v = serde_json::from_str::<serde_json::Value>(&l.text).ok()?;
                v.is_object().then_some((l, v))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A function as deployed: binary, name, memory and its environment variables.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub binary: PathBuf,
    pub memory_mb: u32,
    /// The function's own environment (QUEUE_URL, DLQ_URL, ...), on top of what Lambda sets.
    pub env: Vec<(String, String)>,
}

impl FunctionConfig {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{}",
            self.name
        )
    }
}

/// Why an invocation did not return a response.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeError {
    /// The handler failed: the body of `POST /invocation/{id}/error`.
    Function(serde_json::Value),
    /// The runtime failed to start: the body of `POST /init/error`.
    Init(serde_json::Value),
    /// The process ended (crashed or was killed) before answering.
    Exited(String),
    /// No answer by the deadline: the process was stopped, as Lambda does on a timeout.
    Timeout(Duration),
    /// The process could not be started.
    Spawn(String),
    /// The response body is not JSON.
    BadResponse(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Function(v) => write!(f, "function error: {v}"),
            InvokeError::Init(v) => write!(f, "init error: {v}"),
            InvokeError::Exited(s) => write!(f, "runtime exited: {s}"),
            InvokeError::Timeout(d) => write!(f, "task timed out after {:.1} s", d.as_secs_f64()),
            InvokeError::Spawn(s) => write!(f, "could not start the function: {s}"),
            InvokeError::BadResponse(s) => write!(f, "response is not JSON: {s}"),
        }
    }
}

enum Reply {
    Response(Bytes),
    Error(serde_json::Value),
}

struct Pending {
    id: String,
    trace: String,
    payload: Bytes,
    deadline_ms: u64,
    reply: oneshot::Sender<Reply>,
}

struct ApiState {
    next_rx: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    init_error: Mutex<Option<serde_json::Value>>,
    init_error_notify: Notify,
    function_arn: String,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn json_or_text(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn next_invocation(State(s): State<Arc<ApiState>>) -> Response {
    let mut rx = s.next_rx.lock().await;
    let Some(p) = rx.recv().await else {
        return (StatusCode::GONE, "environment is shutting down").into_response();
    };
    s.inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p.id.clone(), p.reply);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &p.id)
        .header("Lambda-Runtime-Deadline-Ms", p.deadline_ms.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", &s.function_arn)
        .header("Lambda-Runtime-Trace-Id", &p.trace)
        .body(axum::body::Body::from(p.payload))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn take_inflight(s: &ApiState, id: &str) -> Option<oneshot::Sender<Reply>> {
    s.inflight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
}

async fn invocation_response(
    State(s): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    match take_inflight(&s, &id) {
        Some(tx) => {
            let _ = tx.send(Reply::Response(body));
            (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            r#"{"errorType":"InvalidRequestID","errorMessage":"unknown or already answered request id"}"#,
        )
            .into_response(),
    }
}

async fn invocation_error(
    State(s): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    match take_inflight(&s, &id) {
        Some(tx) => {
            let _ = tx.send(Reply::Error(json_or_text(&body)));
            (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            r#"{"errorType":"InvalidRequestID","errorMessage":"unknown or already answered request id"}"#,
        )
            .into_response(),
    }
}

async fn init_error(State(s): State<Arc<ApiState>>, body: Bytes) -> Response {
    *s.init_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(json_or_text(&body));
    s.init_error_notify.notify_waiters();
    s.init_error_notify.notify_one();
    (StatusCode::ACCEPTED, r#"{"status":"OK"}"#).into_response()
}

/// One process and the Runtime API server it talks to.
struct Instance {
    api: Arc<ApiState>,
    server: JoinHandle<()>,
    next_tx: mpsc::Sender<Pending>,
    exit: watch::Receiver<Option<String>>,
    kill: Arc<Notify>,
    pid: Option<u32>,
}

impl Instance {
    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill.notify_one();
        self.server.abort();
    }
}

/// Counters of one environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvStats {
    pub invocations: u64,
    pub cold_starts: u64,
    pub function_errors: u64,
    pub exits: u64,
    pub timeouts: u64,
    pub kills: u64,
}

#[derive(Default)]
struct Counters {
    invocations: AtomicU64,
    cold_starts: AtomicU64,
    function_errors: AtomicU64,
    exits: AtomicU64,
    timeouts: AtomicU64,
    kills: AtomicU64,
}

/// One Lambda execution environment of a function.
pub struct LambdaEnv {
    cfg: Arc<FunctionConfig>,
    id: String,
    logs: LogBuffer,
    slot: tokio::sync::Mutex<Option<Instance>>,
    kill_handle: Mutex<Option<Arc<Notify>>>,
    current: Mutex<Option<Arc<serde_json::Value>>>,
    counters: Counters,
    request_seq: AtomicU64,
}

impl LambdaEnv {
    /// Environment number `index` of the function; nothing starts until the first invocation.
    pub fn new(cfg: Arc<FunctionConfig>, index: usize, logs: LogBuffer) -> LambdaEnv {
        LambdaEnv {
            id: format!("{}-{index}", cfg.name),
            cfg,
            logs,
            slot: tokio::sync::Mutex::new(None),
            kill_handle: Mutex::new(None),
            current: Mutex::new(None),
            counters: Counters::default(),
            request_seq: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.cfg
    }

    pub fn stats(&self) -> EnvStats {
        let c = &self.counters;
        EnvStats {
            invocations: c.invocations.load(Ordering::SeqCst),
            cold_starts: c.cold_starts.load(Ordering::SeqCst),
            function_errors: c.function_errors.load(Ordering::SeqCst),
            exits: c.exits.load(Ordering::SeqCst),
            timeouts: c.timeouts.load(Ordering::SeqCst),
            kills: c.kills.load(Ordering::SeqCst),
        }
    }

    /// The event of the invocation in progress, if any.
    pub fn current_event(&self) -> Option<Arc<serde_json::Value>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills the running process (SIGKILL), as a crash would. True when there was one.
    pub fn kill(&self) -> bool {
        let handle = self
            .kill_handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match handle {
            Some(k) => {
                self.counters.kills.fetch_add(1, Ordering::SeqCst);
                k.notify_one();
                true
            }
            None => false,
        }
    }

    async fn start_instance(&self) -> Result<Instance, InvokeError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| InvokeError::Spawn(format!("runtime API bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| InvokeError::Spawn(e.to_string()))?;
        let (next_tx, next_rx) = mpsc::channel(1);
        let api = Arc::new(ApiState {
            next_rx: tokio::sync::Mutex::new(next_rx),
            inflight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            init_error_notify: Notify::new(),
            function_arn: self.cfg.arn(),
        });
        let router = Router::new()
            .route(
                &format!("{API_PREFIX}/invocation/next"),
                get(next_invocation),
            )
            .route(
                &format!("{API_PREFIX}/invocation/{{id}}/response"),
                post(invocation_response),
            )
            .route(
                &format!("{API_PREFIX}/invocation/{{id}}/error"),
                post(invocation_error),
            )
            .route(&format!("{API_PREFIX}/init/error"), post(init_error))
            .with_state(api.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let n = self.counters.cold_starts.load(Ordering::SeqCst);
        let stream = format!("2026/01/01/[$LATEST]{:016x}{n:016x}", epoch_ms());
        let env_from_host = |k: &str, default: &str| std::env::var(k).unwrap_or(default.into());
        let mut cmd = tokio::process::Command::new(&self.cfg.binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.cfg.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.cfg.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.cfg.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("LAMBDA_RUNTIME_DIR", "/var/runtime")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("AWS_REGION", env_from_host("AWS_REGION", "us-east-1"))
            .env(
                "AWS_DEFAULT_REGION",
                env_from_host("AWS_DEFAULT_REGION", "us-east-1"),
            )
            .env(
                "AWS_ACCESS_KEY_ID",
                env_from_host("AWS_ACCESS_KEY_ID", "testing"),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                env_from_host("AWS_SECRET_ACCESS_KEY", "testing"),
            )
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("AWS_ENDPOINT_URL", crate::moto_endpoint())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.cfg.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| InvokeError::Spawn(format!("{}: {e}", self.cfg.binary.display())))?;
        let pid = child.id();
        self.counters.cold_starts.fetch_add(1, Ordering::SeqCst);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(self.capture(out, Stream::Stdout));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(self.capture(err, Stream::Stderr));
        }
        let kill = Arc::new(Notify::new());
        let (exit_tx, exit_rx) = watch::channel(None);
        {
            let kill = kill.clone();
            tokio::spawn(async move {
                let status = tokio::select! {
                    s = child.wait() => s,
                    _ = kill.notified() => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                // Let the readers drain what the process wrote before it ended.
                for r in readers {
                    let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
                }
                let desc = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                let _ = exit_tx.send(Some(desc));
            });
        }
        *self.kill_handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(kill.clone());
        Ok(Instance {
            api,
            server,
            next_tx,
            exit: exit_rx,
            kill,
            pid,
        })
    }

    fn capture<R>(&self, r: R, stream: Stream) -> JoinHandle<()>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let logs = self.logs.clone();
        let source = self.id.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                logs.push(&source, stream, line);
            }
        })
    }

    /// Invokes the function with `payload`, giving it `timeout` (the deadline the runtime sees).
    /// Waits for the environment if an invocation is already running in it.
    pub async fn invoke(
        &self,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, InvokeError> {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(Instance::exited) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.start_instance().await?);
        }
        let Some(inst) = slot.as_mut() else {
            return Err(InvokeError::Spawn("no instance".into()));
        };
        self.counters.invocations.fetch_add(1, Ordering::SeqCst);
        let n = self.request_seq.fetch_add(1, Ordering::SeqCst);
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (epoch_ms() & 0xffff_ffff) as u32,
            (inst.pid.unwrap_or(0) & 0xffff) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
        );
        let (tx, rx) = oneshot::channel();
        let body = Bytes::from(serde_json::to_vec(payload).unwrap_or_default());
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(payload.clone()));
        let trace = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
            epoch_ms() / 1000,
            u128::from(n) << 32 | u128::from(inst.pid.unwrap_or(0)),
            n
        );
        let pending = Pending {
            id,
            trace,
            payload: body,
            deadline_ms: epoch_ms() + timeout.as_millis() as u64,
            reply: tx,
        };
        let result = if inst.next_tx.send(pending).await.is_err() {
            Err(InvokeError::Exited("runtime API closed".into()))
        } else {
            let mut exit = inst.exit.clone();
            let api = inst.api.clone();
            tokio::select! {
                r = rx => match r {
                    Ok(Reply::Response(b)) => serde_json::from_slice(&b)
                        .map_err(|e| InvokeError::BadResponse(format!("{e}: {}", String::from_utf8_lossy(&b)))),
                    Ok(Reply::Error(v)) => Err(InvokeError::Function(v)),
                    Err(_) => Err(InvokeError::Exited("the invocation was dropped".into())),
                },
                status = exit.wait_for(Option::is_some) => {
                    let s = status.map(|s| s.clone().unwrap_or_default()).unwrap_or_else(|_| "unknown".into());
                    Err(InvokeError::Exited(s))
                }
                _ = api.init_error_notify.notified() => {
                    let v = api.init_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    Err(InvokeError::Init(v.unwrap_or(serde_json::Value::Null)))
                }
                _ = tokio::time::sleep(timeout) => Err(InvokeError::Timeout(timeout)),
            }
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match &result {
            Ok(_) => {}
            Err(InvokeError::Function(_)) => {
                self.counters.function_errors.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                if matches!(e, InvokeError::Timeout(_)) {
                    self.counters.timeouts.fetch_add(1, Ordering::SeqCst);
                    self.logs.push(
                        &self.id,
                        Stream::Stderr,
                        format!("(harness) {e}: the process is stopped"),
                    );
                } else {
                    self.counters.exits.fetch_add(1, Ordering::SeqCst);
                    self.logs
                        .push(&self.id, Stream::Stderr, format!("(harness) {e}"));
                }
                // Lambda resets the environment: the next invocation is a cold start.
                *self.kill_handle.lock().unwrap_or_else(|e| e.into_inner()) = None;
                if let Some(old) = slot.take() {
                    old.kill.notify_one();
                    let mut exit = old.exit.clone();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        exit.wait_for(Option::is_some),
                    )
                    .await;
                }
            }
        }
        result
    }

    /// Stops the process and the Runtime API server.
    pub async fn shutdown(&self) {
        let mut slot = self.slot.lock().await;
        *self.kill_handle.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(old) = slot.take() {
            old.kill.notify_one();
            let mut exit = old.exit.clone();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), exit.wait_for(Option::is_some)).await;
        }
    }
}
