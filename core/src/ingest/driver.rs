//! The ingest as Lambda runs it: S3 `ObjectCreated` events start a file, continuation messages on
//! the (FIFO) control queue carry it on past one invocation's deadline, checkpoints in the bucket
//! make every row enqueued or rejected exactly once, and the report says how it went.

use super::checkpoints::{
    is_csv_key, now_rfc3339, Continuation, FileRef, Progress, Report, Snapshot, Status,
    CHECKPOINTS_PREFIX, REPORTS_PREFIX,
};
use super::claim::{self, Released, Taken};
use super::engine::Counts;
use super::engine::{
    Advance, Engine, EngineError, FilterSize, Opened, Processor, Source, SourceError, StartError,
};
use super::job_reports::{self, Notifier, ReportRequest, ReportsError, SqsReportRequests};
use super::resume::{self, CheckpointError};
use super::sqs_sink::SqsSink;
use crate::aws::s3::{ObjectStore, S3Error};
use crate::aws::sqs::SqsSender;
use crate::config::IngestConfig;
use crate::lambda::{decode_event_key, unix_ms as now_ms};
use crate::ledger::{JobKey, LedgerPort, ReportRequests};
use crate::message::Job;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("{0}")]
    S3(#[from] S3Error),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("sending the continuation message failed: {0}")]
    Control(String),
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("unusable event: {0}")]
    Malformed(String),
    #[error("the S3 event record has no {0}")]
    Event(&'static str),
    /// The job ledger or a job's reports (see [`super::job_reports`]).
    #[error("job ledger: {0}")]
    Reports(String),
}

/// Opens the object being ingested (a port, so tests can put faults in the stream).
pub trait SourceFactory: Send + Sync {
    type S: Source;
    fn source(&self, file: &FileRef) -> Self::S;
}

/// The object in S3, read with `If-Match` on the ETag being ingested.
#[derive(Clone)]
pub struct S3Source {
    store: ObjectStore,
    file: FileRef,
}

impl Source for S3Source {
    async fn open_at(&self, offset: u64) -> Result<Opened, SourceError> {
        match self
            .store
            .open(
                &self.file.bucket,
                &self.file.key,
                offset,
                Some(&self.file.etag),
            )
            .await
        {
            Ok(o) => Ok(Opened {
                stream: o.body,
                size: o.size,
            }),
            Err(S3Error::Changed { .. }) => {
                let now = self
                    .store
                    .etag(&self.file.bucket, &self.file.key)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into());
                Err(SourceError::Changed(now))
            }
            Err(S3Error::NotFound { .. }) => Err(SourceError::NotFound),
            Err(e) => Err(SourceError::Other(e.to_string())),
        }
    }
}

/// [`S3Source`] for every file.
#[derive(Clone)]
pub struct S3Sources(pub ObjectStore);

impl SourceFactory for S3Sources {
    type S = S3Source;
    fn source(&self, file: &FileRef) -> S3Source {
        S3Source {
            store: self.0.clone(),
            file: file.clone(),
        }
    }
}

/// What one invocation did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Not an input (a report or checkpoint object).
    Ignored,
    /// Already ingested or being ingested by another invocation.
    AlreadyHandled,
    /// Handed over to continuation `seq`.
    Continued { seq: u32 },
    /// Finished with this status.
    Finished(Status),
}

/// One invocation's read of a file, opened or resumed, with what its checkpoints record.
struct Invocation<S: Source> {
    engine: Engine<S, SqsSink>,
    /// When the file's first invocation started (RFC 3339).
    started_at: String,
    /// Invocations of the file so far, this one included.
    invocations: u32,
    /// Failed attempts of this invocation before this one.
    retry_attempts: u32,
    /// The object's size as the first read opened it.
    object_size: Option<u64>,
}

impl<S: Source> Invocation<S> {
    /// The file's report as this invocation leaves it.
    fn report(&self, file: &FileRef, status: Status, seq: u32) -> Report {
        let proc = &self.engine.proc;
        let mut report =
            Report::new(file, status, &proc.counts, &self.started_at).with_layout(&proc.layout);
        report.continuations = seq;
        report.invocations = self.invocations;
        report
    }
}

