//! A completed job's reports: `reports/<key>.results.csv` (one row per input row, in row order,
//! the CLI's columns, Excel-safe, numbers masked) and `reports/<key>.report.html` (see
//! [`crate::ledger::html`]), then the "job complete" notification.
//!
//! The writer that completes a job (a worker, or the ingest when the workers finished first)
//! claims the completion in the ledger, once, and sends a [`ReportRequest`] to the control queue;
//! the ingest function, which may write `reports/`, writes the files. The FIFO message group is
//! the file's, so the request runs after the file's own continuations.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::checkpoints::REPORTS_PREFIX;
use crate::aws::s3::ObjectStore;
use crate::aws::sqs::SqsSender;
use crate::ledger::{JobKey, JobSummary, LedgerError, LedgerPort, ReportRequests, ReportState};
use crate::message::Job;
use crate::results::ResultRow;

/// The control-queue message that asks for a job's reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    pub v: u32,
    /// Always `"reports"`.
    pub kind: String,
    pub job: Job,
}

/// The `kind` of a [`ReportRequest`].
pub const REPORTS_KIND: &str = "reports";

impl ReportRequest {
    pub fn new(job: &Job) -> ReportRequest {
        ReportRequest {
            v: 1,
            kind: REPORTS_KIND.into(),
            job: job.clone(),
        }
    }

    /// `Some` when `body` is a report request (anything else on the control queue is a
    /// continuation).
    pub fn parse(body: &str) -> Option<Result<ReportRequest, String>> {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        (v.get("kind")?.as_str()? == REPORTS_KIND)
            .then(|| serde_json::from_value(v).map_err(|e| format!("report request: {e}")))
    }
}

/// `reports/<key>.results.csv`.
pub fn results_key(key: &str) -> String {
    format!("{REPORTS_PREFIX}{key}.results.csv")
}

/// `reports/<key>.report.html`.
pub fn html_key(key: &str) -> String {
    format!("{REPORTS_PREFIX}{key}.report.html")
}

/// Report requests sent to the control queue.
pub struct SqsReportRequests {
    control: SqsSender,
    fifo: bool,
}

impl SqsReportRequests {
    pub fn new(control: SqsSender, queue_url: &str) -> SqsReportRequests {
        SqsReportRequests {
            control,
            fifo: queue_url.ends_with(".fifo"),
        }
    }
}

#[async_trait]
impl ReportRequests for SqsReportRequests {
    async fn request(&self, job: &Job) -> Result<(), String> {
        let body = serde_json::to_string(&ReportRequest::new(job)).map_err(|e| e.to_string())?;
        let ids = match job {
            Job::S3 { bucket, key, .. } if self.fifo => Some((
                super::checkpoints::hex_digest(&format!("{bucket}\n{key}")),
                super::checkpoints::hex_digest(&format!("{}\nreports", JobKey::of(job))),
            )),
            _ if self.fifo => {
                let d = super::checkpoints::hex_digest(JobKey::of(job).as_str());
                Some((d.clone(), format!("{d}-reports")))
            }
            _ => None,
        };
        self.control
            .send_one(&body, ids.as_ref().map(|(g, d)| (g.as_str(), d.as_str())))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Where the "job complete" notification goes (the stack's SNS topic in Lambda).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn job_complete(&self, subject: &str, message: &str) -> Result<(), String>;
}

/// Writing a job's reports failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("writing the job's reports: {0}")]
    Store(String),
    #[error("report request for {0}: only an uploaded file's job has reports")]
    NotAFile(String),
}

/// What [`write_reports`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportsOutcome {
    Written {
        results: String,
        html: String,
        rows: usize,
    },
    /// Written before (a duplicate request).
    AlreadyWritten,
}

/// Writes a completed job's results CSV and HTML report, marks them written in the ledger, and
/// publishes the notification (a failed notification is logged, not retried: the reports stand).
pub async fn write_reports(
    store: &ObjectStore,
    ledger: &dyn LedgerPort,
    notifier: Option<&Arc<dyn Notifier>>,
    job: &Job,
) -> Result<ReportsOutcome, ReportsError> {
    let Job::S3 { bucket, key, .. } = job else {
        return Err(ReportsError::NotAFile(job.label()));
    };
    let jk = JobKey::of(job);
    let Some(summary) = ledger.summary(&jk).await? else {
        return Err(ReportsError::Store(format!(
            "the ledger has nothing for job {jk}"
        )));
    };
    if summary.report == Some(ReportState::Written) {
        return Ok(ReportsOutcome::AlreadyWritten);
    }
    let rows = ledger.rows(&jk).await?;
    let csv = crate::results::write_csv(
        Vec::with_capacity(rows.len() * 80),
        rows.iter().map(ResultRow::from),
    )
    .map_err(|e| ReportsError::Store(format!("results CSV: {e}")))?;
    let now = super::now_rfc3339();
    let html = crate::ledger::html::render(&summary, &rows, &now);
    let (results_key, html_key) = (results_key(key), html_key(key));
    store
        .put_bytes(bucket, &results_key, csv, "text/csv; charset=utf-8")
        .await
        .map_err(|e| ReportsError::Store(e.to_string()))?;
    store
        .put_bytes(
            bucket,
            &html_key,
            html.into_bytes(),
            "text/html; charset=utf-8",
        )
        .await
        .map_err(|e| ReportsError::Store(e.to_string()))?;
    ledger.mark_reported(&jk, &now).await?;
    tracing::info!(job = %job.label(), rows = rows.len(), results = %results_key, html = %html_key, "job reports written");
    if let Some(n) = notifier {
        let (subject, message) = notification(&summary, bucket, &results_key, &html_key);
        if let Err(e) = n.job_complete(&subject, &message).await {
            tracing::warn!(job = %job.label(), error = %e, "the job-complete notification could not be published (the reports are written)");
        }
    }
    Ok(ReportsOutcome::Written {
        results: results_key,
        html: html_key,
        rows: rows.len(),
    })
}

/// The notification's subject and text: the counts and where the reports are.
pub fn notification(
    summary: &JobSummary,
    bucket: &str,
    results_key: &str,
    html_key: &str,
) -> (String, String) {
    let action = summary.needing_action();
    let mut subject = format!(
        "mfa-preload: job complete, {} rows, {action} need action",
        summary.done
    );
    subject.truncate(100);
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("  {k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let message = serde_json::json!({
        "event": "job_complete",
        "job": summary.job.as_str(),
        "label": summary.label,
        "rows": summary.done,
        "expected": summary.expected,
        "needingAction": action,
        "byOutcome": summary.by_outcome,
        "byReason": summary.by_reason,
        "startedAt": summary.started_at,
        "completedAt": summary.completed_at,
        "results": format!("s3://{bucket}/{results_key}"),
        "report": format!("s3://{bucket}/{html_key}"),
    });
    let text = format!(
        "{}\n\nOutcomes:\n{}\nReasons:\n{}\n\n{}",
        subject,
        counts(&summary.by_outcome),
        counts(&summary.by_reason),
        message
    );
    (subject, text)
}
