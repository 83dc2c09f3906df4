//! An SQS event source that behaves like Lambda's SQS integration with
//! `ReportBatchItemFailures`: it receives up to `batch_size` messages for each idle execution
//! environment, invokes the function with an `SqsEvent`, deletes the messages not named in
//! `batchItemFailures`, and leaves the rest in the queue, so they become visible again when their
//! visibility timeout ends and the queue's redrive policy moves what keeps failing to the DLQ. A
//! failed invocation (function error, crash, timeout, unreadable response) leaves the whole batch.
//!
//! Lambda needs the queue's visibility timeout to cover the function's timeout, so a message is
//! never in two invocations at once; tests want failures back quickly. The poller does both: it
//! receives with a visibility timeout that covers the invocation, and hands what failed back to
//! the queue with a short one ([`EventSourceConfig::retry_visibility_s`], e.g. the test queue's
//! own 2-3 s), as if the queue's timeout were that short and the invocation had kept extending it.
//!
//! One task receives for all environments, so there is never more than one `ReceiveMessage` in
//! flight per queue: the moto server does not lock a queue while it picks messages, and two
//! concurrent receives can both be handed the same message. (Real SQS can deliver a message twice
//! too, rarely; the fault tests inject that on purpose instead, where it can be counted.)
//!
//! For fault tests it can deliver every Nth message a second time (the same message id, body and
//! attributes, as SQS's at-least-once delivery does), after the first delivery was handled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::lambda_rt::{InvokeError, LambdaEnv};

/// How the event source mapping is configured.
#[derive(Debug, Clone)]
pub struct EventSourceConfig {
    pub queue_url: String,
    pub queue_arn: String,
    /// Messages per invocation (at most 10: one `ReceiveMessage`).
    pub batch_size: i32,
    /// Visibility timeout set on receive (seconds); keep it above `invocation_timeout`, as Lambda
    /// requires of the queue, so a message is never in two invocations at once.
    pub visibility_timeout_s: i32,
    /// Long-poll wait (seconds).
    pub wait_time_s: i32,
    /// The function's timeout: the deadline each invocation gets.
    pub invocation_timeout: Duration,
    /// Every Nth distinct message is delivered a second time once its first delivery was handled.
    pub duplicate_every: Option<u64>,
    /// Visibility timeout (seconds) given back to the messages of a failed invocation and to the
    /// `batchItemFailures`: when they are received again. `None` leaves them to the receive's.
    pub retry_visibility_s: Option<i32>,
}

impl EventSourceConfig {
    pub fn new(queue_url: &str, queue_arn: &str) -> EventSourceConfig {
        EventSourceConfig {
            queue_url: queue_url.to_string(),
            queue_arn: queue_arn.to_string(),
            batch_size: 10,
            visibility_timeout_s: 12,
            wait_time_s: 1,
            invocation_timeout: Duration::from_secs(10),
            duplicate_every: None,
            retry_visibility_s: None,
        }
    }
}

/// What the event source did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollerStats {
    pub receive_calls: u64,
    /// Deliveries from SQS (first deliveries and redeliveries; injected duplicates apart).
    pub messages_received: u64,
    pub distinct_messages: u64,
    /// Deliveries with `ApproximateReceiveCount` > 1.
    pub redeliveries: u64,
    /// Highest `ApproximateReceiveCount` seen.
    pub max_receive_count: u64,
    pub invocations: u64,
    /// Invocations that failed as a whole (error, crash, timeout): their batch was left.
    pub failed_invocations: u64,
    /// Messages named in `batchItemFailures`.
    pub batch_item_failures: u64,
    pub deleted: u64,
    /// Second deliveries injected.
    pub duplicates_delivered: u64,
    /// Messages handed back to the queue early (`retry_visibility_s`).
    pub released: u64,
}

#[derive(Clone)]
struct Delivery {
    message_id: String,
    receipt_handle: String,
    record: Value,
    duplicate: bool,
}

