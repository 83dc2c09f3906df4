//! The ingest against real S3 and SQS (the moto server) with real aws-sdk-rust clients: files
//! uploaded to a bucket, the handler called with real S3 event JSON, continuations taken from a
//! FIFO control queue the way Lambda's event source does, and the work queue and DLQ read back.

use e2e_tests::backpressure::{Backpressure, Faults};
use e2e_tests::collector::Collector;
use e2e_tests::{
    create_bucket, create_fifo_queue, create_queues, drain, moto_endpoint, queue_arn, repo_path,
    s3_client, s3_put_event, sdk_config, sqs_event_json, unique, Queues, Received,
};
use mfa_preload_core::aws::s3::ObjectStore;
use mfa_preload_core::ingest::checkpoints::FileRef;
use mfa_preload_core::ingest::driver::S3Source;
use mfa_preload_core::ingest::engine::ByteStream;
use mfa_preload_core::ingest::{
    report_key, Ingest, IngestConfig, Opened, Report, S3Sources, Source, SourceError,
    SourceFactory, Status,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};

struct Rig {
    cfg: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    queues: Queues,
    control_url: String,
    control_arn: String,
}

async fn rig(tag: &str) -> Rig {
    rig_with_control_visibility(tag, 1).await
}

/// A rig whose control queue has the given visibility timeout (seconds).
async fn rig_with_control_visibility(tag: &str, control_visibility: u32) -> Rig {
    let cfg = sdk_config().await;
    let s3 = s3_client(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let bucket = unique(tag).to_lowercase();
    create_bucket(&s3, &bucket).await;
    let queues = create_queues(&sqs, &unique(tag), 5, 30).await;
    let control_url =
        create_fifo_queue(&sqs, &unique(&format!("{tag}-control")), control_visibility).await;
    let control_arn = queue_arn(&sqs, &control_url).await;
    Rig {
        cfg,
        s3,
        sqs,
        bucket,
        queues,
        control_url,
        control_arn,
    }
}

impl Rig {
    fn config(&self, env: &[(&str, &str)]) -> IngestConfig {
        let mut vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert("QUEUE_URL".into(), self.queues.queue_url.clone());
        vars.insert("DLQ_URL".into(), self.queues.dlq_url.clone());
        vars.insert("CONTROL_QUEUE_URL".into(), self.control_url.clone());
        vars.entry("INGEST_SAFETY_MARGIN_SECONDS".into())
            .or_insert_with(|| "1".into());
        // As the control queue's 1 s visibility: a failed continuation comes back at once.
        vars.entry("CONTINUATION_RETRY_SECONDS".into())
            .or_insert_with(|| "1".into());
        IngestConfig::from_lookup(|k| vars.get(k).cloned()).expect("config")
    }

    fn store(&self) -> ObjectStore {
        ObjectStore::new(self.s3.clone())
    }

    fn ingest(&self, env: &[(&str, &str)]) -> Ingest {
        Ingest::new(self.store(), self.sqs.clone(), self.config(env))
    }

    async fn upload(&self, key: &str, bytes: Vec<u8>) -> (String, u64) {
        let size = bytes.len() as u64;
        let out = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .expect("upload");
        (out.e_tag.expect("etag").trim_matches('"').to_string(), size)
    }

    fn event(&self, key: &str, size: u64, etag: &str, sequencer: &str) -> Value {
        let mut e = s3_put_event(&self.bucket, key, size, etag);
        e["Records"][0]["s3"]["object"]["sequencer"] = Value::String(sequencer.to_string());
        e
    }

    /// Runs continuation messages like Lambda's SQS event source (batch size 1) until the file's
    /// report is final. Returns the number of continuation invocations (retries included).
    async fn pump<F: SourceFactory>(&self, ingest: &Ingest<F>, key: &str) -> u32 {
        self.pump_counting(ingest, key).await.0
    }

    /// [`Rig::pump`], also counting the continuations that failed (and were redelivered).
    async fn pump_counting<F: SourceFactory>(&self, ingest: &Ingest<F>, key: &str) -> (u32, u32) {
        let mut failures = 0;
        let mut invocations = 0;
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "ingest did not finish in 10 minutes"
            );
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.control_url)
                .max_number_of_messages(1)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive control");
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                if self
                    .report(key)
                    .await
                    .is_some_and(|r| r.status != Status::Running)
                {
                    return (invocations, failures);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            invocations += 1;
            let event = sqs_event_json(&self.control_arn, &msgs);
            let deadline = Instant::now() + Duration::from_secs(900);
            let resp = ingest
                .handle_lambda_event(event, deadline)
                .await
                .expect("SQS events always get a batch response");
            let failed = resp["batchItemFailures"]
                .as_array()
                .map(|a| !a.is_empty())
                .unwrap_or(false);
            if failed {
                failures += 1;
            } else {
                let handle = msgs[0].receipt_handle.clone().expect("receipt");
                self.sqs
                    .delete_message()
                    .queue_url(&self.control_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    async fn report(&self, key: &str) -> Option<Report> {
        self.store()
            .get_json::<Report>(&self.bucket, &report_key(key))
            .await
            .expect("read report")
    }

    /// Consumers reading the work queue and the DLQ while the ingest runs, and an SQS client for
    /// the ingest whose sends to the work queue wait while it holds `QUEUE_LIMIT` messages.
    async fn consumers(&self) -> (Consumers, aws_sdk_sqs::Client) {
        let (consumers, sqs, _) = self.consumers_with(QUEUE_LIMIT, true).await;
        (consumers, sqs)
    }

    /// [`Rig::consumers`] with the pass-through's faults at hand; the ingest's SQS client does not
    /// retry on its own (the ingest's sender does), so a refused call is one attempt.
    async fn faulty_consumers(&self) -> (Consumers, aws_sdk_sqs::Client, Arc<Faults>) {
        self.consumers_with(QUEUE_LIMIT, false).await
    }

    async fn consumers_with(
        &self,
        limit: u64,
        sdk_retries: bool,
    ) -> (Consumers, aws_sdk_sqs::Client, Arc<Faults>) {
        let bp = Backpressure::start(
            &moto_endpoint(),
            self.sqs.clone(),
            &self.queues.queue_url,
            limit,
        )
        .await
        .expect("SQS pass-through");
        let mut conf =
            aws_sdk_sqs::config::Builder::from(&self.cfg).endpoint_url(bp.endpoint_url());
        if !sdk_retries {
            conf =
                conf.retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
        }
        let faults = bp.faults();
        let consumers = Consumers {
            queue: Collector::start(&self.sqs, &self.queues.queue_url),
            dlq: Collector::start(&self.sqs, &self.queues.dlq_url),
            backpressure: bp,
        };
        (
            consumers,
            aws_sdk_sqs::Client::from_conf(conf.build()),
            faults,
        )
    }

    async fn outputs(&self) -> (Vec<Value>, Vec<Received>) {
        let queue: Vec<Value> = drain(&self.sqs, &self.queues.queue_url)
            .await
            .into_iter()
            .map(|r| serde_json::from_str(&r.body).expect("request JSON"))
            .collect();
        let dlq = drain(&self.sqs, &self.queues.dlq_url).await;
        (queue, dlq)
    }
}

/// Most messages the work queue may hold before the ingest's sends wait (see `consumers`).
const QUEUE_LIMIT: u64 = 500;

struct Consumers {
    queue: Collector,
    dlq: Collector,
    backpressure: Backpressure,
}

impl Consumers {
    /// An S3 client whose requests go through the pass-through (and its faults).
    fn s3_through(&self, rig: &Rig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&rig.cfg)
                .endpoint_url(self.backpressure.endpoint_url())
                .force_path_style(true)
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
                .build(),
        )
    }

    /// Everything the queue and the DLQ received, once the ingest is done.
    async fn finish(self) -> (Vec<Value>, Vec<Received>) {
        let queue = self
            .queue
            .finish()
            .await
            .into_iter()
            .map(|r| serde_json::from_str(&r.body).expect("request JSON"))
            .collect();
        (queue, self.dlq.finish().await)
    }
}

fn schema_validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(repo_path("schema/request.v1.schema.json")).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// SQS's character set (its documentation): moto does not enforce it, so the tests check.
fn sqs_takes(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn assert_sqs_text(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| !sqs_takes(*c)) {
        panic!(
            "{what} holds U+{:04X}, which SQS refuses: {text:?}",
            c as u32
        );
    }
}

/// Every data row in exactly one place; returns (row -> reason) for the rejected ones. Every
/// body and attribute received is text SQS takes.
fn account(expected_rows: &[u64], queue: &[Value], dlq: &[Received]) -> BTreeMap<u64, String> {
    for m in queue {
        assert_sqs_text("a request", &m.to_string());
    }
    for d in dlq {
        assert_sqs_text("a DLQ body", &d.body);
        for (k, v) in &d.attributes {
            assert_sqs_text("a DLQ attribute", &format!("{k}{v}"));
        }
    }
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for m in queue {
        let row = m["row"].as_u64().expect("request has a row");
        *seen.entry(row).or_default() += 1;
    }
    let mut rejected = BTreeMap::new();
    for d in dlq {
        let body: Value = serde_json::from_str(&d.body).expect("DLQ JSON");
        let row = body["row"].as_u64().expect("DLQ entry has a row");
        *seen.entry(row).or_default() += 1;
        let reason = d
            .attributes
            .get("reason")
            .cloned()
            .expect("reason attribute");
        assert_eq!(
            body["reason"].as_str(),
            Some(reason.as_str()),
            "attribute and body agree"
        );
        assert!(
            d.attributes.get("detail").is_some_and(|x| !x.is_empty()),
            "detail attribute"
        );
        assert_eq!(body["stage"], "ingest");
        rejected.insert(row, reason);
    }
    let twice: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(r, _)| *r)
        .collect();
    assert!(twice.is_empty(), "rows sent more than once: {twice:?}");
    let got: HashSet<u64> = seen.keys().copied().collect();
    let want: HashSet<u64> = expected_rows.iter().copied().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing rows {missing:?}, unexpected rows {extra:?}"
    );
    rejected
}

