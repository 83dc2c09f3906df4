//! SQS: batched sending with several calls in flight, per-entry failures retried, nothing dropped
//! silently; and DLQ entries with `reason` / `detail` message attributes.
//!
//! Every body and string attribute sent is SQS-legal text ([`crate::sqs_text`]): what SQS would
//! refuse is escaped when a message is built, and again (a no-op by then) when it is sent. A
//! message SQS still refuses for its content is reported as refused, on its own, so the caller
//! can dead-letter that one message instead of failing everything with it.

pub use crate::outbound::{OutMessage, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES};
use crate::sqs_text::sqs_escape;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinSet;

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

/// What became of a batch.
#[derive(Debug)]
pub struct Sent {
    /// Entries (indices into the messages) confirmed in the queue.
    pub ok: Vec<usize>,
    /// Entries SQS refused for their content (the sender's fault: a character it does not take,
    /// too large, ...), each with SQS's reason. They were not sent; nothing else failed with them.
    pub refused: Vec<(usize, String)>,
    /// `Err` when the batch could not be sent (SQS kept failing, or refused it for a reason that
    /// is no message's own); `ok` still says what got through.
    pub result: Result<(), SqsError>,
}

/// Error codes with which SQS refuses a message for its content. SQS's codes come as
/// `InvalidMessageContents`, `AWS.SimpleQueueService.BatchRequestTooLong` or with a `#` namespace.
fn content_code(code: &str) -> Option<&str> {
    let code = code.rsplit(['.', '#']).next().unwrap_or(code);
    matches!(
        code,
        "InvalidMessageContents"
            | "MessageTooLong"
            | "InvalidParameterValue"
            | "InvalidAttributeName"
            | "InvalidAttributeValue"
            | "BatchRequestTooLong"
    )
    .then_some(code)
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

    /// Sends one message as it is (no retry: the caller's invocation is retried); on a FIFO
    /// queue with its message group and deduplication id.
    pub async fn send_one(&self, body: &str, fifo: Option<(&str, &str)>) -> Result<(), SqsError> {
        let mut req = self
            .client
            .send_message()
            .queue_url(self.queue_url.as_ref())
            .message_body(sqs_escape(body));
        if let Some((group, dedupe)) = fifo {
            req = req.message_group_id(group).message_deduplication_id(dedupe);
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| SqsError::Exhausted {
                queue: self.queue_url.to_string(),
                attempts: 1,
                message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            })
    }

    /// Makes a received message visible again after `delay` (at most SQS's 12 hours).
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), SqsError> {
        let seconds = i32::try_from(delay.as_secs().min(43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(self.queue_url.as_ref())
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SqsError::Exhausted {
                queue: self.queue_url.to_string(),
                attempts: 1,
                message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            })
    }

    /// Sends up to 10 messages. Entries that fail for a transient reason are retried with
    /// exponential backoff; an entry SQS refuses as the sender's fault is an error.
    pub async fn send_batch(&self, pending: Vec<OutMessage>) -> Result<usize, SqsError> {
        let total = pending.len();
        let sent = self.send_batch_tracked(&pending).await;
        sent.result?;
        if let Some((_, why)) = sent.refused.into_iter().next() {
            let (code, message) = why.split_once(": ").unwrap_or((&why, ""));
            return Err(SqsError::Rejected {
                code: code.to_string(),
                message: message.to_string(),
            });
        }
        Ok(total)
    }

    /// Like [`SqsSender::send_batch`], but says which entries are confirmed in the queue (also
    /// when the call as a whole fails: a caller that must not send a message twice records those
    /// before it gives up) and which SQS refused for their content: those are not an error for
    /// the others. A batch SQS refuses whole for its content is sent again one message at a time,
    /// so the refusal falls on the one message it is about.
    pub async fn send_batch_tracked(&self, messages: &[OutMessage]) -> Sent {
        let mut sent = Sent {
            ok: Vec::with_capacity(messages.len()),
            refused: Vec::new(),
            result: Ok(()),
        };
        let mut groups: Vec<Vec<usize>> = Vec::with_capacity(1);
        let mut fits = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            if m.size() > MAX_MESSAGE_BYTES {
                sent.refused.push((
                    i,
                    format!(
                        "MessageTooLong: the message is {} bytes, more than the {MAX_MESSAGE_BYTES} sent at most",
                        m.size()
                    ),
                ));
            } else {
                fits.push(i);
            }
        }
        groups.push(fits);
        while let Some(group) = groups.pop() {
            if let Err(e) = self
                .send_group(messages, group, &mut sent, &mut groups)
                .await
            {
                sent.result = Err(e);
                return sent;
            }
        }
        sent
    }

    /// One batch call (with its retries) for the entries `group`. A refusal of the whole call for
    /// its content splits the group into single messages (pushed onto `split`).
    async fn send_group(
        &self,
        messages: &[OutMessage],
        group: Vec<usize>,
        sent: &mut Sent,
        split: &mut Vec<Vec<usize>>,
    ) -> Result<(), SqsError> {
        let mut pending = group;
        let mut attempt = 0u32;
        let mut last_error = String::new();
        while !pending.is_empty() {
            if attempt >= self.max_attempts {
                return Err(SqsError::Exhausted {
                    queue: self.queue_url.to_string(),
                    attempts: attempt,
                    message: last_error,
                });
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
                    .message_body(sqs_escape(&m.body));
                for (k, v) in &m.attributes {
                    let attr = MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(sqs_escape(v))
                        .build()
                        .map_err(|e| SqsError::Task(e.to_string()))?;
                    b = b.message_attributes(k, attr);
                }
                entries.push(b.build().map_err(|e| SqsError::Task(e.to_string()))?);
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
                            sent.ok.push(i);
                        }
                    }
                    let mut retry = Vec::new();
                    for f in out.failed {
                        let why = format!("{}: {}", f.code, f.message.clone().unwrap_or_default());
                        let Ok(i) = f.id.parse::<usize>() else {
                            continue;
                        };
                        if f.sender_fault {
                            if content_code(&f.code).is_none() {
                                return Err(SqsError::Rejected {
                                    code: f.code,
                                    message: f.message.unwrap_or_default(),
                                });
                            }
                            tracing::warn!(queue = %self.queue_url, error = %sqs_escape(&why), "SQS refused one message of a batch; the others are not held up");
                            sent.refused.push((i, why));
                        } else {
                            last_error = why;
                            retry.push(i);
                        }
                    }
                    pending = retry;
                }
                Err(e) => {
                    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
                    if let Some(code) = content_code(code) {
                        let message = e
                            .as_service_error()
                            .and_then(|s| s.message())
                            .unwrap_or_default();
                        if pending.len() > 1 {
                            tracing::warn!(queue = %self.queue_url, code, "SQS refused a batch for its content; sending its messages one by one");
                            split.extend(pending.into_iter().map(|i| vec![i]));
                        } else {
                            sent.refused.extend(
                                pending
                                    .into_iter()
                                    .map(|i| (i, format!("{code}: {message}"))),
                            );
                        }
                        return Ok(());
                    }
                    last_error = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(queue = %self.queue_url, attempt, error = %last_error, "SendMessageBatch failed; retrying");
                }
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_refusals_are_told_from_other_errors() {
        assert_eq!(
            content_code("InvalidMessageContents"),
            Some("InvalidMessageContents")
        );
        assert_eq!(
            content_code("AWS.SimpleQueueService.BatchRequestTooLong"),
            Some("BatchRequestTooLong")
        );
        assert_eq!(
            content_code("com.amazonaws.sqs#MessageTooLong"),
            Some("MessageTooLong")
        );
        for other in [
            "AccessDenied",
            "KmsAccessDenied",
            "QueueDoesNotExist",
            "ThrottlingException",
            "",
        ] {
            assert_eq!(content_code(other), None, "{other}");
        }
    }
}