#[derive(Default)]
struct Shared {
    stats: Mutex<PollerStats>,
    /// message id -> ordinal of its first receipt (1-based)
    seen: Mutex<HashMap<String, u64>>,
    duplicated: Mutex<HashSet<String>>,
    duplicates: Mutex<VecDeque<Delivery>>,
    duplicated_bodies: Mutex<Vec<String>>,
    busy: AtomicUsize,
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
}

/// A running event source mapping.
pub struct EventSource {
    cfg: EventSourceConfig,
    sqs: aws_sdk_sqs::Client,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The record Lambda builds for one SQS message.
pub fn sqs_record(m: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let mut attributes = serde_json::Map::new();
    if let Some(a) = &m.attributes {
        for (k, v) in a {
            attributes.insert(k.as_str().to_string(), Value::String(v.clone()));
        }
    }
    let mut message_attributes = serde_json::Map::new();
    if let Some(a) = &m.message_attributes {
        for (k, v) in a {
            message_attributes.insert(
                k.clone(),
                json!({
                    "stringValue": v.string_value,
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": v.data_type,
                }),
            );
        }
    }
    let mut record = json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    });
    if let Some(md5) = &m.md5_of_message_attributes {
        record["md5OfMessageAttributes"] = json!(md5);
    }
    record
}

/// The message ids to retry from a function's response, or `None` when Lambda would treat the
/// whole batch as failed (not a batch response, or an identifier that is not in the batch).
pub fn failed_ids(response: &Value, batch: &HashSet<String>) -> Option<HashSet<String>> {
    if response.is_null() {
        return Some(HashSet::new());
    }
    let obj = response.as_object()?;
    let Some(list) = obj.get("batchItemFailures") else {
        return Some(HashSet::new());
    };
    if list.is_null() {
        return Some(HashSet::new());
    }
    let mut out = HashSet::new();
    for f in list.as_array()? {
        let id = f.get("itemIdentifier")?.as_str()?;
        if id.is_empty() || !batch.contains(id) {
            return None;
        }
        out.insert(id.to_string());
    }
    Some(out)
}

impl EventSource {
    /// Starts the mapping over `envs` (its maximum concurrency).
    pub fn start(
        sqs: aws_sdk_sqs::Client,
        cfg: EventSourceConfig,
        envs: Vec<Arc<LambdaEnv>>,
    ) -> EventSource {
        let shared = Arc::new(Shared::default());
        let receiver = {
            let sqs = sqs.clone();
            let cfg = cfg.clone();
            let shared = shared.clone();
            tokio::spawn(async move { receive_loop(sqs, cfg, envs, shared).await })
        };
        EventSource {
            cfg,
            sqs,
            shared,
            tasks: vec![receiver],
        }
    }

    pub fn stats(&self) -> PollerStats {
        lock(&self.shared.stats).clone()
    }

    /// [`EventSource::stats`] for a task that watches the mapping.
    pub fn stats_handle(&self) -> impl Fn() -> PollerStats + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || lock(&shared.stats).clone()
    }

    /// Bodies of the messages delivered a second time on purpose.
    pub fn duplicated_bodies(&self) -> Vec<String> {
        lock(&self.shared.duplicated_bodies).clone()
    }

    /// Problems talking to SQS (each also retried).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// Invocations running right now.
    pub fn busy(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// Visible + in flight + delayed messages in the queue.
    pub async fn queue_depth(&self) -> Option<u64> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.cfg.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .ok()?;
        let attrs = out.attributes?;
        Some(attrs.values().map(|v| v.parse::<u64>().unwrap_or(0)).sum())
    }

    /// True when the queue is empty, nothing is being invoked and no duplicate is waiting.
    pub async fn idle(&self) -> bool {
        self.busy() == 0
            && lock(&self.shared.duplicates).is_empty()
            && self.queue_depth().await == Some(0)
            && self.busy() == 0
    }

    /// Waits until [`EventSource::idle`] holds on two checks in a row; false on `limit`.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut streak = 0;
        while Instant::now() < end {
            if self.idle().await {
                streak += 1;
                if streak >= 2 {
                    return true;
                }
            } else {
                streak = 0;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    }

    /// Stops polling (after the invocations in progress) and returns the counters.
    pub async fn stop(self) -> PollerStats {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        lock(&self.shared.stats).clone()
    }
}

