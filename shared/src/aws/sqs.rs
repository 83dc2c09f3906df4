//! SQS: batched sending with several calls in flight, per-entry failures retried, nothing dropped
//! silently; and DLQ entries with `reason` / `detail` message attributes.

use crate::message::DlqEntry;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinSet;

/// SQS allows at most 10 entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Keep a batch's total payload under SQS's limit (256 KiB, the conservative historical value).
pub const MAX_BATCH_BYTES: usize = 256 * 1024 - 4 * 1024;
/// Longest `detail` attribute we send; the full text is in the body.
pub const MAX_DETAIL_CHARS: usize = 1000;

#[derive(Debug, Error)]
pub enum SqsError {
    #[error("SQS rejected a message as invalid ({code}): {message}")]
    Rejected { code: String, message: String },
    #[error("SQS SendMessageBatch to {queue} still failing after {attempts} attempts: {message}")]
    Exhausted {
        queue: String,
        attempts: u32,
        message: String,
    },
    #[error("a send task failed: {0}")]
    Task(String),
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutMessage {
    pub body: String,
    /// String message attributes.
    pub attributes: Vec<(String, String)>,
}

impl OutMessage {
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
    }

    /// A DLQ message: the entry as JSON body, `reason`, `detail`, `stage` (and `row`) as attributes.
    pub fn dlq(entry: &DlqEntry) -> Result<OutMessage, serde_json::Error> {
        let body = serde_json::to_string(entry)?;
        let mut detail: String = entry.detail.chars().take(MAX_DETAIL_CHARS).collect();
        if detail.is_empty() {
            detail = entry.reason.as_str().to_string();
        }
        let mut attributes = vec![
            ("reason".to_string(), entry.reason.as_str().to_string()),
            ("detail".to_string(), detail),
            ("stage".to_string(), entry.stage.clone()),
        ];
        if let Some(row) = entry.row {
            attributes.push(("row".to_string(), row.to_string()));
        }
        Ok(OutMessage { body, attributes })
    }
}

/// Sends batches to one queue, retrying entries SQS reports as failed.
#[derive(Clone)]
pub struct SqsSender {
    client: aws_sdk_sqs::Client,
    queue_url: Arc<str>,
    max_attempts: u32,
    base_delay: Duration,
}

impl SqsSender {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let q: String = queue_url.into();
        Self {
            client,
            queue_url: q.into(),
            max_attempts: 8,
            base_delay: Duration::from_millis(100),
        }
    }

    pub fn with_retry(mut self, max_attempts: u32, base_delay: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.base_delay = base_delay;
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends up to 10 messages. Entries that fail for a transient reason are retried with
    /// exponential backoff; an entry SQS rejects as the sender's fault is an error at once.
    pub async fn send_batch(&self, pending: Vec<OutMessage>) -> Result<usize, SqsError> {
        let total = pending.len();
        let (_, result) = self.send_batch_tracked(pending).await;
        result.map(|()| total)
    }

    /// Like [`SqsSender::send_batch`], but also says which entries (indices into `messages`) are
    /// confirmed in the queue, also when the call as a whole fails: a caller that must not send a
    /// message twice records those before it gives up.
    pub async fn send_batch_tracked(
        &self,
        messages: Vec<OutMessage>,
    ) -> (Vec<usize>, Result<(), SqsError>) {
        let mut sent = Vec::with_capacity(messages.len());
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut attempt = 0u32;
        let mut last_error = String::new();
        while !pending.is_empty() {
            if attempt >= self.max_attempts {
                let err = SqsError::Exhausted {
                    queue: self.queue_url.to_string(),
                    attempts: attempt,
                    message: last_error,
                };
                return (sent, Err(err));
            }
            if attempt > 0 {
                let backoff = self.base_delay.saturating_mul(1 << attempt.min(6));
                let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2 + 1);
                tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            }
            attempt += 1;
            let mut entries = Vec::with_capacity(pending.len());
            for &i in &pending {
                let m = &messages[i];
                let mut b = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body);
                for (k, v) in &m.attributes {
                    match MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                    {
                        Ok(attr) => b = b.message_attributes(k, attr),
                        Err(e) => return (sent, Err(SqsError::Task(e.to_string()))),
                    }
                }
                match b.build() {
                    Ok(entry) => entries.push(entry),
                    Err(e) => return (sent, Err(SqsError::Task(e.to_string()))),
                }
            }
            match self
                .client
                .send_message_batch()
                .queue_url(self.queue_url.as_ref())
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for ok in &out.successful {
                        if let Ok(i) = ok.id.parse::<usize>() {
                            sent.push(i);
                        }
                    }
                    let mut retry = Vec::new();
                    for f in out.failed {
                        if f.sender_fault {
                            let err = SqsError::Rejected {
                                code: f.code,
                                message: f.message.unwrap_or_default(),
                            };
                            return (sent, Err(err));
                        }
                        last_error = format!("{}: {}", f.code, f.message.unwrap_or_default());
                        if let Ok(i) = f.id.parse::<usize>() {
                            retry.push(i);
                        }
                    }
                    pending = retry;
                }
                Err(e) => {
                    last_error = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(queue = %self.queue_url, attempt, error = %last_error, "SendMessageBatch failed; retrying");
                }
            }
        }
        (sent, Ok(()))
    }
}

/// Buffers messages into batches of 10 (and under the byte limit) and keeps up to `max_in_flight`
/// batch calls running while the caller produces more. `flush` waits for everything.
pub struct BatchPipeline {
    sender: SqsSender,
    buffer: Vec<OutMessage>,
    buffer_bytes: usize,
    in_flight: JoinSet<Result<usize, SqsError>>,
    max_in_flight: usize,
    sent: u64,
}

impl BatchPipeline {
    pub fn new(sender: SqsSender, max_in_flight: usize) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(MAX_BATCH_ENTRIES),
            buffer_bytes: 0,
            in_flight: JoinSet::new(),
            max_in_flight: max_in_flight.max(1),
            sent: 0,
        }
    }

    /// Messages confirmed sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub async fn push(&mut self, msg: OutMessage) -> Result<(), SqsError> {
        if !self.buffer.is_empty() && self.buffer_bytes + msg.size() > MAX_BATCH_BYTES {
            self.dispatch().await?;
        }
        self.buffer_bytes += msg.size();
        self.buffer.push(msg);
        if self.buffer.len() >= MAX_BATCH_ENTRIES {
            self.dispatch().await?;
        }
        Ok(())
    }

    async fn dispatch(&mut self) -> Result<(), SqsError> {
        while self.in_flight.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        let batch = std::mem::take(&mut self.buffer);
        self.buffer_bytes = 0;
        let sender = self.sender.clone();
        self.in_flight
            .spawn(async move { sender.send_batch(batch).await });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), SqsError> {
        if let Some(res) = self.in_flight.join_next().await {
            let n = res.map_err(|e| SqsError::Task(e.to_string()))??;
            self.sent += n as u64;
        }
        Ok(())
    }

    /// Sends what is buffered and waits for every call in flight. After `Ok`, every message
    /// pushed so far is in the queue.
    pub async fn flush(&mut self) -> Result<(), SqsError> {
        if !self.buffer.is_empty() {
            self.dispatch().await?;
        }
        let mut first_err = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
