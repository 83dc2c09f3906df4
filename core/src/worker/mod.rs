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

pub mod passes;
pub mod protected;
pub mod redrive;
pub mod setup;

pub mod queue;

/// The engine's settings live with all configuration ([`crate::config`]).
pub use crate::config::{WorkerConfig, MAX_VISIBILITY};
pub use queue::{MemoryQueue, NoQueue, QueueError, QueuePort, Requeued, FIRST_SENT_ATTRIBUTE};
pub use setup::{build_from_env, build_from_lookup, build_with_options, SetupError};

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;

use crate::apply::{apply_with, ApplyOptions, UserResult};
use crate::dlq::{attributes as dlq_attributes, DlqEntry, DlqPort};
use crate::graph::error::ConfigFault;
use crate::graph::GraphClient;
use crate::lambda::unix_ms;
use crate::ledger::{JobKey, LedgerPort, ReportRequests, RowRecord, Stage};
use crate::mask::mask_numbers_in_text;
use crate::message::{is_user_id, parse_request, Job, Request, MESSAGE_VERSION};
use crate::reason::{Outcome, Reason};

/// The DLQ stage name of this function.
pub const STAGE: &str = "worker";
/// Time kept before the invocation's deadline to answer, and to dead-letter what ran out of time
/// on its last receive.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

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
    /// The job the message names, when readable (for the job ledger).
    pub job: Option<Job>,
    /// What the log line says about the outcome (numbers masked).
    pub detail: String,
}

