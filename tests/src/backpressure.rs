//! A pass-through in front of the moto server's SQS endpoint that holds sends to one queue while
//! that queue is full, for a function that would otherwise fill it far ahead of its consumers.
//!
//! Why: moto spends time proportional to a queue's length on every message sent to it and on
//! every receive (it recounts the queue's messages, reading the clock for each), so a 5,000-row
//! file sent in one go makes an end-to-end run quadratic, minutes instead of seconds. Real SQS has
//! no such cost. Holding the ingest's `SendMessageBatch` calls while the work queue holds more
//! than `limit` messages keeps it short; the ingest only sees slower SQS answers, which it must
//! cope with anyway, and nothing the tests check depends on how far ahead it runs.
//!
//! Point the function's `AWS_ENDPOINT_URL_SQS` at [`Backpressure::endpoint_url`].
//!
//! It also puts faults into the sends, for tests of the failure paths ([`Faults`]): a stretch of
//! `SendMessageBatch` calls to the work queue refused (503), as when SQS has trouble for a while,
//! and chosen rows' messages refused as batch entry failures (the sender's fault), as SQS does
//! with a message it will not take. Every fault is counted, so a test can show that it fired.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::task::JoinHandle;

/// Longest a single call is held: a stuck consumer must not hang the producer for ever.
const MAX_HOLD: Duration = Duration::from_secs(60);
/// How often the queue's depth is read.
const POLL: Duration = Duration::from_millis(200);

struct Shared {
    upstream: String,
    client: reqwest::Client,
    queue_url: String,
    limit: u64,
    /// Messages visible or in flight: read every [`POLL`], plus what was sent since.
    depth: AtomicU64,
    held_calls: AtomicU64,
    held_ms: AtomicU64,
    forwarded: AtomicU64,
    faults: Arc<Faults>,
}

/// Faults put into the sends (see the module's documentation). Nothing is refused until asked.
#[derive(Debug, Default)]
pub struct Faults {
    /// Send calls to the work queue seen.
    sends: AtomicU64,
    /// Refuse the send calls to the work queue after this many, for this many.
    window: Mutex<Option<(u64, u64)>>,
    refused_calls: AtomicU64,
    /// Queue URL -> rows whose entries are refused, and whether only an entry that carries a
    /// (non-null) `request` is.
    entries: Mutex<HashMap<String, (HashSet<u64>, bool)>>,
    refused_entries: AtomicU64,
    /// S3 HEAD requests on paths under this prefix fail (503), for an S3 client pointed here.
    heads: Mutex<Option<String>>,
    refused_heads: AtomicU64,
}

impl Faults {
    /// From now on, the send calls to the work queue after the next `after` are answered 503
    /// (ServiceUnavailable), `count` of them; then sends are forwarded again.
    pub fn refuse_sends(&self, after: u64, count: u64) {
        let seen = self.sends.load(Ordering::SeqCst);
        *self.window.lock().unwrap_or_else(|e| e.into_inner()) = Some((seen + after, count));
    }

