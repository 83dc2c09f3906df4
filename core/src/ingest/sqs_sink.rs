//! The ingest's [`Sink`] on SQS: requests to the work queue, rejects to the DLQ, 10 entries per
//! `SendMessageBatch`, several calls in flight, and an exact account of what is confirmed sent.
//!
//! With a job ledger, every reject is recorded there too once its batch is confirmed (the
//! ledger counts a row once, so a replayed reject is not counted again).
//!
//! A message SQS refuses for its content (a character it does not take, too large: whatever the
//! checks before it missed) does not fail the file: its row is dead-lettered on its own, with SQS's
//! reason, and the engine counts it as rejected (`invalid_row`) instead of enqueued.

use super::engine::{Dest, Sink, SinkError, Tag, STAGE};
use crate::aws::sqs::{OutMessage, SqsError, SqsSender, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::dlq::DlqEntry;
use crate::ledger::{JobKey, LedgerPort, RowRecord, Stage, REJECTED};
use crate::message::{Job, MESSAGE_VERSION};
use crate::reason::Reason;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Confirmed tags, tags of work-queue messages dead-lettered instead, the rejects confirmed
/// (for the ledger), and the batch's result.
type BatchResult = (Vec<Tag>, Vec<Tag>, Vec<RowRecord>, Result<(), SqsError>);

pub struct SqsSink {
    queue: SqsSender,
    dlq: SqsSender,
    job: Job,
    buffers: [(Vec<(Tag, OutMessage)>, usize); 2],
    in_flight: JoinSet<BatchResult>,
    max_in_flight: usize,
    /// Confirmed since the last successful flush.
    confirmed: Vec<Tag>,
    /// Work-queue messages SQS refused whose rows went to the DLQ instead (not yet taken).
    rerouted: Vec<Tag>,
    /// Messages confirmed in all.
    pub sent: u64,
    /// The job ledger, the job's key and label, and the rejects confirmed but not recorded yet.
    ledger: Option<(Arc<dyn LedgerPort>, JobKey, String)>,
    unrecorded: Vec<RowRecord>,
}

impl SqsSink {
    pub fn new(queue: SqsSender, dlq: SqsSender, job: Job, max_in_flight: usize) -> SqsSink {
        SqsSink {
            queue,
            dlq,
            job,
            buffers: [(Vec::new(), 0), (Vec::new(), 0)],
            in_flight: JoinSet::new(),
            max_in_flight: max_in_flight.max(1),
            confirmed: Vec::new(),
            rerouted: Vec::new(),
            sent: 0,
            ledger: None,
            unrecorded: Vec::new(),
        }
    }

    /// Records every confirmed reject in `ledger` as well.
    pub fn with_ledger(mut self, ledger: Arc<dyn LedgerPort>) -> SqsSink {
        let key = JobKey::of(&self.job);
        let label = self.job.label();
        self.ledger = Some((ledger, key, label));
        self
    }

    /// Writes the rejects confirmed so far to the ledger.
    async fn record_rejects(&mut self) -> Result<(), SinkError> {
        let Some((ledger, key, label)) = self.ledger.as_ref() else {
            return Ok(());
        };
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        ledger
            .record(key, label, &self.unrecorded)
            .await
            .map_err(|e| SinkError(e.to_string()))?;
        self.unrecorded.clear();
        Ok(())
    }

    fn index(dest: Dest) -> usize {
        match dest {
            Dest::Queue => 0,
            Dest::Dlq => 1,
        }
    }

    async fn dispatch(&mut self, i: usize) -> Result<(), SinkError> {
        if self.buffers[i].0.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        let batch = std::mem::take(&mut self.buffers[i].0);
        self.buffers[i].1 = 0;
        let (dest, sender) = if i == 0 {
            (Dest::Queue, self.queue.clone())
        } else {
            (Dest::Dlq, self.dlq.clone())
        };
        let (dlq, job) = (self.dlq.clone(), self.job.clone());
        let keep = self.ledger.is_some();
        self.in_flight.spawn(async move {
            let (tags, msgs): (Vec<Tag>, Vec<OutMessage>) = batch.into_iter().unzip();
            let sent = sender.send_batch_tracked(&msgs).await;
            let mut confirmed: Vec<Tag> = sent
                .ok
                .iter()
                .filter_map(|&i| tags.get(i).copied())
                .collect();
            let mut records: Vec<RowRecord> = if keep && dest == Dest::Dlq {
                sent.ok
                    .iter()
                    .filter_map(|&i| Some(reject_record(tags.get(i)?.row, msgs.get(i)?)))
                    .collect()
            } else {
                Vec::new()
            };
            let mut rerouted = Vec::new();
            for (i, why) in sent.refused {
                let (Some(tag), Some(msg)) = (tags.get(i), msgs.get(i)) else {
                    continue;
                };
                match dead_letter_refused(&dlq, &job, *tag, dest, msg, &why).await {
                    Err(e) => return (confirmed, rerouted, records, Err(e)),
                    Ok(entry) => {
                        if keep {
                            records.push(entry_record(tag.row, &entry));
                        }
                    }
                }
                confirmed.push(*tag);
                if dest == Dest::Queue {
                    rerouted.push(*tag);
                }
            }
            (confirmed, rerouted, records, sent.result)
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), SinkError> {
        match self.in_flight.join_next().await {
            None => Ok(()),
            Some(Err(e)) => Err(SinkError(format!("a send task failed: {e}"))),
            Some(Ok((tags, rerouted, records, result))) => {
                self.sent += tags.len() as u64;
                self.confirmed.extend(tags);
                self.rerouted.extend(rerouted);
                self.unrecorded.extend(records);
                result.map_err(|e| SinkError(e.to_string()))
            }
        }
    }
}

/// The DLQ entry for a row whose message SQS refused: for a work-queue request `invalid_row` with
/// SQS's reason and the request; for a DLQ entry the same entry without the row's cells. When SQS
/// refuses that too, the entry goes without any copy of the row.
async fn dead_letter_refused(
    dlq: &SqsSender,
    job: &Job,
    tag: Tag,
    dest: Dest,
    msg: &OutMessage,
    why: &str,
) -> Result<DlqEntry, SqsError> {
    let body: serde_json::Value = serde_json::from_str(&msg.body).unwrap_or_default();
    let mut entry = match dest {
        Dest::Queue => DlqEntry {
            v: MESSAGE_VERSION,
            reason: Reason::InvalidRow,
            detail: format!(
                "SQS refused this row's message ({why}); the row is dead-lettered instead of enqueued: check its cells"
            ),
            job: Some(job.clone()),
            row: Some(tag.row),
            column: None,
            request: body,
            stage: STAGE.to_string(),
            user: None,
        },
        Dest::Dlq => DlqEntry {
            v: MESSAGE_VERSION,
            reason: body["reason"]
                .as_str()
                .and_then(Reason::parse)
                .unwrap_or(Reason::InvalidRow),
            detail: format!(
                "{} (SQS refused the entry with the row's cells: {why}; they are left out, see the row in the file)",
                body["detail"].as_str().unwrap_or_default()
            ),
            job: Some(job.clone()),
            row: Some(tag.row),
            column: body["column"].as_str().map(str::to_string),
            request: serde_json::Value::Null,
            stage: STAGE.to_string(),
            user: None,
        },
    };
    tracing::warn!(
        row = tag.row,
        "SQS refused a row's message: dead-lettered on its own"
    );
    let mut last = why.to_string();
    for _ in 0..2 {
        let m = OutMessage::dlq(&entry).map_err(|e| SqsError::Task(e.to_string()))?;
        let sent = dlq.send_batch_tracked(std::slice::from_ref(&m)).await;
        sent.result?;
        if !sent.ok.is_empty() {
            return Ok(entry);
        }
        if let Some((_, w)) = sent.refused.into_iter().next() {
            last = w;
        }
        // Refused again: without any copy of the row, and a plain detail.
        entry.request = serde_json::Value::Null;
        entry.detail = "SQS refused this row's message; see the row in the file".into();
    }
    let (code, message) = last.split_once(": ").unwrap_or((&last, ""));
    Err(SqsError::Rejected {
        code: code.to_string(),
        message: message.to_string(),
    })
}

/// The ledger's record of a reject sent to the DLQ (its body is the [`DlqEntry`]).
fn reject_record(row: u64, msg: &OutMessage) -> RowRecord {
    match serde_json::from_str::<DlqEntry>(&msg.body) {
        Ok(entry) => entry_record(row, &entry),
        Err(_) => RowRecord {
            row: Some(row),
            user: String::new(),
            outcome: REJECTED.into(),
            reason: Reason::InvalidRow.as_str().into(),
            detail: String::new(),
            at: super::now_rfc3339(),
            deliveries: 1,
            stage: Stage::Ingest,
        },
    }
}

fn entry_record(row: u64, entry: &DlqEntry) -> RowRecord {
    RowRecord::of_dlq_entry(entry, Some(row), &super::now_rfc3339(), Stage::Ingest)
}

impl Sink for SqsSink {
    async fn send(&mut self, tag: Tag, dest: Dest, msg: OutMessage) -> Result<(), SinkError> {
        let i = Self::index(dest);
        if !self.buffers[i].0.is_empty() && self.buffers[i].1 + msg.size() > MAX_BATCH_BYTES {
            self.dispatch(i).await?;
        }
        self.buffers[i].1 += msg.size();
        self.buffers[i].0.push((tag, msg));
        if self.buffers[i].0.len() >= MAX_BATCH_ENTRIES {
            self.dispatch(i).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.dispatch(0).await?;
        self.dispatch(1).await?;
        let mut first = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => {
                self.record_rejects().await?;
                self.confirmed.clear();
                Ok(())
            }
        }
    }

    async fn settle(&mut self) -> Vec<Tag> {
        // Buffered messages were never sent: drop them; wait for the calls in flight.
        self.buffers = [(Vec::new(), 0), (Vec::new(), 0)];
        while !self.in_flight.is_empty() {
            let _ = self.join_one().await;
        }
        // A retry does not send these rejects again: record them now, or say where they are.
        if let Err(e) = self.record_rejects().await {
            tracing::error!(error = %e, rejects = self.unrecorded.len(), "rejects sent to the DLQ could not be recorded in the job ledger: `mfa-preload status --reconcile` records them from the DLQ");
        }
        std::mem::take(&mut self.confirmed)
    }

    fn take_rerouted(&mut self) -> Vec<Tag> {
        std::mem::take(&mut self.rerouted)
    }
}
