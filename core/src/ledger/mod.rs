//! The job ledger: one summary and one final outcome per input row, for every job (an uploaded
//! file's run, or an onboarding producer/id).
//!
//! - The ingest records the rows it rejects and, when the file is read to the end, the number of
//!   rows the job expects; the worker records each message's final outcome (done, or
//!   dead-lettered with its reason). Retries are not final and are not recorded.
//! - Counting is exactly once: a row already recorded (a duplicate delivery, two workers at
//!   once, an ingest retry) is not counted again, and its first record stands.
//! - A job is complete when every expected row has a final outcome. The writer that completes
//!   it claims the completion, once ([`LedgerPort::claim_completion`]), and asks for the job's
//!   reports (results CSV, HTML report) and its notification.
//!
//! The port has a DynamoDB adapter ([`crate::aws::ledger`]) and an in-memory one
//! ([`memory::MemoryLedger`]) for tests and the CLI's simulations.

pub mod html;
pub mod memory;
pub mod reconcile;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::message::Job;

/// The ledger's name for a job: `s3://BUCKET/KEY@RUN` for an uploaded file (the run tells two
/// uploads of the same content apart) or `producer:PRODUCER/ID` for other producers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobKey(pub String);

impl JobKey {
    pub fn of(job: &Job) -> JobKey {
        match job {
            Job::S3 {
                bucket,
                key,
                etag,
                run,
            } => {
                let run = run.as_deref().unwrap_or(etag.as_str());
                JobKey(format!("s3://{bucket}/{key}@{run}"))
            }
            Job::Producer { producer, id } => match id {
                Some(id) => JobKey(format!("producer:{producer}/{id}")),
                None => JobKey(format!("producer:{producer}")),
            },
        }
    }

    /// The key of an uploaded file's run.
    pub fn of_file(bucket: &str, key: &str, run: &str) -> JobKey {
        JobKey(format!("s3://{bucket}/{key}@{run}"))
    }

    /// `producer/id` as the CLI's `--job` takes it.
    pub fn of_producer(producer_id: &str) -> JobKey {
        JobKey(format!("producer:{producer_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who recorded a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Ingest,
    Worker,
    /// Found in the DLQ by [`reconcile`]: SQS moved the message there by itself.
    Reconcile,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Worker => "worker",
            Stage::Reconcile => "reconcile",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::Ingest, Stage::Worker, Stage::Reconcile]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

pub use crate::results::{FAILED, REJECTED};

/// One row's final outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowRecord {
    /// The file row (header = 1); `None` for a message without one (another producer).
    pub row: Option<u64>,
    pub user: String,
    /// created, updated, deleted, unchanged, skipped_exists, rejected or failed.
    pub outcome: String,
    /// The reason code of a rejected or failed row (empty otherwise).
    pub reason: String,
    /// Human detail, numbers masked.
    pub detail: String,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// Deliveries of the message it took (1 for the ingest's rejects).
    pub deliveries: u32,
    pub stage: Stage,
}

/// Longest detail the ledger keeps (characters): a row item stays under 1 KB, one write unit.
pub const MAX_DETAIL_CHARS: usize = 400;

impl RowRecord {
    /// The row's sort key in its job: `row#` and the row zero-padded (so items sort in file
    /// order), or `user#` and the user for a message without a row.
    pub fn item_key(&self) -> String {
        match self.row {
            Some(r) => format!("row#{r:012}"),
            None => format!("user#{}", self.user.to_ascii_lowercase()),
        }
    }

    /// A rejected or failed row: one that needs someone to act.
    pub fn needs_action(&self) -> bool {
        self.outcome == REJECTED || self.outcome == FAILED
    }

    /// The outcome of a row dead-lettered for `reason`: `failed` when its transient failures
    /// outlasted every delivery, else `rejected`.
    pub fn outcome_of(reason: crate::reason::Reason) -> &'static str {
        if reason == crate::reason::Reason::RetriesExhausted {
            FAILED
        } else {
            REJECTED
        }
    }

    /// The record of a DLQ entry (its column named in the detail, numbers masked); `row` when
    /// the caller knows it better than the entry.
    pub fn of_dlq_entry(
        entry: &crate::dlq::DlqEntry,
        row: Option<u64>,
        at: &str,
        stage: Stage,
    ) -> RowRecord {
        let detail = match &entry.column {
            Some(c) => format!("column '{c}': {}", entry.detail),
            None => entry.detail.clone(),
        };
        RowRecord {
            row: row.or(entry.row),
            user: entry.user.clone().unwrap_or_default(),
            outcome: RowRecord::outcome_of(entry.reason).into(),
            reason: entry.reason.as_str().into(),
            detail: crate::mask::mask_numbers_in_text(&detail),
            at: at.to_string(),
            deliveries: 1,
            stage,
        }
    }

    /// The detail cut to [`MAX_DETAIL_CHARS`].
    pub fn bounded(mut self) -> RowRecord {
        if self.detail.chars().count() > MAX_DETAIL_CHARS {
            let cut: String = self.detail.chars().take(MAX_DETAIL_CHARS - 1).collect();
            self.detail = format!("{cut}…");
        }
        self
    }
}

/// Where a job's reports stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportState {
    /// Complete; the reports were asked for and are being written.
    Requested,
    /// `reports/<key>.results.csv` and `reports/<key>.report.html` are written.
    Written,
}