/// The rows of the messages, each of which must appear once across the queue and the DLQ.
fn rows_once(queue: &[Value], dlq: &[Received]) -> HashSet<u64> {
    let mut rows = HashSet::new();
    let dlq_rows = dlq.iter().map(|d| {
        let body: Value = serde_json::from_str(&d.body).expect("DLQ JSON");
        body["row"].as_u64().expect("DLQ entry has a row")
    });
    for row in queue
        .iter()
        .map(|m| m["row"].as_u64().expect("request has a row"))
        .chain(dlq_rows)
    {
        assert!(rows.insert(row), "row {row} sent more than once");
    }
    rows
}

fn check_report(r: &Report, queue: usize, dlq: usize) {
    assert_eq!(r.status, Status::Complete, "{r:?}");
    assert_eq!(r.enqueued as usize, queue);
    assert_eq!(r.rejected_total as usize, dlq);
    assert_eq!(r.rows_read, r.enqueued + r.rejected_total);
    assert_eq!(r.rejected.values().sum::<u64>(), r.rejected_total);
    assert_eq!(r.pending, 0);
}

const MIXED: &str = "UPN,Mobile,AlternateMobile,OfficePhone,Email,ForcedUpdate,SmsSignIn\n\
a.one@contoso.com,+31 6 1234 5678,,,a.one@example.org,yes,enable\n\
b.two@contoso.com,0031 6 1234 5679,+31 6 1234 5680,,,no,\n\
bad/user@contoso.com,+31 612345681,,,,no,\n\
c.three@contoso.com,call me,,,,no,\n\
A.ONE@contoso.com,+31 612345682,,,,no,\n\
d.four@contoso.com,+31 612345678,,,,no,enable\n\
\n\
e.five@contoso.com,+1 (201) 555-0123 ext. 7,,,e@x,no,\n\
f.six@contoso.com,+44 7400 123456,,+44 121 234 5678,,maybe,\n\
g.seven@contoso.com,+61 412 345 678,,,,true,disable\n";

