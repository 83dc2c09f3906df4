//! The worker engine: SQS messages in, Graph writes, DLQ entries and a batch response out.
//!
//! - A body that is not a valid v1 [`Request`] is a permanent `invalid_message` reject.
//! - Permanent rejects go to the DLQ ([`DlqPort`]) and are *not* reported as failures.
//! - Transient failures (throttling, 5xx, network, token, a failed DLQ send) are reported in
//!   `batchItemFailures` so SQS delivers them again; on the last allowed receive
//!   (`ApproximateReceiveCount >= max_receive_count`) they go to the DLQ as `retries_exhausted`.
//! - A worker DLQ entry moved back to the work queue (re-drive) is processed as its original
//!   request; an ingest DLQ entry is `invalid_message` again ([`redrive`]).
//! - The invocation's deadline is kept ([`Worker::handle_event_until`]): what is not finished
//!   [`DEADLINE_MARGIN`] before it is answered as a batch item failure (dead-lettered as
//!   `retries_exhausted` on its last receive) instead of being lost with the whole batch when
//!   Lambda stops the function, e.g. while Graph's `Retry-After` holds every request.
//! - A configuration fault (a missing permission or consent, credentials Entra refuses, an
//!   unusable secret) dead-letters nobody: the first user that meets it stops the batch, every
//!   unfinished message goes back to the queue with the visibility `config_fault_retry` (so a
//!   forgotten consent does not burn deliveries), a message on its last receive is sent again as
//!   a fresh copy instead of reaching the DLQ without a reason, one error line names what is
//!   missing, and the `ConfigurationFault` metric (CloudWatch embedded metric format) feeds the
//!   template's alarm.
//! - `user_not_found` is final only once `user_not_found_retry` has passed since the message was
//!   first sent (a user created seconds ago is missing from Graph for a while); until then the
//!   message is retried with a visibility that spreads its remaining receives over the window.
//!
//! [`setup::build_from_env`] builds the whole worker from the environment (the Lambda binary and
//! the tests share it).

pub mod protected;
pub mod redrive;
pub mod setup;

pub use setup::{build_from_env, build_from_lookup, build_with_options, SetupError};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::apply::{apply, UserResult};
use crate::config::ConfigError;
use crate::graph::error::{mask_numbers_in_text, ConfigFault};
use crate::graph::GraphClient;
use crate::message::{DlqEntry, Job, Request, MESSAGE_VERSION};
use crate::reason::{Outcome, Reason};

/// The DLQ stage name of this function.
pub const STAGE: &str = "worker";
/// Longest `detail` attribute; the full text is in the body.
pub const MAX_DETAIL_ATTRIBUTE_CHARS: usize = 1000;
/// Time kept before the invocation's deadline to answer, and to dead-letter what ran out of time
/// on its last receive.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// A DLQ send that did not go through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sending to the dead-letter queue failed: {0}")]
pub struct DlqError(pub String);

/// Where permanent rejects go (SQS in Lambda; memory in tests).
#[async_trait]
pub trait DlqPort: Send + Sync {
    /// Sends one entry; `attributes` are the string message attributes (`reason`, `detail`,
    /// `stage`, `row`), see [`dlq_attributes`].
    async fn send(
        &self,
        entry: DlqEntry,
        attributes: Vec<(String, String)>,
    ) -> Result<(), DlqError>;
}

/// `reason`, `detail` (cut to [`MAX_DETAIL_ATTRIBUTE_CHARS`], SQS-legal: a detail that quotes a
/// bad value has it escaped, see [`crate::sqs_text::sqs_escape`]), `stage` and `row` attributes.
pub fn dlq_attributes(entry: &DlqEntry) -> Vec<(String, String)> {
    let mut detail: String = crate::sqs_text::sqs_escape(&entry.detail)
        .chars()
        .take(MAX_DETAIL_ATTRIBUTE_CHARS)
        .collect();
    if detail.is_empty() {
        detail = entry.reason.as_str().to_string();
    }
    let mut a = vec![
        ("reason".to_string(), entry.reason.as_str().to_string()),
        ("detail".to_string(), detail),
        ("stage".to_string(), entry.stage.clone()),
    ];
    if let Some(row) = entry.row {
        a.push(("row".to_string(), row.to_string()));
    }
    a
}

/// A DLQ entry with its message attributes.
pub type SentDlqEntry = (DlqEntry, Vec<(String, String)>);

/// A queue operation that did not go through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("work queue: {0}")]
pub struct QueueError(pub String);

/// The work queue the messages came from: retry spacing and fresh copies.
#[async_trait]
pub trait QueuePort: Send + Sync {
    /// Makes each message (by receipt handle) visible again after its delay.
    async fn change_visibility(&self, entries: &[(String, Duration)]) -> Result<(), QueueError>;
    /// Sends `body` again as a new message (a fresh receive count), with string attributes.
    async fn requeue(
        &self,
        body: &str,
        attributes: Vec<(String, String)>,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// No queue to talk to: retries wait for the queue's visibility timeout, and a configuration
/// fault on the last receive leaves the message to the queue's redrive policy.
#[derive(Debug, Default)]
pub struct NoQueue;

#[async_trait]
impl QueuePort for NoQueue {
    async fn change_visibility(&self, _: &[(String, Duration)]) -> Result<(), QueueError> {
        Ok(())
    }

    async fn requeue(
        &self,
        _: &str,
        _: Vec<(String, String)>,
        _: Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError("no work queue is configured (QUEUE_URL)".into()))
    }
}

/// A requeued copy in [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeued {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub delay: Duration,
}

