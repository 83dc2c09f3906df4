//! The worker's dead-letter queue on SQS: one message per reject, the [`DlqEntry`] as JSON body
//! (it holds the original request, so the entry can be re-driven) and `reason`, `detail`,
//! `stage` and `row` as string message attributes.

use std::time::Duration;

use async_trait::async_trait;

use crate::aws::sqs::{OutMessage, SqsSender};
use crate::dlq::{DlqEntry, DlqError, DlqPort};

/// Attempts per DLQ send (transient SQS failures); the worker reports the message as a batch
/// failure when they run out, so nothing is lost.
pub const DLQ_SEND_ATTEMPTS: u32 = 4;

/// A [`DlqPort`] that sends to an SQS queue.
#[derive(Clone)]
pub struct SqsDlq {
    sender: SqsSender,
}

impl SqsDlq {
    pub fn new(client: aws_sdk_sqs::Client, dlq_url: impl Into<String>) -> SqsDlq {
        SqsDlq {
            sender: SqsSender::new(client, dlq_url)
                .with_retry(DLQ_SEND_ATTEMPTS, Duration::from_millis(100)),
        }
    }
}

#[async_trait]
impl DlqPort for SqsDlq {
    async fn send(
        &self,
        entry: DlqEntry,
        attributes: Vec<(String, String)>,
    ) -> Result<(), DlqError> {
        let body = serde_json::to_string(&entry)
            .map_err(|e| DlqError(format!("cannot serialise the DLQ entry: {e}")))?;
        self.sender
            .send_batch(vec![OutMessage::new(body, attributes)])
            .await
            .map(|_| ())
            .map_err(|e| DlqError(e.to_string()))
    }
}

/// Reads a DLQ without consuming it ([`crate::ledger::reconcile`]): every message is received
/// (hidden for [`PEEK_VISIBILITY`] so the next receive returns others) and then made visible
/// again at once.
pub struct SqsDlqPeek {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Stop after this many messages.
    max: usize,
}

/// How long a peeked message stays hidden while the rest are read.
pub const PEEK_VISIBILITY: Duration = Duration::from_secs(120);

impl SqsDlqPeek {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsDlqPeek {
        SqsDlqPeek {
            client,
            queue_url: queue_url.into(),
            max: 1_000_000,
        }
    }

    async fn release(&self, handles: &[String]) {
        for chunk in handles.chunks(10) {
            let mut req = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url);
            for (i, h) in chunk.iter().enumerate() {
                match aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h)
                    .visibility_timeout(0)
                    .build()
                {
                    Ok(e) => req = req.entries(e),
                    Err(e) => tracing::warn!(error = %e, "cannot build a visibility change"),
                }
            }
            if let Err(e) = req.send().await {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot make peeked DLQ messages visible again: they come back after their visibility timeout");
            }
        }
    }
}

#[async_trait]
impl crate::ledger::reconcile::DlqPeek for SqsDlqPeek {
    async fn peek_all(&self) -> Result<Vec<crate::ledger::reconcile::PeekedMessage>, String> {
        let mut out = Vec::new();
        let mut handles = Vec::new();
        let mut empty = 0;
        let result = loop {
            if out.len() >= self.max || empty >= 2 {
                break Ok(());
            }
            let resp = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(PEEK_VISIBILITY.as_secs() as i32)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    break Err(format!(
                        "ReceiveMessage on {}: {}",
                        self.queue_url,
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ))
                }
            };
            let messages = resp.messages.unwrap_or_default();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            for m in messages {
                if let Some(h) = m.receipt_handle.clone() {
                    handles.push(h);
                }
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("reason"))
                    .and_then(|v| v.string_value.clone());
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                out.push(crate::ledger::reconcile::PeekedMessage {
                    body: m.body.unwrap_or_default(),
                    reason,
                    receive_count,
                });
            }
        };
        self.release(&handles).await;
        result.map(|()| out)
    }
}