#[tokio::test]
async fn a_csv_upload_is_ingested_with_every_row_accounted_once() {
    let rig = rig("ingest-small").await;
    let key = "incoming/Team A+B/users 1.csv";
    let (etag, size) = rig.upload(key, MIXED.as_bytes().to_vec()).await;
    let ingest = rig.ingest(&[]);
    let event = rig.event(key, size, &etag, "0001");
    // The key arrives URL-encoded with '+' for space.
    assert!(event["Records"][0]["s3"]["object"]["key"]
        .as_str()
        .unwrap_or_default()
        .contains("Team+A%2BB/users+1.csv"));
    let out = ingest
        .handle_lambda_event(event.clone(), Instant::now() + Duration::from_secs(900))
        .await
        .expect("ingest");
    assert!(out.to_string().contains("Finished(Complete)"), "{out}");
    assert_eq!(
        rig.pump(&ingest, key).await,
        0,
        "a small file needs no continuation"
    );
    let (queue, dlq) = rig.outputs().await;
    let rows: Vec<u64> = vec![2, 3, 4, 5, 6, 7, 9, 10, 11];
    let rejected = account(&rows, &queue, &dlq);
    let want: BTreeMap<u64, String> = [
        (4, "invalid_user"),
        (5, "invalid_phone_number"),
        (6, "duplicate_user_in_file"),
        (7, "sms_signin_number_not_unique"),
        (9, "invalid_email"),
        (10, "invalid_row"),
    ]
    .into_iter()
    .map(|(r, s)| (r, s.to_string()))
    .collect();
    assert_eq!(rejected, want);
    let report = rig
        .report(key)
        .await
        .expect("report written beside the input");
    check_report(&report, queue.len(), dlq.len());
    assert_eq!(report.rows_read, 9);
    assert_eq!(report.continuations, 0);
    assert_eq!(report.rejected.get("duplicate_user_in_file"), Some(&1));
    let validator = schema_validator();
    for m in &queue {
        assert!(
            validator.is_valid(m),
            "message does not match the published schema: {m}"
        );
        assert_eq!(m["job"]["key"], key);
        assert_eq!(m["job"]["etag"], etag);
    }
    let a = queue.iter().find(|m| m["row"] == 2).expect("row 2");
    assert_eq!(a["methods"]["mobile"], "+31 612345678");
    assert_eq!(a["methods"]["email"], "a.one@example.org");
    assert_eq!(a["smsSignIn"], "enable");
    assert_eq!(a["policy"]["forcedUpdate"], true);
    let b = queue.iter().find(|m| m["row"] == 3).expect("row 3");
    assert_eq!(
        b["methods"]["office"],
        Value::Null,
        "empty cell: present and empty"
    );
    let dup = dlq
        .iter()
        .find(|d| d.attributes.get("row").map(String::as_str) == Some("6"))
        .expect("row 6");
    assert!(
        dup.attributes["detail"].contains("row 2"),
        "{:?}",
        dup.attributes
    );

    // The same event again (S3 delivers at least once): nothing more is sent.
    let again = ingest
        .handle_lambda_event(event, Instant::now() + Duration::from_secs(900))
        .await
        .expect("again");
    assert!(again.to_string().contains("AlreadyHandled"), "{again}");
    let (queue, dlq) = rig.outputs().await;
    assert!(queue.is_empty() && dlq.is_empty());
}

#[tokio::test]
async fn the_sample_exports_ingest_with_their_settings() {
    /// File name, environment, rows enqueued, rows rejected, line of the first data row.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u64, u64, u64);
    let cases: Vec<Case> = vec![
        ("community-format.csv", vec![], 5, 0, 2),
        ("excel-de-semicolon.csv", vec![("DEFAULT_COUNTRY", "DE")], 5, 1, 2),
        (
            "legacy-sms-mfa-export.csv",
            vec![("COLUMN_MAPPING", "Username=user,Phone=mobile,Backup Phone=alternateMobile,Desk Phone=office,Status=ignore")],
            12,
            2,
            2,
        ),
        ("powershell-graph-users.csv", vec![], 3, 1, 3),
        ("excel-unicode-text.csv", vec![], 3, 2, 2),
        ("excel-sep-line.csv", vec![("DEFAULT_COUNTRY", "NL")], 3, 0, 3),
    ];
    let validator = schema_validator();
    for (file, env, enqueued, rejected, first_row) in cases {
        let rig = rig("ingest-samples").await;
        let bytes = std::fs::read(repo_path(&format!("tests/samples/{file}"))).expect("sample");
        let key = format!("incoming/{file}");
        let (etag, size) = rig.upload(&key, bytes).await;
        let ingest = rig.ingest(&env);
        ingest
            .handle_lambda_event(
                rig.event(&key, size, &etag, "01"),
                Instant::now() + Duration::from_secs(900),
            )
            .await
            .expect("ingest");
        let (queue, dlq) = rig.outputs().await;
        let report = rig.report(&key).await.expect("report");
        check_report(&report, queue.len(), dlq.len());
        assert_eq!(
            (report.enqueued, report.rejected_total),
            (enqueued, rejected),
            "{file}: {report:?}"
        );
        let rows: Vec<u64> = (first_row..first_row + report.rows_read).collect();
        account(&rows, &queue, &dlq);
        assert!(queue.iter().all(|m| validator.is_valid(m)), "{file}");
    }
}