/// A [`QueuePort`] that records what it was asked (tests).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    visibility: Mutex<Vec<(String, Duration)>>,
    requeued: Mutex<Vec<Requeued>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    pub fn visibility_changes(&self) -> Vec<(String, Duration)> {
        self.visibility
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn requeued(&self) -> Vec<Requeued> {
        self.requeued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl QueuePort for MemoryQueue {
    async fn change_visibility(&self, entries: &[(String, Duration)]) -> Result<(), QueueError> {
        self.visibility
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(entries);
        Ok(())
    }

    async fn requeue(
        &self,
        body: &str,
        attributes: Vec<(String, String)>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.requeued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Requeued {
                body: body.to_string(),
                attributes,
                delay,
            });
        Ok(())
    }
}

/// The message attribute that carries a requeued message's first send time (Unix ms), so the
/// `user_not_found` window counts from the first send.
pub const FIRST_SENT_ATTRIBUTE: &str = "firstSentTimestamp";

/// A [`DlqPort`] that keeps entries in memory (tests, dry runs). Can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryDlq {
    entries: Mutex<Vec<SentDlqEntry>>,
    failing: AtomicBool,
}

impl MemoryDlq {
    pub fn new() -> MemoryDlq {
        MemoryDlq::default()
    }

    pub fn entries(&self) -> Vec<SentDlqEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// While true, every send fails.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl DlqPort for MemoryDlq {
    async fn send(
        &self,
        entry: DlqEntry,
        attributes: Vec<(String, String)>,
    ) -> Result<(), DlqError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(DlqError("the in-memory DLQ is set to fail".into()));
        }
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((entry, attributes));
        Ok(())
    }
}

/// Worker tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Users of one batch processed at the same time (the Graph client's limiter still bounds
    /// requests in flight).
    pub concurrency: usize,
    /// On this receive a transient failure is dead-lettered as `retries_exhausted` instead of
    /// retried. Keep it equal to the queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// `user_not_found` is final only this long after the message was first sent
    /// (`USER_NOT_FOUND_RETRY_SECONDS`; zero: at once).
    pub user_not_found_retry: Duration,
    /// Visibility of a message returned for a configuration fault
    /// (`CONFIGURATION_FAULT_RETRY_SECONDS`).
    pub config_fault_retry: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            max_receive_count: 5,
            user_not_found_retry: Duration::from_secs(300),
            config_fault_retry: Duration::from_secs(900),
        }
    }
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

impl WorkerConfig {
    /// `WORKER_CONCURRENCY` and `MAX_RECEIVE_COUNT` (positive integers), defaults otherwise.
    pub fn from_lookup<F>(lookup: F) -> Result<WorkerConfig, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut c = WorkerConfig::default();
        let num = |var: &'static str| -> Result<Option<u32>, ConfigError> {
            match lookup(var).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(ConfigError::InvalidNumber { var, value: v }),
                },
            }
        };
        if let Some(n) = num("WORKER_CONCURRENCY")? {
            c.concurrency = n as usize;
        }
        if let Some(n) = num("MAX_RECEIVE_COUNT")? {
            c.max_receive_count = n;
        }
        if let Some(v) = lookup("USER_NOT_FOUND_RETRY_SECONDS").filter(|v| !v.trim().is_empty()) {
            match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_VISIBILITY.as_secs() => {
                    c.user_not_found_retry = Duration::from_secs(n)
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "USER_NOT_FOUND_RETRY_SECONDS",
                        why: format!("'{v}' is not a whole number of seconds from 0 to 43200"),
                    })
                }
            }
        }
        if let Some(n) = num("CONFIGURATION_FAULT_RETRY_SECONDS")? {
            if u64::from(n) > MAX_VISIBILITY.as_secs() {
                return Err(ConfigError::Invalid {
                    var: "CONFIGURATION_FAULT_RETRY_SECONDS",
                    why: format!("{n} is more than SQS's longest visibility, 43200"),
                });
            }
            c.config_fault_retry = Duration::from_secs(u64::from(n));
        }
        Ok(c)
    }

    pub fn from_env() -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::from_lookup(|k| std::env::var(k).ok())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One queue message as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboundMessage {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
    /// For changing the message's visibility (empty: unknown).
    pub receipt_handle: String,
    /// When the message (or the message it is a fresh copy of) was first sent, Unix ms: the
    /// [`FIRST_SENT_ATTRIBUTE`] message attribute, else SQS's `SentTimestamp`.
    pub first_sent_ms: Option<u64>,
}

impl InboundMessage {
    /// A message on its `receive_count`-th delivery, without queue details.
    pub fn new(message_id: impl Into<String>, body: impl Into<String>, receive_count: u32) -> Self {
        InboundMessage {
            message_id: message_id.into(),
            body: body.into(),
            receive_count,
            ..InboundMessage::default()
        }
    }

    pub fn from_sqs(m: &SqsMessage) -> InboundMessage {
        let first_sent_ms = m
            .message_attributes
            .get(FIRST_SENT_ATTRIBUTE)
            .and_then(|a| a.string_value.as_deref())
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                m.attributes
                    .get("SentTimestamp")
                    .and_then(|v| v.trim().parse().ok())
            });
        InboundMessage {
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1),
            receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
            first_sent_ms,
        }
    }

    /// How long ago the message was first sent (zero when unknown).
    fn age(&self) -> Duration {
        self.first_sent_ms.map_or(Duration::ZERO, |t| {
            Duration::from_millis(unix_ms().saturating_sub(t))
        })
    }

    /// The attributes of a fresh copy: when the original was first sent.
    fn copy_attributes(&self) -> Vec<(String, String)> {
        let first_sent = self.first_sent_ms.unwrap_or_else(unix_ms);
        vec![(FIRST_SENT_ATTRIBUTE.to_string(), first_sent.to_string())]
    }
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Processed; the user's outcome.
    Done(Outcome),
    /// Sent to the DLQ with this reason.
    DeadLettered(Reason),
    /// Reported as a batch item failure so SQS delivers it again.
    Retry(Reason),
    /// Sent to the work queue again as a fresh copy (a configuration fault on the last
    /// receive); the original is done.
    Requeued(Reason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReport {
    pub message_id: String,
    pub user: Option<String>,
    pub row: Option<u64>,
    pub disposition: Disposition,
    pub result: Option<UserResult>,
    /// The body was a worker DLQ entry moved back to the work queue (or an ingest entry that
    /// could not be processed again).
    pub redriven: bool,
    /// For a retry: when the message should be visible again (`None`: the queue's visibility
    /// timeout).
    pub retry_in: Option<Duration>,
}

/// Message ids SQS must deliver again.
pub fn batch_failures(reports: &[MessageReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| matches!(r.disposition, Disposition::Retry(_)))
        .map(|r| r.message_id.clone())
        .collect()
}

/// Parses and checks a message body against the v1 schema. The error text is safe to log
/// (numbers masked).
pub fn parse_request(body: &str) -> Result<Request, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "the body is not JSON (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    let obj = v.as_object().ok_or("the body is not a JSON object")?;
    match obj.get("v") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(MESSAGE_VERSION)) => {}
        Some(other) => {
            return Err(format!(
                "unsupported message version {}: this worker understands v {MESSAGE_VERSION}",
                mask_numbers_in_text(&other.to_string())
            ))
        }
        None => return Err("the message has no 'v' (version) field".into()),
    }
    let req: Request = serde_json::from_value(v).map_err(|e| {
        format!(
            "not a valid v1 request: {}",
            mask_numbers_in_text(&e.to_string())
        )
    })?;
    validate_request(&req)?;
    Ok(req)
}

