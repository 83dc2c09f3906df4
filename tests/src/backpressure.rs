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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out = out.header(name, value);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
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
