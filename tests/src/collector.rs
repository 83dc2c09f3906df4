//! Consumers that empty a queue while a producer fills it, the way the worker fleet does in AWS.
//!
//! moto spends time proportional to a queue's length on every send and receive, so a file of
//! hundreds of thousands of rows left to pile up in the work queue makes a run quadratic. Reading
//! the queue while the ingest runs (with [`crate::backpressure`] holding the ingest's sends while
//! the queue is full) keeps it short, and every message is still read exactly once: a received
//! message stays invisible for longer than any test runs, and is deleted once received.
//!
//! One loop per queue: moto does not lock a queue, and two concurrent receives can be handed the
//! same message, and two concurrent deletes can bring a deleted message back (each rebuilds the
//! queue's list from what it saw).

use crate::Received;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A background loop receiving and deleting every message of one queue.
pub struct Collector {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Received>>,
}

impl Collector {
    /// Starts the receive loop on `queue_url`.
    pub fn start(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Collector {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let sqs = sqs.clone();
            let url = queue_url.to_string();
            let stop = stop.clone();
            tokio::spawn(async move { receive_loop(sqs, url, stop).await })
        };
        Collector { stop, task }
    }

    /// Call once the producer is done: the loop reads until the queue is empty, then all that
    /// was received is returned.
    pub async fn finish(self) -> Vec<Received> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("receive loop")
    }
}

async fn receive_loop(
    sqs: aws_sdk_sqs::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> Vec<Received> {
    let mut out = Vec::new();
    let mut empty_after_stop = 0;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let resp = retrying("receive", || {
            sqs.receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .visibility_timeout(3_600)
                .wait_time_seconds(if stopping { 0 } else { 1 })
                .send()
        })
        .await;
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            if stopping {
                empty_after_stop += 1;
                if empty_after_stop >= 2 {
                    return out;
                }
            }
            continue;
        }
        empty_after_stop = 0;
        let (received, entries) = crate::take(msgs);
        out.extend(received);
        let deleted = retrying("delete", || {
            sqs.delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries.clone()))
                .send()
        })
        .await;
        assert!(
            deleted.failed.is_empty(),
            "delete failed: {:?}",
            deleted.failed
        );
    }
}

/// A call to the moto server, retried a few times: under load it can drop a connection, and a
/// consumer that gave up would leave its messages invisible and the test stalled.
async fn retrying<T, E, F, Fut>(what: &str, mut call: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if attempt < 10 => {
                attempt += 1;
                eprintln!("collector: {what} failed (attempt {attempt}): {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => panic!("collector: {what} failed 10 times: {e:?}"),
        }
    }
}