fn is_upn(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'._!#^~-".contains(c));
    let Some((head, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    local_ok
        && !head.is_empty()
        && !tld.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && tld.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

use crate::user::is_guid;

/// `+{cc} {number}[x{ext}]`: cc 1-3 digits not starting with 0, number 4-14 digits, ext 1-10.
pub fn is_graph_phone(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    let Some((cc, number)) = rest.split_once(' ') else {
        return false;
    };
    let digits = |t: &str, min: usize, max: usize| {
        t.len() >= min && t.len() <= max && t.chars().all(|c| c.is_ascii_digit())
    };
    if !digits(cc, 1, 3) || cc.starts_with('0') {
        return false;
    }
    match number.split_once('x') {
        Some((n, ext)) => digits(n, 4, 14) && digits(ext, 1, 10),
        None => digits(number, 4, 14),
    }
}

fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    match domain.rsplit_once('.') {
        Some((head, tld)) => !head.is_empty() && !tld.is_empty(),
        None => false,
    }
}

/// The schema's constraints that serde does not check.
pub fn validate_request(req: &Request) -> Result<(), String> {
    let u = req.user.as_str();
    if u.len() < 3 || u.len() > 113 || !(is_upn(u) || is_guid(u)) {
        return Err("'user' is neither a user principal name nor an object id".into());
    }
    if req.row.is_some_and(|r| r < 2) {
        return Err("'row' must be 2 or more (row 1 is the header)".into());
    }
    match &req.job {
        Job::S3 { bucket, key, etag } => {
            if bucket.len() < 3 || key.is_empty() || etag.is_empty() {
                return Err("'job' needs a bucket (3+ characters), a key and an etag".into());
            }
        }
        Job::Producer { producer, id } => {
            if producer.is_empty() || id.as_deref().is_some_and(str::is_empty) {
                return Err("'job.producer' (and 'job.id' when given) must not be empty".into());
            }
        }
    }
    let phones = [
        ("mobile", &req.methods.mobile),
        ("alternateMobile", &req.methods.alternate_mobile),
        ("office", &req.methods.office),
    ];
    for (name, value) in phones {
        if let Some(Some(p)) = value {
            if !is_graph_phone(p) {
                return Err(format!(
                    "'methods.{name}' is not in Graph's form +CC NUMBER[xEXT] ({})",
                    crate::mask::mask_phone(p)
                ));
            }
        }
    }
    if let Some(Some(e)) = &req.methods.email {
        if !is_email(e) {
            return Err("'methods.email' is not an email address".into());
        }
    }
    Ok(())
}

/// Pulls `job` and `row` out of a body that failed to parse as a whole, for the DLQ entry.
fn salvage(body: &str) -> (serde_json::Value, Option<Job>, Option<u64>, Option<String>) {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            let job = v
                .get("job")
                .and_then(|j| serde_json::from_value::<Job>(j.clone()).ok());
            let row = v.get("row").and_then(serde_json::Value::as_u64);
            let user = v.get("user").and_then(|u| u.as_str()).map(str::to_string);
            (v, job, row, user)
        }
        Err(_) => (
            serde_json::Value::String(body.to_string()),
            None,
            None,
            None,
        ),
    }
}

/// Builds the Graph client again after a start-up configuration fault (an unusable secret):
/// the worker tries it at most once per [`REBUILD_INTERVAL`], so a fixed secret heals the
/// function without a redeploy.
#[async_trait]
pub trait ClientSource: Send + Sync {
    async fn build(&self) -> Result<GraphClient, ConfigFault>;
}

/// Shortest time between two attempts to build the client after a start-up fault.
pub const REBUILD_INTERVAL: Duration = Duration::from_secs(60);

/// The worker: build once per process (outside the Lambda handler) and reuse, so the token
/// cache and the adaptive limiter carry over between invocations.
pub struct Worker {
    client: std::sync::RwLock<Option<Arc<GraphClient>>>,
    /// How to build the client when it could not be built at start.
    source: Option<Arc<dyn ClientSource>>,
    /// The start-up fault and when the client was last tried.
    start_fault: Mutex<Option<(ConfigFault, Instant)>>,
    rebuild_interval: Duration,
    dlq: Arc<dyn DlqPort>,
    queue: Arc<dyn QueuePort>,
    config: WorkerConfig,
    /// The configuration fault met in the batch being processed.
    batch_fault: Mutex<Option<ConfigFault>>,
    config_faults: std::sync::atomic::AtomicU64,
    /// When the certificate's days to expiry were last published.
    expiry_published: Mutex<Option<Instant>>,
    /// Messages of this batch whose DLQ send failed.
    dlq_failures: Mutex<Vec<String>>,
    /// Users never changed (`PROTECTED_USERS`).
    protected: Option<Arc<protected::ProtectedUsers>>,
}