#[tokio::test]
async fn an_unusable_header_rejects_the_whole_file_and_own_prefixes_are_ignored() {
    let rig = rig("ingest-header").await;
    let key = "incoming/typo.csv";
    let (etag, size) = rig
        .upload(
            key,
            b"UPN,Mobil,Fax\na@contoso.com,+31 612345678,\n".to_vec(),
        )
        .await;
    let ingest = rig.ingest(&[]);
    ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "01"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("ingest");
    let report = rig.report(key).await.expect("report");
    assert_eq!(report.status, Status::Rejected);
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains("'Mobil'") && error.contains("'Fax'"),
        "{error}"
    );
    assert_eq!(report.enqueued, 0);
    let (queue, dlq) = rig.outputs().await;
    assert!(
        queue.is_empty() && dlq.is_empty(),
        "nothing is enqueued from a rejected file"
    );

    // A file without a header: refused, and the report does not echo its numbers.
    let key = "incoming/no-header.csv";
    let (etag, size) = rig
        .upload(
            key,
            b"someone@contoso.com,+31 612345678,+31 201234567\n".to_vec(),
        )
        .await;
    ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "01"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("ingest");
    let report = rig.report(key).await.expect("report");
    assert_eq!(report.status, Status::Rejected);
    let text = serde_json::to_string(&report).expect("JSON");
    assert!(text.contains("not a header"), "{text}");
    for number in ["612345678", "201234567"] {
        assert!(!text.contains(number), "{text}");
    }
    let (queue, dlq) = rig.outputs().await;
    assert!(queue.is_empty() && dlq.is_empty());

    // Objects under the report prefix (and the checkpoint prefix) are not inputs.
    for own in [
        "reports/incoming/typo.csv.ingest.json",
        "checkpoints/x/y/claim",
    ] {
        let (etag, size) = rig.upload(own, b"UPN\na@contoso.com\n".to_vec()).await;
        let out = ingest
            .handle_lambda_event(
                rig.event(own, size, &etag, "02"),
                Instant::now() + Duration::from_secs(900),
            )
            .await
            .expect("ignored");
        assert!(out.to_string().contains("Ignored"), "{out}");
    }
    let (queue, dlq) = rig.outputs().await;
    assert!(queue.is_empty() && dlq.is_empty());
}

/// Reads the object through S3, but the stream of one chosen open fails after some bytes: a
/// continuation that dies mid-file (and is retried by SQS).
struct FlakySources {
    inner: S3Sources,
    opens: Arc<AtomicUsize>,
    /// Injected read errors returned.
    fired: Arc<AtomicUsize>,
    fail_open: usize,
    fail_after: usize,
}

struct FlakySource {
    inner: S3Source,
    opens: Arc<AtomicUsize>,
    fired: Arc<AtomicUsize>,
    fail_open: usize,
    fail_after: usize,
}

impl SourceFactory for FlakySources {
    type S = FlakySource;
    fn source(&self, file: &FileRef) -> FlakySource {
        FlakySource {
            inner: self.inner.source(file),
            opens: self.opens.clone(),
            fired: self.fired.clone(),
            fail_open: self.fail_open,
            fail_after: self.fail_after,
        }
    }
}

impl Source for FlakySource {
    async fn open_at(&self, offset: u64) -> Result<Opened, SourceError> {
        let opened = self.inner.open_at(offset).await?;
        let n = self.opens.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_open {
            Ok(Opened {
                stream: Box::new(Failing {
                    inner: opened.stream,
                    left: self.fail_after,
                    fired: self.fired.clone(),
                }),
                size: opened.size,
            })
        } else {
            Ok(opened)
        }
    }
}

struct Failing {
    inner: ByteStream,
    left: usize,
    fired: Arc<AtomicUsize>,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            self.fired.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset (injected)",
            )));
        }
        let want = buf.remaining().min(self.left);
        let mut tmp = vec![0u8; want];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                buf.put_slice(rb.filled());
                self.left -= n;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// A large file of `n` rows: every 997th row (past 5,000) repeats the user of a row 5,000 rows
/// earlier (so across continuation boundaries), every 1,009th row (past 2,000) asks SMS sign-in
/// for the number a row 1,838 rows earlier claimed for SMS sign-in, every 101st row has a bad number. The expected
/// rejections come from the exact rule, applied here row by row.
fn big_file(n: u64) -> (Vec<u8>, HashMap<u64, &'static str>) {
    let mut out = String::with_capacity(n as usize * 48);
    out.push_str("UPN,Mobile,Email,SmsSignIn\n");
    let mut expected = HashMap::new();
    let mut users = HashSet::new();
    let mut claimed = HashSet::new();
    let mobile = |i: u64| format!("+31 6{:08}", 10_000_000 + i);
    for i in 0..n {
        let row = i + 2;
        let (user, number, sms, valid) = if i > 5_000 && i % 997 == 0 {
            (
                format!("User{}@Contoso.com", i - 5_000),
                mobile(i),
                false,
                true,
            )
        } else if i % 1009 == 180 {
            (format!("user{i}@contoso.com"), mobile(i), true, true)
        } else if i > 2_000 && i % 1009 == 0 {
            (
                format!("user{i}@contoso.com"),
                mobile(i - 1_838),
                true,
                true,
            )
        } else if i % 101 == 0 {
            (
                format!("user{i}@contoso.com"),
                "+31 6 1234".to_string(),
                false,
                false,
            )
        } else {
            (format!("user{i}@contoso.com"), mobile(i), false, true)
        };
        out.push_str(&format!(
            "{user},{number},,{}\n",
            if sms { "enable" } else { "" }
        ));
        if !users.insert(user.to_lowercase()) {
            expected.insert(row, "duplicate_user_in_file");
        } else if !valid {
            expected.insert(row, "invalid_phone_number");
        } else if sms && !claimed.insert(number) {
            expected.insert(row, "sms_signin_number_not_unique");
        }
    }
    (out.into_bytes(), expected)
}

