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
//!
//! [`setup::build_from_env`] builds the whole worker from the environment (the Lambda binary and
//! the tests share it).

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
use crate::graph::error::mask_numbers_in_text;
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

/// `reason`, `detail` (cut to [`MAX_DETAIL_ATTRIBUTE_CHARS`]), `stage` and `row` attributes.
pub fn dlq_attributes(entry: &DlqEntry) -> Vec<(String, String)> {
    let mut detail: String = entry
        .detail
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            max_receive_count: 5,
        }
    }
}

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
        Ok(c)
    }

    pub fn from_env() -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::from_lookup(|k| std::env::var(k).ok())
    }
}

/// One queue message as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount` (1 on the first delivery).
    pub receive_count: u32,
}

impl InboundMessage {
    pub fn from_sqs(m: &SqsMessage) -> InboundMessage {
        InboundMessage {
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1),
        }
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

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

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

/// The worker: build once per process (outside the Lambda handler) and reuse, so the token
/// cache and the adaptive limiter carry over between invocations.
pub struct Worker {
    client: Arc<GraphClient>,
    dlq: Arc<dyn DlqPort>,
    config: WorkerConfig,
}

impl Worker {
    pub fn new(client: Arc<GraphClient>, dlq: Arc<dyn DlqPort>, config: WorkerConfig) -> Worker {
        Worker {
            client,
            dlq,
            config,
        }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Lambda entry: processes the event, returns the partial batch response.
    pub async fn handle_event(&self, event: SqsEvent) -> SqsBatchResponse {
        let messages: Vec<InboundMessage> =
            event.records.iter().map(InboundMessage::from_sqs).collect();
        let reports = self.process(messages).await;
        let mut resp = SqsBatchResponse::default();
        resp.set_failures(batch_failures(&reports));
        resp
    }

    /// Lambda entry with the invocation's deadline: messages not finished [`DEADLINE_MARGIN`]
    /// before it are batch item failures (see [`Worker::process_until`]).
    pub async fn handle_event_until(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let messages: Vec<InboundMessage> =
            event.records.iter().map(InboundMessage::from_sqs).collect();
        let stop_at = deadline
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or_else(Instant::now);
        let reports = self.process_until(messages, stop_at).await;
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
        let mut slots: Vec<Option<MessageReport>> = vec![None; messages.len()];
        {
            let mut running = futures::stream::iter(messages.iter().enumerate())
                .map(|(i, m)| async move { (i, self.process_one(m).await) })
                .buffer_unordered(self.config.concurrency.max(1));
            let _ = tokio::time::timeout_at(stop_at.into(), async {
                while let Some((i, report)) = running.next().await {
                    slots[i] = Some(report);
                }
            })
            .await;
        }
        let mut reports = Vec::with_capacity(messages.len());
        for (m, slot) in messages.iter().zip(slots) {
            match slot {
                Some(r) => reports.push(r),
                None => reports.push(self.out_of_time(m).await),
            }
        }
        reports
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
            self.dead_letter(entry).await
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
        }
    }

    /// Processes messages concurrently (at most `concurrency` at a time), in input order.
    pub async fn process(&self, messages: Vec<InboundMessage>) -> Vec<MessageReport> {
        futures::stream::iter(messages.iter())
            .map(|m| self.process_one(m))
            .buffered(self.config.concurrency.max(1))
            .collect()
            .await
    }

    /// One message: parse, apply, dead-letter or ask for a retry. Never panics on input.
    pub async fn process_one(&self, m: &InboundMessage) -> MessageReport {
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
        let result = apply(&self.client, &req).await;
        let disposition = match &result.outcome {
            Ok(o) => Disposition::Done(*o),
            Err(rej) if result.transient && m.receive_count < self.config.max_receive_count => {
                Disposition::Retry(rej.reason)
            }
            Err(rej) => {
                let reason = if result.transient {
                    Reason::RetriesExhausted
                } else {
                    rej.reason
                };
                let mut detail = result.detail();
                if result.transient {
                    detail = format!("{detail}; still failing on receive {}", m.receive_count);
                }
                let entry = DlqEntry {
                    v: MESSAGE_VERSION,
                    reason,
                    detail,
                    job: Some(req.job.clone()),
                    row: req.row,
                    column: None,
                    request: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    stage: STAGE.to_string(),
                };
                self.dead_letter(entry).await
            }
        };
        log_line(
            m,
            Some(&req.user),
            req.row,
            Some(&req.job),
            disposition,
            &result.detail(),
            &result.actions,
            redriven,
        );
        MessageReport {
            message_id: m.message_id.clone(),
            user: Some(req.user.clone()),
            row: req.row,
            disposition,
            result: Some(result),
            redriven,
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
        let disposition = self.dead_letter(entry).await;
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
        }
    }

    async fn dead_letter(&self, entry: DlqEntry) -> Disposition {
        let reason = entry.reason;
        let attributes = dlq_attributes(&entry);
        match self.dlq.send(entry, attributes).await {
            Ok(()) => Disposition::DeadLettered(reason),
            Err(e) => {
                tracing::error!(error = %e, reason = %reason, "DLQ send failed; the message will be retried");
                Disposition::Retry(reason)
            }
        }
    }
}

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
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c,
            WorkerConfig {
                concurrency: 32,
                max_receive_count: 3
            }
        );
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