/// A job as the ledger sums it up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub job: JobKey,
    /// Human label (`s3://bucket/key` or `producer/id`).
    pub label: String,
    /// Rows the job expects, once known (the ingest read the whole file).
    pub expected: Option<u64>,
    /// Data rows the ingest read.
    pub rows_read: Option<u64>,
    /// Rows with a final outcome.
    pub done: u64,
    pub by_outcome: BTreeMap<String, u64>,
    /// Reasons of rejected and failed rows.
    pub by_reason: BTreeMap<String, u64>,
    /// First and last record (RFC 3339).
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    /// When the last expected row was recorded (the claim of the completion).
    pub completed_at: Option<String>,
    pub report: Option<ReportState>,
}

/// `running` until every expected row has a final outcome, then `complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Complete,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Complete => "complete",
        }
    }
}

impl JobSummary {
    /// Every expected row has its final outcome.
    pub fn is_complete(&self) -> bool {
        self.expected.is_some_and(|e| self.done >= e)
    }

    pub fn status(&self) -> JobStatus {
        if self.is_complete() {
            JobStatus::Complete
        } else {
            JobStatus::Running
        }
    }

    /// Rows rejected or failed.
    pub fn needing_action(&self) -> u64 {
        self.by_outcome.get(REJECTED).copied().unwrap_or(0)
            + self.by_outcome.get(FAILED).copied().unwrap_or(0)
    }
}

/// A ledger failure (the store refused or could not be reached).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("job ledger: {0}")]
    Store(String),
    #[error("job ledger: an item of job {job} is unreadable: {why}")]
    Unreadable { job: String, why: String },
}

/// The ledger's operations (see the module docs).
#[async_trait]
pub trait LedgerPort: Send + Sync {
    /// Records final outcomes of one job's rows. A row already recorded is neither counted nor
    /// changed again. Returns how many rows were new.
    async fn record(
        &self,
        job: &JobKey,
        label: &str,
        rows: &[RowRecord],
    ) -> Result<u64, LedgerError>;

    /// The ingest read the whole file: the job expects `expected` rows (`rows_read` data rows).
    async fn set_expected(
        &self,
        job: &JobKey,
        label: &str,
        expected: u64,
        rows_read: u64,
    ) -> Result<(), LedgerError>;

    /// The job's summary as of now (strongly consistent); `None` when nothing was recorded.
    async fn summary(&self, job: &JobKey) -> Result<Option<JobSummary>, LedgerError>;

    /// Every recorded row, in row order (rows without a number last, by user).
    async fn rows(&self, job: &JobKey) -> Result<Vec<RowRecord>, LedgerError>;

    /// Marks the job complete at `at` and its reports requested. `true` for the one caller that
    /// did; `false` when it was already claimed.
    async fn claim_completion(&self, job: &JobKey, at: &str) -> Result<bool, LedgerError>;

    /// Takes back a claim whose report request could not be sent, so the next writer (or a
    /// reconcile) claims it again.
    async fn release_completion(&self, job: &JobKey) -> Result<(), LedgerError>;

    /// The job's reports are written.
    async fn mark_reported(&self, job: &JobKey, at: &str) -> Result<(), LedgerError>;
}

/// Where a completed job's reports are asked for (the control queue in Lambda): the reports
/// of an uploaded file are written by the ingest function, which may write `reports/`.
#[async_trait]
pub trait ReportRequests: Send + Sync {
    async fn request(&self, job: &Job) -> Result<(), String>;
}

/// After a write: when the job is now complete and nobody claimed that yet, claims it and
/// returns its summary (the caller then asks for the reports, and on failure calls
/// [`LedgerPort::release_completion`]).
pub async fn claim_if_complete(
    ledger: &dyn LedgerPort,
    job: &JobKey,
    at: &str,
) -> Result<Option<JobSummary>, LedgerError> {
    let Some(summary) = ledger.summary(job).await? else {
        return Ok(None);
    };
    if !summary.is_complete() || summary.completed_at.is_some() {
        return Ok(None);
    }
    if ledger.claim_completion(job, at).await? {
        Ok(Some(JobSummary {
            completed_at: Some(at.to_string()),
            report: Some(ReportState::Requested),
            ..summary
        }))
    } else {
        Ok(None)
    }
}

impl From<&RowRecord> for crate::results::ResultRow {
    fn from(r: &RowRecord) -> crate::results::ResultRow {
        crate::results::ResultRow {
            row: r.row.unwrap_or(0),
            user: r.user.clone(),
            outcome: r.outcome.clone(),
            reason: r.reason.clone(),
            detail: r.detail.clone(),
        }
    }
}
