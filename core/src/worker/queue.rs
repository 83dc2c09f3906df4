//! The work queue as the worker engine talks back to it: retries spaced by changing a message's
//! visibility, and fresh copies of a message on its last receive ([`QueuePort`]). SQS is the
//! adapter in Lambda ([`crate::aws::work_queue::SqsWorkQueue`]); [`MemoryQueue`] records calls
//! for tests and [`NoQueue`] leaves everything to the queue's own timeouts.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

/// A queue operation that did not go through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("work queue: {0}")]
pub struct QueueError(pub String);

/// The work queue the messages came from: retry spacing and fresh copies.
#[async_trait]
pub trait QueuePort: Send + Sync {
    /// Makes each message (by receipt handle) visible again after its delay.
    async fn change_visibility(&self, entries: &[(String, Duration)]) -> Result<(), QueueError>;
    /// Sends `body` again as a new message (a fresh receive count), with string attributes.
    async fn requeue(
        &self,
        body: &str,
        attributes: Vec<(String, String)>,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// No queue to talk to: retries wait for the queue's visibility timeout, and a configuration
/// fault on the last receive leaves the message to the queue's redrive policy.
#[derive(Debug, Default)]
pub struct NoQueue;

#[async_trait]
impl QueuePort for NoQueue {
    async fn change_visibility(&self, _: &[(String, Duration)]) -> Result<(), QueueError> {
        Ok(())
    }

    async fn requeue(
        &self,
        _: &str,
        _: Vec<(String, String)>,
        _: Duration,
    ) -> Result<(), QueueError> {
        Err(QueueError("no work queue is configured (QUEUE_URL)".into()))
    }
}

/// A requeued copy in [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeued {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub delay: Duration,
}

/// A [`QueuePort`] that records what it was asked (tests).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    visibility: Mutex<Vec<(String, Duration)>>,
    requeued: Mutex<Vec<Requeued>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    pub fn visibility_changes(&self) -> Vec<(String, Duration)> {
        self.visibility
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn requeued(&self) -> Vec<Requeued> {
        self.requeued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl QueuePort for MemoryQueue {
    async fn change_visibility(&self, entries: &[(String, Duration)]) -> Result<(), QueueError> {
        self.visibility
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(entries);
        Ok(())
    }

    async fn requeue(
        &self,
        body: &str,
        attributes: Vec<(String, String)>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.requeued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Requeued {
                body: body.to_string(),
                attributes,
                delay,
            });
        Ok(())
    }
}

/// The message attribute that carries a requeued message's first send time (Unix ms), so the
/// `user_not_found` window counts from the first send.
pub const FIRST_SENT_ATTRIBUTE: &str = "firstSentTimestamp";