/// How often a running worker publishes the certificate's days to expiry.
pub const EXPIRY_METRIC_INTERVAL: Duration = Duration::from_secs(3600);

impl Worker {
    pub fn new(client: Arc<GraphClient>, dlq: Arc<dyn DlqPort>, config: WorkerConfig) -> Worker {
        Worker::build(Some(client), None, None, dlq, config)
    }

    /// A worker whose client could not be built (`fault`): every batch goes back to the queue
    /// until `source` builds one.
    pub fn faulted(
        fault: ConfigFault,
        source: Arc<dyn ClientSource>,
        dlq: Arc<dyn DlqPort>,
        config: WorkerConfig,
    ) -> Worker {
        Worker::build(None, Some(source), Some(fault), dlq, config)
    }

    fn build(
        client: Option<Arc<GraphClient>>,
        source: Option<Arc<dyn ClientSource>>,
        fault: Option<ConfigFault>,
        dlq: Arc<dyn DlqPort>,
        config: WorkerConfig,
    ) -> Worker {
        Worker {
            client: std::sync::RwLock::new(client),
            source,
            start_fault: Mutex::new(fault.map(|f| (f, Instant::now()))),
            rebuild_interval: REBUILD_INTERVAL,
            dlq,
            queue: Arc::new(NoQueue),
            config,
            batch_fault: Mutex::new(None),
            config_faults: std::sync::atomic::AtomicU64::new(0),
            expiry_published: Mutex::new(None),
            dlq_failures: Mutex::new(Vec::new()),
            protected: None,
        }
    }

    /// How often a faulted worker tries to build its client again (default
    /// [`REBUILD_INTERVAL`]).
    pub fn with_rebuild_interval(mut self, every: Duration) -> Worker {
        self.rebuild_interval = every;
        self
    }