    /// Entries for these rows sent to `queue_url` (with `only_with_request`: only those whose body
    /// holds a non-null `request`, i.e. a DLQ entry that copies the row) fail as SQS fails a
    /// message it will not take: `SenderFault`, `InvalidMessageContents`.
    pub fn refuse_rows(&self, queue_url: &str, rows: &[u64], only_with_request: bool) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                queue_url.to_string(),
                (rows.iter().copied().collect(), only_with_request),
            );
    }

    /// From now on, S3 `HeadObject` requests (path-style) on paths starting with `prefix`, e.g.
    /// `/bucket/incoming/`, fail with 503 (SlowDown), as S3 does now and then.
    pub fn fail_heads(&self, prefix: &str) {
        *self.heads.lock().unwrap_or_else(|e| e.into_inner()) = Some(prefix.to_string());
    }

    /// S3 HEAD requests failed so far.
    pub fn refused_heads(&self) -> u64 {
        self.refused_heads.load(Ordering::SeqCst)
    }

    fn refuse_head(&self, method: &Method, path: &str) -> bool {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        let hit = *method == Method::HEAD && heads.as_deref().is_some_and(|p| path.starts_with(p));
        if hit {
            self.refused_heads.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    /// Send calls to the work queue seen so far.
    pub fn sends(&self) -> u64 {
        self.sends.load(Ordering::SeqCst)
    }

    /// Calls answered 503 so far.
    pub fn refused_calls(&self) -> u64 {
        self.refused_calls.load(Ordering::SeqCst)
    }

    /// Batch entries failed so far.
    pub fn refused_entries(&self) -> u64 {
        self.refused_entries.load(Ordering::SeqCst)
    }

    /// Whether this send call to the work queue is refused.
    fn refuse_call(&self) -> bool {
        let n = self.sends.fetch_add(1, Ordering::SeqCst) + 1;
        let window = *self.window.lock().unwrap_or_else(|e| e.into_inner());
        let refuse = window.is_some_and(|(after, count)| n > after && n <= after + count);
        if refuse {
            self.refused_calls.fetch_add(1, Ordering::SeqCst);
        }
        refuse
    }

    /// Takes the entries to fail out of a `SendMessageBatch` body: the body to forward (`None`
    /// when nothing is left to forward) and the ids of the failed entries.
    fn split_batch(&self, body: &[u8]) -> Option<(Option<Vec<u8>>, Vec<String>)> {
        let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let url = v["QueueUrl"].as_str()?.to_string();
        let rules = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (rows, only_with_request) = rules.get(&url)?;
        let entries = v["Entries"].as_array()?.clone();
        let (mut keep, mut failed) = (Vec::new(), Vec::new());
        for e in entries {
            let msg: serde_json::Value =
                serde_json::from_str(e["MessageBody"].as_str().unwrap_or("")).unwrap_or_default();
            let hit = msg["row"].as_u64().is_some_and(|r| rows.contains(&r))
                && (!only_with_request || !msg["request"].is_null());
            if hit {
                failed.push(e["Id"].as_str().unwrap_or_default().to_string());
            } else {
                keep.push(e);
            }
        }
        if failed.is_empty() {
            return None;
        }
        self.refused_entries
            .fetch_add(failed.len() as u64, Ordering::SeqCst);
        let forward = (!keep.is_empty()).then(|| {
            v["Entries"] = serde_json::Value::Array(keep);
            serde_json::to_vec(&v).unwrap_or_default()
        });
        Some((forward, failed))
    }
}

fn target(headers: &HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or("")
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

pub struct Backpressure {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// Counters of the pass-through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackpressureStats {
    /// Requests forwarded (all SQS calls of the function).
    pub forwarded: u64,
    /// Sends that had to wait for room in the queue.
    pub held_calls: u64,
    /// Total time they waited.
    pub held: Duration,
}

/// Messages named by a JSON-protocol send: 1 for `SendMessage`, the entries of a batch.
fn sends_to(headers: &HeaderMap, body: &[u8], queue_url: &str) -> Option<u64> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    let batch = match target {
        "AmazonSQS.SendMessageBatch" => true,
        "AmazonSQS.SendMessage" => false,
        _ => return None,
    };
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v["QueueUrl"].as_str()? != queue_url {
        return None;
    }
    Some(if batch {
        v["Entries"].as_array().map_or(0, |e| e.len() as u64)
    } else {
        1
    })
}

async fn forward(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.faults.refuse_head(&method, uri.path()) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if sends_to(&headers, &body, &s.queue_url).is_some() && s.faults.refuse_call() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"__type": "com.amazonaws.sqs#ServiceUnavailable", "message": "the service is unavailable (injected by the test)"}),
        );
    }
    let mut body = body;
    let mut failed_ids = Vec::new();
    if target(&headers) == "AmazonSQS.SendMessageBatch" {
        if let Some((forward, failed)) = s.faults.split_batch(&body) {
            failed_ids = failed;
            match forward {
                Some(b) => body = Bytes::from(b),
                None => {
                    return json_response(
                        StatusCode::OK,
                        serde_json::json!({"Successful": [], "Failed": failed_entries(&failed_ids)}),
                    )
                }
            }
        }
    }
    if let Some(n) = sends_to(&headers, &body, &s.queue_url) {
        let start = Instant::now();
        let mut held = false;
        while s.depth.load(Ordering::SeqCst) >= s.limit && start.elapsed() < MAX_HOLD {
            held = true;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if held {
            s.held_calls.fetch_add(1, Ordering::SeqCst);
            s.held_ms
                .fetch_add(start.elapsed().as_millis() as u64, Ordering::SeqCst);
        }
        s.depth.fetch_add(n, Ordering::SeqCst);
    }
    s.forwarded.fetch_add(1, Ordering::SeqCst);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let head = method == Method::HEAD;
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.upstream))
        .body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" && name != "connection" {
            req = req.header(name, value);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut out = Response::builder().status(status.as_u16());
    for (name, value) in resp.headers() {
        // A HEAD answer has no body: its Content-Length is the object's size and is kept.
        let length = name == "content-length" && !head;
        if !length && name != "transfer-encoding" && name != "connection" {
            out = out.header(name, value);
        }
    }
    let mut bytes = resp.bytes().await.unwrap_or_default();
    if !failed_ids.is_empty() && status.is_success() {
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut failed = v["Failed"].as_array().cloned().unwrap_or_default();
        failed.extend(failed_entries(&failed_ids));
        v["Failed"] = serde_json::Value::Array(failed);
        bytes = Bytes::from(v.to_string());
    }
    out.body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