#[tokio::test]
async fn a_large_file_runs_over_many_continuations_with_no_row_lost_or_doubled() {
    let rig = rig("ingest-big").await;
    let n = 80_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/migration/legacy export.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    // Each invocation stops after 10 s: against moto that is a few thousand rows, so the file
    // takes more than a dozen continuations (200,000 rows took close to the 10-minute guard on
    // two cores; 80,000 keep many continuations at well under half of it).
    let env = [("INGEST_TIME_BUDGET_SECONDS", "10")];
    let (consumers, ingest_sqs) = rig.consumers().await;
    // The second continuation's stream breaks after 100 kB; SQS redelivers it and the retry goes
    // on from its progress record.
    let opens = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let flaky = FlakySources {
        inner: S3Sources(rig.store()),
        opens: opens.clone(),
        fired: fired.clone(),
        fail_open: 3,
        fail_after: 100_000,
    };
    let ingest = Ingest::with_sources(rig.store(), ingest_sqs, flaky, rig.config(&env));
    let first = ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "0100"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("first invocation");
    assert!(first.to_string().contains("Continued"), "{first}");
    let running = rig
        .report(key)
        .await
        .expect("a partial report while continuations run");
    assert_eq!(running.status, Status::Running);
    assert!(running.rows_read > 0 && running.rows_read < n);
    let (invocations, failures) = rig.pump_counting(&ingest, key).await;
    assert_eq!(
        fired.load(Ordering::SeqCst),
        1,
        "the injected read error was returned once"
    );
    assert_eq!(
        failures, 1,
        "the continuation it hit failed, and only that one"
    );
    assert!(
        opens.load(Ordering::SeqCst) > 3,
        "the failing continuation was retried"
    );
    let report = rig.report(key).await.expect("report");
    assert!(
        report.continuations >= 5,
        "only {} continuations",
        report.continuations
    );
    assert!(
        report.invocations > report.continuations + 1,
        "the retry counts as an invocation: {report:?}"
    );
    let (queue, dlq) = consumers.finish().await;
    check_report(&report, queue.len(), dlq.len());
    assert_eq!(report.rows_read, n);
    let rows: Vec<u64> = (2..n + 2).collect();
    let rejected = account(&rows, &queue, &dlq);
    let want: BTreeMap<u64, String> = expected.iter().map(|(r, s)| (*r, s.to_string())).collect();
    assert_eq!(rejected.len(), want.len());
    assert!(rejected == want, "rejections differ from the expected ones");
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for r in want.values() {
        *by_reason.entry(r.clone()).or_default() += 1;
    }
    assert_eq!(report.rejected, by_reason);
    for reason in [
        "duplicate_user_in_file",
        "sms_signin_number_not_unique",
        "invalid_phone_number",
    ] {
        assert!(
            by_reason.contains_key(reason),
            "the file exercises {reason}"
        );
    }
    eprintln!(
        "{n} rows: {} continuation invocations, report {report:?}",
        invocations
    );
    // Checkpoints are cleaned up once the file is complete.
    let left = rig
        .s3
        .list_objects_v2()
        .bucket(&rig.bucket)
        .prefix("checkpoints/")
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count(), Some(0), "{:?}", left.contents());
}