/// Message ids SQS must deliver again.
pub fn batch_failures(reports: &[MessageReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| matches!(r.disposition, Disposition::Retry(_)))
        .map(|r| r.message_id.clone())
        .collect()
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
    /// The job ledger and where a completed job's reports are asked for.
    ledger: Option<Arc<dyn LedgerPort>>,
    reports: Option<Arc<dyn ReportRequests>>,
    /// Where Temporary Access Passes go ([`passes`]).
    passes: Option<Arc<dyn passes::PassDeliveryPort>>,
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
            ledger: None,
            reports: None,
            passes: None,
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

    /// Records every final outcome in `ledger`; a job that this completes gets its reports
    /// asked for through `reports`.
    pub fn with_ledger(
        mut self,
        ledger: Arc<dyn LedgerPort>,
        reports: Option<Arc<dyn ReportRequests>>,
    ) -> Worker {
        self.ledger = Some(ledger);
        self.reports = reports;
        self
    }

    /// Where Temporary Access Passes are delivered. Without it a request that asks for one is
    /// a configuration fault (no pass is made that could not be delivered).
    pub fn with_passes(mut self, passes: Arc<dyn passes::PassDeliveryPort>) -> Worker {
        self.passes = Some(passes);
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
        self.record_outcomes(&messages, &mut reports).await;
        self.settle(&messages, &mut reports).await;
        reports
    }

    /// Records the batch's final outcomes in the job ledger, one write per job; a job this
    /// completes gets its reports asked for. When the ledger refuses, the messages go back to
    /// the queue (their next delivery records them; a dead-lettered one is then sent to the DLQ
    /// again) unless it was their last delivery, which is logged as an error.
    async fn record_outcomes(&self, messages: &[InboundMessage], reports: &mut [MessageReport]) {
        let Some(ledger) = self.ledger.as_ref() else {
            return;
        };
        let at = crate::ingest::now_rfc3339();
        let mut by_job: std::collections::BTreeMap<JobKey, (Job, Vec<usize>, Vec<RowRecord>)> =
            std::collections::BTreeMap::new();
        for (i, (m, r)) in messages.iter().zip(reports.iter()).enumerate() {
            let (Some(job), Some(record)) = (r.job.as_ref(), ledger_record(m, r, &at)) else {
                continue;
            };
            let e = by_job
                .entry(JobKey::of(job))
                .or_insert_with(|| (job.clone(), Vec::new(), Vec::new()));
            e.1.push(i);
            // A message delivered twice in the batch is one row.
            if !e.2.iter().any(|x| x.item_key() == record.item_key()) {
                e.2.push(record);
            }
        }
        for (key, (job, indices, rows)) in by_job {
            match ledger.record(&key, &job.label(), &rows).await {
                Ok(_) => self.after_record(ledger.as_ref(), &key, &job, &at).await,
                Err(e) => {
                    let mut returned = 0usize;
                    for &i in &indices {
                        if messages[i].receive_count >= self.config.max_receive_count {
                            continue;
                        }
                        let reason = match reports[i].disposition {
                            Disposition::DeadLettered(r) => r,
                            _ => Reason::RetriesExhausted,
                        };
                        reports[i].disposition = Disposition::Retry(reason);
                        reports[i].retry_in = Some(LEDGER_RETRY);
                        returned += 1;
                    }
                    tracing::error!(job = %job.label(), error = %e, rows = rows.len(), returned, "cannot record outcomes in the job ledger: the messages go back to the queue (those on their last delivery are missing from the ledger; `mfa-preload status --reconcile` finds dead-lettered ones)");
                    crate::metrics::emit(
                        "worker",
                        &[("LedgerWriteFailed", rows.len() as f64)],
                        &[],
                    );
                }
            }
        }
    }

    /// After a write to `job`: when it is complete now, claims that (once, across every
    /// worker) and asks for its reports; a request that cannot be sent gives the claim back.
    async fn after_record(&self, ledger: &dyn LedgerPort, key: &JobKey, job: &Job, at: &str) {
        let Some(requests) = self.reports.as_ref() else {
            return;
        };
        match crate::ledger::claim_if_complete(ledger, key, at).await {
            Ok(Some(summary)) => match requests.request(job).await {
                Ok(()) => tracing::info!(
                    job = %job.label(),
                    rows = summary.done,
                    needing_action = summary.needing_action(),
                    "job complete: its reports are asked for"
                ),
                Err(e) => {
                    tracing::error!(job = %job.label(), error = %e, "job complete, but its reports could not be asked for: the claim is given back");
                    if let Err(e) = ledger.release_completion(key).await {
                        tracing::error!(job = %job.label(), error = %e, "cannot give back the completion claim: run `mfa-preload status --reconcile` to write the reports");
                    }
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(job = %job.label(), error = %e, "cannot check whether the job is complete")
            }
        }
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
            job: None,
            detail: String::new(),
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
                user: None,
            };
            self.dead_letter(m, entry).await
        } else {
            Disposition::Retry(Reason::RetriesExhausted)
        };
        let user = user.filter(|u| is_user_id(u));
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
            job,
            detail,
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
                job: Some(req.job.clone()),
                detail,
            };
        }
        // A Temporary Access Pass: where it goes, and whether an earlier delivery of this
        // message delivered it already.
        let mut req = req;
        let mut own_pass: Option<String> = None;
        let mut pass_route: Option<passes::PassRoute> = None;
        let mut pass_note = None;
        let mut held: Option<UserResult> = None;
        if req.temporary_access_pass.is_some() && client.is_some() && self.batch_fault().is_none() {
            match passes::prepare(self.passes.as_deref(), &req).await {
                passes::Prepared::Invalid(detail) => {
                    return self.reject_invalid(m, &body, detail, redriven).await
                }
                passes::Prepared::Delivered => {
                    req.temporary_access_pass = None;
                    pass_note = Some("the Temporary Access Pass was issued and delivered by an earlier delivery of this message: no second pass".to_string());
                }
                passes::Prepared::Route(route, own) => {
                    own_pass = own;
                    pass_route = Some(route);
                }
                passes::Prepared::Failed(e) => held = Some(passes::failed(&e, e.to_string())),
            }
        }
        let mut retry_in = None;
        let (result, disposition) = match (client, self.batch_fault()) {
            (Some(client), None) => {
                let mut result = match held {
                    Some(r) => r,
                    None => {
                        let opts = ApplyOptions {
                            own_pass_id: own_pass.as_deref(),
                        };
                        apply_with(client, &req, &opts).await
                    }
                };
                if let Some(note) = pass_note.take() {
                    result.notes.push(note);
                }
                // The pass goes to its one place, whatever became of the rest of the row.
                if let Some(pass) = result.pass.take() {
                    let delivery = passes::hand_over(
                        self.passes.as_deref(),
                        pass_route.as_ref(),
                        client,
                        &req,
                        pass,
                    )
                    .await;
                    if let Err(e) = delivery {
                        tracing::error!(message_id = %m.message_id, error = %e, "a Temporary Access Pass was issued but not delivered; the next delivery replaces it");
                        result = passes::failed(&e, format!(
                            "the Temporary Access Pass was issued but could not be delivered ({e}); the next delivery of the message replaces it"
                        ));
                    }
                }
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
            job: Some(req.job.clone()),
            detail: mask_numbers_in_text(&detail),
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
            user: Some(req.user.clone()),
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
            user: None,
        };
        let disposition = self.dead_letter(m, entry).await;
        let user = user.filter(|u| is_user_id(u));
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
            job,
            detail: mask_numbers_in_text(&detail),
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

/// A message's final outcome as the ledger records it; `None` for a message not done yet.
fn ledger_record(m: &InboundMessage, r: &MessageReport, at: &str) -> Option<RowRecord> {
    let (outcome, reason) = match r.disposition {
        Disposition::Done(o) => (o.as_str().to_string(), String::new()),
        Disposition::DeadLettered(reason) => (
            RowRecord::outcome_of(reason).to_string(),
            reason.as_str().to_string(),
        ),
        Disposition::Retry(_) | Disposition::Requeued(_) => return None,
    };
    // The same detail as the CLI's results file (with the writes made).
    let detail = match &r.result {
        Some(res) => crate::results::ResultRow::from_user_result(0, "", res).detail,
        None => r.detail.clone(),
    };
    Some(RowRecord {
        row: r.row,
        user: r.user.clone().unwrap_or_default(),
        outcome,
        reason,
        detail: mask_numbers_in_text(&detail),
        at: at.to_string(),
        deliveries: m.receive_count,
        stage: Stage::Worker,
    })
}

/// How soon a message whose outcome the ledger refused comes back.
pub const LEDGER_RETRY: Duration = Duration::from_secs(30);

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
