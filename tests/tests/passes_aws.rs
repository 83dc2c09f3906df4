//! Temporary Access Passes through the worker as it runs in AWS (README, "Temporary Access
//! Pass"), against the moto server and the Graph simulator: rows of an uploaded file put through
//! the real ingest, onboarding requests sent by a producer, both received from a real work queue
//! with a redrive policy the way Lambda's event source receives them (receive count and sent
//! timestamp included), passes delivered to a real bucket (`passes/KEY/RUN/ROW.csv`, SSE-KMS) or
//! a real reply queue (with its marker object), each after its pending record
//! (`passes/.pending/...`, an empty object whose metadata names the pass), rejects read back from
//! the real DLQ. Where S3 has to fail one object's write and not another's, the worker's AWS
//! requests go through a pass-through in front of moto ([`FaultyAws`]).
//!
//! Every test ends with the same scan: no log line the worker wrote (captured in-process as the
//! Lambda writes them), no DLQ message (body and attributes), no object of the bucket but the
//! pass files themselves (markers, pending records, reports and inputs included, and every
//! object's user metadata) and no `MessageReport` (Debug) holds any pass value the simulator ever
//! issued.
//!
//! The batch goes through `Worker::process` with the event's records as
//! `InboundMessage::from_sqs` reads them: what `Worker::handle_event_until(event, None)` does,
//! with the reports kept for the scan; the batch response is `batch_failures` of them.
//!
//! moto does not check that `PASS_KMS_KEY_ARN` names a key (it stores and echoes
//! `x-amz-server-side-encryption-aws-kms-key-id`), so the key is an ARN of no real key.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use e2e_tests::app::{
    fixture_text as fixture, pem_secret, quick_options as options, CLIENT_ID, TENANT,
};
use e2e_tests::lambda_rt::{LogLine, Stream};
use e2e_tests::poller::sqs_record;
use e2e_tests::secrets_scan::Needles;
use e2e_tests::{
    create_bucket, create_fifo_queue, create_queues, drain, queue_arn, s3_client, s3_put_event,
    sdk_config, unique, Queues, Received,
};
use graph_sim::{GraphSim, IssuedPass, SeedUser, SimConfig, TapPolicy};
use mfa_preload_core::aws::s3::ObjectStore;
use mfa_preload_core::ingest::{Ingest, IngestConfig};
use mfa_preload_core::results::excel_safe;
use mfa_preload_core::tap::PASS_FILE_HEADER;
use mfa_preload_core::worker::{
    batch_failures, build_with_options, Disposition, InboundMessage, MessageReport, Worker,
};
use mfa_preload_core::{DlqEntry, Outcome, Reason};
use serde_json::{json, Value};

/// A mobile in Graph form, as the ingest writes a valid cell.
const M1: &str = "+31 612345678";
/// Receives before a message is dead-lettered: the queue's redrive policy and the worker's
/// `MAX_RECEIVE_COUNT` agree, as in the template (a rig may allow more: [`rig_with`]).
const MAX_RECEIVES: u32 = 3;
/// `PASS_KMS_KEY_ARN` (moto's S3 does not look the key up).
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/5c6d2e1f-8a3b-4c7d-9e0f-1a2b3c4d5e6f";
/// The uploaded file (a space in the key, as users name files).
const FILE_KEY: &str = "incoming/new hires.csv";

/// An onboarding producer's request for a pass.
fn producer_body(id: &str, user: &str, row: Option<u64>, reply_to: Option<&str>) -> String {
    let mut v = json!({
        "v": 1,
        "job": {"producer": "onboarding", "id": id},
        "user": user,
        "temporaryAccessPass": {"lifetimeInMinutes": 60},
    });
    if let Some(r) = row {
        v["row"] = json!(r);
    }
    if let Some(q) = reply_to {
        v["replyTo"] = json!(q);
    }
    v.to_string()
}

/// The key of a row's pass file: `passes/KEY/RUN/ROW.csv`, the row in 8 digits.
fn pass_key(msg: &Value) -> String {
    format!(
        "passes/{}/{}/{:08}.csv",
        msg["job"]["key"].as_str().expect("job key"),
        msg["job"]["run"]
            .as_str()
            .expect("the ingest names the run"),
        msg["row"].as_u64().expect("row")
    )
}

/// Whether `key` is a pass file (`passes/KEY/RUN/NNNNNNNN.csv`), not a marker or a pending
/// record.
fn is_pass_file(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("passes/") else {
        return false;
    };
    if rest.starts_with(".delivered/") || rest.starts_with(".pending/") {
        return false;
    }
    let Some(rest) = rest.strip_suffix(".csv") else {
        return false;
    };
    let mut parts = rest.rsplitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(row), Some(run), Some(job)) => {
            row.len() == 8
                && row.bytes().all(|b| b.is_ascii_digit())
                && !run.is_empty()
                && !job.is_empty()
        }
        _ => false,
    }
}

/// The records of a CSV file, the header included.
fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("CSV record").iter().map(str::to_string).collect())
        .collect()
}

fn body_of(m: &Message) -> Value {
    serde_json::from_str(m.body.as_deref().unwrap_or_default()).expect("request JSON")
}