#[tokio::test]
async fn an_object_replaced_during_ingest_stops_the_old_ingest_and_the_new_one_runs_on_its_own() {
    let rig = rig("ingest-replaced").await;
    let (v1, _) = big_file(10_000);
    let key = "incoming/replaced.csv";
    let (etag1, size1) = rig.upload(key, v1).await;
    let env = [("INGEST_TIME_BUDGET_SECONDS", "0.5")];
    let (consumers, ingest_sqs) = rig.consumers().await;
    let ingest = Ingest::new(rig.store(), ingest_sqs.clone(), rig.config(&env));
    let first = ingest
        .handle_lambda_event(
            rig.event(key, size1, &etag1, "0200"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("first");
    assert!(first.to_string().contains("Continued"), "{first}");
    // The administrator uploads a corrected file meanwhile.
    let (etag2, size2) = rig.upload(key, MIXED.as_bytes().to_vec()).await;
    assert_ne!(etag1, etag2);
    rig.pump(&ingest, key).await;
    let old = rig.report(key).await.expect("report");
    assert_eq!(old.status, Status::Superseded, "{old:?}");
    assert_eq!(old.etag, etag1);
    assert!(
        old.error
            .as_deref()
            .unwrap_or_default()
            .contains("replaced"),
        "{old:?}"
    );
    let (queue_old, dlq_old) = consumers.finish().await;
    // Exactly what the old report counts: every row it read is on the queue or the DLQ once,
    // except the suspected duplicates still waiting for the confirm pass (`pending`), which are
    // rows the file really repeats; nothing past the rows it read.
    assert_eq!(queue_old.len() as u64, old.enqueued, "{old:?}");
    assert_eq!(dlq_old.len() as u64, old.rejected_total, "{old:?}");
    assert_eq!(
        old.rows_read,
        old.enqueued + old.rejected_total + old.pending
    );
    let (_, expected_v1) = big_file(10_000);
    let read: Vec<u64> = (2..2 + old.rows_read).collect();
    let sent = rows_once(&queue_old, &dlq_old);
    let unsent: Vec<u64> = read.iter().copied().filter(|r| !sent.contains(r)).collect();
    assert!(
        sent.iter().all(|r| read.contains(r)),
        "rows past those read"
    );
    assert_eq!(unsent.len() as u64, old.pending);
    assert!(
        unsent.iter().all(|r| expected_v1.contains_key(r)),
        "only repeated rows wait for the confirm pass: {unsent:?}"
    );
    assert!(queue_old.iter().all(|m| m["job"]["etag"] == etag1.as_str()));
    // The new version's own event.
    let (consumers, ingest_sqs) = rig.consumers().await;
    let ingest = Ingest::new(rig.store(), ingest_sqs, rig.config(&env));
    ingest
        .handle_lambda_event(
            rig.event(key, size2, &etag2, "0201"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("second");
    rig.pump(&ingest, key).await;
    let new = rig.report(key).await.expect("report");
    assert_eq!(
        (new.status, new.etag.as_str()),
        (Status::Complete, etag2.as_str())
    );
    let (queue, dlq) = consumers.finish().await;
    check_report(&new, queue.len(), dlq.len());
    assert!(queue.iter().all(|m| m["job"]["etag"] == etag2.as_str()));
}

/// An ingest whose SQS sends go through the fault pass-through: two calls in flight, three
/// attempts a batch with short back-offs, so a stretch of refused calls fails an invocation in
/// well under a second.
fn faulty_ingest(
    rig: &Rig,
    sqs: aws_sdk_sqs::Client,
    env: &[(&str, &str)],
    progress_rows: Option<u64>,
) -> Ingest {
    faulty_ingest_on(rig, rig.store(), sqs, env, progress_rows)
}

fn faulty_ingest_on(
    rig: &Rig,
    store: ObjectStore,
    sqs: aws_sdk_sqs::Client,
    env: &[(&str, &str)],
    progress_rows: Option<u64>,
) -> Ingest {
    let mut env = env.to_vec();
    env.push(("INGEST_MAX_IN_FLIGHT", "2"));
    let mut config = rig.config(&env);
    if let Some(rows) = progress_rows {
        config.progress_rows = rows;
    }
    config.send_attempts = 3;
    config.send_backoff = Duration::from_millis(50);
    Ingest::new(store, sqs, config)
}

/// Every row of a `big_file(n)` once, with the rejections the exact rule gives.
fn check_big_file(
    n: u64,
    expected: &HashMap<u64, &'static str>,
    report: &Report,
    queue: &[Value],
    dlq: &[Received],
) {
    check_report(report, queue.len(), dlq.len());
    assert_eq!(report.rows_read, n);
    let rows: Vec<u64> = (2..n + 2).collect();
    let rejected = account(&rows, queue, dlq);
    let want: BTreeMap<u64, String> = expected.iter().map(|(r, s)| (*r, s.to_string())).collect();
    assert!(rejected == want, "rejections differ from the expected ones");
}

#[tokio::test]
async fn a_failed_first_invocation_releases_its_claim_and_the_retried_event_completes_the_file() {
    let rig = rig("ingest-first-fails").await;
    let n = 3_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/first-fails.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let ingest = faulty_ingest(&rig, ingest_sqs, &[], None);
    // SQS takes the first five batches, then refuses six calls in a row: a batch runs out of
    // attempts and the invocation fails part-way through the file.
    faults.refuse_sends(5, 6);
    let event = rig.event(key, size, &etag, "0300");
    let deadline = || Instant::now() + Duration::from_secs(900);
    let first = ingest.handle_lambda_event(event.clone(), deadline()).await;
    assert!(first.is_err(), "the first invocation fails: {first:?}");
    assert!(
        faults.refused_calls() >= 5,
        "the refusals fired: {}",
        faults.refused_calls()
    );
    let progress = rig
        .store()
        .get_bytes(
            &rig.bucket,
            &FileRef::new(&rig.bucket, key, &etag, Some("0300")).progress_key(0),
        )
        .await
        .expect("read progress");
    assert!(progress.is_some(), "the failure recorded what was sent");
    assert!(
        rig.report(key).await.is_none(),
        "no report yet: the file is not done"
    );
    // Lambda retries the event: the retry takes the file up where the first left it.
    let retry = ingest
        .handle_lambda_event(event.clone(), deadline())
        .await
        .expect("the retry");
    assert!(retry.to_string().contains("Finished(Complete)"), "{retry}");
    let report = rig.report(key).await.expect("report");
    assert_eq!(report.invocations, 2, "{report:?}");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &expected, &report, &queue, &dlq);
}

#[tokio::test]
async fn only_the_owner_releases_a_claim() {
    let rig = rig("ingest-claim-owner").await;
    let n = 3_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/claim-owner.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let ingest = Arc::new(faulty_ingest(&rig, ingest_sqs, &[], None));
    faults.refuse_sends(5, 6);
    let event = rig.event(key, size, &etag, "0400");
    let deadline = || Instant::now() + Duration::from_secs(900);
    let running = {
        let (ingest, event) = (ingest.clone(), event.clone());
        tokio::spawn(async move { ingest.handle_lambda_event(event, deadline()).await })
    };
    // While it struggles with SQS, another invocation takes the file over (as after an expired
    // claim): the failing one must leave that claim alone.
    let started = Instant::now();
    while faults.refused_calls() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no refusal");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claim_key = FileRef::new(&rig.bucket, key, &etag, Some("0400")).claim_key();
    let theirs = |expires_ms: u64| {
        serde_json::to_vec(
            &serde_json::json!({"owner": "another-invocation", "expiresMs": expires_ms}),
        )
        .expect("JSON")
    };
    let far = 4_000_000_000_000u64;
    rig.store()
        .put_bytes(&rig.bucket, &claim_key, theirs(far), "application/json")
        .await
        .expect("their claim");
    let first = running.await.expect("task");
    assert!(first.is_err(), "{first:?}");
    let claim: Value = rig
        .store()
        .get_json(&rig.bucket, &claim_key)
        .await
        .expect("read claim")
        .expect("claim");
    assert_eq!(claim["owner"], "another-invocation", "{claim}");
    assert_eq!(claim["expiresMs"], far, "{claim}");
    let again = ingest
        .handle_lambda_event(event.clone(), deadline())
        .await
        .expect("while the other holds it");
    assert!(again.to_string().contains("AlreadyHandled"), "{again}");
    // The other invocation dies without a word; its claim expires and a retry completes the file.
    rig.store()
        .put_bytes(&rig.bucket, &claim_key, theirs(1), "application/json")
        .await
        .expect("expired claim");
    let done = ingest
        .handle_lambda_event(event, deadline())
        .await
        .expect("after expiry");
    assert!(done.to_string().contains("Finished(Complete)"), "{done}");
    let report = rig.report(key).await.expect("report");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &expected, &report, &queue, &dlq);
}

#[tokio::test]
async fn a_continuation_that_fails_part_way_is_redelivered_and_completes_the_file() {
    let rig = rig("ingest-continuation-fails").await;
    let n = 3_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/continuation-fails.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    // Each invocation reads at least one step of 500 rows, then hands over.
    let ingest = faulty_ingest(
        &rig,
        ingest_sqs,
        &[("INGEST_TIME_BUDGET_SECONDS", "0.2")],
        Some(500),
    );
    let first = ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "0500"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("first invocation");
    assert!(first.to_string().contains("Continued"), "{first}");
    assert_eq!(faults.refused_calls(), 0);
    // The first continuation gets three batches through, then SQS refuses six calls.
    faults.refuse_sends(3, 6);
    let (_, failures) = rig.pump_counting(&ingest, key).await;
    assert!(
        faults.refused_calls() >= 5,
        "the refusals fired: {}",
        faults.refused_calls()
    );
    assert!(failures >= 1, "a continuation failed and was redelivered");
    let report = rig.report(key).await.expect("report");
    assert!(report.continuations >= 2, "{report:?}");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &expected, &report, &queue, &dlq);
}

#[tokio::test]
async fn a_failed_continuation_is_tried_again_in_seconds_not_after_the_visibility_timeout() {
    // The control queue's visibility timeout is an hour (Lambda's is 6 x 900 s); the failed
    // continuation must come back after CONTINUATION_RETRY_SECONDS.
    let rig = rig_with_control_visibility("ingest-continuation-retry", 3_600).await;
    let n = 2_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/continuation-retry.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let ingest = faulty_ingest(
        &rig,
        ingest_sqs,
        &[
            ("INGEST_TIME_BUDGET_SECONDS", "0.2"),
            ("CONTINUATION_RETRY_SECONDS", "1"),
        ],
        Some(500),
    );
    let first = ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "0600"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("first invocation");
    assert!(first.to_string().contains("Continued"), "{first}");
    // Every send of the first continuation is refused.
    faults.refuse_sends(0, 1_000);
    let receive = |wait: i32| {
        rig.sqs
            .receive_message()
            .queue_url(&rig.control_url)
            .max_number_of_messages(1)
            .wait_time_seconds(wait)
            .send()
    };
    let msgs = receive(5)
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(msgs.len(), 1, "the continuation is queued");
    let resp = ingest
        .handle_lambda_event(
            sqs_event_json(&rig.control_arn, &msgs),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("batch response");
    assert_eq!(
        resp["batchItemFailures"].as_array().map(Vec::len),
        Some(1),
        "the continuation failed: {resp}"
    );
    assert!(faults.refused_calls() >= 1, "the refusals fired");
    faults.refuse_sends(0, 0);
    let failed_at = Instant::now();
    let mut again = Vec::new();
    while again.is_empty() && failed_at.elapsed() < Duration::from_secs(20) {
        again = receive(2)
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
    }
    assert_eq!(
        again.len(),
        1,
        "the failed continuation is visible again within 20 s, not after the queue's hour"
    );
    // Put it back at once and let the pump finish the file.
    rig.sqs
        .change_message_visibility()
        .queue_url(&rig.control_url)
        .receipt_handle(again[0].receipt_handle.clone().expect("receipt"))
        .visibility_timeout(0)
        .send()
        .await
        .expect("release");
    rig.pump(&ingest, key).await;
    let report = rig.report(key).await.expect("report");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &expected, &report, &queue, &dlq);
}

#[tokio::test]
async fn files_not_named_csv_get_a_report_and_any_case_of_csv_is_read() {
    let rig = rig("ingest-suffix").await;
    let ingest = rig.ingest(&[]);
    let run = |key: &'static str, bytes: &'static [u8]| {
        let rig = &rig;
        let ingest = &ingest;
        async move {
            let (etag, size) = rig.upload(key, bytes.to_vec()).await;
            ingest
                .handle_lambda_event(
                    rig.event(key, size, &etag, "01"),
                    Instant::now() + Duration::from_secs(900),
                )
                .await
                .expect("ingest")
        }
    };
    run(
        "incoming/USERS.CSV",
        b"UserPrincipalName,MobilePhone\na@contoso.com,+31 612345678\n",
    )
    .await;
    let report = rig.report("incoming/USERS.CSV").await.expect("report");
    assert_eq!(report.status, Status::Complete, "{report:?}");
    assert_eq!(report.enqueued, 1);

    run(
        "incoming/users.txt",
        b"UserPrincipalName,MobilePhone\nb@contoso.com,+31 612345679\n",
    )
    .await;
    let report = rig.report("incoming/users.txt").await.expect("report");
    assert_eq!(report.status, Status::Skipped, "{report:?}");
    assert_eq!(report.rows_read, 0);
    assert!(
        report.error.as_deref().unwrap_or_default().contains(".csv"),
        "{report:?}"
    );
    // A folder marker is no file: no report.
    let out = run("incoming/batch-2/", b"").await;
    assert!(out.to_string().contains("Ignored"), "{out}");
    assert!(rig.report("incoming/batch-2/").await.is_none());
    let (queue, dlq) = rig.outputs().await;
    assert_eq!(queue.len(), 1, "only the .CSV file's row is queued");
    assert!(dlq.is_empty());
}

#[tokio::test]
async fn a_retry_sizes_the_duplicate_filter_as_the_first_attempt_did() {
    let rig = rig("ingest-filter-size").await;
    let n = 20_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/filter-size.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let store = ObjectStore::new(consumers.s3_through(&rig));
    let ingest = faulty_ingest_on(&rig, store, ingest_sqs, &[], None);
    // 12,000 rows go out (two progress records), then SQS refuses and the attempt fails: the
    // retry replays those rows without sending them and must decide each one as it did.
    faults.refuse_sends(1_200, 6);
    let event = rig.event(key, size, &etag, "0600");
    let deadline = || Instant::now() + Duration::from_secs(900);
    let first = ingest.handle_lambda_event(event.clone(), deadline()).await;
    assert!(first.is_err(), "{first:?}");
    assert!(faults.refused_calls() >= 5, "{}", faults.refused_calls());
    let file = FileRef::new(&rig.bucket, key, &etag, Some("0600"));
    let progress: Value = rig
        .store()
        .get_json(&rig.bucket, &file.progress_key(0))
        .await
        .expect("read progress")
        .expect("progress record");
    assert_eq!(
        progress["objectSize"], size,
        "the filter's size is recorded: {progress}"
    );
    // The retry meets S3 answering HEAD with errors (as it does now and then): the filter's size
    // must not depend on it (an 8 KiB filter would defer other rows and send some twice).
    faults.fail_heads(&format!("/{}/incoming/", rig.bucket));
    let retry = ingest
        .handle_lambda_event(event, deadline())
        .await
        .expect("the retry");
    assert!(retry.to_string().contains("Finished(Complete)"), "{retry}");
    let report = rig.report(key).await.expect("report");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &expected, &report, &queue, &dlq);
    assert_eq!(
        faults.refused_heads(),
        0,
        "the object's size comes from the read itself, not from a HEAD"
    );
}