fn failed_entries(ids: &[String]) -> Vec<serde_json::Value> {
    ids.iter()
        .map(|id| serde_json::json!({"Id": id, "SenderFault": true, "Code": "InvalidMessageContents", "Message": "Invalid binary character in the message body (injected by the test)"}))
        .collect()
}

impl Backpressure {
    /// Listens on `127.0.0.1:0`, forwards to `upstream` (the moto server), and holds sends to
    /// `queue_url` while it holds `limit` messages or more (read with `sqs`).
    pub async fn start(
        upstream: &str,
        sqs: aws_sdk_sqs::Client,
        queue_url: &str,
        limit: u64,
    ) -> std::io::Result<Backpressure> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            queue_url: queue_url.to_string(),
            limit,
            depth: AtomicU64::new(0),
            held_calls: AtomicU64::new(0),
            held_ms: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            faults: Arc::new(Faults::default()),
        });
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let monitor = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let out = sqs
                        .get_queue_attributes()
                        .queue_url(&shared.queue_url)
                        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                        .send()
                        .await;
                    if let Some(attrs) = out.ok().and_then(|o| o.attributes) {
                        let n = attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum();
                        shared.depth.store(n, Ordering::SeqCst);
                    }
                    tokio::time::sleep(POLL).await;
                }
            })
        };
        Ok(Backpressure {
            addr,
            shared,
            tasks: vec![server, monitor],
        })
    }

    /// The faults it puts into the sends (none until asked).
    pub fn faults(&self) -> Arc<Faults> {
        self.shared.faults.clone()
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> BackpressureStats {
        BackpressureStats {
            forwarded: self.shared.forwarded.load(Ordering::SeqCst),
            held_calls: self.shared.held_calls.load(Ordering::SeqCst),
            held: Duration::from_millis(self.shared.held_ms.load(Ordering::SeqCst)),
        }
    }
}

impl Drop for Backpressure {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_sends_to_the_queue() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            "AmazonSQS.SendMessageBatch".parse().unwrap(),
        );
        let body = br#"{"QueueUrl":"http://q/1/work","Entries":[{"Id":"a"},{"Id":"b"}]}"#;
        assert_eq!(sends_to(&h, body, "http://q/1/work"), Some(2));
        assert_eq!(sends_to(&h, body, "http://q/1/other"), None);
        h.insert("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        assert_eq!(sends_to(&h, body, "http://q/1/work"), Some(1));
        h.insert("x-amz-target", "AmazonSQS.ReceiveMessage".parse().unwrap());
        assert_eq!(sends_to(&h, body, "http://q/1/work"), None);
    }
}
