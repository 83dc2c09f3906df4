//! The ingest's [`Sink`] on SQS: requests to the work queue, rejects to the DLQ, 10 entries per
//! `SendMessageBatch`, several calls in flight, and an exact account of what is confirmed sent.
//!
//! A message SQS refuses for its content (a character it does not take, too large: whatever the
//! checks before it missed) does not fail the file: its row is dead-lettered on its own, with SQS's
//! reason, and the engine counts it as rejected (`invalid_row`) instead of enqueued.

use super::engine::{Dest, Sink, SinkError, Tag, STAGE};
use crate::aws::sqs::{OutMessage, SqsError, SqsSender, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::dlq::DlqEntry;
use crate::message::{Job, MESSAGE_VERSION};
use crate::reason::Reason;
use tokio::task::JoinSet;

/// Confirmed tags, tags of work-queue messages dead-lettered instead, and the batch's result.
type BatchResult = (Vec<Tag>, Vec<Tag>, Result<(), SqsError>);

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
        }
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
        self.in_flight.spawn(async move {
            let (tags, msgs): (Vec<Tag>, Vec<OutMessage>) = batch.into_iter().unzip();
            let sent = sender.send_batch_tracked(&msgs).await;
            let mut confirmed: Vec<Tag> = sent
                .ok
                .iter()
                .filter_map(|&i| tags.get(i).copied())
                .collect();
            let mut rerouted = Vec::new();
            for (i, why) in sent.refused {
                let (Some(tag), Some(msg)) = (tags.get(i), msgs.get(i)) else {
                    continue;
                };
                if let Err(e) = dead_letter_refused(&dlq, &job, *tag, dest, msg, &why).await {
                    return (confirmed, rerouted, Err(e));
                }
                confirmed.push(*tag);
                if dest == Dest::Queue {
                    rerouted.push(*tag);
                }
            }
            (confirmed, rerouted, sent.result)
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), SinkError> {
        match self.in_flight.join_next().await {
            None => Ok(()),
            Some(Err(e)) => Err(SinkError(format!("a send task failed: {e}"))),
            Some(Ok((tags, rerouted, result))) => {
                self.sent += tags.len() as u64;
                self.confirmed.extend(tags);
                self.rerouted.extend(rerouted);
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
) -> Result<(), SqsError> {
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
            return Ok(());
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
        std::mem::take(&mut self.confirmed)
    }

    fn take_rerouted(&mut self) -> Vec<Tag> {
        std::mem::take(&mut self.rerouted)
    }
}