fn receive_count(m: &Message) -> String {
    m.attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Log capture: the lines the worker writes, as the Lambda writes them.

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every line logged on the test's thread (a `#[tokio::test]` runs the worker, the ingest and
/// the SDK's connections there), formatted as `logging::init_lambda` does (JSON, fields at the
/// top level), at the level `RUST_LOG` sets as in the Lambda (default: the template's `info`,
/// and every level of the product's own crate). The simulator's own lines are left out: it is
/// not the worker.
struct Logs {
    sink: Sink,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    fn capture() -> Logs {
        let sink = Sink::default();
        let writer = sink.clone();
        let filter = tracing_subscriber::EnvFilter::new(format!(
            "{},graph_sim=off",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,mfa_preload_core=trace".into())
        ));
        let subscriber = mfa_preload_core::logging::lambda_json(filter, move || writer.clone());
        Logs {
            sink,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn lines(&self) -> Vec<LogLine> {
        let bytes = self
            .sink
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| LogLine {
                seq: i as u64,
                source: "log".into(),
                stream: Stream::Stdout,
                text: l.to_string(),
            })
            .collect()
    }
}

/// The test's own reads of what holds a pass (reply queues, pass files), kept out of the
/// captured log: at `RUST_LOG=trace` the SDK logs the response bodies it reads, and these lines
/// are not the worker's.
fn unlogged<F: std::future::Future>(f: F) -> impl std::future::Future<Output = F::Output> {
    use tracing::instrument::WithSubscriber;
    f.with_subscriber(tracing::subscriber::NoSubscriber::default())
}

fn scanned_line(source: String, text: String) -> LogLine {
    LogLine {
        seq: 0,
        source,
        stream: Stream::Stdout,
        text,
    }
}

// ---------------------------------------------------------------------------------------------
// A pass-through in front of moto that fails chosen S3 requests the way S3 does when it is
// overloaded (503 SlowDown, which the SDK retries, then gives up): moto itself has no way to
// fail one object's PutObject and not another's in the same bucket.

/// Which requests fail: method, path (`/BUCKET/KEY`, percent-encoded) and headers.
type FaultRule = Box<dyn Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync>;

struct FaultState {
    upstream: String,
    client: reqwest::Client,
    fail: FaultRule,
    /// `METHOD PATH` of every request failed, and of every request passed on.
    failed: Mutex<Vec<String>>,
    passed: Mutex<Vec<String>>,
}

struct FaultyAws {
    addr: std::net::SocketAddr,
    state: Arc<FaultState>,
    task: tokio::task::JoinHandle<()>,
}

/// A hop-by-hop header, or one the client recomputes.
fn not_forwarded(name: &header::HeaderName) -> bool {
    [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ]
    .contains(name)
}

async fn forward(State(s): State<Arc<FaultState>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let what = format!("{} {path}", parts.method);
    if (s.fail)(&parts.method, &path, &parts.headers) {
        s.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        )
            .into_response();
    }
    s.passed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(what);
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = format!(
        "{}{}",
        s.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = s.client.request(parts.method.clone(), target).body(body);
    for (k, v) in &parts.headers {
        if !not_forwarded(k) {
            out = out.header(k, v);
        }
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut back = Response::builder().status(status);
    for (k, v) in &headers {
        // A HEAD answer's length is the object's: keep it.
        if !not_forwarded(k) || (parts.method == Method::HEAD && k == header::CONTENT_LENGTH) {
            back = back.header(k, v);
        }
    }
    back.body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

impl FaultyAws {
    async fn start(fail: FaultRule) -> FaultyAws {
        let state = Arc::new(FaultState {
            upstream: e2e_tests::moto_endpoint().trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            fail,
            failed: Mutex::new(Vec::new()),
            passed: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        // Not the worker (its connection tasks log nothing at the capture's default level).
        let task = tokio::spawn(unlogged(async move {
            let _ = axum::serve(listener, app).await;
        }));
        FaultyAws { addr, state, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn failed(&self) -> Vec<String> {
        self.state
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn passed(&self) -> Vec<String> {
        self.state
            .passed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FaultyAws {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `PutObject` of an object under `passes/` of `bucket` that is not a pending record: a pass
/// file or a delivery marker.
fn delivery_put(bucket: &str) -> FaultRule {
    let prefix = format!("/{bucket}/passes/");
    Box::new(move |m, path, _| {
        m == Method::PUT
            && path
                .strip_prefix(&prefix)
                .is_some_and(|k| !k.starts_with(".pending/"))
    })
}

// ---------------------------------------------------------------------------------------------
// The rig.

struct Rig {
    logs: Logs,
    cfg: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    /// The upload bucket, which is also `PASS_BUCKET` (as in the template).
    bucket: String,
    queues: Queues,
    queue_arn: String,
    control_url: String,
    /// The reply queue of `PASS_DELIVERY_QUEUE_ARNS`.
    reply_name: String,
    reply_url: String,
    reply_arn: String,
    secret_arn: String,
    sim: GraphSim,
    /// The redrive policy's receive count and the worker's `MAX_RECEIVE_COUNT`.
    max_receives: u32,
    /// Everything read from the DLQ so far.
    dead: Mutex<Vec<Received>>,
    /// Every report of every invocation.
    reports: Mutex<Vec<MessageReport>>,
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

async fn rig(tag: &str, users: &[&str]) -> Rig {
    rig_with(tag, users, MAX_RECEIVES).await
}

/// [`rig`] whose queue dead-letters a message on its `max_receives`th receive.
async fn rig_with(tag: &str, users: &[&str], max_receives: u32) -> Rig {
    let logs = Logs::capture();
    let cfg = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let s3 = s3_client(&cfg);
    let bucket = unique(tag).to_lowercase();
    create_bucket(&s3, &bucket).await;
    let queues = create_queues(&sqs, &unique(tag), max_receives, 30).await;
    let queue_arn = queue_arn(&sqs, &queues.queue_url).await;
    let control_url = create_fifo_queue(&sqs, &unique(&format!("{tag}-control")), 1).await;
    let reply_name = unique(&format!("{tag}-passes"));
    let reply_url = create_queue(&sqs, &reply_name).await;
    let reply_arn = e2e_tests::queue_arn(&sqs, &reply_url).await;
    let secret_arn = aws_sdk_secretsmanager::Client::new(&cfg)
        .create_secret()
        .name(unique(tag))
        .secret_string(pem_secret())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn");
    let sim = GraphSim::start(SimConfig::default())
        .await
        .expect("simulator");
    sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem"));
    for u in users {
        sim.add_user(SeedUser::new(*u));
    }
    Rig {
        logs,
        cfg,
        sqs,
        s3,
        bucket,
        queues,
        queue_arn,
        control_url,
        reply_name,
        reply_url,
        reply_arn,
        secret_arn,
        sim,
        max_receives,
        dead: Mutex::new(Vec::new()),
        reports: Mutex::new(Vec::new()),
    }
}

impl Rig {
    /// The worker's environment as the template sets it.
    fn env(&self) -> HashMap<String, String> {
        [
            ("CREDENTIALS_SECRET_ID", self.secret_arn.clone()),
            ("DLQ_URL", self.queues.dlq_url.clone()),
            ("QUEUE_URL", self.queues.queue_url.clone()),
            ("GRAPH_BASE_URL", self.sim.base_url()),
            ("LOGIN_BASE_URL", self.sim.base_url()),
            ("WORKER_CONCURRENCY", "8".to_string()),
            ("MAX_RECEIVE_COUNT", self.max_receives.to_string()),
            ("USER_NOT_FOUND_RETRY_SECONDS", "0".to_string()),
            ("PASS_BUCKET", self.bucket.clone()),
            ("PASS_KMS_KEY_ARN", KMS_KEY.to_string()),
            ("PASS_DELIVERY_QUEUE_ARNS", self.reply_arn.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The worker as the Lambda binary builds it (a cold start), from its environment.
    async fn worker(&self) -> Worker {
        self.worker_with(&[]).await
    }

    /// [`Rig::worker`] with some variables changed.
    async fn worker_with(&self, changes: &[(&str, &str)]) -> Worker {
        let mut env = self.env();
        for (k, v) in changes {
            env.insert(k.to_string(), v.to_string());
        }
        let worker = build_with_options(&self.cfg, |k| env.get(k).cloned(), options())
            .await
            .expect("worker set-up");
        assert!(worker.start_fault().is_none(), "{:?}", worker.start_fault());
        worker
    }

    /// [`Rig::worker`] whose AWS requests (S3, SQS, Secrets Manager) go through `proxy`.
    async fn worker_through(&self, proxy: &FaultyAws) -> Worker {
        let env = self.env();
        let cfg = self.cfg.to_builder().endpoint_url(proxy.base_url()).build();
        let worker = build_with_options(&cfg, |k| env.get(k).cloned(), options())
            .await
            .expect("worker set-up");
        assert!(worker.start_fault().is_none(), "{:?}", worker.start_fault());
        worker
    }

    /// Uploads `csv` as `key` and runs the ingest on its S3 event: the rows are in the work queue.
    async fn ingest(&self, key: &str, csv: &str) {
        let out = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                csv.as_bytes().to_vec(),
            ))
            .send()
            .await
            .expect("upload");
        let etag = out.e_tag.expect("etag").trim_matches('"').to_string();
        let vars: HashMap<String, String> = [
            ("QUEUE_URL", self.queues.queue_url.clone()),
            ("DLQ_URL", self.queues.dlq_url.clone()),
            ("CONTROL_QUEUE_URL", self.control_url.clone()),
            ("INGEST_SAFETY_MARGIN_SECONDS", "1".to_string()),
            ("CONTINUATION_RETRY_SECONDS", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let config = IngestConfig::from_lookup(|k| vars.get(k).cloned()).expect("ingest config");
        let ingest = Ingest::new(ObjectStore::new(self.s3.clone()), self.sqs.clone(), config);
        let event = s3_put_event(&self.bucket, key, csv.len() as u64, &etag);
        let out = ingest
            .handle_lambda_event(event, Instant::now() + Duration::from_secs(900))
            .await
            .expect("ingest");
        assert!(out.to_string().contains("Finished(Complete)"), "{out}");
    }

    async fn send(&self, bodies: &[String]) {
        for b in bodies {
            self.sqs
                .send_message()
                .queue_url(&self.queues.queue_url)
                .message_body(b)
                .send()
                .await
                .expect("send");
        }
    }

    /// Receives exactly `n` messages the way Lambda's event source does (system attributes
    /// included), invisible for long enough for one invocation.
    async fn receive(&self, n: usize) -> Vec<Message> {
        let mut got: Vec<Message> = Vec::new();
        let started = Instant::now();
        while got.len() < n {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "only {} of {n} messages in the work queue",
                got.len()
            );
            let msgs = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.queue_url)
                .max_number_of_messages((n - got.len()).min(10) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .visibility_timeout(30)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got.extend(msgs);
        }
        got
    }

    /// One invocation: the batch as an `SqsEvent`, the worker's reports and batch response.
    /// `answered`: the response reached the event source, which deletes every message the
    /// worker did not list; otherwise it was lost (the function stopped after the work), and
    /// every message comes back. Listed (and unanswered) messages are handed back at once, as
    /// the end of their visibility timeout would.
    async fn invoke(
        &self,
        worker: &Worker,
        msgs: &[Message],
        answered: bool,
    ) -> Vec<MessageReport> {
        let records: Vec<Value> = msgs
            .iter()
            .map(|m| sqs_record(m, &self.queue_arn))
            .collect();
        let event: SqsEvent =
            serde_json::from_value(json!({ "Records": records })).expect("SQS event");
        let inbound: Vec<InboundMessage> =
            event.records.iter().map(InboundMessage::from_sqs).collect();
        let reports = tokio::time::timeout(Duration::from_secs(60), worker.process(inbound))
            .await
            .expect("the worker answers within a minute");
        let listed: HashSet<String> = batch_failures(&reports).into_iter().collect();
        for m in msgs {
            let id = m.message_id.clone().unwrap_or_default();
            let handle = m.receipt_handle.clone().unwrap_or_default();
            if answered && !listed.contains(&id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queues.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            } else {
                self.sqs
                    .change_message_visibility()
                    .queue_url(&self.queues.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .expect("hand back");
            }
        }
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(reports.iter().cloned());
        reports
    }

    /// Every DLQ message not read yet, parsed (and kept for the scan).
    async fn dead_letters(&self) -> Vec<(DlqEntry, HashMap<String, String>)> {
        let got = drain(&self.sqs, &self.queues.dlq_url).await;
        self.dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(got.iter().cloned());
        got.into_iter()
            .map(|Received { body, attributes }| {
                (
                    serde_json::from_str::<DlqEntry>(&body).expect("DLQ entry JSON"),
                    attributes,
                )
            })
            .collect()
    }

    /// Every reply queue message not read yet.
    async fn replies(&self) -> Vec<Value> {
        unlogged(drain(&self.sqs, &self.reply_url))
            .await
            .into_iter()
            .map(|r| serde_json::from_str(&r.body).expect("reply JSON"))
            .collect()
    }

    /// Keys of the bucket's objects under `prefix`.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return keys,
            }
        }
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        unlogged(self.s3.get_object().bucket(&self.bucket).key(key).send())
            .await
            .unwrap_or_else(|e| panic!("get {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec()
    }

    async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("head {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
            })
    }

    /// The pending records (`passes/.pending/<32 hex>`): key -> the method id their metadata
    /// names (`-`: no pass made yet). Each is checked: empty (no pass in it), its metadata the
    /// method id alone, encrypted with the pass key.
    async fn pending(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for key in self.keys("passes/.pending/").await {
            let name = key.trim_start_matches("passes/.pending/");
            assert!(
                name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                "{key}"
            );
            let head = self.head(&key).await;
            assert_eq!(head.content_length(), Some(0), "{key} is empty");
            assert!(self.get(&key).await.is_empty(), "{key} is empty");
            assert_eq!(
                head.server_side_encryption(),
                Some(&ServerSideEncryption::AwsKms),
                "{key} is encrypted with KMS"
            );
            assert_eq!(head.ssekms_key_id(), Some(KMS_KEY), "{key}: the pass key");
            let meta = head.metadata().cloned().unwrap_or_default();
            assert_eq!(
                meta.keys().map(String::as_str).collect::<Vec<_>>(),
                ["method-id"],
                "{key}: {meta:?}"
            );
            out.insert(key, meta["method-id"].clone());
        }
        out
    }

    /// The method ids the pending records name, sorted.
    async fn pending_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.pending().await.into_values().collect();
        ids.sort();
        ids
    }

    /// The passes the simulator issued to `upn`, in issue order.
    fn passes_of(&self, upn: &str) -> Vec<IssuedPass> {
        self.sim
            .issued_passes()
            .into_iter()
            .filter(|p| p.upn.eq_ignore_ascii_case(upn))
            .collect()
    }

    /// The pass `upn` holds now: the last issued to it, and the one the simulator shows.
    fn current_pass(&self, upn: &str) -> IssuedPass {
        let last = self.passes_of(upn).pop().expect("a pass was issued");
        let held = self.sim.tap_state(upn).expect("the user holds a pass");
        assert_eq!(held.id, last.method_id, "{upn} holds the last pass issued");
        last
    }

    fn writes_for(&self, upn: &str) -> Vec<String> {
        self.sim
            .write_log()
            .iter()
            .filter(|w| w.upn.eq_ignore_ascii_case(upn))
            .map(|w| format!("{}:{}", w.method, w.op))
            .collect()
    }

    /// A pass file's one row, checked: the header, the user, the pass (Excel-safe, as the
    /// file writes every cell), its lifetime and one-time use.
    async fn check_pass_file(&self, key: &str, user: &str, pass: &IssuedPass) {
        let records = csv_records(&self.get(key).await);
        assert_eq!(records.len(), 2, "{key}: the header and one row");
        assert_eq!(records[0], PASS_FILE_HEADER.to_vec(), "{key}");
        let row = &records[1];
        assert_eq!(row[0], user, "{key}");
        assert_eq!(
            row[1],
            excel_safe(&pass.value),
            "{key} holds the pass {user} holds now"
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(&row[2]).is_ok(),
            "{key}: StartDateTime {:?}",
            row[2]
        );
        assert_eq!((row[3].as_str(), row[4].as_str()), ("60", "true"), "{key}");
        let head = self.head(key).await;
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{key} is encrypted with KMS"
        );
        assert_eq!(head.ssekms_key_id(), Some(KMS_KEY), "{key}: the pass key");
        assert_eq!(head.content_type(), Some("text/csv"), "{key}");
    }

    /// The scan: no log line, DLQ message, object (but the pass files) or report holds any pass
    /// the simulator issued; each pass file holds one pass, its own user's. `other_queues`: what
    /// else was read from queues that must not hold a pass. Each kind of source is shown to be
    /// read: a pass planted in a copy of one of its lines is found.
    async fn assert_no_pass_leaked(&self, other_queues: &[Received]) -> Scanned {
        let issued = self.sim.issued_passes();
        let mut needles = Needles::new();
        for p in &issued {
            needles.exact(&format!("the pass {} of {}", p.method_id, p.upn), &p.value);
        }
        needles.private_key(&fixture("test-app.key.pem"));

        let logs = self.logs.lines();
        self.dead_letters().await;
        let mut dlq = Vec::new();
        for r in self
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .chain(other_queues)
        {
            dlq.push(scanned_line("queue message body".into(), r.body.clone()));
            for (k, v) in &r.attributes {
                dlq.push(scanned_line(
                    format!("queue message attribute {k}"),
                    v.clone(),
                ));
            }
        }
        let mut objects = Vec::new();
        let mut pass_files = 0;
        let mut pending = 0;
        for key in self.keys("").await {
            let bytes = self.get(&key).await;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // The user metadata of every object too: a pending record's is all it holds.
            let meta = self
                .head(&key)
                .await
                .metadata()
                .cloned()
                .unwrap_or_default();
            for (k, v) in &meta {
                objects.push(scanned_line(
                    format!("s3://{}/{key} metadata {k}", self.bucket),
                    v.clone(),
                ));
            }
            if key.starts_with("passes/.pending/") {
                pending += 1;
                assert!(bytes.is_empty(), "{key} is empty");
                let id = meta.get("method-id").map(String::as_str);
                assert!(
                    id == Some("-") || issued.iter().any(|p| Some(p.method_id.as_str()) == id),
                    "{key} names no pass or one that was issued: {meta:?}"
                );
            }
            if is_pass_file(&key) {
                pass_files += 1;
                let records = csv_records(&bytes);
                assert_eq!(records.len(), 2, "{key}");
                let (user, cell) = (&records[1][0], &records[1][1]);
                assert!(
                    issued
                        .iter()
                        .any(|p| p.upn.eq_ignore_ascii_case(user) && excel_safe(&p.value) == *cell),
                    "{key} holds a pass issued to {user}"
                );
                for p in issued.iter().filter(|p| !p.upn.eq_ignore_ascii_case(user)) {
                    assert!(!text.contains(&p.value), "{key} holds {}'s pass", p.upn);
                }
                continue;
            }
            objects.push(scanned_line(format!("s3://{}/{key}", self.bucket), text));
        }
        let reports: Vec<LogLine> = self
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| scanned_line(format!("report {}", r.message_id), format!("{r:?}")))
            .collect();

        // Not vacuous: every report's message is in the log.
        for r in reports.iter() {
            let id = r.source.trim_start_matches("report ");
            assert!(
                logs.iter().any(|l| l.text.contains(id)),
                "no log line for message {id}: is the log captured?"
            );
        }
        for (what, lines) in [
            ("log lines", &logs),
            ("queue messages", &dlq),
            ("objects", &objects),
            ("reports", &reports),
        ] {
            let found = needles.scan(lines);
            assert!(
                found.is_empty(),
                "{} {what} hold a secret: {:?}",
                found.len(),
                found
                    .iter()
                    .map(|f| format!("{} in {}: {}", f.what, f.source, f.line))
                    .collect::<Vec<_>>()
            );
            if let (Some(line), Some(p)) = (lines.first(), issued.first()) {
                let mut canary = line.clone();
                canary.text = format!("{} {}", line.text, p.value);
                assert!(
                    !needles.scan(&[canary]).is_empty(),
                    "the scan of {what} does not notice a pass planted in one"
                );
            }
        }
        Scanned {
            passes: issued.len(),
            logs: logs.len(),
            queue_messages: dlq.len(),
            objects: objects.len(),
            pass_files,
            pending,
            reports: reports.len(),
        }
    }
}

/// What [`Rig::assert_no_pass_leaked`] read.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Scanned {
    passes: usize,
    logs: usize,
    queue_messages: usize,
    objects: usize,
    pass_files: usize,
    /// Pending records (`passes/.pending/`), scanned with their metadata among the objects.
    pending: usize,
    reports: usize,
}

fn assert_done(reports: &[MessageReport]) {
    for r in reports {
        assert!(
            matches!(r.disposition, Disposition::Done(_)),
            "{:?} {:?}: {}",
            r.user,
            r.disposition,
            r.detail
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. File rows.

const THREE_ROWS: &str = "UPN,Mobile,TapLifetimeMinutes\n\
ada@contoso.com,+31 612345678,60\n\
Bob.Jones@contoso.com,+31 612345678,60\n\
cy@contoso.com,+31 612345678,60\n";

#[tokio::test]
async fn each_file_row_gets_its_own_encrypted_pass_file_holding_the_current_pass() {
    let users = ["ada@contoso.com", "Bob.Jones@contoso.com", "cy@contoso.com"];
    let rig = rig("tap-file", &users).await;
    rig.ingest(FILE_KEY, THREE_ROWS).await;
    let msgs = rig.receive(3).await;
    // As the ingest sends them: the job with its run, the row, the pass asked for.
    for m in &msgs {
        let b = body_of(m);
        assert_eq!(b["job"]["bucket"], rig.bucket.as_str(), "{b}");
        assert_eq!(b["job"]["key"], FILE_KEY, "{b}");
        assert!(
            b["job"]["etag"].is_string() && b["job"]["run"].is_string(),
            "{b}"
        );
        assert_eq!(b["temporaryAccessPass"]["lifetimeInMinutes"], 60, "{b}");
        assert!(b.get("replyTo").is_none(), "{b}");
    }
    let worker = rig.worker().await;
    let reports = rig.invoke(&worker, &msgs, true).await;
    assert_done(&reports);
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Done(Outcome::Created),
            "{}",
            r.detail
        );
    }

    for m in &msgs {
        let b = body_of(m);
        let user = b["user"].as_str().expect("user");
        assert_eq!(rig.passes_of(user).len(), 1, "{user}: one pass");
        let pass = rig.current_pass(user);
        rig.check_pass_file(&pass_key(&b), user, &pass).await;
        // The row's other method was written first.
        assert_eq!(
            rig.sim.user(user).expect("user").mobile.as_deref(),
            Some(M1)
        );
    }
    // Per row its pass file and its pending record, which names the pass (and holds none).
    let files = rig.keys("passes/").await;
    assert_eq!(
        files.len(),
        6,
        "per row a pass file and a pending record, nothing else: {files:?}"
    );
    assert_eq!(
        files.iter().filter(|k| is_pass_file(k)).count(),
        3,
        "{files:?}"
    );
    let mut ids: Vec<String> = users
        .iter()
        .map(|u| rig.current_pass(u).method_id)
        .collect();
    ids.sort();
    assert_eq!(
        rig.pending_ids().await,
        ids,
        "each pending record names its row's pass"
    );
    assert!(rig.dead_letters().await.is_empty());
    assert!(rig.replies().await.is_empty());
    let scanned = rig.assert_no_pass_leaked(&[]).await;
    assert_eq!(
        (scanned.passes, scanned.pass_files, scanned.pending),
        (3, 3, 3),
        "{scanned:?}"
    );
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. A row delivered twice.

#[tokio::test]
async fn a_redelivered_file_row_issues_no_second_pass_and_leaves_its_file_as_it_was() {
    let users = ["ada@contoso.com", "Bob.Jones@contoso.com", "cy@contoso.com"];
    let rig = rig("tap-dup", &users).await;
    rig.ingest(FILE_KEY, THREE_ROWS).await;
    let msgs = rig.receive(3).await;
    let worker = rig.worker().await;
    // The work is done, but the answer is lost: SQS delivers every message again.
    assert_done(&rig.invoke(&worker, &msgs, false).await);
    let mut before = HashMap::new();
    let pending = rig.pending().await;
    assert_eq!(pending.len(), 3, "{pending:?}");
    for key in msgs
        .iter()
        .map(|m| pass_key(&body_of(m)))
        .chain(pending.keys().cloned())
    {
        let head = rig.head(&key).await;
        before.insert(
            key.clone(),
            (
                rig.get(&key).await,
                head.e_tag().map(str::to_string),
                head.last_modified().cloned(),
            ),
        );
    }
    let writes_before = rig.sim.write_log().len();

    let again = rig.receive(3).await;
    let first_ids: BTreeSet<_> = msgs.iter().map(|m| m.message_id.clone()).collect();
    let again_ids: BTreeSet<_> = again.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(first_ids, again_ids, "the same messages");
    for m in &again {
        assert_eq!(receive_count(m), "2", "the second delivery");
    }
    let reports = rig.invoke(&worker, &again, true).await;
    assert_done(&reports);
    for r in &reports {
        let notes = r
            .result
            .as_ref()
            .map(|x| x.notes.join("; "))
            .unwrap_or_default();
        assert!(notes.contains("no second pass"), "{:?}: {notes}", r.user);
    }
    // The same body once more as a new message (a producer that sent it twice), to another
    // worker (another Lambda instance).
    let bodies: Vec<String> = msgs
        .iter()
        .map(|m| m.body.clone().unwrap_or_default())
        .collect();
    rig.send(&bodies).await;
    let copies = rig.receive(3).await;
    assert_done(&rig.invoke(&rig.worker().await, &copies, true).await);

    for u in users {
        assert_eq!(rig.passes_of(u).len(), 1, "{u}: no second pass");
    }
    assert_eq!(
        rig.sim.write_log().len(),
        writes_before,
        "nothing written again"
    );
    // The pass files and the pending records: not written again.
    for (key, (bytes, etag, modified)) in &before {
        let head = rig.head(key).await;
        assert_eq!(&rig.get(key).await, bytes, "{key} unchanged");
        assert_eq!(head.e_tag().map(str::to_string), *etag, "{key}");
        assert_eq!(head.last_modified().cloned(), *modified, "{key}");
    }
    assert_eq!(rig.pending().await, pending);
    for m in &msgs {
        let b = body_of(m);
        let user = b["user"].as_str().expect("user");
        rig.check_pass_file(&pass_key(&b), user, &rig.current_pass(user))
            .await;
    }
    assert_eq!(rig.keys("passes/").await.len(), 6);
    assert!(rig.dead_letters().await.is_empty());
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Onboarding with a reply queue.

#[tokio::test]
async fn an_onboarding_request_gets_its_pass_on_its_reply_queue_exactly_once() {
    let users = ["hire1@contoso.com", "Hire.Two@contoso.com"];
    let rig = rig("tap-reply", &users).await;
    let bodies = vec![
        producer_body("hire-1", users[0], None, Some(&rig.reply_arn)),
        producer_body("hire-2", users[1], Some(2), Some(&rig.reply_arn)),
    ];
    rig.send(&bodies).await;
    let msgs = rig.receive(2).await;
    let worker = rig.worker().await;
    // Done, but the answer is lost: both come back.
    let reports = rig.invoke(&worker, &msgs, false).await;
    assert_done(&reports);

    let replies = rig.replies().await;
    assert_eq!(replies.len(), 2, "one reply per request: {}", replies.len());
    for (body, user, row) in [
        (&bodies[0], users[0], Value::Null),
        (&bodies[1], users[1], json!(2)),
    ] {
        let sent: Value = serde_json::from_str(body).expect("json");
        let got: Vec<&Value> = replies.iter().filter(|r| r["user"] == user).collect();
        assert_eq!(got.len(), 1, "{user}");
        let reply = got[0];
        let keys: BTreeSet<&str> = reply
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "job",
                "user",
                "row",
                "temporaryAccessPass",
                "methodId",
                "createdDateTime",
                "startDateTime",
                "lifetimeInMinutes",
                "isUsableOnce"
            ]),
            "{user}"
        );
        assert_eq!(reply["job"], sent["job"], "{user}");
        assert_eq!(reply["user"], user, "{user}");
        assert_eq!(reply["row"], row, "{user}");
        let pass = rig.current_pass(user);
        assert_eq!(
            reply["temporaryAccessPass"].as_str(),
            Some(pass.value.as_str()),
            "{user}: the pass the user holds"
        );
        let held = rig.sim.tap_state(user).expect("a pass");
        assert_eq!(
            reply["methodId"].as_str(),
            Some(held.id.as_str()),
            "{user}: the id of the pass the user holds"
        );
        assert_eq!(reply["lifetimeInMinutes"], 60, "{user}");
        assert_eq!(reply["isUsableOnce"], true, "{user}");
        for (field, want) in [
            ("createdDateTime", held.created),
            ("startDateTime", held.start),
        ] {
            let got = reply[field]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .unwrap_or_else(|| panic!("{user}: {field} in {reply}"));
            let want = chrono::DateTime::<chrono::Utc>::from(want);
            assert!(
                (got.timestamp() - want.timestamp()).abs() <= 1,
                "{user}: {field} {got}, Graph's {want}"
            );
        }
    }

    // Per request a marker and a pending record; no pass in either.
    let objects = rig.keys("passes/").await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    let markers: Vec<String> = objects
        .iter()
        .filter(|k| k.starts_with("passes/.delivered/"))
        .cloned()
        .collect();
    assert_eq!(markers.len(), 2, "{objects:?}");
    let pending = rig.pending().await;
    let mut ids: Vec<&str> = pending.values().map(String::as_str).collect();
    ids.sort();
    let mut held: Vec<String> = users
        .iter()
        .map(|u| rig.sim.tap_state(u).expect("a pass").id)
        .collect();
    held.sort();
    // (`pending` checked that each is empty, and that its metadata is the method id alone.)
    assert_eq!(ids, held, "each pending record names its request's pass");
    for user in users {
        let want = format!("/{}.json", user.to_lowercase());
        let key = markers
            .iter()
            .find(|k| k.starts_with("passes/.delivered/") && k.ends_with(&want))
            .unwrap_or_else(|| panic!("no marker for {user}: {markers:?}"));
        let text = String::from_utf8(rig.get(key).await).expect("utf-8");
        let pass = rig.current_pass(user);
        assert!(!text.contains(&pass.value), "{key} holds the pass");
        let marker: Value = serde_json::from_str(&text).expect("marker JSON");
        assert_eq!(marker["methodId"], pass.method_id.as_str(), "{text}");
        assert_eq!(marker["queue"], rig.reply_arn.as_str(), "{text}");
        let head = rig.head(key).await;
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(head.ssekms_key_id(), Some(KMS_KEY));
    }

    // The second delivery: no second pass, no second reply.
    let again = rig.receive(2).await;
    for m in &again {
        assert_eq!(receive_count(m), "2");
    }
    assert_done(&rig.invoke(&worker, &again, true).await);
    // And the same bodies as new messages, to a fresh worker.
    rig.send(&bodies).await;
    let copies = rig.receive(2).await;
    assert_done(&rig.invoke(&rig.worker().await, &copies, true).await);
    for u in users {
        assert_eq!(rig.passes_of(u).len(), 1, "{u}: no second pass");
    }
    assert!(rig.replies().await.is_empty(), "no second reply");
    assert_eq!(rig.keys("passes/").await, objects);
    assert_eq!(
        rig.pending().await,
        pending,
        "the pending records are as they were"
    );
    assert!(rig.dead_letters().await.is_empty());
    let scanned = rig.assert_no_pass_leaked(&[]).await;
    assert_eq!(scanned.pending, 2, "{scanned:?}");
    assert!(
        scanned.objects >= 4,
        "the markers and the pending records' metadata are scanned: {scanned:?}"
    );
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A reply queue not on the allowlist; 5. a producer's pass without one.

#[tokio::test]
async fn a_reply_queue_not_on_the_allowlist_is_an_invalid_message_and_gets_nothing() {
    let user = "hire3@contoso.com";
    let rig = rig("tap-deny", &[user]).await;
    let other_url = create_queue(&rig.sqs, &unique("tap-deny-other")).await;
    let other_arn = queue_arn(&rig.sqs, &other_url).await;
    let body = producer_body("hire-3", user, None, Some(&other_arn));
    rig.send(std::slice::from_ref(&body)).await;
    let msgs = rig.receive(1).await;
    let reports = rig.invoke(&rig.worker().await, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::DeadLettered(Reason::InvalidMessage)
    );
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (entry, attrs) = &dead[0];
    assert_eq!(entry.reason, Reason::InvalidMessage);
    assert_eq!(attrs["reason"], "invalid_message");
    assert_eq!(entry.stage, "worker");
    assert!(
        entry.detail.contains("PassDeliveryQueueArns") && entry.detail.contains(&other_arn),
        "{}",
        entry.detail
    );
    assert_eq!(
        entry.request,
        serde_json::from_str::<Value>(&body).expect("json")
    );
    assert!(rig.sim.issued_passes().is_empty(), "no pass issued");
    assert!(rig.sim.tap_state(user).is_none());
    assert!(rig.writes_for(user).is_empty());
    let other = unlogged(drain(&rig.sqs, &other_url)).await;
    assert!(other.is_empty(), "nothing sent to {other_arn}: {other:?}");
    assert!(rig.replies().await.is_empty());
    assert!(rig.keys("passes/").await.is_empty(), "no marker");
    rig.assert_no_pass_leaked(&other).await;
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_pass_without_a_delivery_route_is_an_invalid_message_and_none_is_issued() {
    let users = ["hire4@contoso.com", "row@contoso.com"];
    let rig = rig("tap-noroute", &users).await;
    // A producer with no reply queue; a file's message without its row (nowhere to put the
    // file).
    let producer = producer_body("hire-4", users[0], Some(9), None);
    let no_row = json!({
        "v": 1,
        "job": {"bucket": rig.bucket, "key": FILE_KEY, "etag": "e1", "run": "e1-1"},
        "user": users[1],
        "temporaryAccessPass": {"lifetimeInMinutes": 60},
    })
    .to_string();
    rig.send(&[producer.clone(), no_row.clone()]).await;
    let msgs = rig.receive(2).await;
    let reports = rig.invoke(&rig.worker().await, &msgs, true).await;
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::DeadLettered(Reason::InvalidMessage),
            "{:?}: {}",
            r.user,
            r.detail
        );
    }
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (body, needle) in [(&producer, "'replyTo'"), (&no_row, "'row'")] {
        let want: Value = serde_json::from_str(body).expect("json");
        let (entry, attrs) = dead
            .iter()
            .find(|(e, _)| e.request == want)
            .unwrap_or_else(|| panic!("{body} is not in the DLQ"));
        assert_eq!(entry.reason, Reason::InvalidMessage);
        assert_eq!(attrs["reason"], "invalid_message");
        assert!(entry.detail.contains(needle), "{}", entry.detail);
    }
    assert!(rig.sim.issued_passes().is_empty(), "no pass issued");
    for u in users {
        assert!(rig.writes_for(u).is_empty(), "{u}");
    }
    assert!(rig.keys("passes/").await.is_empty());
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 6. A pass that cannot be delivered, or was issued and not delivered.

#[tokio::test]
async fn a_pass_bucket_that_cannot_be_written_is_a_configuration_fault_before_any_pass_is_made() {
    let user = "dee@contoso.com";
    let rig = rig("tap-nobucket", &[user]).await;
    rig.ingest(FILE_KEY, "UPN,TapLifetimeMinutes\ndee@contoso.com,60\n")
        .await;
    let msgs = rig.receive(1).await;
    // A first worker whose pass bucket does not exist: its pending record cannot be written,
    // so no pass is made.
    let missing = unique("no-such-bucket").to_lowercase();
    let broken = rig.worker_with(&[("PASS_BUCKET", &missing)]).await;
    let reports = rig.invoke(&broken, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Retry(Reason::ConfigurationFault),
        "{}",
        reports[0].detail
    );
    assert_eq!(batch_failures(&reports), [reports[0].message_id.clone()]);
    for needle in [
        "Temporary Access Passes cannot be delivered",
        "NoSuchBucket",
        missing.as_str(),
        "passes/.pending/",
    ] {
        assert!(
            reports[0].detail.contains(needle),
            "{needle}: {}",
            reports[0].detail
        );
    }
    assert_eq!(broken.configuration_faults(), 1, "the alarm's metric");
    assert!(
        rig.logs
            .lines()
            .iter()
            .any(|l| l.text.contains("CONFIGURATION FAULT") && l.text.contains("pass_delivery")),
        "the fault is logged"
    );
    assert!(rig.sim.issued_passes().is_empty(), "no pass issued");
    assert!(rig.sim.tap_state(user).is_none());
    assert!(
        rig.writes_for(user).is_empty(),
        "{:?}",
        rig.writes_for(user)
    );
    assert_eq!(rig.sim.stats().posts, 0, "{:?}", rig.sim.stats());
    assert!(rig.keys("passes/").await.is_empty());
    assert!(rig.dead_letters().await.is_empty(), "nothing dead-lettered");

    // The message comes back to a worker whose delivery works: one pass, its file.
    let again = rig.receive(1).await;
    assert_eq!(receive_count(&again[0]), "2");
    let reports = rig.invoke(&rig.worker().await, &again, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Done(Outcome::Created),
        "{}",
        reports[0].detail
    );
    assert_eq!(rig.passes_of(user).len(), 1, "exactly one pass");
    let current = rig.current_pass(user);
    rig.check_pass_file(&pass_key(&body_of(&msgs[0])), user, &current)
        .await;
    assert_eq!(
        rig.pending_ids().await,
        std::slice::from_ref(&current.method_id)
    );
    assert_eq!(rig.writes_for(user), ["temporaryAccessPass:create"]);
    assert!(rig.dead_letters().await.is_empty());
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_pass_file_that_could_not_be_written_is_replaced_by_the_next_delivery() {
    let user = "dee@contoso.com";
    let rig = rig("tap-undelivered", &[user]).await;
    rig.ingest(FILE_KEY, "UPN,TapLifetimeMinutes\ndee@contoso.com,60\n")
        .await;
    let msgs = rig.receive(1).await;
    let key = pass_key(&body_of(&msgs[0]));
    // A first worker whose S3 takes the pending record and then fails the pass file (503
    // SlowDown, each of the SDK's attempts): the pass is made, its id recorded, not delivered.
    let proxy = FaultyAws::start(delivery_put(&rig.bucket)).await;
    let flaky = rig.worker_through(&proxy).await;
    let reports = rig.invoke(&flaky, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Retry(Reason::RetriesExhausted),
        "a transient failure, not a configuration fault: {}",
        reports[0].detail
    );
    assert!(
        reports[0].detail.contains("could not be delivered")
            && reports[0].detail.contains("SlowDown"),
        "{}",
        reports[0].detail
    );
    assert_eq!(flaky.configuration_faults(), 0);
    let failed = proxy.failed();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|f| f.starts_with("PUT ") && f.contains("/passes/incoming/")),
        "only the pass file's PUT failed: {failed:?}"
    );
    assert_eq!(
        proxy
            .passed()
            .iter()
            .filter(|p| p.starts_with("PUT ") && p.contains("/passes/.pending/"))
            .count(),
        2,
        "the pending record, then the pass's id in it: {:?}",
        proxy.passed()
    );
    let undelivered = rig.passes_of(user);
    assert_eq!(undelivered.len(), 1, "a pass was issued");
    assert_eq!(
        rig.pending_ids().await,
        [undelivered[0].method_id.clone()],
        "its id is recorded"
    );
    assert_eq!(rig.keys("passes/").await.len(), 1, "no pass file");
    assert!(
        rig.logs
            .lines()
            .iter()
            .any(|l| l.text.contains("issued but not delivered")),
        "the error is logged"
    );
    drop(proxy);

    // The redelivered message, to a worker whose delivery works: the recorded pass is replaced
    // without forcedUpdate.
    let again = rig.receive(1).await;
    assert_eq!(receive_count(&again[0]), "2");
    let reports = rig.invoke(&rig.worker().await, &again, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Done(Outcome::Updated),
        "replaced without forcedUpdate, not tap_exists: {}",
        reports[0].detail
    );
    let passes = rig.passes_of(user);
    assert_eq!(passes.len(), 2, "the undelivered pass was replaced");
    let current = rig.current_pass(user);
    assert_eq!(current.method_id, passes[1].method_id);
    assert_ne!(current.method_id, undelivered[0].method_id);
    rig.check_pass_file(&key, user, &current).await;
    assert_eq!(
        rig.pending_ids().await,
        std::slice::from_ref(&current.method_id)
    );
    assert_eq!(
        rig.writes_for(user),
        [
            "temporaryAccessPass:create",
            "temporaryAccessPass:delete",
            "temporaryAccessPass:create"
        ]
    );
    let dead = rig.dead_letters().await;
    assert!(dead.is_empty(), "no tap_exists: {dead:?}");
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_pass_whose_reply_queue_was_gone_is_replaced_by_the_next_delivery() {
    let user = "eve@contoso.com";
    let rig = rig("tap-unsent", &[user]).await;
    let body = producer_body("hire-5", user, None, Some(&rig.reply_arn));
    rig.send(std::slice::from_ref(&body)).await;
    let msgs = rig.receive(1).await;
    // The reply queue is gone when the pass is to be sent.
    rig.sqs
        .delete_queue()
        .queue_url(&rig.reply_url)
        .send()
        .await
        .expect("delete the reply queue");
    let first = rig.worker().await;
    let reports = rig.invoke(&first, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Retry(Reason::RetriesExhausted),
        "{}",
        reports[0].detail
    );
    assert!(
        reports[0].detail.contains("could not be delivered")
            && reports[0].detail.contains("GetQueueUrl"),
        "{}",
        reports[0].detail
    );
    assert_eq!(first.configuration_faults(), 0, "transient, not a fault");
    let undelivered = rig.passes_of(user);
    assert_eq!(undelivered.len(), 1);
    assert_eq!(
        rig.pending_ids().await,
        [undelivered[0].method_id.clone()],
        "the pass's id is recorded"
    );
    assert!(rig.keys("passes/.delivered/").await.is_empty(), "no marker");

    // The queue is back (same name, same ARN); the message comes back to a new worker.
    let url = create_queue(&rig.sqs, &rig.reply_name).await;
    assert_eq!(url, rig.reply_url);
    let again = rig.receive(1).await;
    assert_eq!(receive_count(&again[0]), "2");
    let reports = rig.invoke(&rig.worker().await, &again, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Done(Outcome::Updated),
        "{}",
        reports[0].detail
    );
    assert_eq!(rig.passes_of(user).len(), 2);
    let current = rig.current_pass(user);
    assert_ne!(current.method_id, undelivered[0].method_id);
    let replies = rig.replies().await;
    assert_eq!(replies.len(), 1, "{}", replies.len());
    assert_eq!(
        replies[0]["temporaryAccessPass"].as_str(),
        Some(current.value.as_str())
    );
    let held = rig.sim.tap_state(user).expect("a pass");
    assert_eq!(replies[0]["methodId"].as_str(), Some(held.id.as_str()));
    assert_eq!(rig.pending_ids().await, std::slice::from_ref(&held.id));
    assert_eq!(
        rig.writes_for(user),
        [
            "temporaryAccessPass:create",
            "temporaryAccessPass:delete",
            "temporaryAccessPass:create"
        ]
    );
    assert_eq!(rig.keys("passes/.delivered/").await.len(), 1);
    assert!(rig.dead_letters().await.is_empty());
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 7. The tenant's policy is off.

#[tokio::test]
async fn a_pass_the_policy_does_not_allow_is_dead_lettered_after_the_rest_of_the_row() {
    let user = "fay@contoso.com";
    let rig = rig("tap-policy", &[user]).await;
    rig.sim.set_tap_policy(TapPolicy::disabled());
    rig.ingest(
        FILE_KEY,
        "UPN,Mobile,TapLifetimeMinutes\nfay@contoso.com,+31 612345678,60\n",
    )
    .await;
    let msgs = rig.receive(1).await;
    let reports = rig.invoke(&rig.worker().await, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::DeadLettered(Reason::TapNotAllowedByPolicy),
        "{}",
        reports[0].detail
    );
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (entry, attrs) = &dead[0];
    assert_eq!(entry.reason, Reason::TapNotAllowedByPolicy);
    assert_eq!(attrs["reason"], "tap_not_allowed_by_policy");
    assert!(entry.detail.contains("mobile:create"), "{}", entry.detail);
    assert_eq!(
        rig.sim.user(user).expect("user").mobile.as_deref(),
        Some(M1),
        "the row's mobile is written"
    );
    assert_eq!(rig.writes_for(user), ["mobile:create"]);
    // The worker read the policy: it did not even ask Graph for a pass Graph would refuse.
    assert_eq!(
        rig.sim.stats().posts,
        1,
        "one POST, the mobile's: {:?}",
        rig.sim.stats()
    );
    assert!(rig.sim.issued_passes().is_empty(), "no pass");
    assert!(rig.sim.tap_state(user).is_none());
    // The pending record written before the pass was asked for, naming none; no pass file.
    let pending = rig.pending().await;
    assert_eq!(
        rig.keys("passes/").await,
        pending.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(pending.into_values().collect::<Vec<_>>(), ["-"]);
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 8. The scan, over one run of every path.

#[tokio::test]
async fn no_log_line_dead_letter_object_or_report_holds_a_pass() {
    let users = [
        "ada@contoso.com",
        "Bob.Jones@contoso.com",
        "cy@contoso.com",
        "hire1@contoso.com",
        "hire2@contoso.com",
        "hire3@contoso.com",
        "late@contoso.com",
        "noid@contoso.com",
    ];
    // Four receives of each message (the last answered): one more than the template allows.
    let rig = rig_with("tap-scan", &users, 5).await;
    let other_url = create_queue(&rig.sqs, &unique("tap-scan-other")).await;
    let other_arn = queue_arn(&rig.sqs, &other_url).await;
    rig.ingest(FILE_KEY, THREE_ROWS).await;
    let mut bodies = vec![
        producer_body("hire-1", "hire1@contoso.com", None, Some(&rig.reply_arn)),
        producer_body("hire-2", "hire2@contoso.com", None, Some(&other_arn)),
        producer_body("hire-3", "hire3@contoso.com", None, None),
        // A producer that is refused by Graph: a lifetime outside the policy's 60-480.
        json!({"v": 1, "job": {"producer": "onboarding", "id": "late"}, "user": "late@contoso.com",
            "temporaryAccessPass": {"lifetimeInMinutes": 600}, "replyTo": rig.reply_arn})
        .to_string(),
        // A reply without the job id that names the request.
        json!({"v": 1, "job": {"producer": "onboarding"}, "user": "noid@contoso.com",
            "temporaryAccessPass": {"lifetimeInMinutes": 60}, "replyTo": rig.reply_arn})
        .to_string(),
    ];
    bodies.push("{\"v\":1,\"temporaryAccessPass\":".to_string());
    rig.send(&bodies).await;
    let msgs = rig.receive(3 + bodies.len()).await;
    // Each answer but the last is lost: every message comes back each time.
    // 1. A worker whose pass bucket does not exist: a configuration fault, no pass made.
    let missing = unique("no-such-bucket").to_lowercase();
    let broken = rig.worker_with(&[("PASS_BUCKET", &missing)]).await;
    let reports = rig.invoke(&broken, &msgs, false).await;
    assert!(
        reports
            .iter()
            .all(|r| !matches!(r.disposition, Disposition::Done(_))),
        "{reports:?}"
    );
    assert!(rig.sim.issued_passes().is_empty(), "no pass made");
    assert_eq!(broken.configuration_faults(), 1);
    // 2. A worker whose S3 fails every pass file and marker (not the pending records): the
    // passes are made and their ids recorded; the reply is sent, its marker not written.
    let proxy = FaultyAws::start(delivery_put(&rig.bucket)).await;
    let flaky = rig.worker_through(&proxy).await;
    rig.invoke(&flaky, &rig.receive(msgs.len()).await, false)
        .await;
    assert_eq!(rig.sim.issued_passes().len(), 4, "three rows, one reply");
    assert!(!proxy.failed().is_empty());
    drop(proxy);
    // 3. and 4. A working worker, twice.
    let worker = rig.worker().await;
    rig.invoke(&worker, &rig.receive(msgs.len()).await, false)
        .await;
    let fourth = rig.receive(msgs.len()).await;
    assert!(fourth.iter().all(|m| receive_count(m) == "4"));
    rig.invoke(&worker, &fourth, true).await;
    let replies = rig.replies().await;
    let other = unlogged(drain(&rig.sqs, &other_url)).await;
    assert!(other.is_empty(), "{other:?}");

    // Each file row: the pass the flaky worker made and could not deliver, replaced.
    for u in &users[..3] {
        assert_eq!(rig.passes_of(u).len(), 2, "{u}");
        let current = rig.current_pass(u);
        let msg = msgs
            .iter()
            .map(body_of)
            .find(|b| b["user"] == *u)
            .expect("row");
        rig.check_pass_file(&pass_key(&msg), u, &current).await;
    }
    // The onboarding request: its reply was sent, but its marker could not be written, so the
    // next delivery replaced the pass its pending record named and sent the new one too.
    let hire1 = rig.passes_of("hire1@contoso.com");
    assert_eq!(hire1.len(), 2);
    let current = rig.current_pass("hire1@contoso.com");
    let sent: BTreeMap<&str, &str> = replies
        .iter()
        .filter_map(|r| Some((r["methodId"].as_str()?, r["temporaryAccessPass"].as_str()?)))
        .collect();
    assert_eq!(replies.len(), 2, "{}", replies.len());
    assert_eq!(
        sent,
        BTreeMap::from([
            (hire1[0].method_id.as_str(), hire1[0].value.as_str()),
            (current.method_id.as_str(), current.value.as_str())
        ]),
        "two replies, each naming its pass"
    );
    for u in [
        "hire2@contoso.com",
        "hire3@contoso.com",
        "late@contoso.com",
        "noid@contoso.com",
    ] {
        assert!(rig.passes_of(u).is_empty(), "{u}");
    }
    // The pending records: the four current passes, and late's (no pass made).
    let mut want: Vec<String> = users[..4]
        .iter()
        .map(|u| rig.current_pass(u).method_id)
        .chain(["-".to_string()])
        .collect();
    want.sort();
    assert_eq!(rig.pending_ids().await, want);
    let mut reasons: Vec<(String, Reason)> = rig
        .dead_letters()
        .await
        .into_iter()
        .map(|(e, _)| (e.user.unwrap_or_default(), e.reason))
        .collect();
    reasons.sort();
    reasons.dedup();
    // Refused ones: the queue not on the list, no reply queue, no job id, the body cut short
    // (their DLQ entries name no user), and Graph's refusal of the lifetime.
    assert_eq!(
        reasons,
        [
            (String::new(), Reason::InvalidMessage),
            ("late@contoso.com".to_string(), Reason::GraphRejected)
        ]
    );
    let scanned = rig.assert_no_pass_leaked(&other).await;
    eprintln!("scanned: {scanned:?}");
    assert_eq!(
        (scanned.passes, scanned.pending, scanned.pass_files),
        (8, 5, 3),
        "two per file row, two for the reply: {scanned:?}"
    );
    assert!(scanned.logs > 20, "{scanned:?}");
    assert!(scanned.reports >= 4 * msgs.len(), "{scanned:?}");
    assert!(
        scanned.objects >= 3 + 5,
        "the marker, the input, the ingest's report, the pending records' metadata: {scanned:?}"
    );
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 9. Passes of other requests.

/// A pass delivered for one request is not another request's: a second request (another job)
/// for the same user, sent right after, is `tap_exists` and leaves the delivered pass alone.
#[tokio::test]
async fn a_pass_delivered_for_one_request_is_not_replaced_by_the_next_request() {
    let user = "gus@contoso.com";
    let rig = rig("tap-other-job", &[user]).await;
    let worker = rig.worker().await;
    rig.send(&[producer_body("first", user, None, Some(&rig.reply_arn))])
        .await;
    let msgs = rig.receive(1).await;
    assert_done(&rig.invoke(&worker, &msgs, true).await);
    let delivered = rig.current_pass(user);
    assert_eq!(rig.replies().await.len(), 1);

    // Another onboarding job asks for a pass for the same user a moment later.
    let second = producer_body("second", user, None, Some(&rig.reply_arn));
    rig.send(std::slice::from_ref(&second)).await;
    let msgs = rig.receive(1).await;
    let reports = rig.invoke(&worker, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::DeadLettered(Reason::TapExists),
        "{}",
        reports[0].detail
    );
    let held = rig.sim.tap_state(user).expect("a pass");
    assert_eq!(
        held.id, delivered.method_id,
        "the pass delivered to the first job still works"
    );
    assert_eq!(rig.passes_of(user).len(), 1, "no second pass");
    assert_eq!(rig.writes_for(user), ["temporaryAccessPass:create"]);
    assert!(
        rig.replies().await.is_empty(),
        "nothing sent for the second"
    );
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (entry, attrs) = &dead[0];
    assert_eq!(entry.reason, Reason::TapExists);
    assert_eq!(attrs["reason"], "tap_exists");
    assert_eq!(
        entry.request,
        serde_json::from_str::<Value>(&second).expect("json")
    );
    // When the pass there was made, in words: no run of digits long enough to be masked.
    let created = chrono::DateTime::<chrono::Utc>::from(held.created)
        .format("%-d %b %Y at %H:%M UTC")
        .to_string();
    for detail in [&entry.detail, &reports[0].detail] {
        assert!(
            detail.contains(&format!("(created {created})")) && detail.contains("ForcedUpdate"),
            "{detail}"
        );
    }
    // Both requests' pending records: the first names its pass, the second none.
    let mut ids = rig.pending_ids().await;
    ids.sort();
    let mut want = vec!["-".to_string(), delivered.method_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

/// `job.id` names a producer's request: without it a redelivery could not be told from another
/// request, so a request with `replyTo` and no `job.id` is `invalid_message`, and no pass is made.
#[tokio::test]
async fn a_producer_request_with_reply_to_and_no_job_id_is_an_invalid_message() {
    let user = "hal@contoso.com";
    let rig = rig("tap-no-id", &[user]).await;
    let body = json!({"v": 1, "job": {"producer": "onboarding"}, "user": user,
        "temporaryAccessPass": {"lifetimeInMinutes": 60}, "replyTo": rig.reply_arn})
    .to_string();
    rig.send(std::slice::from_ref(&body)).await;
    let msgs = rig.receive(1).await;
    let reports = rig.invoke(&rig.worker().await, &msgs, true).await;
    assert_eq!(
        reports[0].disposition,
        Disposition::DeadLettered(Reason::InvalidMessage),
        "{}",
        reports[0].detail
    );
    let dead = rig.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (entry, attrs) = &dead[0];
    assert_eq!(entry.reason, Reason::InvalidMessage);
    assert_eq!(attrs["reason"], "invalid_message");
    assert_eq!(entry.stage, "worker");
    assert!(entry.detail.contains("'job.id'"), "{}", entry.detail);
    assert_eq!(
        entry.request,
        serde_json::from_str::<Value>(&body).expect("json")
    );
    assert!(rig.sim.issued_passes().is_empty(), "no pass issued");
    assert!(rig.sim.tap_state(user).is_none());
    assert!(rig.writes_for(user).is_empty());
    assert!(rig.replies().await.is_empty());
    assert!(rig.keys("passes/").await.is_empty(), "no record");
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Found while writing the above: a pass whose id could not be recorded is taken back, so the
// next delivery makes a new one instead of finding it as someone else's.

/// The pass's id could not be recorded (the pending record's second write failed, 503): the
/// pass was made and is nobody's. The next delivery must not take it for someone else's.
#[tokio::test]
async fn a_pass_whose_id_could_not_be_recorded_does_not_make_the_next_delivery_tap_exists() {
    let user = "ivy@contoso.com";
    let rig = rig("tap-unrecorded", &[user]).await;
    rig.ingest(FILE_KEY, "UPN,TapLifetimeMinutes\nivy@contoso.com,60\n")
        .await;
    let msgs = rig.receive(1).await;
    let key = pass_key(&body_of(&msgs[0]));
    // S3 takes the pending record ("-") and fails its update with the pass's id.
    let proxy = FaultyAws::start(Box::new(|m, path, headers| {
        m == Method::PUT
            && path.contains("/passes/.pending/")
            && headers
                .get("x-amz-meta-method-id")
                .is_some_and(|v| v.as_bytes() != b"-")
    }))
    .await;
    let reports = rig
        .invoke(&rig.worker_through(&proxy).await, &msgs, true)
        .await;
    assert_eq!(
        reports[0].disposition,
        Disposition::Retry(Reason::RetriesExhausted),
        "{}",
        reports[0].detail
    );
    assert!(!proxy.failed().is_empty(), "the id's write failed");
    drop(proxy);

    let again = rig.receive(1).await;
    let reports = rig.invoke(&rig.worker().await, &again, true).await;
    assert!(
        matches!(reports[0].disposition, Disposition::Done(_)),
        "the next delivery delivers a pass: {:?}: {}",
        reports[0].disposition,
        reports[0].detail
    );
    let current = rig.current_pass(user);
    rig.check_pass_file(&key, user, &current).await;
    assert!(rig.dead_letters().await.is_empty());
    rig.assert_no_pass_leaked(&[]).await;
    rig.sim.shutdown().await;
}