/// Receives a batch whenever an environment is idle and hands it to that environment.
async fn receive_loop(
    sqs: aws_sdk_sqs::Client,
    cfg: EventSourceConfig,
    envs: Vec<Arc<LambdaEnv>>,
    shared: Arc<Shared>,
) {
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<Arc<LambdaEnv>>();
    for env in envs {
        let _ = idle_tx.send(env);
    }
    let mut running = JoinSet::new();
    while !shared.stop.load(Ordering::SeqCst) {
        // Wait for an idle environment (checking now and then whether to stop).
        let env = tokio::select! {
            e = idle_rx.recv() => e,
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some(env) = env else { break };
        while running.try_join_next().is_some() {}
        let batch = next_batch(&sqs, &cfg, &shared).await;
        if batch.is_empty() {
            let _ = idle_tx.send(env);
            continue;
        }
        shared.busy.fetch_add(1, Ordering::SeqCst);
        let (sqs, cfg, shared, idle_tx) =
            (sqs.clone(), cfg.clone(), shared.clone(), idle_tx.clone());
        running.spawn(async move {
            handle_batch(&sqs, &cfg, &env, &shared, batch).await;
            shared.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = idle_tx.send(env);
        });
    }
    // Let the invocations in progress finish (their environments end them at their deadline).
    while running.join_next().await.is_some() {}
}

async fn next_batch(
    sqs: &aws_sdk_sqs::Client,
    cfg: &EventSourceConfig,
    shared: &Shared,
) -> Vec<Delivery> {
    let size = cfg.batch_size.clamp(1, 10) as usize;
    let mut batch: Vec<Delivery> = {
        let mut d = lock(&shared.duplicates);
        let n = d.len().min(size);
        d.drain(..n).collect()
    };
    let want = size - batch.len();
    if want == 0 {
        return batch;
    }
    let wait = if batch.is_empty() { cfg.wait_time_s } else { 0 };
    let received = sqs
        .receive_message()
        .queue_url(&cfg.queue_url)
        .max_number_of_messages(want as i32)
        .visibility_timeout(cfg.visibility_timeout_s)
        .wait_time_seconds(wait)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await;
    lock(&shared.stats).receive_calls += 1;
    let messages = match received {
        Ok(out) => out.messages.unwrap_or_default(),
        Err(e) => {
            lock(&shared.errors).push(format!(
                "ReceiveMessage: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
            Vec::new()
        }
    };
    for m in messages {
        let (Some(id), Some(handle)) = (m.message_id.clone(), m.receipt_handle.clone()) else {
            continue;
        };
        let count: u64 = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        {
            let mut seen = lock(&shared.seen);
            let next = seen.len() as u64 + 1;
            let mut st = lock(&shared.stats);
            st.messages_received += 1;
            if count > 1 {
                st.redeliveries += 1;
            }
            st.max_receive_count = st.max_receive_count.max(count);
            if !seen.contains_key(&id) {
                seen.insert(id.clone(), next);
                st.distinct_messages += 1;
            }
        }
        batch.push(Delivery {
            message_id: id,
            receipt_handle: handle,
            record: sqs_record(&m, &cfg.queue_arn),
            duplicate: false,
        });
    }
    batch
}

/// Makes `deliveries` visible again after `retry_visibility_s` (injected duplicates apart: the
/// original delivery owns the message).
async fn release(
    sqs: &aws_sdk_sqs::Client,
    cfg: &EventSourceConfig,
    shared: &Shared,
    deliveries: Vec<&Delivery>,
) {
    let Some(visibility) = cfg.retry_visibility_s else {
        return;
    };
    let originals: Vec<&Delivery> = deliveries.into_iter().filter(|d| !d.duplicate).collect();
    for chunk in originals.chunks(10) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(&d.receipt_handle)
                    .visibility_timeout(visibility)
                    .build()
                    .ok()
            })
            .collect();
        for attempt in 1..=5 {
            match sqs
                .change_message_visibility_batch()
                .queue_url(&cfg.queue_url)
                .set_entries(Some(entries.clone()))
                .send()
                .await
            {
                Ok(out) => {
                    lock(&shared.stats).released += out.successful.len() as u64;
                    break;
                }
                Err(e) if attempt == 5 => {
                    lock(&shared.errors).push(format!(
                        "ChangeMessageVisibilityBatch: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

async fn handle_batch(
    sqs: &aws_sdk_sqs::Client,
    cfg: &EventSourceConfig,
    env: &LambdaEnv,
    shared: &Shared,
    batch: Vec<Delivery>,
) {
    let event = json!({ "Records": batch.iter().map(|d| d.record.clone()).collect::<Vec<_>>() });
    let ids: HashSet<String> = batch.iter().map(|d| d.message_id.clone()).collect();
    {
        let mut st = lock(&shared.stats);
        st.invocations += 1;
        st.duplicates_delivered += batch.iter().filter(|d| d.duplicate).count() as u64;
    }
    let result = env.invoke(&event, cfg.invocation_timeout).await;
    let failed: Option<HashSet<String>> = match &result {
        Ok(resp) => failed_ids(resp, &ids),
        Err(_) => None,
    };
    let Some(failed) = failed else {
        lock(&shared.stats).failed_invocations += 1;
        if let Err(e) = &result {
            if !matches!(e, InvokeError::Exited(_) | InvokeError::Timeout(_)) {
                lock(&shared.errors).push(format!("{}: {e}", env.id()));
            }
        }
        release(sqs, cfg, shared, batch.iter().collect()).await;
        return;
    };
    lock(&shared.stats).batch_item_failures += failed.len() as u64;
    release(
        sqs,
        cfg,
        shared,
        batch
            .iter()
            .filter(|d| failed.contains(&d.message_id))
            .collect(),
    )
    .await;
    let done: Vec<&Delivery> = batch
        .iter()
        .filter(|d| !failed.contains(&d.message_id))
        .collect();
    // Delete what succeeded (a duplicate's receipt handle may be stale: errors are expected).
    for chunk in done.chunks(10) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(&d.receipt_handle)
                    .build()
                    .ok()
            })
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match sqs
                .delete_message_batch()
                .queue_url(&cfg.queue_url)
                .set_entries(Some(entries.clone()))
                .send()
                .await
            {
                Ok(out) => {
                    let ok = out.successful.len() as u64;
                    let originals_failed = out
                        .failed
                        .iter()
                        .filter_map(|f| f.id.strip_prefix('m')?.parse::<usize>().ok())
                        .filter(|i| chunk.get(*i).is_some_and(|d| !d.duplicate))
                        .count();
                    if originals_failed > 0 {
                        lock(&shared.errors)
                            .push(format!("{originals_failed} deletes failed in {}", env.id()));
                    }
                    lock(&shared.stats).deleted += ok;
                    break;
                }
                Err(e) if attempt < 5 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    lock(&shared.errors).push(format!(
                        "DeleteMessageBatch: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ));
                    break;
                }
            }
        }
    }
    // Every Nth distinct message comes once more, now that it was handled.
    if let Some(n) = cfg.duplicate_every.filter(|n| *n > 0) {
        let mut again = Vec::new();
        {
            let seen = lock(&shared.seen);
            let mut duplicated = lock(&shared.duplicated);
            for d in done.iter().filter(|d| !d.duplicate) {
                let ordinal = seen.get(&d.message_id).copied().unwrap_or(0);
                if ordinal % n == 0 && duplicated.insert(d.message_id.clone()) {
                    if let Some(body) = d.record["body"].as_str() {
                        lock(&shared.duplicated_bodies).push(body.to_string());
                    }
                    let mut copy = (*d).clone();
                    copy.duplicate = true;
                    again.push(copy);
                }
            }
        }
        lock(&shared.duplicates).extend(again);
    }
}
