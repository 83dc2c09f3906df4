//! Reconcile: the rows the DLQ holds that the ledger does not.
//!
//! A message that SQS moved to the DLQ by itself (the worker crashed or ran out of time on every
//! delivery) has no `reason` attribute and no final outcome in the ledger, so its job would never
//! complete. A reject whose ledger write failed on its last chance is in the same place. This
//! reads the DLQ without consuming it (each message is made visible again at once), records what
//! it finds for the job (a message moved by SQS as `failed` / `retries_exhausted`, an entry with
//! its reason as `rejected` or `failed`), and completes the job when that was its last row.

use async_trait::async_trait;

use super::{
    claim_if_complete, JobKey, JobSummary, LedgerError, LedgerPort, ReportRequests, RowRecord,
    Stage, FAILED,
};
use crate::dlq::DlqEntry;
use crate::message::{parse_request, Job};
use crate::reason::Reason;

/// One DLQ message as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    pub body: String,
    /// The `reason` attribute (`None`: SQS moved the message by itself).
    pub reason: Option<String>,
    /// `ApproximateReceiveCount` on the work queue is not kept; this is the DLQ's own.
    pub receive_count: u32,
}

/// Reads every message of the DLQ and leaves them there.
#[async_trait]
pub trait DlqPeek: Send + Sync {
    async fn peek_all(&self) -> Result<Vec<PeekedMessage>, String>;
}

/// What a reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// DLQ messages read.
    pub read: usize,
    /// Of those, the job's.
    pub of_job: usize,
    /// Rows the ledger did not have (now recorded).
    pub recorded: u64,
    /// The job is complete now and its reports were asked for.
    pub completed: bool,
    pub summary: Option<JobSummary>,
}

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the DLQ: {0}")]
    Dlq(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the job is complete but its reports could not be asked for: {0}")]
    Request(String),
}

/// The job, row and ledger record of one DLQ message; `None` when it names no job or row.
pub fn record_of(m: &PeekedMessage, at: &str) -> Option<(Job, RowRecord)> {
    match &m.reason {
        // Moved by SQS: the body is the request as the work queue had it.
        None => {
            let req = parse_request(&m.body).ok()?;
            let record = RowRecord {
                row: req.row,
                user: req.user.clone(),
                outcome: FAILED.into(),
                reason: Reason::RetriesExhausted.as_str().into(),
                detail: "moved to the DLQ by SQS after the work queue's last delivery, without a final outcome (the worker crashed or ran out of time on every delivery); re-drive it".into(),
                at: at.to_string(),
                deliveries: m.receive_count,
                stage: Stage::Reconcile,
            };
            Some((req.job, record))
        }
        Some(_) => {
            let mut entry: DlqEntry = serde_json::from_str(&m.body).ok()?;
            let job = entry.job.clone()?;
            // An entry written before entries named their user: the request's own.
            if entry.user.is_none() {
                entry.user = entry
                    .request
                    .get("user")
                    .and_then(|u| u.as_str())
                    .map(str::to_string);
            }
            Some((
                job,
                RowRecord::of_dlq_entry(&entry, None, at, Stage::Reconcile),
            ))
        }
    }
}