    /// The fault that keeps the client from being built, while it lasts.
    pub fn start_fault(&self) -> Option<ConfigFault> {
        self.start_fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(f, _)| f.clone())
    }

    /// Users whose methods are never changed: their requests are dead-lettered as
    /// `protected_user`.
    pub fn with_protected(mut self, protected: protected::ProtectedUsers) -> Worker {
        self.protected = (!protected.is_empty()).then(|| Arc::new(protected));
        self
    }

    /// The work queue the messages come from (retry spacing, fresh copies).
    pub fn with_queue(mut self, queue: Arc<dyn QueuePort>) -> Worker {
        self.queue = queue;
        self
    }

    /// The Graph client, when it could be built.
    pub fn client(&self) -> Option<Arc<GraphClient>> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Batches that met a configuration fault so far.
    pub fn configuration_faults(&self) -> u64 {
        self.config_faults.load(Ordering::Relaxed)
    }

    /// The client, building it again after a start-up fault when [`REBUILD_INTERVAL`] passed.
    async fn current_client(&self) -> Result<Arc<GraphClient>, ConfigFault> {
        if let Some(c) = self.client() {
            return Ok(c);
        }
        let (fault, due) = {
            let f = self.start_fault.lock().unwrap_or_else(|e| e.into_inner());
            match f.as_ref() {
                Some((fault, tried)) => (fault.clone(), tried.elapsed() >= self.rebuild_interval),
                None => (
                    ConfigFault::Secret("the Graph client was never built".into()),
                    true,
                ),
            }
        };
        let Some(source) = self.source.as_ref().filter(|_| due) else {
            return Err(fault);
        };
        match source.build().await {
            Ok(c) => {
                let c = Arc::new(c);
                *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                *self.start_fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::info!("the configuration fault is fixed: the Graph client is built");
                Ok(c)
            }
            Err(f) => {
                *self.start_fault.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((f.clone(), Instant::now()));
                Err(f)
            }
        }
    }

    /// Publishes the metric `CertificateDaysToExpiry` (at start, then hourly), which the
    /// template's alarm compares with 30 days.
    fn publish_expiry(&self, client: &GraphClient) {
        {
            let mut last = self
                .expiry_published
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < EXPIRY_METRIC_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let days = (client.tokens().credentials().certificate_not_after() - now).div_euclid(86_400);
        crate::metrics::emit("worker", &[("CertificateDaysToExpiry", days as f64)], &[]);
    }

    fn batch_fault(&self) -> Option<ConfigFault> {
        self.batch_fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note_batch_fault(&self, fault: &ConfigFault) {
        let mut f = self.batch_fault.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(fault.clone());
        }
    }

    /// Lambda entry: processes the event, returns the partial batch response. Messages not
    /// finished [`DEADLINE_MARGIN`] before `deadline` are batch item failures (see
    /// [`Worker::process_until`]); `None`: no deadline.
    pub async fn handle_event_until(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> SqsBatchResponse {
        let messages: Vec<InboundMessage> =
            event.records.iter().map(InboundMessage::from_sqs).collect();
        let reports = match deadline {
            Some(d) => {
                let stop_at = d.checked_sub(DEADLINE_MARGIN).unwrap_or_else(Instant::now);
                self.process_until(messages, stop_at).await
            }
            None => self.process(messages).await,
        };
        let mut resp = SqsBatchResponse::default();
        resp.set_failures(batch_failures(&reports));
        resp
    }

    /// [`Worker::process`], but only until `stop_at`: a message still in progress then is
    /// abandoned (Graph writes already made stay; the next delivery plans from what it finds)
    /// and reported as a retry, or dead-lettered as `retries_exhausted` on its last receive.
    pub async fn process_until(
        &self,
        messages: Vec<InboundMessage>,
        stop_at: Instant,
    ) -> Vec<MessageReport> {
        self.run_batch(messages, Some(stop_at)).await
    }

    /// Processes messages concurrently (at most `concurrency` users at a time), in input order.
    pub async fn process(&self, messages: Vec<InboundMessage>) -> Vec<MessageReport> {
        self.run_batch(messages, None).await
    }

    /// One batch: messages of one user run one after another in arrival order (two requests
    /// for one user never race), users run concurrently, and a message delivered twice in the
    /// batch (the same message id, the same job and row, or the same body) is worked once.
    async fn run_batch(
        &self,
        messages: Vec<InboundMessage>,
        stop_at: Option<Instant>,
    ) -> Vec<MessageReport> {
        let client = self.begin_batch().await;
        let (chains, duplicate_of) = batch_plan(&messages);
        let mut slots: Vec<Option<MessageReport>> = vec![None; messages.len()];
        {
            let client = client.as_ref();
            let messages = &messages;
            let mut running = futures::stream::iter(chains)
                .map(|chain| async move {
                    let mut done = Vec::with_capacity(chain.len());
                    for i in chain {
                        done.push((i, self.process_message(client, &messages[i]).await));
                    }
                    done
                })
                .buffer_unordered(self.config.concurrency.max(1));
            let collect = async {
                while let Some(done) = running.next().await {
                    for (i, report) in done {
                        slots[i] = Some(report);
                    }
                }
            };
            match stop_at {
                Some(t) => {
                    let _ = tokio::time::timeout_at(t.into(), collect).await;
                }
                None => collect.await,
            }
        }
        let mut reports = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let first = duplicate_of[i].and_then(|f| slots[f].clone());
            let report = match (slots[i].clone(), first) {
                (Some(r), _) => r,
                (None, Some(first)) => {
                    tracing::info!(
                        message_id = %m.message_id,
                        first = %first.message_id,
                        "delivered twice in one batch: worked once"
                    );
                    MessageReport {
                        message_id: m.message_id.clone(),
                        // Only the first is dead-lettered; a duplicate is done with it.
                        result: None,
                        ..first
                    }
                }
                (None, None) => self.out_of_time(m).await,
            };
            reports.push(report);
        }
        self.settle(&messages, &mut reports).await;
        reports
    }

    /// One message on its own (a batch of one).
    pub async fn process_one(&self, m: &InboundMessage) -> MessageReport {
        let mut reports = self.process(vec![m.clone()]).await;
        reports.pop().unwrap_or_else(|| MessageReport {
            message_id: m.message_id.clone(),
            user: None,
            row: None,
            disposition: Disposition::Retry(Reason::RetriesExhausted),
            result: None,
            redriven: false,
            retry_in: None,
        })
    }

    /// Starts a batch: forgets the last batch's fault, and gets the client (or the start-up
    /// fault, which then holds for the whole batch).
    async fn begin_batch(&self) -> Option<Arc<GraphClient>> {
        *self.batch_fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.dlq_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        match self.current_client().await {
            Ok(c) => {
                self.publish_expiry(&c);
                if let Some(p) = &self.protected {
                    if let Err(f) = p.refresh(&c).await {
                        self.note_batch_fault(&f);
                    }
                }
                Some(c)
            }
            Err(f) => {
                self.note_batch_fault(&f);
                None
            }
        }
    }

    /// After a batch: spaces retries (visibility), sends messages on their last receive that met
    /// a configuration fault again as fresh copies, and reports the fault once.
    async fn settle(&self, messages: &[InboundMessage], reports: &mut [MessageReport]) {
        let fault = self.batch_fault();
        let mut requeued = 0usize;
        let mut returned = 0usize;
        if fault.is_some() {
            for (m, r) in messages.iter().zip(reports.iter_mut()) {
                if r.disposition != Disposition::Retry(Reason::ConfigurationFault) {
                    continue;
                }
                if m.receive_count < self.config.max_receive_count {
                    r.retry_in = Some(self.config.config_fault_retry);
                    returned += 1;
                    continue;
                }
                let attributes = m.copy_attributes();
                let delay = self.config.config_fault_retry.min(MAX_SEND_DELAY);
                match self.queue.requeue(&m.body, attributes, delay).await {
                    Ok(()) => {
                        r.disposition = Disposition::Requeued(Reason::ConfigurationFault);
                        requeued += 1;
                    }
                    Err(e) => {
                        tracing::error!(message_id = %m.message_id, error = %e, "cannot send a fresh copy of a message on its last receive: the queue's redrive policy will move it to the DLQ without a reason");
                    }
                }
            }
        }
        // A DLQ send that failed on the last delivery: SQS would move the raw body to the DLQ
        // without a reason. Send a fresh copy instead, so the next delivery can dead-letter it
        // with its reason; when that fails too, say so loudly.
        let dlq_failed: Vec<String> =
            std::mem::take(&mut *self.dlq_failures.lock().unwrap_or_else(|e| e.into_inner()));
        if !dlq_failed.is_empty() {
            let mut lost = 0usize;
            for (m, r) in messages.iter().zip(reports.iter_mut()) {
                if !dlq_failed.contains(&m.message_id)
                    || !matches!(r.disposition, Disposition::Retry(_))
                    || m.receive_count < self.config.max_receive_count
                {
                    continue;
                }
                let attributes = m.copy_attributes();
                match self
                    .queue
                    .requeue(&m.body, attributes, DLQ_RETRY_DELAY)
                    .await
                {
                    Ok(()) => {
                        if let Disposition::Retry(reason) = r.disposition {
                            r.disposition = Disposition::Requeued(reason);
                        }
                    }
                    Err(e) => {
                        lost += 1;
                        tracing::error!(message_id = %m.message_id, error = %e, "DLQ send failed on the last delivery and no fresh copy could be sent: SQS moves the message to the DLQ without a reason attribute (look it up in these logs by message id)");
                    }
                }
            }
            crate::metrics::emit(
                "worker",
                &[
                    ("DlqSendFailed", dlq_failed.len() as f64),
                    ("DlqSendFailedOnLastDelivery", lost as f64),
                ],
                &[],
            );
        }
        let changes: Vec<(String, Duration)> = messages
            .iter()
            .zip(reports.iter())
            .filter(|(m, r)| {
                matches!(r.disposition, Disposition::Retry(_)) && !m.receipt_handle.is_empty()
            })
            .filter_map(|(m, r)| {
                r.retry_in
                    .map(|d| (m.receipt_handle.clone(), d.min(MAX_VISIBILITY)))
            })
            .collect();
        if !changes.is_empty() {
            if let Err(e) = self.queue.change_visibility(&changes).await {
                tracing::warn!(error = %e, messages = changes.len(), "cannot change the visibility of retried messages: they come back after the queue's visibility timeout");
            }
        }
        if let Some(f) = fault {
            self.config_faults.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                fault = f.kind(),
                returned,
                requeued,
                retry_in_s = self.config.config_fault_retry.as_secs(),
                "CONFIGURATION FAULT, nothing was dead-lettered: {f}. The batch goes back to the queue until this is fixed."
            );
            crate::metrics::emit(
                "worker",
                &[("ConfigurationFault", 1.0)],
                &[("fault", f.kind())],
            );
        }
    }

    /// A message the invocation had no time left for.
    async fn out_of_time(&self, m: &InboundMessage) -> MessageReport {
        let (request, job, row, user) = salvage(&m.body);
        let detail = format!(
            "not finished before the invocation's deadline (receive {})",
            m.receive_count
        );
        let disposition = if m.receive_count >= self.config.max_receive_count {
            let entry = DlqEntry {
                v: MESSAGE_VERSION,
                reason: Reason::RetriesExhausted,
                detail: detail.clone(),
                job: job.clone(),
                row,
                column: None,
                request,
                stage: STAGE.to_string(),
            };
            self.dead_letter(m, entry).await
        } else {
            Disposition::Retry(Reason::RetriesExhausted)
        };
        let user = user.filter(|u| u.len() <= 113 && (is_upn(u) || is_guid(u)));
        log_line(
            m,
            user.as_deref(),
            row,
            job.as_ref(),
            disposition,
            &detail,
            &[],
            false,
        );
        MessageReport {
            message_id: m.message_id.clone(),
            user,
            row,
            disposition,
            result: None,
            redriven: false,
            retry_in: None,
        }
    }

    /// When a `user_not_found` should be tried again: `None` when it is final (the window
    /// passed, or this is the last receive). The remaining receives are spread over what is
    /// left of the window, doubling: for 300 s and 4 receives left, 20, 40, 80 and 160 s.
    fn not_found_retry(&self, m: &InboundMessage) -> Option<Duration> {
        let window = self.config.user_not_found_retry;
        let age = m.age();
        if window.is_zero() || age >= window || m.receive_count >= self.config.max_receive_count {
            return None;
        }
        let left = (self.config.max_receive_count - m.receive_count).min(20);
        let steps = f64::from((1u32 << left) - 1);
        let first = (window - age).as_secs_f64() / steps;
        Some(Duration::from_secs_f64(first.max(1.0)).min(MAX_VISIBILITY))
    }

    /// One message: parse, apply, dead-letter or ask for a retry. Never panics on input.
    async fn process_message(
        &self,
        client: Option<&Arc<GraphClient>>,
        m: &InboundMessage,
    ) -> MessageReport {
        let (body, redriven) = match redrive::classify(&m.body) {
            redrive::Inbound::Direct => (m.body.clone(), false),
            redrive::Inbound::Redriven {
                request,
                previous_reason,
            } => {
                tracing::info!(
                    message_id = %m.message_id,
                    previous_reason = previous_reason.map_or("unknown", Reason::as_str),
                    "re-driven dead-letter entry: processing its original request again"
                );
                (request, true)
            }
            redrive::Inbound::NotRedrivable { detail } => {
                return self.reject_invalid(m, &m.body, detail, true).await;
            }
        };
        let req = match parse_request(&body) {
            Ok(r) => r,
            Err(detail) => return self.reject_invalid(m, &body, detail, redriven).await,
        };
        let protected = self
            .protected
            .as_ref()
            .and_then(|p| p.contains(&req.user))
            .unwrap_or(false);
        if protected && self.batch_fault().is_none() {
            let detail = "the user is on the protected list (PROTECTED_USERS): its authentication methods are not changed through this product".to_string();
            let disposition = self
                .dead_letter(
                    m,
                    self.entry(&req, &body, Reason::ProtectedUser, detail.clone()),
                )
                .await;
            log_line(
                m,
                Some(&req.user),
                req.row,
                Some(&req.job),
                disposition,
                &detail,
                &[],
                redriven,
            );
            return MessageReport {
                message_id: m.message_id.clone(),
                user: Some(req.user.clone()),
                row: req.row,
                disposition,
                result: None,
                redriven,
                retry_in: None,
            };
        }
        let mut retry_in = None;
        let (result, disposition) = match (client, self.batch_fault()) {
            (Some(client), None) => {
                let result = apply(client, &req).await;
                if let Some(f) = &result.config_fault {
                    self.note_batch_fault(f);
                }
                let disposition = match &result.outcome {
                    Ok(o) => Disposition::Done(*o),
                    Err(_) if result.config_fault.is_some() => {
                        Disposition::Retry(Reason::ConfigurationFault)
                    }
                    Err(rej)
                        if result.transient && m.receive_count < self.config.max_receive_count =>
                    {
                        Disposition::Retry(rej.reason)
                    }
                    Err(rej) if rej.reason == Reason::UserNotFound && !result.transient => {
                        match self.not_found_retry(m) {
                            Some(d) => {
                                retry_in = Some(d);
                                Disposition::Retry(Reason::UserNotFound)
                            }
                            None => {
                                let mut detail = result.detail();
                                if !self.config.user_not_found_retry.is_zero() {
                                    detail = format!(
                                        "{detail}; still not found {} s after the message was sent",
                                        m.age().as_secs()
                                    );
                                }
                                self.dead_letter(m, self.entry(&req, &body, rej.reason, detail))
                                    .await
                            }
                        }
                    }
                    Err(rej) => {
                        let reason = if result.transient {
                            Reason::RetriesExhausted
                        } else {
                            rej.reason
                        };
                        let mut detail = result.detail();
                        if result.transient {
                            detail =
                                format!("{detail}; still failing on receive {}", m.receive_count);
                        }
                        self.dead_letter(m, self.entry(&req, &body, reason, detail))
                            .await
                    }
                };
                (Some(result), disposition)
            }
            // A configuration fault met earlier in this batch: the user is not touched.
            _ => (None, Disposition::Retry(Reason::ConfigurationFault)),
        };
        let detail = result.as_ref().map(UserResult::detail).unwrap_or_else(|| {
            self.batch_fault()
                .map(|f| f.to_string())
                .unwrap_or_default()
        });
        log_line(
            m,
            Some(&req.user),
            req.row,
            Some(&req.job),
            disposition,
            &detail,
            result.as_ref().map_or(&[][..], |r| &r.actions),
            redriven,
        );
        MessageReport {
            message_id: m.message_id.clone(),
            user: Some(req.user.clone()),
            row: req.row,
            disposition,
            result,
            redriven,
            retry_in,
        }
    }

    /// The DLQ entry of a processed request.
    fn entry(&self, req: &Request, body: &str, reason: Reason, detail: String) -> DlqEntry {
        DlqEntry {
            v: MESSAGE_VERSION,
            reason,
            detail,
            job: Some(req.job.clone()),
            row: req.row,
            column: None,
            request: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
            stage: STAGE.to_string(),
        }
    }

    /// A body that is not a request it can process: `invalid_message` to the DLQ, holding the
    /// body as received (with the `job` and `row` it names, when readable).
    async fn reject_invalid(
        &self,
        m: &InboundMessage,
        body: &str,
        detail: String,
        redriven: bool,
    ) -> MessageReport {
        let (request, job, row, user) = salvage(body);
        let entry = DlqEntry {
            v: MESSAGE_VERSION,
            reason: Reason::InvalidMessage,
            detail: detail.clone(),
            job: job.clone(),
            row,
            column: None,
            request,
            stage: STAGE.to_string(),
        };
        let disposition = self.dead_letter(m, entry).await;
        let user = user.filter(|u| u.len() <= 113 && (is_upn(u) || is_guid(u)));
        log_line(
            m,
            user.as_deref(),
            row,
            job.as_ref(),
            disposition,
            &detail,
            &[],
            redriven,
        );
        MessageReport {
            message_id: m.message_id.clone(),
            user,
            row,
            disposition,
            result: None,
            redriven,
            retry_in: None,
        }
    }

    async fn dead_letter(&self, m: &InboundMessage, entry: DlqEntry) -> Disposition {
        let reason = entry.reason;
        let attributes = dlq_attributes(&entry);
        match self.dlq.send(entry, attributes).await {
            Ok(()) => Disposition::DeadLettered(reason),
            Err(e) => {
                tracing::error!(message_id = %m.message_id, error = %e, reason = %reason, "DLQ send failed; the message will be retried");
                self.dlq_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(m.message_id.clone());
                Disposition::Retry(reason)
            }
        }
    }
}

