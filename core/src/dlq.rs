//! The dead-letter queue's entries and the port they are sent through: one [`DlqEntry`] per
//! reject (the JSON body, holding the original request so it can be re-driven) and its string
//! message attributes (`reason`, `detail`, `stage`, `row`), built in one place ([`attributes`])
//! for the ingest and the worker alike. SQS is the adapter in Lambda
//! ([`crate::aws::dlq::SqsDlq`]); [`MemoryDlq`] keeps entries in memory for tests and dry runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::message::Job;
use crate::reason::Reason;

/// Longest `detail` attribute; the full text is in the body.
pub const MAX_DETAIL_ATTRIBUTE_CHARS: usize = 1000;

/// What goes into the DLQ (body JSON); `reason` and `detail` are also message attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DlqEntry {
    pub v: u32,
    pub reason: Reason,
    /// Human text; phone numbers in it are masked.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The CSV column the reason is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The original request: the queue message body as received (worker), or the CSV row as a
    /// header -> cell object (ingest).
    pub request: serde_json::Value,
    /// Which function rejected it: `ingest` or `worker`.
    pub stage: String,
    /// The row's user, when its user cell was valid (for the job ledger and re-drive tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A DLQ send that did not go through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sending to the dead-letter queue failed: {0}")]
pub struct DlqError(pub String);

/// Where permanent rejects go (SQS in Lambda; memory in tests).
#[async_trait]
pub trait DlqPort: Send + Sync {
    /// Sends one entry; `attributes` are the string message attributes (`reason`, `detail`,
    /// `stage`, `row`), see [`attributes`].
    async fn send(
        &self,
        entry: DlqEntry,
        attributes: Vec<(String, String)>,
    ) -> Result<(), DlqError>;
}

/// `reason`, `detail` (cut to [`MAX_DETAIL_ATTRIBUTE_CHARS`], SQS-legal: a detail that quotes a
/// bad value has it escaped, see [`crate::sqs_text::sqs_escape`]), `stage` and `row` attributes.
pub fn attributes(entry: &DlqEntry) -> Vec<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            stage: "worker".into(),
            user: None,
        };
        let a = attributes(&e);
        assert_eq!(a[0], ("reason".into(), "user_not_found".into()));
        assert_eq!(a[1].1.len(), MAX_DETAIL_ATTRIBUTE_CHARS);
        assert_eq!(a[2], ("stage".into(), "worker".into()));
        assert_eq!(a[3], ("row".into(), "7".into()));
    }
}