/// Records the DLQ's rows of `job` that the ledger lacks; completes the job when that was its
/// last row (the reports are asked for through `requests`).
pub async fn reconcile(
    dlq: &dyn DlqPeek,
    ledger: &dyn LedgerPort,
    requests: Option<&dyn ReportRequests>,
    job: &JobKey,
    at: &str,
) -> Result<Reconciled, ReconcileError> {
    let messages = dlq.peek_all().await.map_err(ReconcileError::Dlq)?;
    let mut out = Reconciled {
        read: messages.len(),
        ..Reconciled::default()
    };
    let mut rows: Vec<RowRecord> = Vec::new();
    let mut found: Option<Job> = None;
    for m in &messages {
        let Some((j, record)) = record_of(m, at) else {
            continue;
        };
        if &JobKey::of(&j) != job {
            continue;
        }
        out.of_job += 1;
        if !rows.iter().any(|r| r.item_key() == record.item_key()) {
            rows.push(record);
        }
        found.get_or_insert(j);
    }
    if let Some(j) = &found {
        // Only what the ledger lacks is new; a row recorded before keeps its outcome.
        for chunk in rows.chunks(500) {
            out.recorded += ledger.record(job, &j.label(), chunk).await?;
        }
    }
    if let Some(summary) = claim_if_complete(ledger, job, at).await? {
        match (requests, found.as_ref()) {
            (Some(r), Some(j)) => {
                if let Err(e) = r.request(j).await {
                    ledger.release_completion(job).await?;
                    return Err(ReconcileError::Request(e));
                }
                out.completed = true;
            }
            _ => {
                // Nobody to write the reports: give the claim back for a writer that can.
                ledger.release_completion(job).await?;
            }
        }
        out.summary = Some(summary);
    } else {
        out.summary = ledger.summary(job).await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::memory::MemoryLedger;
    use crate::ledger::REJECTED;
    use std::sync::Mutex;

    struct Peek(Vec<PeekedMessage>);
    #[async_trait]
    impl DlqPeek for Peek {
        async fn peek_all(&self) -> Result<Vec<PeekedMessage>, String> {
            Ok(self.0.clone())
        }
    }

    #[derive(Default)]
    struct Requests(Mutex<Vec<String>>);
    #[async_trait]
    impl ReportRequests for Requests {
        async fn request(&self, job: &Job) -> Result<(), String> {
            self.0.lock().unwrap().push(job.label());
            Ok(())
        }
    }

    fn job() -> Job {
        Job::S3 {
            bucket: "bkt".into(),
            key: "incoming/a.csv".into(),
            etag: "e".into(),
            run: Some("e-1".into()),
        }
    }

    fn request_body(row: u64) -> String {
        serde_json::json!({"v": 1, "job": job(), "row": row, "user": format!("u{row}@contoso.com"), "methods": {"mobile": "+1 5555550100"}}).to_string()
    }

    #[tokio::test]
    async fn a_row_sqs_moved_by_itself_completes_the_job() {
        let ledger = MemoryLedger::new();
        let key = JobKey::of(&job());
        let done = |row: u64| RowRecord {
            row: Some(row),
            user: format!("u{row}@contoso.com"),
            outcome: "created".into(),
            reason: String::new(),
            detail: String::new(),
            at: "2026-12-03T10:00:00Z".into(),
            deliveries: 1,
            stage: Stage::Worker,
        };
        ledger.record(&key, "x", &[done(2), done(3)]).await.unwrap();
        ledger.set_expected(&key, "x", 3, 3).await.unwrap();
        let other_job = request_body(9).replace("incoming/a.csv", "incoming/b.csv");
        let dlq = Peek(vec![
            // Row 4 of the job, moved by SQS: no reason attribute.
            PeekedMessage {
                body: request_body(4),
                reason: None,
                receive_count: 1,
            },
            // Another job's row is not this job's.
            PeekedMessage {
                body: other_job,
                reason: None,
                receive_count: 1,
            },
            // Row 2 again (a duplicate delivery dead-lettered later): already recorded.
            PeekedMessage {
                body: request_body(2),
                reason: None,
                receive_count: 1,
            },
        ]);
        let requests = Requests::default();
        // Not complete before: expected 3, done 2.
        let r = reconcile(&dlq, &ledger, Some(&requests), &key, "t")
            .await
            .unwrap();
        assert_eq!((r.read, r.of_job, r.recorded), (3, 2, 1));
        assert!(r.completed);
        assert_eq!(requests.0.lock().unwrap().len(), 1);
        let rows = ledger.rows(&key).await.unwrap();
        let moved = rows.iter().find(|x| x.row == Some(4)).unwrap();
        assert_eq!(
            (moved.outcome.as_str(), moved.reason.as_str()),
            (FAILED, "retries_exhausted")
        );
        assert_eq!(
            rows.iter().find(|x| x.row == Some(2)).unwrap().outcome,
            "created"
        );
        // A second reconcile finds nothing new and asks for nothing again.
        let again = reconcile(&dlq, &ledger, Some(&requests), &key, "t2")
            .await
            .unwrap();
        assert_eq!((again.recorded, again.completed), (0, false));
        assert_eq!(requests.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_dead_lettered_entry_keeps_its_reason() {
        let entry = DlqEntry {
            v: 1,
            reason: Reason::InvalidEmail,
            detail: "not an address".into(),
            job: Some(job()),
            row: Some(7),
            column: Some("Email".into()),
            request: serde_json::json!({"UPN": "a@contoso.com"}),
            stage: "ingest".into(),
            user: Some("a@contoso.com".into()),
        };
        let m = PeekedMessage {
            body: serde_json::to_string(&entry).unwrap(),
            reason: Some("invalid_email".into()),
            receive_count: 1,
        };
        let (_, r) = record_of(&m, "t").unwrap();
        assert_eq!(
            (r.outcome.as_str(), r.reason.as_str()),
            (REJECTED, "invalid_email")
        );
        assert_eq!(r.user, "a@contoso.com");
        assert_eq!(r.detail, "column 'Email': not an address");
    }
}