/// Rows 10 and 20 of a `big_file`: valid rows whose messages the tests have SQS refuse.
const REFUSED: [u64; 2] = [10, 20];
/// Row 103 of a `big_file`: an invalid number (`i % 101 == 0`), so a DLQ entry.
const BAD_NUMBER_ROW: u64 = 103;

/// The rejections of a `big_file` when the work queue refuses [`REFUSED`].
fn with_refused(expected: &HashMap<u64, &'static str>) -> HashMap<u64, &'static str> {
    let mut want = expected.clone();
    for r in REFUSED {
        assert!(!want.contains_key(&r), "row {r} is a valid row");
        want.insert(r, "invalid_row");
    }
    assert_eq!(want.get(&BAD_NUMBER_ROW), Some(&"invalid_phone_number"));
    want
}

#[tokio::test]
async fn a_row_sqs_refuses_is_dead_lettered_on_its_own() {
    let rig = rig("ingest-refused-row").await;
    let n = 300;
    let (bytes, expected) = big_file(n);
    let key = "incoming/refused-row.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let ingest = faulty_ingest(&rig, ingest_sqs, &[], None);
    // The work queue refuses rows 10 and 20; the DLQ refuses the entries for rows 20 and 103
    // while they carry a copy of the row.
    faults.refuse_rows(&rig.queues.queue_url, &REFUSED, false);
    faults.refuse_rows(&rig.queues.dlq_url, &[REFUSED[1], BAD_NUMBER_ROW], true);
    let out = ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "0700"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("the file does not fail for one message");
    assert!(out.to_string().contains("Finished(Complete)"), "{out}");
    assert_eq!(faults.refused_entries(), 4, "every refusal fired");
    let report = rig.report(key).await.expect("report");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &with_refused(&expected), &report, &queue, &dlq);
    let entry = |row: u64| -> Value {
        dlq.iter()
            .map(|d| serde_json::from_str::<Value>(&d.body).expect("JSON"))
            .find(|b| b["row"] == row)
            .unwrap_or_else(|| panic!("row {row} in the DLQ"))
    };
    let ten = entry(REFUSED[0]);
    assert_eq!(ten["reason"], "invalid_row");
    assert!(
        ten["detail"]
            .as_str()
            .is_some_and(|d| d.contains("SQS refused") && d.contains("InvalidMessageContents")),
        "{ten}"
    );
    assert_eq!(
        ten["request"]["row"], REFUSED[0],
        "the request it would have been: {ten}"
    );
    assert_eq!(ten["request"]["user"], "user8@contoso.com");
    let twenty = entry(REFUSED[1]);
    assert_eq!(twenty["reason"], "invalid_row");
    assert!(twenty["request"].is_null(), "{twenty}");
    let bad = entry(BAD_NUMBER_ROW);
    assert_eq!(
        bad["reason"], "invalid_phone_number",
        "its reason is kept: {bad}"
    );
    assert!(bad["request"].is_null(), "{bad}");
    assert!(
        bad["detail"]
            .as_str()
            .is_some_and(|d| d.contains("SQS refused")),
        "{bad}"
    );
}

