//! The worker's own work queue on SQS: spacing retries with `ChangeMessageVisibilityBatch`, and
//! sending a message again as a fresh copy (`SendMessage` with a delay).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};

use crate::worker::{QueueError, QueuePort};

/// Attempts per queue call (transient SQS failures).
const ATTEMPTS: u32 = 3;

/// A [`QueuePort`] on an SQS queue.
#[derive(Clone)]
pub struct SqsWorkQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsWorkQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsWorkQueue {
        SqsWorkQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

#[async_trait]
impl QueuePort for SqsWorkQueue {
    async fn change_visibility(&self, entries: &[(String, Duration)]) -> Result<(), QueueError> {
        for chunk in entries.chunks(crate::aws::sqs::MAX_BATCH_ENTRIES) {
            let mut batch = Vec::with_capacity(chunk.len());
            for (i, (receipt, delay)) in chunk.iter().enumerate() {
                let e = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds(*delay))
                    .build()
                    .map_err(|e| QueueError(e.to_string()))?;
                batch.push(e);
            }
            let mut last = String::new();
            let mut done = false;
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                match self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(batch.clone()))
                    .send()
                    .await
                {
                    Ok(out) if out.failed.is_empty() => {
                        done = true;
                        break;
                    }
                    Ok(out) => {
                        // A receipt handle that expired (the message is visible already) is
                        // not worth retrying: report it and go on.
                        last = out
                            .failed
                            .iter()
                            .map(|f| {
                                format!("{}: {}", f.code, f.message.clone().unwrap_or_default())
                            })
                            .collect::<Vec<_>>()
                            .join("; ");
                        break;
                    }
                    Err(e) => last = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                }
            }
            if !done {
                return Err(QueueError(format!("ChangeMessageVisibilityBatch: {last}")));
            }
        }
        Ok(())
    }

    async fn requeue(
        &self,
        body: &str,
        attributes: Vec<(String, String)>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let mut req = self
                .client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .delay_seconds(seconds(delay.min(crate::worker::MAX_SEND_DELAY)));
            for (k, v) in &attributes {
                let a = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| QueueError(e.to_string()))?;
                req = req.message_attributes(k, a);
            }
            match req.send().await {
                Ok(_) => return Ok(()),
                Err(e) => last = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            }
        }
        Err(QueueError(format!("SendMessage: {last}")))
    }
}