/// What [`Ingest::open_or_resume`] found.
enum Opening<S: Source> {
    Run(Box<Invocation<S>>),
    /// Nothing to run: the file ended at its header (rejected or replaced).
    Done(FileOutcome),
}

/// The ingest engine wired to S3 and SQS.
pub struct Ingest<F: SourceFactory = S3Sources> {
    store: ObjectStore,
    /// The control queue (continuations), built once.
    control: SqsSender,
    /// The work queue and the DLQ, with the configured send retries, built once.
    work: SqsSender,
    dlq: SqsSender,
    sources: F,
    config: IngestConfig,
    owner: String,
    /// The job ledger, where completed jobs' reports are asked for, and where their
    /// notification goes.
    ledger: Option<Arc<dyn LedgerPort>>,
    report_requests: Arc<dyn ReportRequests>,
    notifier: Option<Arc<dyn Notifier>>,
}

impl Ingest<S3Sources> {
    pub fn new(
        store: ObjectStore,
        sqs: aws_sdk_sqs::Client,
        config: IngestConfig,
    ) -> Ingest<S3Sources> {
        Ingest::with_sources(store.clone(), sqs, S3Sources(store), config)
    }
}

impl<F: SourceFactory> Ingest<F> {
    pub fn with_sources(
        store: ObjectStore,
        sqs: aws_sdk_sqs::Client,
        sources: F,
        config: IngestConfig,
    ) -> Ingest<F> {
        let sender = |url: &str| {
            SqsSender::new(sqs.clone(), url).with_retry(config.send_attempts, config.send_backoff)
        };
        let control = SqsSender::new(sqs.clone(), &config.control_queue_url);
        Ingest {
            store,
            report_requests: Arc::new(SqsReportRequests::new(
                control.clone(),
                &config.control_queue_url,
            )),
            control,
            ledger: None,
            notifier: None,
            work: sender(&config.queue_url),
            dlq: sender(&config.dlq_url),
            sources,
            config,
            owner: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Records rejects and each file's expected row count in `ledger`, writes completed jobs'
    /// reports, and publishes their notification through `notifier`.
    pub fn with_ledger(
        mut self,
        ledger: Arc<dyn LedgerPort>,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Self {
        self.ledger = Some(ledger);
        self.notifier = notifier;
        self
    }

    /// Every record of an S3 event. An error (after the other records were tried) makes Lambda
    /// retry the event; records already done are then recognised and skipped.
    pub async fn handle_s3_event(
        &self,
        event: &S3Event,
        deadline: Instant,
    ) -> Result<Vec<FileOutcome>, IngestError> {
        let mut outcomes = Vec::new();
        let mut first_error = None;
        for record in &event.records {
            let result = async {
                let bucket = record
                    .s3
                    .bucket
                    .name
                    .as_deref()
                    .ok_or(IngestError::Event("bucket name"))?;
                let raw_key = record
                    .s3
                    .object
                    .key
                    .as_deref()
                    .ok_or(IngestError::Event("object key"))?;
                let key = decode_event_key(raw_key);
                if key.starts_with(REPORTS_PREFIX) || key.starts_with(CHECKPOINTS_PREFIX) {
                    tracing::info!(%bucket, %key, "not an input file: ignored");
                    return Ok(FileOutcome::Ignored);
                }
                if key.ends_with('/') {
                    tracing::info!(%bucket, %key, "a folder marker: ignored");
                    return Ok(FileOutcome::Ignored);
                }
                let etag = match record.s3.object.e_tag.as_deref().filter(|e| !e.is_empty()) {
                    Some(e) => e.to_string(),
                    None => self
                        .store
                        .etag(bucket, &key)
                        .await?
                        .ok_or(IngestError::Event("eTag and the object is gone"))?,
                };
                let upload = record.s3.object.version_id.as_deref().or(record
                    .s3
                    .object
                    .sequencer
                    .as_deref());
                let file = FileRef::new(bucket, &key, &etag, upload);
                if !is_csv_key(&key) {
                    return self.skip_non_csv(&file).await;
                }
                self.start_file(&file, deadline).await
            }
            .await;
            match result {
                Ok(o) => outcomes.push(o),
                Err(e) => {
                    tracing::error!(error = %e, "ingest of an S3 event record failed; the event will be retried");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    /// A Lambda event, as the function receives it: an S3 event (files uploaded) or an SQS event
    /// from the control queue (continuations). For SQS the answer is an `SqsBatchResponse` naming
    /// the continuations to retry; for S3 a summary (an `Err` makes Lambda retry the event).
    pub async fn handle_lambda_event(
        &self,
        event: serde_json::Value,
        deadline: Instant,
    ) -> Result<serde_json::Value, IngestError> {
        let source = crate::lambda::event_source(&event).to_string();
        if source == "aws:sqs" {
            let sqs: SqsEvent =
                serde_json::from_value(event).map_err(|e| IngestError::Malformed(e.to_string()))?;
            let mut failures = Vec::new();
            for m in &sqs.records {
                let id = m.message_id.clone().unwrap_or_default();
                let Some(body) = m.body.as_deref() else {
                    tracing::error!(message_id = %id, "control message without a body: dropped");
                    continue;
                };
                if let Some(request) = ReportRequest::parse(body) {
                    if let Err(e) = self.handle_report_request(request).await {
                        tracing::error!(message_id = %id, error = %e, "writing a job's reports failed; it is tried again");
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = id;
                        failures.push(f);
                    }
                    continue;
                }
                match self.handle_continuation(body, deadline).await {
                    Ok(outcome) => {
                        tracing::info!(message_id = %id, ?outcome, "continuation handled")
                    }
                    Err(IngestError::Malformed(why)) => {
                        tracing::error!(message_id = %id, %why, "not a continuation message: dropped")
                    }
                    Err(e) => {
                        let retry = self.config.continuation_retry;
                        tracing::error!(message_id = %id, error = %e, retry_in_seconds = retry.as_secs(), "continuation failed; it is tried again");
                        if let Some(handle) = m.receipt_handle.as_deref() {
                            self.retry_continuation_in(handle, retry).await;
                        }
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = id;
                        failures.push(f);
                    }
                }
            }
            let mut response = SqsBatchResponse::default();
            response.batch_item_failures = failures;
            return serde_json::to_value(response)
                .map_err(|e| IngestError::Malformed(e.to_string()));
        }
        if source == "aws:s3" {
            let s3: S3Event =
                serde_json::from_value(event).map_err(|e| IngestError::Malformed(e.to_string()))?;
            let outcomes = self.handle_s3_event(&s3, deadline).await?;
            return Ok(
                serde_json::json!({ "files": outcomes.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>() }),
            );
        }
        Err(IngestError::Malformed(format!(
            "expected an S3 or SQS event, got event source {source:?}"
        )))
    }

    /// Makes a failed continuation visible again after `delay` (a failure is reported to Lambda
    /// too, so the message is not deleted). When this call fails, the queue's own visibility
    /// timeout applies: later, but nothing is lost.
    async fn retry_continuation_in(&self, receipt_handle: &str, delay: Duration) {
        if let Err(e) = self.control.change_visibility(receipt_handle, delay).await {
            tracing::warn!(error = %e, "could not shorten the failed continuation's visibility; the queue's visibility timeout applies");
        }
    }

    /// A control message asking for a completed job's reports.
    async fn handle_report_request(
        &self,
        request: Result<ReportRequest, String>,
    ) -> Result<(), IngestError> {
        let request = match request {
            Ok(r) => r,
            Err(why) => {
                tracing::error!(%why, "not a valid report request: dropped");
                return Ok(());
            }
        };
        let Some(ledger) = self.ledger.as_ref() else {
            tracing::error!(job = %request.job.label(), "a report request, but this function has no job ledger (LEDGER_TABLE): dropped");
            return Ok(());
        };
        match job_reports::write_reports(
            &self.store,
            ledger.as_ref(),
            self.notifier.as_ref(),
            &request.job,
        )
        .await
        {
            Ok(outcome) => {
                tracing::info!(job = %request.job.label(), ?outcome, "report request handled");
                Ok(())
            }
            Err(ReportsError::NotAFile(label)) => {
                tracing::error!(job = %label, "a report request for a job that is not an uploaded file: dropped");
                Ok(())
            }
            Err(e) => Err(IngestError::Reports(e.to_string())),
        }
    }

    /// A continuation message from the control queue.
    pub async fn handle_continuation(
        &self,
        body: &str,
        deadline: Instant,
    ) -> Result<FileOutcome, IngestError> {
        let msg: Continuation = serde_json::from_str(body)
            .map_err(|e| IngestError::Malformed(format!("continuation message: {e}")))?;
        let file = msg.file;
        if resume::finished(&self.store, &file).await {
            return Ok(FileOutcome::AlreadyHandled);
        }
        if resume::handed_over(&self.store, &file, msg.seq + 1).await? {
            self.ensure_handed_over(&file, msg.seq + 1).await?;
            return Ok(FileOutcome::AlreadyHandled);
        }
        self.run(&file, msg.seq, deadline).await
    }

    /// An object under `incoming/` whose name does not end in `.csv`: nothing is read, and a
    /// report says why, so that a file saved as `users.txt` is not silently ignored.
    async fn skip_non_csv(&self, file: &FileRef) -> Result<FileOutcome, IngestError> {
        tracing::warn!(key = %file.key, "not read: the name does not end in .csv; rename the file and upload it again");
        let mut report = Report::new(file, Status::Skipped, &Default::default(), &now_rfc3339());
        report.error = Some(
            "not read: only files whose name ends in .csv (any case) are ingested; rename the file and upload it again"
                .into(),
        );
        resume::put_report(&self.store, &file.bucket, &file.report_key(), &report).await?;
        Ok(FileOutcome::Finished(Status::Skipped))
    }

    async fn start_file(
        &self,
        file: &FileRef,
        deadline: Instant,
    ) -> Result<FileOutcome, IngestError> {
        if resume::finished(&self.store, file).await {
            tracing::info!(key = %file.key, run = %file.run, "already ingested: duplicate event ignored");
            return Ok(FileOutcome::AlreadyHandled);
        }
        // Claim the file for this invocation; a claim left by a crashed invocation is taken over
        // once it expires, and a failed one releases its claim (below).
        let owner = format!("{}/{}", self.owner, uuid::Uuid::new_v4());
        if !self.claim(file, &owner, deadline).await? {
            return Ok(FileOutcome::AlreadyHandled);
        }
        let result = self.start_claimed(file, deadline).await;
        if result.is_err() {
            // Lambda retries a failed invocation in a minute or so, and then sends the event to
            // the control DLQ: the retry must find the file free, not held by this invocation
            // until its deadline (it would count the file as handled and the rest of it would
            // never be read).
            self.release(file, &owner).await;
        }
        result
    }

    /// Takes the claim on a file for `owner` (see [`super::claim`]); `false` when another
    /// invocation holds it.
    async fn claim(
        &self,
        file: &FileRef,
        owner: &str,
        deadline: Instant,
    ) -> Result<bool, IngestError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let now = now_ms();
        let expires_ms = now + remaining.as_millis() as u64 + 5_000;
        match claim::take(&self.store, file, owner, expires_ms, now).await? {
            Taken::Fresh => Ok(true),
            Taken::TakenOver => {
                tracing::warn!(key = %file.key, run = %file.run, "taking over the ingest of a file from an invocation that did not finish");
                Ok(true)
            }
            Taken::Held => {
                tracing::info!(key = %file.key, run = %file.run, "another invocation is ingesting this file");
                Ok(false)
            }
        }
    }

    /// Gives up `owner`'s claim on a file for Lambda's retry. Best effort: a claim left in place
    /// expires at its deadline anyway.
    async fn release(&self, file: &FileRef, owner: &str) {
        match claim::release(&self.store, file, owner).await {
            Ok(Released::Released) => {
                tracing::info!(key = %file.key, run = %file.run, "claim released for the retry")
            }
            Ok(Released::Absent) => {}
            Ok(Released::NotMine) => {
                tracing::info!(key = %file.key, run = %file.run, "the claim is another invocation's by now: left alone")
            }
            Ok(Released::Changed) => {
                tracing::info!(key = %file.key, run = %file.run, "the claim changed meanwhile: left alone")
            }
            Err(e) => {
                tracing::warn!(error = %e, "releasing the claim failed; it expires at its deadline")
            }
        }
    }

    async fn start_claimed(
        &self,
        file: &FileRef,
        deadline: Instant,
    ) -> Result<FileOutcome, IngestError> {
        if resume::handed_over(&self.store, file, 1).await? {
            self.ensure_handed_over(file, 1).await?;
            return Ok(FileOutcome::AlreadyHandled);
        }
        self.run(file, 0, deadline).await
    }

    /// Invocation `seq` has a snapshot: make sure its continuation message exists, unless someone
    /// already ran it.
    async fn ensure_handed_over(&self, file: &FileRef, seq: u32) -> Result<(), IngestError> {
        if resume::continuation_due(&self.store, file, seq).await? {
            self.send_continuation(file, seq).await?;
        }
        Ok(())
    }

    async fn send_continuation(&self, file: &FileRef, seq: u32) -> Result<(), IngestError> {
        let body = serde_json::to_string(&Continuation {
            v: 1,
            file: file.clone(),
            seq,
        })
        .map_err(EngineError::from)?;
        let fifo = self
            .config
            .control_queue_url
            .ends_with(".fifo")
            .then(|| (file.group_id(), file.dedupe_id(seq)));
        self.control
            .send_one(&body, fifo.as_ref().map(|(g, d)| (g.as_str(), d.as_str())))
            .await
            .map_err(|e| IngestError::Control(e.to_string()))
    }

    fn sink(&self, job: &Job) -> SqsSink {
        let sink = SqsSink::new(
            self.work.clone(),
            self.dlq.clone(),
            job.clone(),
            self.config.max_in_flight,
        );
        match &self.ledger {
            Some(l) => sink.with_ledger(l.clone()),
            None => sink,
        }
    }

    /// The file is read to the end: the ledger learns how many rows the job expects, and when
    /// the workers already recorded every one, this invocation completes the job.
    async fn record_expected(&self, file: &FileRef, counts: &Counts) -> Result<(), IngestError> {
        let Some(ledger) = self.ledger.as_ref() else {
            return Ok(());
        };
        let job = Job::S3 {
            bucket: file.bucket.clone(),
            key: file.key.clone(),
            etag: file.etag.clone(),
            run: Some(file.run.clone()),
        };
        let key = JobKey::of(&job);
        let expected = counts.enqueued + counts.rejected_total();
        ledger
            .set_expected(&key, &job.label(), expected, counts.rows_read)
            .await
            .map_err(|e| IngestError::Reports(e.to_string()))?;
        let now = now_rfc3339();
        if let Some(summary) = crate::ledger::claim_if_complete(ledger.as_ref(), &key, &now)
            .await
            .map_err(|e| IngestError::Reports(e.to_string()))?
        {
            if let Err(e) = self.report_requests.request(&job).await {
                let _ = ledger.release_completion(&key).await;
                return Err(IngestError::Reports(e));
            }
            tracing::info!(job = %job.label(), rows = summary.done, "job complete: its reports are asked for");
        }
        Ok(())
    }

    /// Runs invocation `seq` of a file until it finishes or has to hand over: open or resume
    /// the read, advance it in steps with a progress record after each, then hand over to a
    /// continuation or finish.
    async fn run(
        &self,
        file: &FileRef,
        seq: u32,
        deadline: Instant,
    ) -> Result<FileOutcome, IngestError> {
        let began = Instant::now();
        let mut inv = match self.open_or_resume(file, seq).await? {
            Opening::Run(inv) => inv,
            Opening::Done(outcome) => return Ok(outcome),
        };
        let stop_at = {
            let by_deadline = deadline
                .checked_sub(self.config.safety_margin)
                .unwrap_or(began);
            match self.config.time_budget {
                Some(b) => by_deadline.min(began + b),
                None => by_deadline,
            }
        };
        let engine = &mut inv.engine;
        tracing::info!(key = %file.key, run = %file.run, seq, offset = engine.cursor().offset, row = engine.cursor().next_row, "ingest invocation starts");
        let retry = (inv.retry_attempts, inv.object_size);
        // The first step ignores the stop time, so every invocation moves the file on.
        let mut first = true;
        loop {
            let step = engine
                .advance(
                    self.config.progress_rows,
                    if first { None } else { Some(stop_at) },
                )
                .await;
            first = false;
            let step = match step {
                Ok(s) => s,
                Err(EngineError::Source(SourceError::Changed(now))) => {
                    let _ = engine.settle().await;
                    return self.superseded(file, &now, Some(&engine.proc)).await;
                }
                Err(e) => return Err(self.fail(file, seq, engine, retry, e).await),
            };
            if engine.replaying() && step == Advance::Rows {
                continue;
            }
            if let Err(e) = engine.flush().await {
                return Err(self
                    .fail(file, seq, engine, retry, EngineError::Sink(e))
                    .await);
            }
            match step {
                Advance::Rows => {
                    let (flushed, sent_beyond) = engine.progress_point();
                    let p = Progress {
                        seq,
                        flushed: Some(flushed),
                        sent_beyond,
                        attempts: inv.retry_attempts,
                        object_size: inv.object_size,
                        rerouted: engine.rerouted(),
                    };
                    resume::put_progress(&self.store, file, &p).await?;
                }
                Advance::Stopped => return self.hand_over(file, seq, &mut inv).await,
                Advance::Finished => return self.finish(file, seq, &mut inv).await,
            }
        }
    }

    /// Invocation `seq`'s engine: the first opens the object and reads its header (a file whose
    /// header is unusable, or that was replaced, ends here); a continuation resumes from its
    /// snapshot. Either replays what a failed attempt of the same invocation already sent.
    async fn open_or_resume(&self, file: &FileRef, seq: u32) -> Result<Opening<F::S>, IngestError> {
        let job = Job::S3 {
            bucket: file.bucket.clone(),
            key: file.key.clone(),
            etag: file.etag.clone(),
            run: Some(file.run.clone()),
        };
        let progress = resume::load_progress(&self.store, file, seq).await?;
        let replay = resume::replay_of(progress.as_ref());
        let retry_attempts = progress.as_ref().map_or(0, |p| p.attempts);
        let source = self.sources.source(file);
        if seq == 0 {
            // The duplicate filter's size: from the object as this read opens it (pinned to the
            // ETag), or, on a retry, the size the first attempt recorded, so both defer the
            // same rows.
            let filter = match progress.as_ref().and_then(|p| p.object_size) {
                Some(n) => FilterSize::Bytes(n),
                None => FilterSize::Object,
            };
            let sink = self.sink(&job);
            let settings = self.config.settings.clone();
            return match Engine::start(source, sink, &self.config.mapping, settings, job, filter)
                .await
            {
                Ok(e) => {
                    let object_size = e.object_size();
                    Ok(Opening::Run(Box::new(Invocation {
                        engine: e.with_replay(replay),
                        started_at: now_rfc3339(),
                        invocations: retry_attempts + 1,
                        retry_attempts,
                        object_size,
                    })))
                }
                Err(StartError::Header(h)) => {
                    tracing::warn!(key = %file.key, error = %h, "the file's header is unusable: nothing enqueued");
                    let mut report =
                        Report::new(file, Status::Rejected, &Default::default(), &now_rfc3339());
                    report.error = Some(h.to_string());
                    resume::put_report(&self.store, &file.bucket, &file.report_key(), &report)
                        .await?;
                    resume::cleanup(&self.store, file, 0).await;
                    Ok(Opening::Done(FileOutcome::Finished(Status::Rejected)))
                }
                Err(StartError::Source(SourceError::Changed(now))) => {
                    self.superseded(file, &now, None).await.map(Opening::Done)
                }
                Err(StartError::Source(e)) => Err(IngestError::Engine(EngineError::Source(e))),
            };
        }
        let (snap, dedupe) = resume::load_snapshot(&self.store, file, seq).await?;
        let sink = self.sink(&job);
        let proc = Processor::new(
            snap.layout,
            self.config.settings.clone(),
            job,
            snap.counts,
            dedupe,
        );
        Ok(Opening::Run(Box::new(Invocation {
            engine: Engine::resume(source, sink, proc, snap.cursor, snap.data_start_row, replay),
            started_at: snap.started_at,
            invocations: snap.attempts + retry_attempts + 1,
            retry_attempts,
            object_size: snap.object_size,
        })))
    }

    /// Time is up: the snapshot for invocation `seq + 1`, its continuation message, and a
    /// running report.
    async fn hand_over(
        &self,
        file: &FileRef,
        seq: u32,
        inv: &mut Invocation<F::S>,
    ) -> Result<FileOutcome, IngestError> {
        // `&mut`: the engine holds a stream that is `Send` but not `Sync`, and the future must
        // stay `Send`.
        let engine = &mut inv.engine;
        let next = seq + 1;
        let snap = Snapshot {
            v: 1,
            file: file.clone(),
            seq: next,
            layout: engine.proc.layout.clone(),
            data_start_row: engine.data_start_row(),
            cursor: engine.cursor(),
            counts: engine.proc.counts.clone(),
            dedupe: engine.proc.dedupe.meta(),
            started_at: inv.started_at.clone(),
            attempts: inv.invocations,
            object_size: inv.object_size,
        };
        resume::put_snapshot(
            &self.store,
            file,
            &snap,
            &engine.proc.dedupe.bloom().to_bytes(),
        )
        .await?;
        self.send_continuation(file, next).await?;
        let (rows_read, pass) = (engine.proc.counts.rows_read, engine.cursor().pass);
        let report = inv.report(file, Status::Running, seq);
        resume::put_report(&self.store, &file.bucket, &file.report_key(), &report).await?;
        tracing::info!(key = %file.key, seq, next, rows_read, pass = ?pass, "time is up: handed over to a continuation");
        Ok(FileOutcome::Continued { seq: next })
    }

    /// Every row read and sent: the final report, and the checkpoints go.
    async fn finish(
        &self,
        file: &FileRef,
        seq: u32,
        inv: &mut Invocation<F::S>,
    ) -> Result<FileOutcome, IngestError> {
        let report = inv.report(file, Status::Complete, seq);
        let counts = inv.engine.proc.counts.clone();
        self.record_expected(file, &counts).await?;
        resume::put_report(&self.store, &file.bucket, &file.report_key(), &report).await?;
        tracing::info!(
            key = %file.key, run = %file.run, rows_read = counts.rows_read, enqueued = counts.enqueued,
            rejected = counts.rejected_total(), continuations = seq, "ingest complete"
        );
        resume::cleanup(&self.store, file, seq).await;
        Ok(FileOutcome::Finished(Status::Complete))
    }

    /// A failed invocation: record exactly what is sent, so the retry neither loses nor repeats a row.
    async fn fail<S: Source>(
        &self,
        file: &FileRef,
        seq: u32,
        engine: &mut Engine<S, SqsSink>,
        (attempts, object_size): (u32, Option<u64>),
        error: EngineError,
    ) -> IngestError {
        let replaying = engine.replaying();
        let (flushed, sent_beyond) = engine.settle().await;
        if !replaying || !sent_beyond.is_empty() {
            let p = Progress {
                seq,
                flushed: Some(flushed),
                sent_beyond,
                attempts: attempts + 1,
                object_size,
                rerouted: engine.rerouted(),
            };
            if let Err(e) = resume::put_progress(&self.store, file, &p).await {
                tracing::error!(error = %e, "could not record progress after a failure");
            }
        }
        tracing::error!(key = %file.key, seq, error = %error, "ingest invocation failed; it will be retried from its last progress record");
        IngestError::Engine(error)
    }

    async fn superseded(
        &self,
        file: &FileRef,
        now_etag: &str,
        proc: Option<&Processor>,
    ) -> Result<FileOutcome, IngestError> {
        let counts = proc.map(|p| p.counts.clone()).unwrap_or_default();
        let mut report = Report::new(file, Status::Superseded, &counts, &now_rfc3339());
        report.error = Some(format!(
            "the object was replaced (new ETag {}) while it was being ingested; ingest stopped after {} rows; the new version is ingested on its own event",
            now_etag.trim_matches('"'),
            counts.rows_read
        ));
        let current = resume::current_report(&self.store, file).await;
        let key = resume::superseded_report_key(current.as_ref(), file);
        tracing::warn!(key = %file.key, run = %file.run, "object replaced during ingest: stopped");
        resume::put_report(&self.store, &file.bucket, &key, &report).await?;
        resume::cleanup(&self.store, file, u32::MAX).await;
        Ok(FileOutcome::Finished(Status::Superseded))
    }
}