#[tokio::test]
async fn a_retry_counts_rows_an_earlier_attempt_dead_lettered_instead() {
    let rig = rig("ingest-refused-retry").await;
    let n = 3_000;
    let (bytes, expected) = big_file(n);
    let key = "incoming/refused-retry.csv";
    let (etag, size) = rig.upload(key, bytes).await;
    let (consumers, ingest_sqs, faults) = rig.faulty_consumers().await;
    let ingest = faulty_ingest(&rig, ingest_sqs, &[], None);
    faults.refuse_rows(&rig.queues.queue_url, &REFUSED, false);
    // Rows 10 and 20 go to the DLQ in the first batches; then the attempt fails.
    faults.refuse_sends(5, 6);
    let event = rig.event(key, size, &etag, "0800");
    let deadline = || Instant::now() + Duration::from_secs(900);
    let first = ingest.handle_lambda_event(event.clone(), deadline()).await;
    assert!(first.is_err(), "{first:?}");
    assert!(faults.refused_calls() >= 5 && faults.refused_entries() == 2);
    let retry = ingest
        .handle_lambda_event(event, deadline())
        .await
        .expect("the retry");
    assert!(retry.to_string().contains("Finished(Complete)"), "{retry}");
    assert_eq!(
        faults.refused_entries(),
        2,
        "the retry did not send them again"
    );
    let report = rig.report(key).await.expect("report");
    let (queue, dlq) = consumers.finish().await;
    check_big_file(n, &with_refused(&expected), &report, &queue, &dlq);
}

#[tokio::test]
async fn a_hostile_file_is_accounted_row_by_row_in_messages_sqs_takes() {
    let rig = rig("ingest-hostile").await;
    let mut csv = String::from("UPN,Mobile,ForcedRemoval,Note\n");
    let bad_cells = [
        "\u{0}",
        "\u{7}bell",
        "\u{1B}[31m",
        "\u{FFFE}",
        "\u{FFFF}",
        "a\rb",
        "\u{85}",
    ];
    let mut want: BTreeMap<u64, String> = BTreeMap::new();
    let mut row = 2;
    for (i, bad) in bad_cells.iter().enumerate() {
        // The bad character in the ignored column, then in the user column.
        csv.push_str(&format!(
            "n{i}@contoso.com,+31 6{:08},,{bad}\n",
            40_000_000 + i
        ));
        want.insert(row, "invalid_row".into());
        row += 1;
        csv.push_str(&format!(
            "u{i}{bad}@contoso.com,+31 6{:08},,\n",
            41_000_000 + i
        ));
        want.insert(row, "invalid_row".into());
        row += 1;
    }
    // A stray quote, then a good row it must not swallow; a CR before the last cell.
    csv.push_str("q@contoso.com,\"+31 612345600,,\n");
    want.insert(row, "invalid_row".into());
    row += 1;
    csv.push_str("good@contoso.com,+31 612345601,,\n");
    row += 1;
    csv.push_str("cr@contoso.com,+31 612345602,\rTrue,\n");
    want.insert(row, "invalid_row".into());
    row += 1;
    let rows: Vec<u64> = (2..row).collect();
    let key = "incoming/hostile.csv";
    let (etag, size) = rig.upload(key, csv.into_bytes()).await;
    let ingest = rig.ingest(&[("COLUMN_MAPPING", "Note=ignore")]);
    ingest
        .handle_lambda_event(
            rig.event(key, size, &etag, "0900"),
            Instant::now() + Duration::from_secs(900),
        )
        .await
        .expect("ingest");
    let (queue, dlq) = rig.outputs().await;
    let report = rig.report(key).await.expect("report");
    check_report(&report, queue.len(), dlq.len());
    assert_eq!(account(&rows, &queue, &dlq), want);
    for d in &dlq {
        let body: Value = serde_json::from_str(&d.body).expect("JSON");
        assert!(
            body["column"].is_string(),
            "every row names its column: {body}"
        );
    }
}