/// Chains of message indices (one per user, in arrival order) and, per message, the earlier
/// message of the batch it duplicates (then it is in no chain).
fn batch_plan(messages: &[InboundMessage]) -> (Vec<Vec<usize>>, Vec<Option<usize>>) {
    use std::collections::HashMap;
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of_user: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut duplicate_of = vec![None; messages.len()];
    for (i, m) in messages.iter().enumerate() {
        let request = match redrive::classify(&m.body) {
            redrive::Inbound::Direct => serde_json::from_str::<serde_json::Value>(&m.body).ok(),
            redrive::Inbound::Redriven { request, .. } => serde_json::from_str(&request).ok(),
            redrive::Inbound::NotRedrivable { .. } => None,
        };
        let user = request
            .as_ref()
            .and_then(|v| v.get("user"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_lowercase);
        // The same row of the same job for the same user (a row number alone could be reused
        // by a producer for other users).
        let job_row = request.as_ref().and_then(|v| {
            let row = v.get("row")?.as_u64()?;
            let job = serde_json::from_value::<Job>(v.get("job")?.clone()).ok()?;
            Some(format!(
                "row {row} of {} for {}",
                job.label(),
                user.as_deref()?
            ))
        });
        let mut keys = vec![format!("id {}", m.message_id), format!("body {}", m.body)];
        keys.extend(job_row);
        if let Some(first) = keys.iter().find_map(|k| seen.get(k).copied()) {
            duplicate_of[i] = Some(first);
            continue;
        }
        for k in keys {
            seen.insert(k, i);
        }
        match user {
            Some(u) => match chain_of_user.get(&u) {
                Some(&c) => chains[c].push(i),
                None => {
                    chain_of_user.insert(u, chains.len());
                    chains.push(vec![i]);
                }
            },
            None => chains.push(vec![i]),
        }
    }
    (chains, duplicate_of)
}

/// Delay of a fresh copy sent because the DLQ refused the message on its last delivery.
pub const DLQ_RETRY_DELAY: Duration = Duration::from_secs(60);

/// SQS's longest `DelaySeconds` (15 minutes).
pub const MAX_SEND_DELAY: Duration = Duration::from_secs(900);

#[allow(clippy::too_many_arguments)]
fn log_line(
    m: &InboundMessage,
    user: Option<&str>,
    row: Option<u64>,
    job: Option<&Job>,
    disposition: Disposition,
    detail: &str,
    actions: &[String],
    redriven: bool,
) {
    let (status, code) = match disposition {
        Disposition::Done(o) => ("done", o.as_str()),
        Disposition::DeadLettered(r) => ("dead_lettered", r.as_str()),
        Disposition::Retry(r) => ("retry", r.as_str()),
        Disposition::Requeued(r) => ("requeued", r.as_str()),
    };
    let outcome = matches!(disposition, Disposition::Done(_)).then_some(code);
    let reason = (!matches!(disposition, Disposition::Done(_))).then_some(code);
    tracing::info!(
        message_id = %m.message_id,
        receive_count = m.receive_count,
        user = user.unwrap_or("-"),
        row = row,
        job = %job.map(Job::label).unwrap_or_default(),
        status,
        outcome = outcome,
        reason = reason,
        actions = %actions.join(","),
        redriven,
        detail = %mask_numbers_in_text(detail),
        "user processed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: serde_json::Value) -> String {
        let mut v =
            serde_json::json!({"v": 1, "job": {"producer": "hr"}, "user": "a.b@contoso.com"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v.to_string()
    }

    #[test]
    fn parses_valid_and_rejects_invalid_messages() {
        assert!(parse_request(&body(
            serde_json::json!({"methods": {"mobile": "+1 5555551234x12", "email": "x@y.org"}})
        ))
        .is_ok());
        assert!(parse_request(&body(
            serde_json::json!({"user": "2f1c3a4b-1234-4abc-9def-0123456789ab"})
        ))
        .is_ok());
        let bad = [
            ("{not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"job":{"producer":"x"},"user":"a@b.co"}"#, "no 'v'"),
            (
                r#"{"v":2,"job":{"producer":"x"},"user":"a@b.co"}"#,
                "version 2",
            ),
            (&body(serde_json::json!({"mobil": "x"})), "unknown field"),
            (&body(serde_json::json!({"user": "a/b@c.com"})), "'user'"),
            (&body(serde_json::json!({"user": "nobody"})), "'user'"),
            (
                &body(serde_json::json!({"methods": {"mobile": "+310612345678"}})),
                "methods.mobile",
            ),
            (
                &body(serde_json::json!({"methods": {"office": "0612345678"}})),
                "methods.office",
            ),
            (
                &body(serde_json::json!({"methods": {"email": "not an email"}})),
                "methods.email",
            ),
            (&body(serde_json::json!({"row": 1})), "'row'"),
            (
                &body(serde_json::json!({"smsSignIn": "maybe"})),
                "not a valid v1 request",
            ),
        ];
        for (b, needle) in bad {
            let err = parse_request(b).unwrap_err();
            assert!(err.contains(needle), "{b}: {err}");
        }
        // Numbers in errors are masked.
        let err = parse_request(&body(
            serde_json::json!({"methods": {"mobile": "+31 0612345678 9"}}),
        ))
        .unwrap_err();
        assert!(!err.contains("0612345678"), "{err}");
        let err = parse_request(&body(
            serde_json::json!({"methods": {"mobile": 31612345678u64}}),
        ))
        .unwrap_err();
        assert!(!err.contains("31612345678"), "{err}");
    }

    #[test]
    fn graph_phone_form() {
        for ok in [
            "+1 5555551234",
            "+31 612345678",
            "+1 5555551234x1",
            "+999 1234",
        ] {
            assert!(is_graph_phone(ok), "{ok}");
        }
        for bad in [
            "+1  5555551234",
            "+0 5555551234",
            "1 5555551234",
            "+1 555",
            "+1 5555551234x",
            "+1234 5555551234",
            "+1 5555551234 x1",
        ] {
            assert!(!is_graph_phone(bad), "{bad}");
        }
    }

    #[test]
    fn worker_config_from_lookup() {
        let c = WorkerConfig::from_lookup(|k| match k {
            "WORKER_CONCURRENCY" => Some("32".into()),
            "MAX_RECEIVE_COUNT" => Some("3".into()),
            "USER_NOT_FOUND_RETRY_SECONDS" => Some("0".into()),
            "CONFIGURATION_FAULT_RETRY_SECONDS" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c,
            WorkerConfig {
                concurrency: 32,
                max_receive_count: 3,
                user_not_found_retry: Duration::ZERO,
                config_fault_retry: Duration::from_secs(60),
            }
        );
        for (var, bad) in [
            ("USER_NOT_FOUND_RETRY_SECONDS", "-1"),
            ("USER_NOT_FOUND_RETRY_SECONDS", "50000"),
            ("CONFIGURATION_FAULT_RETRY_SECONDS", "0"),
            ("CONFIGURATION_FAULT_RETRY_SECONDS", "43201"),
        ] {
            let e =
                WorkerConfig::from_lookup(|k| (k == var).then(|| bad.to_string())).expect_err(bad);
            assert!(e.to_string().contains(var), "{e}");
        }
        let e =
            WorkerConfig::from_lookup(|k| (k == "MAX_RECEIVE_COUNT").then(|| "zero".to_string()))
                .unwrap_err();
        assert!(e.to_string().contains("MAX_RECEIVE_COUNT") && e.to_string().contains("zero"));
        assert_eq!(
            WorkerConfig::from_lookup(|_| None).unwrap(),
            WorkerConfig::default()
        );
    }

    #[test]
    fn attributes_of_a_dlq_entry() {
        let e = DlqEntry {
            v: 1,
            reason: Reason::UserNotFound,
            detail: "x".repeat(2000),
            job: None,
            row: Some(7),
            column: None,
            request: serde_json::Value::Null,
            stage: STAGE.into(),
        };
        let a = dlq_attributes(&e);
        assert_eq!(a[0], ("reason".into(), "user_not_found".into()));
        assert_eq!(a[1].1.len(), MAX_DETAIL_ATTRIBUTE_CHARS);
        assert_eq!(a[2], ("stage".into(), "worker".into()));
        assert_eq!(a[3], ("row".into(), "7".into()));
    }
}
