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
