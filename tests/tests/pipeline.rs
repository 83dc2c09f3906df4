//! End to end: the real `ingest` and `worker` release binaries, run through the Lambda Runtime
//! API as Lambda runs them, against the moto server (bucket, work queue with a redrive policy,
//! DLQ, FIFO control queue, secret) and the Graph simulator.
//!
//! 1. A 5,000-row migration file with 2% bad rows: every row ends as exactly one outcome
//!    (simulator state or a DLQ entry with the right reason) and the counts add up. In every
//!    scenario the job ledger (DynamoDB) ends complete with one outcome per input row, the same
//!    as the worker's and the DLQ's, and exactly one results CSV (every row once, in row order,
//!    no whole number), HTML report and "job complete" notification are written.
//! 2. Faults: the simulator answers 20% of requests with 429/500/503, timeouts or dropped
//!    connections, and every 10th message is delivered twice: the same final state, no write
//!    made twice, nothing lost.
//! 3. A crash: worker processes are killed in the middle of batches; the redelivered messages
//!    complete and the end state is the same.
//! 4. Secrets: the captured logs of all runs hold no private key, no token and no whole phone
//!    number.
//!
//! The counts of each scenario are printed at the end (`cargo test --release --workspace --test pipeline
//! -- --nocapture` shows them, as `scripts/test.sh` runs it) and written to
//! `target/e2e-summary.txt`.
//!
//! The release binaries must be built first (`cargo build --release --workspace`); the
//! test fails when they are older than their sources. `E2E_ROWS`, `E2E_SCENARIOS` (e.g. `1,3`),
//! `E2E_LOG_DIR` and `E2E_ECHO_LOGS` help when working on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use e2e_tests::backpressure::{Backpressure, BackpressureStats};
use e2e_tests::dataset::{self, Dataset, Expect, Stage, Write};
use e2e_tests::lambda_rt::{
    assert_fresh, release_binary, EnvStats, FunctionConfig, LambdaEnv, LogBuffer, LogLine,
    SESSION_TOKEN,
};
use e2e_tests::poller::{EventSource, EventSourceConfig, PollerStats};
use e2e_tests::secrets_scan::Needles;
use e2e_tests::token_proxy::TokenProxy;
use e2e_tests::*;
use graph_sim::{FaultConfig, FaultKind, GraphSim, SimConfig, SimStats, UserState};
use mfa_preload_core::ingest::Report;
use mfa_preload_core::ledger::LedgerPort;
use mfa_preload_core::{DlqEntry, Outcome, Reason};

/// Rows of the file (`E2E_ROWS` overrides, for a quick run); 2% of them are bad.
const ROWS: usize = 5_000;
const DATA_SEED: u64 = 0x5eed_2026;
const TENANT: &str = "7b1c3f0e-5d2a-4e8b-9c61-0f2d4a6b8c10";
const CLIENT_ID: &str = "3e9a1d52-8c47-4f06-b1d3-6a2f0c9e7b45";
/// Redrive `maxReceiveCount` of the work queue, and the worker's MAX_RECEIVE_COUNT.
const MAX_RECEIVE: u32 = 5;
/// Worker execution environments (the event source's maximum concurrency) when Graph answers
/// at once, and when faults make each batch take a second or more.
const WORKER_ENVS: usize = 5;
const WORKER_ENVS_FAULTS: usize = 10;
/// Messages per worker invocation.
const BATCH_SIZE: i32 = 10;
/// The worker function's timeout (the template's is 120 s).
const WORKER_TIMEOUT: Duration = Duration::from_secs(60);
/// The work queue's visibility timeout: how soon a failed message is received again.
const QUEUE_VISIBILITY_S: u32 = 3;
/// The ingest function's timeout (the template's).
const INGEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Messages the work queue may hold (visible or in flight) before the ingest's sends wait (see
/// `backpressure`): what the workers have in hand plus two batches in reserve. The moto server
/// spends time proportional to this on every message.
fn queue_limit(worker_envs: usize) -> u64 {
    (worker_envs as u64 + 2) * BATCH_SIZE as u64
}
const KEY: &str = "incoming/Legacy MFA export 2026-11.csv";

/// How one run of the pipeline is disturbed.
#[derive(Clone)]
struct RunOpts {
    name: &'static str,
    faults: Option<FaultConfig>,
    duplicate_every: Option<u64>,
    kills: usize,
    worker_envs: usize,
    /// Once half the messages are done, every Graph request fails with 500 for this long.
    outage: Option<Duration>,
    latency: Duration,
}

/// The Graph outage of a run.
#[derive(Debug, Clone, Copy)]
struct Outage {
    /// Messages done when it began.
    at: u64,
    /// Graph requests during it (all failed with 500).
    requests: u64,
    faults: u64,
}

struct Kill {
    batch: usize,
    /// Rows of the killed batch's messages.
    rows: Vec<u64>,
    complete: usize,
    incomplete: usize,
}

/// What one run produced.
struct Run {
    name: &'static str,
    elapsed: Duration,
    report: Option<Report>,
    users: Vec<UserState>,
    writes: Vec<Write>,
    dlq: Vec<Received>,
    worker_lines: Vec<WorkerLine>,
    worker: PollerStats,
    control: PollerStats,
    ingest_async_attempts: u32,
    sim: SimStats,
    kills: Vec<Kill>,
    worker_envs: Vec<EnvStats>,
    tokens: Vec<String>,
    assertions: Vec<String>,
    token_requests: u64,
    logs: LogBuffer,
    errors: Vec<String>,
    phases: Vec<(&'static str, Duration)>,
    backpressure: BackpressureStats,
    outage: Option<Outage>,
    /// Rows of the messages delivered twice on purpose.
    duplicated_rows: HashSet<u64>,
    ledger: LedgerView,
}

/// What the job ledger, the reports and the notification topic hold at the end of a run.
#[derive(Default)]
struct LedgerView {
    summary: Option<mfa_preload_core::ledger::JobSummary>,
    rows: Vec<mfa_preload_core::ledger::RowRecord>,
    results_csv: Option<String>,
    html: Option<String>,
    /// "job complete" notifications received (through an SQS subscription to the topic).
    notifications: Vec<String>,
    /// Times the ingest logged that it wrote the job's reports.
    reports_written: usize,
}

/// A worker's `user processed` log line.
#[derive(Debug, Clone)]
struct WorkerLine {
    seq: u64,
    row: u64,
    status: String,
    code: String,
    receive_count: u64,
}

fn worker_lines(logs: &LogBuffer, bucket: &str) -> Vec<WorkerLine> {
    let job = format!("s3://{bucket}/");
    let mut out: Vec<WorkerLine> = logs
        .json_lines()
        .into_iter()
        .filter(|(_, v)| v["message"] == "user processed")
        .filter(|(_, v)| v["job"].as_str().is_some_and(|j| j.starts_with(&job)))
        .filter_map(|(l, v)| {
            let status = v["status"].as_str()?.to_string();
            let code = v["outcome"]
                .as_str()
                .or_else(|| v["reason"].as_str())?
                .to_string();
            Some(WorkerLine {
                seq: l.seq,
                row: v["row"].as_u64()?,
                status,
                code,
                receive_count: v["receive_count"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|l| l.seq);
    out
}

/// The FIFO control queue with its own FIFO DLQ (3 receives), as in the template.
async fn create_control_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("control DLQ")
        .queue_url
        .expect("url");
    let dlq_arn = queue_arn(sqs, &dlq).await;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"});
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("control queue")
        .queue_url
        .expect("url");
    let arn = queue_arn(sqs, &url).await;
    (url, arn)
}

fn envs(cfg: FunctionConfig, n: usize, first: usize, logs: &LogBuffer) -> Vec<Arc<LambdaEnv>> {
    let cfg = Arc::new(cfg);
    (first..first + n)
        .map(|i| Arc::new(LambdaEnv::new(cfg.clone(), i, logs.clone())))
        .collect()
}

/// Users and rows of an SQS event's messages.
fn batch_requests(event: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    event["Records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let body: serde_json::Value = serde_json::from_str(r["body"].as_str()?).ok()?;
                    Some((body["user"].as_str()?.to_string(), body["row"].as_u64()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Kills worker environment 0 (SIGKILL) in the middle of batches: while it works on a batch in
/// which at least one user is already in its final state and at least one user still has writes
/// to come. One kill every third invocation of the environment, from its second on.
async fn crash_worker(
    env: Arc<LambdaEnv>,
    sim: Arc<GraphSim>,
    data: Arc<Dataset>,
    kills: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Kill> {
    let initial: HashMap<String, UserState> = data
        .seeds
        .iter()
        .map(|s| {
            let st = UserState {
                id: s.id.clone().unwrap_or_default(),
                upn: s.upn.clone(),
                mobile: s.mobile.clone(),
                alternate_mobile: s.alternate_mobile.clone(),
                office: s.office.clone(),
                email: s.email.clone(),
                sms_sign_in: None,
                default_method: s.default_method.clone(),
                methods: s.methods.clone(),
            };
            (s.upn.to_lowercase(), st)
        })
        .collect();
    let expected: HashMap<String, &UserState> = data
        .expected_users
        .iter()
        .map(|u| (u.upn.to_lowercase(), u))
        .collect();
    let strip = |u: &UserState| UserState {
        sms_sign_in: None,
        ..u.clone()
    };
    let mut done = Vec::new();
    while done.len() < kills && !stop.load(Ordering::SeqCst) {
        let wanted_invocations = 2 + 3 * done.len() as u64;
        if env.stats().invocations < wanted_invocations {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Some(event) = env.current_event() else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let requests = batch_requests(&event);
        let mut complete = 0;
        let mut incomplete = 0;
        for (u, _) in &requests {
            let Some(now) = sim.user(u) else { continue };
            let key = now.upn.to_lowercase();
            let (Some(first), Some(last)) = (initial.get(&key), expected.get(&key)) else {
                continue;
            };
            if strip(first) == strip(last) {
                continue; // nothing to write for this user
            }
            if now == **last {
                complete += 1;
            } else {
                incomplete += 1;
            }
        }
        let same_batch = env
            .current_event()
            .is_some_and(|now| Arc::ptr_eq(&now, &event));
        if complete > 0 && incomplete > 0 && same_batch && env.kill() {
            done.push(Kill {
                batch: requests.len(),
                rows: requests.iter().filter_map(|(_, r)| *r).collect(),
                complete,
                incomplete,
            });
            // wait for the environment to pick up another batch after its restart
            let before = env.stats().invocations;
            let until = Instant::now() + Duration::from_secs(30);
            while env.stats().invocations <= before && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    done
}

async fn run_pipeline(data: Arc<Dataset>, opts: RunOpts, logs: LogBuffer) -> Run {
    let started = Instant::now();
    let mut phases: Vec<(&'static str, Duration)> = Vec::new();
    let mut errors = Vec::new();
    let worker_bin = release_binary("worker");
    let ingest_bin = release_binary("ingest");

    // Graph: the simulator with the tenant's users, the token endpoint behind a recording proxy.
    let sim = Arc::new(
        GraphSim::start(SimConfig {
            latency: opts.latency,
            // Graph's write budget (3,000 per 150 s) would hold a 5,000-row run for minutes by
            // design; the engine's pacing to it is tested against the simulator in
            // core/tests/worker_sim.rs. The read budget (8,000 RU per 10 s) stays.
            writes_per_window: 0,
            // The tenant's policy lets the users whose rows ask for it use SMS sign-in.
            sms_sign_in_policy: true,
            sms_sign_in_policy_users: data.sms_policy_users.clone(),
            // Phone error texts quote the number, so the log scan below proves the masking.
            echo_numbers_in_errors: true,
            ..SimConfig::default()
        })
        .await
        .expect("start the Graph simulator"),
    );
    // A timed-out Graph request answers 504 after this long.
    sim.set_timeout_hold(Duration::from_millis(300));
    let cert = std::fs::read_to_string(repo_path("tests/fixtures/test-app.crt.pem")).unwrap();
    let key = std::fs::read_to_string(repo_path("tests/fixtures/test-app.key.pem")).unwrap();
    sim.register_app(TENANT, CLIENT_ID, &cert);
    sim.add_users(data.seeds.iter().cloned());
    let proxy = TokenProxy::start(&sim.base_url())
        .await
        .expect("token proxy");

    // AWS: bucket, work queue + DLQ (redrive), FIFO control queue, the credentials secret.
    let cfg = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let s3 = s3_client(&cfg);
    let sm = aws_sdk_secretsmanager::Client::new(&cfg);
    let bucket = unique(&format!("e2e-{}", opts.name));
    create_bucket(&s3, &bucket).await;
    let name = unique(&format!("work-{}", opts.name));
    let queues = create_queues(&sqs, &name, MAX_RECEIVE, QUEUE_VISIBILITY_S).await;
    let work_arn = queue_arn(&sqs, &queues.queue_url).await;
    let (control_url, control_arn) =
        create_control_queue(&sqs, &unique(&format!("control-{}", opts.name))).await;
    // The job ledger and the notification topic (an SQS queue subscribed to it, to read it).
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_ledger_table(&ddb, &unique(&format!("ledger-{}", opts.name))).await;
    let sns = aws_sdk_sns::Client::new(&cfg);
    let topic_arn = sns
        .create_topic()
        .name(unique(&format!("jobs-{}", opts.name)))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let inbox = create_queues(&sqs, &unique(&format!("inbox-{}", opts.name)), 10, 30).await;
    let inbox_arn = queue_arn(&sqs, &inbox.queue_url).await;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&inbox_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe the inbox");
    let secret = serde_json::json!({
        "tenantId": TENANT, "clientId": CLIENT_ID, "certificatePem": cert, "privateKeyPem": key,
    });
    let secret_arn = sm
        .create_secret()
        .name(unique(&format!("mfa-preload/{}", opts.name)))
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn");

    let backpressure = Backpressure::start(
        &moto_endpoint(),
        sqs.clone(),
        &queues.queue_url,
        queue_limit(opts.worker_envs),
    )
    .await
    .expect("SQS pass-through");
    let ingest_cfg = FunctionConfig {
        name: format!("mfa-preload-{}-ingest", opts.name),
        binary: ingest_bin,
        memory_mb: 512,
        env: vec![
            ("QUEUE_URL".into(), queues.queue_url.clone()),
            ("AWS_ENDPOINT_URL_SQS".into(), backpressure.endpoint_url()),
            ("DLQ_URL".into(), queues.dlq_url.clone()),
            ("CONTROL_QUEUE_URL".into(), control_url.clone()),
            ("DEFAULT_COUNTRY".into(), "NL".into()),
            // An invocation reads at least one step (5,000 rows), then stops after 2 s: the
            // end of the file comes in a continuation from the control queue.
            ("INGEST_TIME_BUDGET_SECONDS".into(), "2".into()),
            ("INGEST_SAFETY_MARGIN_SECONDS".into(), "2".into()),
            ("CONTINUATION_RETRY_SECONDS".into(), "2".into()),
            ("LEDGER_TABLE".into(), table.clone()),
            ("JOB_TOPIC_ARN".into(), topic_arn.clone()),
            ("RUST_LOG".into(), "info".into()),
        ],
    };
    let worker_cfg = FunctionConfig {
        name: format!("mfa-preload-{}-worker", opts.name),
        binary: worker_bin,
        memory_mb: 256,
        env: vec![
            ("DLQ_URL".into(), queues.dlq_url.clone()),
            ("CREDENTIALS_SECRET_ID".into(), secret_arn.clone()),
            ("GRAPH_BASE_URL".into(), sim.base_url()),
            ("LOGIN_BASE_URL".into(), proxy.base_url()),
            ("MAX_RECEIVE_COUNT".into(), MAX_RECEIVE.to_string()),
            ("WORKER_CONCURRENCY".into(), "16".into()),
            // Users Graph does not know are tried on every delivery until the last one.
            ("USER_NOT_FOUND_RETRY_SECONDS".into(), "60".into()),
            ("LEDGER_TABLE".into(), table.clone()),
            ("CONTROL_QUEUE_URL".into(), control_url.clone()),
            ("RUST_LOG".into(), "info".into()),
        ],
    };
    let ingest_envs = envs(ingest_cfg, 2, 0, &logs);
    let worker_envs = envs(worker_cfg, opts.worker_envs, 0, &logs);

    if let Some(f) = &opts.faults {
        sim.set_faults(f.clone());
    }

    // Event sources: the work queue (batches of 10, duplicates on demand) and the control queue
    // (batch size 1), as the template maps them.
    let worker_source = EventSource::start(
        sqs.clone(),
        EventSourceConfig {
            batch_size: BATCH_SIZE,
            visibility_timeout_s: WORKER_TIMEOUT.as_secs() as i32 + 10,
            retry_visibility_s: Some(QUEUE_VISIBILITY_S as i32),
            invocation_timeout: WORKER_TIMEOUT,
            duplicate_every: opts.duplicate_every,
            ..EventSourceConfig::new(&queues.queue_url, &work_arn)
        },
        worker_envs.clone(),
    );
    let control_source = EventSource::start(
        sqs.clone(),
        EventSourceConfig {
            batch_size: 1,
            visibility_timeout_s: 40,
            retry_visibility_s: Some(QUEUE_VISIBILITY_S as i32),
            invocation_timeout: INGEST_TIMEOUT,
            ..EventSourceConfig::new(&control_url, &control_arn)
        },
        vec![ingest_envs[1].clone()],
    );
    let stop_killing = Arc::new(AtomicBool::new(false));
    let killer = (opts.kills > 0).then(|| {
        tokio::spawn(crash_worker(
            worker_envs[0].clone(),
            sim.clone(),
            data.clone(),
            opts.kills,
            stop_killing.clone(),
        ))
    });

    let outage = opts.outage.map(|length| {
        let sim = sim.clone();
        let stats = worker_source.stats_handle();
        let half = data.rows.len() as u64 / 2;
        let restore = opts.faults.clone().unwrap_or_default();
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(300);
            while stats().deleted < half {
                if Instant::now() > until {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let at = stats().deleted;
            let before = sim.stats();
            sim.set_faults(FaultConfig::new(1.0, vec![FaultKind::Status500]));
            tokio::time::sleep(length).await;
            sim.set_faults(restore);
            let after = sim.stats();
            Some(Outage {
                at,
                requests: after.requests - before.requests,
                faults: after.faults_injected - before.faults_injected,
            })
        })
    });

    // The upload, and S3's event to the ingest (an asynchronous invocation: Lambda tries it up to
    // three times).
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key(KEY)
        .content_type("text/csv")
        .body(data.csv.clone().into())
        .send()
        .await
        .expect("upload the file");
    let etag = put.e_tag.unwrap_or_default();
    phases.push(("setup", started.elapsed()));
    let event = s3_put_event(&bucket, KEY, data.csv.len() as u64, &etag);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match ingest_envs[0].invoke(&event, INGEST_TIMEOUT).await {
            Ok(_) => break,
            Err(e) if attempts < 3 => {
                errors.push(format!("ingest attempt {attempts}: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                errors.push(format!("ingest failed {attempts} times: {e}"));
                break;
            }
        }
    }

    phases.push(("ingest S3 invocation", started.elapsed()));
    // Wait for the ingest's report to say complete, then for both queues to drain.
    let report_key = mfa_preload_core::ingest::report_key(KEY);
    let mut report: Option<Report> = None;
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if let Ok(o) = s3
            .get_object()
            .bucket(&bucket)
            .key(&report_key)
            .send()
            .await
        {
            if let Ok(b) = o.body.collect().await {
                report = serde_json::from_slice(&b.into_bytes()).ok();
            }
        }
        if report
            .as_ref()
            .is_some_and(|r| r.status != mfa_preload_core::ingest::Status::Running)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    phases.push(("report complete", started.elapsed()));
    if !control_source.wait_idle(Duration::from_secs(60)).await {
        errors.push("the control queue did not drain".into());
    }
    if !worker_source.wait_idle(Duration::from_secs(300)).await {
        errors.push("the work queue did not drain".into());
    }
    stop_killing.store(true, Ordering::SeqCst);
    let kills = match killer {
        Some(k) => k.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let outage = match outage {
        Some(o) => o.await.unwrap_or(None),
        None => None,
    };
    phases.push(("work queue drained", started.elapsed()));
    // The last row's writer asked for the job's reports on the control queue.
    let results_key = mfa_preload_core::ingest::job_reports::results_key(KEY);
    let html_key = mfa_preload_core::ingest::job_reports::html_key(KEY);
    let get = |k: String| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            let o = s3.get_object().bucket(&bucket).key(&k).send().await.ok()?;
            let b = o.body.collect().await.ok()?;
            String::from_utf8(b.into_bytes().to_vec()).ok()
        }
    };
    let until = Instant::now() + Duration::from_secs(60);
    let mut html = None;
    while Instant::now() < until {
        html = get(html_key.clone()).await;
        if html.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if !control_source.wait_idle(Duration::from_secs(30)).await {
        errors.push("the control queue did not drain after the report request".into());
    }
    phases.push(("reports written", started.elapsed()));
    let duplicated_rows: HashSet<u64> = worker_source
        .duplicated_bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok()?["row"].as_u64())
        .collect();
    errors.extend(worker_source.errors());
    errors.extend(control_source.errors());
    let worker = worker_source.stop().await;
    let control = control_source.stop().await;
    for e in ingest_envs.iter().chain(worker_envs.iter()) {
        e.shutdown().await;
    }
    let dlq = drain(&sqs, &queues.dlq_url).await;
    let ledger = {
        let l = mfa_preload_core::aws::ledger::DynamoLedger::with_retention_days(
            ddb.clone(),
            &table,
            1,
        );
        let key = match &report {
            Some(r) => mfa_preload_core::ledger::JobKey::of_file(&bucket, KEY, &r.run),
            None => mfa_preload_core::ledger::JobKey::of_file(&bucket, KEY, "-"),
        };
        LedgerView {
            summary: l.summary(&key).await.unwrap_or(None),
            rows: l.rows(&key).await.unwrap_or_default(),
            results_csv: get(results_key).await,
            html,
            notifications: drain(&sqs, &inbox.queue_url)
                .await
                .into_iter()
                .map(|m| m.body)
                .collect(),
            reports_written: logs
                .lines()
                .iter()
                .filter(|l| l.text.contains("job reports written"))
                .count(),
        }
    };
    let users = sim.users();
    let writes = sim.write_log().iter().map(Write::from_record).collect();
    let stats = sim.stats();
    phases.push(("teardown", started.elapsed()));
    eprintln!(
        "{}: done in {:.1} s ({:?})",
        opts.name,
        started.elapsed().as_secs_f64(),
        phases
            .iter()
            .map(|(p, d)| format!("{p} {:.1}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    if let Ok(dir) = std::env::var("E2E_LOG_DIR") {
        let text: String = logs
            .lines()
            .iter()
            .map(|l| format!("[{}] {}\n", l.source, l.text))
            .collect();
        let _ = std::fs::write(format!("{dir}/{}.log", opts.name), text);
    }
    Run {
        name: opts.name,
        elapsed: started.elapsed(),
        report,
        users,
        writes,
        dlq,
        worker_lines: worker_lines(&logs, &bucket),
        worker,
        control,
        ingest_async_attempts: attempts,
        sim: stats,
        kills,
        worker_envs: worker_envs.iter().map(|e| e.stats()).collect(),
        tokens: proxy.access_tokens(),
        assertions: proxy.assertions(),
        token_requests: proxy.requests(),
        logs,
        errors,
        phases,
        backpressure: backpressure.stats(),
        outage,
        duplicated_rows,
        ledger,
    }
}

/// Failed checks, collected so the summary is printed whatever fails.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    passed: u64,
}

impl Checks {
    fn check(&mut self, scenario: &str, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(format!("[{scenario}] {}", what()));
        }
    }
}

/// Per-row results derived from a run.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, u64>,
    worker_dlq_rows: u64,
    dlq_entries: u64,
    dlq_distinct_rows: u64,
    /// Rows with more than one DLQ entry (a delivery repeated after its entry was sent).
    dlq_repeated_rows: Vec<u64>,
    /// Rows whose first worker delivery did not finish them (retried, crashed, timed out).
    rows_retried: u64,
    /// Not-found users dead-lettered as `retries_exhausted` after a fault on the last delivery.
    not_found_cut_by_fault: u64,
}

/// Position in the order one row's outcome is chosen by (created first).
fn outcome_rank(code: &str) -> usize {
    [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Deleted,
        Outcome::SkippedExists,
        Outcome::Unchanged,
    ]
    .iter()
    .position(|o| o.as_str() == code)
    .unwrap_or(usize::MAX)
}

fn sorted_counts(m: &BTreeMap<Reason, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .map(|(r, n)| (r.as_str().to_string(), *n))
        .collect()
}

/// The checks every run must pass. `strict`: no faults, so every row is handled on its first
/// delivery with exactly the modelled outcome.
fn check_run(c: &mut Checks, data: &Dataset, run: &Run, strict: bool) -> Tally {
    let s = run.name;
    let mut t = Tally::default();
    for e in &run.errors {
        c.check(s, false, || format!("harness: {e}"));
    }

    // The ingest report: complete, and its counts add up and match the file.
    let Some(report) = &run.report else {
        c.check(s, false, || "no ingest report".into());
        return t;
    };
    c.check(
        s,
        report.status == mfa_preload_core::ingest::Status::Complete,
        || format!("report status {:?}: {:?}", report.status, report.error),
    );
    c.check(s, report.rows_read == data.rows_read(), || {
        format!("rows read {} != {}", report.rows_read, data.rows_read())
    });
    c.check(
        s,
        report.enqueued + report.rejected_total == report.rows_read && report.pending == 0,
        || {
            format!(
                "report does not add up: enqueued {} + rejected {} != rows {} (pending {})",
                report.enqueued, report.rejected_total, report.rows_read, report.pending
            )
        },
    );
    // Continuations went through the FIFO control queue to the ingest.
    c.check(
        s,
        report.invocations == report.continuations + 1
            && run.control.invocations >= u64::from(report.continuations)
            && (data.rows.len() < ROWS || report.continuations >= 1),
        || {
            format!(
                "{} ingest invocations, {} continuations, {} control queue invocations",
                report.invocations, report.continuations, run.control.invocations
            )
        },
    );
    let want_ingest = sorted_counts(&data.rejects(Stage::Ingest));
    c.check(s, report.rejected == want_ingest, || {
        format!(
            "ingest rejects {:?}, expected {want_ingest:?}",
            report.rejected
        )
    });

    // The DLQ: one entry per rejected row (duplicates of a duplicate delivery apart), right
    // reason, right stage, nothing moved there by the redrive policy without a reason.
    let mut dlq_rows: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    for m in &run.dlq {
        t.dlq_entries += 1;
        let reason = m.attributes.get("reason").cloned();
        let Some(reason) = reason else {
            c.check(s, false, || {
                format!(
                    "a DLQ message without a reason (moved by the redrive policy): {}",
                    &m.body[..m.body.len().min(200)]
                )
            });
            continue;
        };
        let entry: Result<DlqEntry, _> = serde_json::from_str(&m.body);
        let Ok(entry) = entry else {
            c.check(s, false, || format!("unreadable DLQ entry: {}", m.body));
            continue;
        };
        c.check(s, entry.reason.as_str() == reason, || {
            format!("DLQ body reason {} != attribute {reason}", entry.reason)
        });
        let Some(row) = entry.row else {
            c.check(s, false, || format!("DLQ entry without a row: {}", m.body));
            continue;
        };
        dlq_rows
            .entry(row)
            .or_default()
            .push((reason, entry.stage.clone()));
    }
    t.dlq_distinct_rows = dlq_rows.len() as u64;
    t.dlq_repeated_rows = dlq_rows
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(row, _)| *row)
        .collect();
    let mut wrong = Vec::new();
    for spec in &data.rows {
        let got = dlq_rows.get(&spec.row);
        match (spec.expect, got) {
            (Expect::Reject(reason, stage), Some(v)) => {
                // With faults, a user Graph does not know is retried through the whole
                // USER_NOT_FOUND_RETRY_SECONDS window, and a fault on its last delivery makes it
                // `retries_exhausted` (the worker cannot tell); the worker lines below must then
                // show the earlier `user_not_found` retries.
                let cut_by_fault =
                    |r: &str| !strict && reason == Reason::UserNotFound && r == "retries_exhausted";
                if v.iter().any(|(r, st)| {
                    (r != reason.as_str() && !cut_by_fault(r)) || st != stage.as_str()
                }) {
                    wrong.push(format!(
                        "row {}: DLQ {v:?}, expected {reason}/{}",
                        spec.row,
                        stage.as_str()
                    ));
                }
                if v.len() > 1 && strict {
                    wrong.push(format!("row {}: {} DLQ entries", spec.row, v.len()));
                }
                if stage == Stage::Worker {
                    t.worker_dlq_rows += 1;
                }
            }
            (Expect::Reject(reason, _), None) => {
                wrong.push(format!("row {}: missing from the DLQ ({reason})", spec.row))
            }
            (Expect::Done(o), Some(v)) => {
                wrong.push(format!("row {}: in the DLQ {v:?}, expected {o}", spec.row))
            }
            (Expect::Done(_), None) => {}
        }
    }
    c.check(s, wrong.is_empty(), || {
        format!(
            "{} rows with the wrong DLQ fate, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        )
    });

    // The worker: every enqueued row ends once, as done with the modelled outcome or dead-lettered.
    let mut by_row: HashMap<u64, Vec<&WorkerLine>> = HashMap::new();
    for l in &run.worker_lines {
        by_row.entry(l.row).or_default().push(l);
    }
    let mut wrong = Vec::new();
    for spec in &data.rows {
        let lines = by_row.get(&spec.row).map(Vec::as_slice).unwrap_or(&[]);
        let first_done = lines.iter().find(|l| l.status == "done");
        let dead = lines.iter().find(|l| l.status == "dead_lettered");
        let retried = lines.first().is_some_and(|l| l.status == "retry")
            || lines.first().is_some_and(|l| l.receive_count > 1);
        if retried {
            t.rows_retried += 1;
        }
        match spec.expect {
            Expect::Reject(_, Stage::Ingest) => {
                if !lines.is_empty() {
                    wrong.push(format!(
                        "row {}: rejected by the ingest but seen by the worker",
                        spec.row
                    ));
                }
            }
            Expect::Reject(reason, Stage::Worker) => {
                // See the DLQ check: a not-found user whose last delivery met a fault.
                let cut_by_fault = |d: &&WorkerLine| {
                    !strict
                        && reason == Reason::UserNotFound
                        && d.code == "retries_exhausted"
                        && lines
                            .iter()
                            .any(|l| l.status == "retry" && l.code == reason.as_str())
                };
                if dead.is_some_and(cut_by_fault) {
                    t.not_found_cut_by_fault += 1;
                }
                if first_done.is_some()
                    || dead.is_none_or(|d| d.code != reason.as_str() && !cut_by_fault(d))
                {
                    wrong.push(format!(
                        "row {}: worker lines {:?}, expected dead-lettered {reason}",
                        spec.row,
                        lines
                            .iter()
                            .map(|l| (&l.status, &l.code))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            Expect::Done(o) => {
                let Some(d) = first_done else {
                    wrong.push(format!(
                        "row {}: never done ({:?}), expected {o}",
                        spec.row,
                        lines
                            .iter()
                            .map(|l| (&l.status, &l.code))
                            .collect::<Vec<_>>()
                    ));
                    continue;
                };
                if dead.is_some() {
                    wrong.push(format!("row {}: done and dead-lettered", spec.row));
                }
                *t.outcomes.entry(d.code.clone()).or_insert(0) += 1;
                // A row whose first delivery was cut short (killed, or failed part-way) ends on
                // a redelivery that finds part of its writes made: its outcome is then one that
                // comes later in the order created > updated > deleted > unchanged (an SMS
                // sign-in left to enable after the mobile was created reads as `updated`).
                let allowed = d.code == o.as_str()
                    || (retried
                        && o != Outcome::SkippedExists
                        && d.code != Outcome::SkippedExists.as_str()
                        && outcome_rank(&d.code) > outcome_rank(o.as_str()));
                if !allowed {
                    wrong.push(format!(
                        "row {}: outcome {}, expected {o}",
                        spec.row, d.code
                    ));
                }
                if strict && lines.len() != 1 {
                    wrong.push(format!(
                        "row {}: {} worker deliveries without faults",
                        spec.row,
                        lines.len()
                    ));
                }
            }
        }
    }
    c.check(s, wrong.is_empty(), || {
        format!(
            "{} rows with the wrong worker fate, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        )
    });

    // The counts add up to the rows read.
    let outcome_total: u64 = t.outcomes.values().sum();
    c.check(
        s,
        outcome_total + t.worker_dlq_rows + report.rejected_total == report.rows_read,
        || {
            format!(
                "outcomes {outcome_total} + worker DLQ {} + ingest rejects {} != rows {}",
                t.worker_dlq_rows, report.rejected_total, report.rows_read
            )
        },
    );
    c.check(
        s,
        outcome_total + t.worker_dlq_rows == report.enqueued,
        || {
            format!(
                "worker ends {} != enqueued {}",
                outcome_total + t.worker_dlq_rows,
                report.enqueued
            )
        },
    );
    if strict {
        let want: BTreeMap<String, u64> = data
            .outcomes()
            .iter()
            .map(|(o, n)| (o.as_str().to_string(), *n))
            .collect();
        c.check(s, t.outcomes == want, || {
            format!("outcomes {:?}, expected {want:?}", t.outcomes)
        });
    }

    // Graph: the modelled final state of every user, and exactly the modelled writes.
    let mut diffs = Vec::new();
    for (got, want) in run.users.iter().zip(&data.expected_users) {
        if got != want {
            diffs.push(format!("{got:?} != expected {want:?}"));
        }
    }
    c.check(
        s,
        run.users.len() == data.expected_users.len() && diffs.is_empty(),
        || {
            format!(
                "{} users differ from the model ({} users), e.g. {:?}",
                diffs.len(),
                run.users.len(),
                &diffs[..diffs.len().min(3)]
            )
        },
    );
    let mut writes = run.writes.clone();
    writes.sort();
    let twice: Vec<&Write> = writes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    c.check(s, twice.is_empty(), || {
        format!(
            "{} writes made twice for the same change, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(3)]
        )
    });
    if writes != data.expected_writes {
        let got: HashSet<&Write> = writes.iter().collect();
        let want: HashSet<&Write> = data.expected_writes.iter().collect();
        let missing: Vec<_> = want.difference(&got).take(3).collect();
        let extra: Vec<_> = got.difference(&want).take(3).collect();
        c.check(s, false, || {
            format!(
                "write log ({}) differs from the model ({}): missing e.g. {missing:?}, extra e.g. {extra:?}",
                writes.len(),
                data.expected_writes.len()
            )
        });
    }
    check_ledger(c, data, run, report, &t, strict);
    t
}

/// The job ledger: complete, one final outcome per input row (counted once whatever the
/// deliveries), the same outcomes as the worker and the DLQ, and exactly one results CSV,
/// HTML report and notification.
fn check_ledger(
    c: &mut Checks,
    data: &Dataset,
    run: &Run,
    report: &Report,
    t: &Tally,
    strict: bool,
) {
    let s = run.name;
    let l = &run.ledger;
    let Some(summary) = &l.summary else {
        c.check(s, false, || {
            "the job ledger has no summary for the file".into()
        });
        return;
    };
    c.check(
        s,
        summary.is_complete()
            && summary.expected == Some(report.rows_read)
            && summary.done == report.rows_read
            && summary.rows_read == Some(report.rows_read),
        || {
            format!(
                "ledger summary: done {} of {:?} (rows read {:?}), the file has {} rows",
                summary.done, summary.expected, summary.rows_read, report.rows_read
            )
        },
    );
    let rows: HashMap<u64, &mfa_preload_core::ledger::RowRecord> =
        l.rows.iter().filter_map(|r| Some((r.row?, r))).collect();
    c.check(
        s,
        l.rows.len() == data.rows.len() && rows.len() == data.rows.len(),
        || {
            format!(
                "ledger rows {} (distinct {}), file rows {}",
                l.rows.len(),
                rows.len(),
                data.rows.len()
            )
        },
    );
    let mut wrong = Vec::new();
    for spec in &data.rows {
        let Some(r) = rows.get(&spec.row) else {
            wrong.push(format!("row {}: not in the ledger", spec.row));
            continue;
        };
        match spec.expect {
            Expect::Reject(reason, _) => {
                let cut_by_fault =
                    !strict && reason == Reason::UserNotFound && r.reason == "retries_exhausted";
                let outcome_ok = r.outcome
                    == if r.reason == "retries_exhausted" {
                        "failed"
                    } else {
                        "rejected"
                    };
                if !outcome_ok || (r.reason != reason.as_str() && !cut_by_fault) {
                    wrong.push(format!(
                        "row {}: ledger {}/{}, expected {reason}",
                        spec.row, r.outcome, r.reason
                    ));
                }
            }
            Expect::Done(o) => {
                let ok = if strict {
                    r.outcome == o.as_str()
                } else {
                    Outcome::parse(&r.outcome).is_some()
                };
                if !ok || !r.reason.is_empty() {
                    wrong.push(format!(
                        "row {}: ledger {}/{}, expected {o}",
                        spec.row, r.outcome, r.reason
                    ));
                }
            }
        }
    }
    c.check(s, wrong.is_empty(), || {
        format!(
            "{} rows with the wrong ledger outcome, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        )
    });
    // The counts equal the run's outcomes: done by outcome, and every reject.
    let done: BTreeMap<String, u64> = summary
        .by_outcome
        .iter()
        .filter(|(k, _)| Outcome::parse(k).is_some())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let done_total: u64 = done.values().sum();
    let outcome_total: u64 = t.outcomes.values().sum();
    c.check(
        s,
        done_total == outcome_total && (!strict || done == t.outcomes),
        || format!("ledger done counts {done:?}, the worker's {:?}", t.outcomes),
    );
    c.check(
        s,
        summary.needing_action() == t.worker_dlq_rows + report.rejected_total,
        || {
            format!(
                "ledger rows needing action {}, DLQ rows {} + ingest rejects {}",
                summary.needing_action(),
                t.worker_dlq_rows,
                report.rejected_total
            )
        },
    );
    // The results CSV: every input row once, in row order, the ledger's outcomes, no whole
    // number in it.
    match &l.results_csv {
        None => c.check(s, false, || "no results CSV".into()),
        Some(csv) => {
            let mut rdr = csv::Reader::from_reader(csv.as_bytes());
            let header: Vec<String> = rdr
                .headers()
                .map(|h| h.iter().map(String::from).collect())
                .unwrap_or_default();
            c.check(
                s,
                header == ["row", "user", "outcome", "reason", "detail"],
                || format!("results header {header:?}"),
            );
            let mut order = Vec::new();
            let mut differ = Vec::new();
            for rec in rdr.records().flatten() {
                let row: u64 = rec.get(0).and_then(|v| v.parse().ok()).unwrap_or(0);
                order.push(row);
                if let Some(r) = rows.get(&row) {
                    if rec.get(2) != Some(r.outcome.as_str())
                        || rec.get(3) != Some(r.reason.as_str())
                    {
                        differ.push(row);
                    }
                }
            }
            let mut want: Vec<u64> = data.rows.iter().map(|r| r.row).collect();
            want.sort_unstable();
            c.check(s, order == want, || {
                format!(
                    "results CSV rows: {} (want {}), in order: {}",
                    order.len(),
                    want.len(),
                    order.windows(2).all(|w| w[0] < w[1])
                )
            });
            c.check(s, differ.is_empty(), || {
                format!(
                    "results CSV differs from the ledger at rows {:?}",
                    &differ[..differ.len().min(5)]
                )
            });
            // A whole phone number in Graph's form: `+`, the country code, a space and the
            // national number; the masked form keeps only its first and last three digits.
            let whole = csv.lines().find(|line| {
                line.split('+').skip(1).any(|after| {
                    let mut parts = after.splitn(2, ' ');
                    let cc = parts.next().unwrap_or("");
                    let national: String = parts
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    !cc.is_empty()
                        && cc.len() <= 3
                        && cc.chars().all(|ch| ch.is_ascii_digit())
                        && national.len() >= 7
                })
            });
            c.check(s, whole.is_none(), || {
                format!(
                    "the results CSV holds a whole number: {:?}",
                    whole.map(|l| &l[..l.len().min(300)])
                )
            });
        }
    }
    match &l.html {
        None => c.check(s, false, || "no HTML report".into()),
        Some(h) => {
            let done_hook = format!("id=\"done\" data-value=\"{}\"", report.rows_read);
            c.check(s, h.contains(&done_hook) && !h.contains("<script"), || {
                "the HTML report does not show the rows done".into()
            });
        }
    }
    c.check(s, l.reports_written == 1, || {
        format!("reports written {} times", l.reports_written)
    });
    c.check(
        s,
        l.notifications.len() == 1
            && l.notifications[0].contains("job_complete")
            && l.notifications[0].contains(&format!("\"rows\":{}", report.rows_read)),
        || {
            format!(
                "{} job-complete notifications: {:?}",
                l.notifications.len(),
                l.notifications.first().map(|n| &n[..n.len().min(300)])
            )
        },
    );
}

/// What the log scan looked at.
struct LogScan {
    lines: usize,
    masked: usize,
    secrets: usize,
    phones: usize,
}

/// Scenario 4: nothing secret in any captured log line of any run.
fn check_logs(c: &mut Checks, data: &Dataset, runs: &[&Run]) -> LogScan {
    let s = "4 secrets";
    let key = std::fs::read_to_string(repo_path("tests/fixtures/test-app.key.pem")).unwrap();
    let mut needles = Needles::new();
    needles.private_key(&key);
    let mut tokens = 0;
    for r in runs {
        for t in &r.tokens {
            needles.jwt("an access token", t);
            tokens += 1;
        }
        for a in &r.assertions {
            needles.jwt("a client assertion", a);
            tokens += 1;
        }
    }
    needles.secret("the AWS session token", SESSION_TOKEN);
    for p in &data.phone_numbers {
        needles.phone(p, p.starts_with("+31 ").then_some(p.as_str()));
    }
    let lines: Vec<LogLine> = runs.iter().flat_map(|r| r.logs.lines()).collect();
    let masked = lines.iter().filter(|l| has_masked_phone(&l.text)).count();

    // The scan must be able to fail: plant each kind of secret in a copy of a real line.
    if let (Some(line), Some(token), Some(phone)) = (
        lines.iter().find(|l| has_masked_phone(&l.text)),
        runs.iter().flat_map(|r| r.tokens.iter()).next(),
        data.phone_numbers.iter().find(|p| p.starts_with("+31 ")),
    ) {
        let key_line = key.lines().nth(3).unwrap_or_default();
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        for (what, planted) in [
            ("a phone number in Graph form", phone.clone()),
            ("a phone number's digits", digits),
            ("an access token", token.clone()),
            ("a line of the private key", key_line.to_string()),
        ] {
            let mut canary = line.clone();
            canary.text = format!("{} {planted}", line.text);
            c.check(s, !needles.scan(&[canary]).is_empty(), || {
                format!("the scan does not notice {what} planted in a log line")
            });
        }
    } else {
        c.check(s, false, || {
            "no masked phone number, token or phone number to plant: the scan would be vacuous"
                .into()
        });
    }

    let found = needles.scan(&lines);
    c.check(s, lines.len() > 1000, || {
        format!("only {} log lines captured", lines.len())
    });
    c.check(s, tokens > 0, || {
        "no token was issued: the token check would be empty".into()
    });
    c.check(s, masked > 100, || {
        format!("only {masked} log lines show a masked phone number")
    });
    c.check(s, found.is_empty(), || {
        format!(
            "{} log lines leak secrets, e.g. {:?}",
            found.len(),
            found
                .iter()
                .take(5)
                .map(|f| format!("{} in {}: {}", f.what, f.source, cut(&f.line)))
                .collect::<Vec<_>>()
        )
    });
    LogScan {
        lines: lines.len(),
        masked,
        secrets: needles.secret_count(),
        phones: needles.phone_count(),
    }
}

/// A masked number as `mask::mask_phone` writes it: `+31 612***678`.
fn has_masked_phone(text: &str) -> bool {
    text.match_indices("***").any(|(i, _)| {
        text[..i].ends_with(|c: char| c.is_ascii_digit())
            && text[i + 3..].starts_with(|c: char| c.is_ascii_digit())
    })
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

fn summary(runs: &[(&Run, &Tally)], data: &Dataset, logs: &LogScan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nEnd-to-end pipeline: {} rows ({} bad), worker batches of {BATCH_SIZE}, redrive after {MAX_RECEIVE} receives",
        data.rows.len(),
        data.rows.iter().filter(|r| matches!(r.expect, Expect::Reject(..))).count(),
    );
    let header: Vec<String> = runs.iter().map(|(r, _)| r.name.to_string()).collect();
    let _ = write!(out, "{:<36}", "");
    for h in &header {
        let _ = write!(out, "{h:>14}");
    }
    let _ = writeln!(out);
    let mut row = |label: &str, f: &dyn Fn(&Run, &Tally) -> String| {
        let _ = write!(out, "{label:<36}");
        for (r, t) in runs {
            let _ = write!(out, "{:>14}", f(r, t));
        }
        let _ = writeln!(out);
    };
    let rep =
        |r: &Run, f: &dyn Fn(&Report) -> u64| r.report.as_ref().map(f).unwrap_or(0).to_string();
    row("rows read", &|r, _| rep(r, &|x| x.rows_read));
    row("enqueued", &|r, _| rep(r, &|x| x.enqueued));
    row("rejected by ingest (DLQ)", &|r, _| {
        rep(r, &|x| x.rejected_total)
    });
    for o in Outcome::ALL {
        row(&format!("outcome {}", o.as_str()), &|_, t| {
            t.outcomes.get(o.as_str()).copied().unwrap_or(0).to_string()
        });
    }
    row("rejected by worker (DLQ)", &|_, t| {
        t.worker_dlq_rows.to_string()
    });
    row("DLQ entries (distinct rows)", &|_, t| {
        format!("{} ({})", t.dlq_entries, t.dlq_distinct_rows)
    });
    row("ingest invocations (continuations)", &|r, _| {
        format!(
            "{} ({})",
            r.report.as_ref().map_or(0, |x| x.invocations),
            r.report.as_ref().map_or(0, |x| x.continuations)
        )
    });
    row("ingest S3 event attempts", &|r, _| {
        r.ingest_async_attempts.to_string()
    });
    row("control queue invocations", &|r, _| {
        r.control.invocations.to_string()
    });
    row("worker environments", &|r, _| {
        r.worker_envs.len().to_string()
    });
    row("worker invocations", &|r, _| {
        r.worker.invocations.to_string()
    });
    row("worker cold starts", &|r, _| {
        r.worker_envs
            .iter()
            .map(|e| e.cold_starts)
            .sum::<u64>()
            .to_string()
    });
    row("failed invocations (crash/timeout)", &|r, _| {
        r.worker.failed_invocations.to_string()
    });
    row("processes killed", &|r, _| r.kills.len().to_string());
    row("messages delivered twice", &|r, _| {
        r.worker.duplicates_delivered.to_string()
    });
    row("batch item failures", &|r, _| {
        r.worker.batch_item_failures.to_string()
    });
    row("SQS redeliveries (retries)", &|r, _| {
        r.worker.redeliveries.to_string()
    });
    row("rows not done on first delivery", &|_, t| {
        t.rows_retried.to_string()
    });
    row("not found, last delivery faulted", &|_, t| {
        t.not_found_cut_by_fault.to_string()
    });
    row("max receive count", &|r, _| {
        r.worker.max_receive_count.to_string()
    });
    row("Graph outage began (msgs done)", &|r, _| {
        r.outage.map_or("-".into(), |o| o.at.to_string())
    });
    row("Graph requests", &|r, _| r.sim.requests.to_string());
    row("Graph faults injected", &|r, _| {
        r.sim.faults_injected.to_string()
    });
    row("Graph 429s from the budget", &|r, _| {
        r.sim.throttled.to_string()
    });
    row("Graph writes", &|r, _| r.writes.len().to_string());
    row("token requests", &|r, _| r.token_requests.to_string());
    row("log lines captured", &|r, _| r.logs.len().to_string());
    row("ingest sends held for room (s)", &|r, _| {
        format!(
            "{} ({:.0})",
            r.backpressure.held_calls,
            r.backpressure.held.as_secs_f64()
        )
    });
    for phase in [
        "ingest S3 invocation",
        "report complete",
        "work queue drained",
    ] {
        row(&format!("at {phase} (s)"), &|r, _| {
            r.phases
                .iter()
                .find(|(p, _)| *p == phase)
                .map_or("-".into(), |(_, d)| format!("{:.1}", d.as_secs_f64()))
        });
    }
    row("wall time (s)", &|r, _| {
        format!("{:.1}", r.elapsed.as_secs_f64())
    });
    for (r, _) in runs {
        for (i, k) in r.kills.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}: kill {}: batch of {} users, {} already complete, {} still to write",
                r.name,
                i + 1,
                k.batch,
                k.complete,
                k.incomplete
            );
        }
    }
    let _ = writeln!(
        out,
        "4 secrets: {} log lines ({} with a masked number) scanned for {} secret strings (key lines, tokens, assertions) and {} phone numbers",
        logs.lines, logs.masked, logs.secrets, logs.phones
    );
    out
}

fn summary_path() -> std::path::PathBuf {
    // target/release/deps/<test> -> target
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| repo_path("target"))
        .join("e2e-summary.txt")
}

/// Which scenarios run: `E2E_SCENARIOS` (e.g. `1,3`) for development; all by default. Scenario 4
/// scans the logs of the runs that ran.
fn scenarios() -> Vec<u32> {
    match std::env::var("E2E_SCENARIOS") {
        Ok(v) if !v.trim().is_empty() => {
            v.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        }
        _ => vec![1, 2, 3],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_end_to_end() {
    let started = Instant::now();
    let ingest = release_binary("ingest");
    let worker = release_binary("worker");
    assert_fresh(&ingest, "functions/ingest");
    assert_fresh(&worker, "functions/worker");
    let _ = std::fs::remove_file(summary_path());

    let rows = std::env::var("E2E_ROWS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(ROWS)
        .max(1000);
    let data = Arc::new(dataset::generate(rows, rows / 50, DATA_SEED));
    let which = scenarios();
    let mut c = Checks::default();
    let mut runs: Vec<(Run, Tally)> = Vec::new();

    // 1. The file as it is: every row has exactly its modelled fate, on its first delivery.
    if which.contains(&1) {
        let one = run_pipeline(
            data.clone(),
            RunOpts {
                name: "1-clean",
                faults: None,
                duplicate_every: None,
                kills: 0,
                worker_envs: WORKER_ENVS,
                outage: None,
                latency: Duration::ZERO,
            },
            LogBuffer::new(),
        )
        .await;
        let t = check_run(&mut c, &data, &one, true);
        runs.push((one, t));
    }

    // 2. 20% of Graph requests fail (429, 500, 503, timeout, dropped connection) and every 10th
    //    message is delivered twice.
    if which.contains(&2) {
        let two = run_pipeline(
            data.clone(),
            RunOpts {
                name: "2-faults",
                faults: Some(FaultConfig::new(
                    0.2,
                    vec![
                        FaultKind::Throttle429,
                        FaultKind::Status500,
                        FaultKind::Status503,
                        FaultKind::Timeout,
                        FaultKind::Drop,
                    ],
                )),
                duplicate_every: Some(10),
                kills: 0,
                worker_envs: WORKER_ENVS_FAULTS,
                outage: Some(Duration::from_secs(6)),
                latency: Duration::ZERO,
            },
            LogBuffer::new(),
        )
        .await;
        let t = check_run(&mut c, &data, &two, false);
        let s = "2 faults";
        same_end_as_clean(&mut c, s, &runs, &two);
        // The random faults, the outage apart.
        let (out_requests, out_faults) = two.outage.map_or((0, 0), |o| (o.requests, o.faults));
        let requests = two.sim.requests.saturating_sub(out_requests).max(1);
        let faults = two.sim.faults_injected.saturating_sub(out_faults);
        let share = faults as f64 / requests as f64;
        c.check(s, (0.17..=0.23).contains(&share), || {
            format!(
                "{faults} faults in {requests} Graph requests outside the outage ({:.1}%), expected about 20%",
                share * 100.0
            )
        });
        let expected_dups = two.worker.distinct_messages / 10;
        c.check(
            s,
            two.worker.duplicates_delivered + 1 >= expected_dups
                && two.worker.duplicates_delivered <= expected_dups + 1,
            || {
                format!(
                    "{} messages delivered twice, expected {expected_dups} (every 10th of {})",
                    two.worker.duplicates_delivered, two.worker.distinct_messages
                )
            },
        );
        let unexplained: Vec<&u64> = t
            .dlq_repeated_rows
            .iter()
            .filter(|r| !two.duplicated_rows.contains(r))
            .collect();
        c.check(s, unexplained.is_empty(), || {
            format!("rows in the DLQ twice without a duplicate delivery: {unexplained:?}")
        });
        // The outage sent messages back to the queue, and they came again.
        c.check(
            s,
            two.outage
                .is_some_and(|o| o.faults > 0 && o.faults == o.requests)
                && two.worker.batch_item_failures > 0
                && two.worker.redeliveries > 0
                && t.rows_retried > 0,
            || {
                format!(
                    "outage {:?}: {} batch item failures, {} redeliveries, {} rows retried",
                    two.outage,
                    two.worker.batch_item_failures,
                    two.worker.redeliveries,
                    t.rows_retried
                )
            },
        );
        runs.push((two, t));
    }

    // 3. Worker processes are killed in the middle of batches.
    if which.contains(&3) {
        let three = run_pipeline(
            data.clone(),
            RunOpts {
                name: "3-crash",
                faults: None,
                duplicate_every: None,
                kills: 3,
                worker_envs: WORKER_ENVS,
                outage: None,
                latency: Duration::from_millis(15),
            },
            LogBuffer::new(),
        )
        .await;
        let t = check_run(&mut c, &data, &three, false);
        let s = "3 crash";
        c.check(s, three.kills.len() == 3, || {
            format!("{} of 3 kills happened mid-batch", three.kills.len())
        });
        same_end_as_clean(&mut c, s, &runs, &three);
        let killed = &three.worker_envs[0];
        c.check(
            s,
            killed.kills == three.kills.len() as u64
                && killed.cold_starts > three.kills.len() as u64
                && three.worker.failed_invocations >= three.kills.len() as u64,
            || {
                format!(
                    "after {} kills: environment 0 {killed:?}, {} failed invocations",
                    three.kills.len(),
                    three.worker.failed_invocations
                )
            },
        );
        // Every message of a killed batch came again and ended then.
        let mut lost = Vec::new();
        for k in &three.kills {
            for row in &k.rows {
                let last = three.worker_lines.iter().rfind(|l| l.row == *row);
                if !last.is_some_and(|l| l.receive_count >= 2 && l.status != "retry") {
                    lost.push(format!(
                        "row {row}: last worker line {:?}",
                        last.map(|l| (&l.status, &l.code, l.receive_count))
                    ));
                }
            }
        }
        c.check(s, lost.is_empty(), || {
            format!(
                "{} rows of killed batches did not end on a redelivery, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            )
        });
        let killed_rows: HashSet<u64> = three.kills.iter().flat_map(|k| k.rows.clone()).collect();
        let unexplained: Vec<&u64> = t
            .dlq_repeated_rows
            .iter()
            .filter(|r| !killed_rows.contains(r))
            .collect();
        c.check(s, unexplained.is_empty(), || {
            format!("rows in the DLQ twice outside the killed batches: {unexplained:?}")
        });
        runs.push((three, t));
    }

    // 4. No private key, token or whole phone number in any log line of any run.
    let scan = check_logs(
        &mut c,
        &data,
        &runs.iter().map(|(r, _)| r).collect::<Vec<_>>(),
    );

    let table = summary(
        &runs.iter().map(|(r, t)| (r, t)).collect::<Vec<_>>(),
        &data,
        &scan,
    );
    let mut text = table;
    let _ = writeln!(
        text,
        "total wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if c.failures.is_empty() {
        let _ = writeln!(text, "all {} checks passed", c.passed);
    } else {
        let _ = writeln!(
            text,
            "{} checks passed, {} failed:",
            c.passed,
            c.failures.len()
        );
        for f in &c.failures {
            let _ = writeln!(text, "  {f}");
        }
    }
    eprintln!("{text}");
    let _ = std::fs::write(summary_path(), &text);
    assert!(
        c.failures.is_empty(),
        "{} checks failed (see above)",
        c.failures.len()
    );
}

/// A disturbed run ends exactly where the clean one did: the same users and the same writes.
fn same_end_as_clean(c: &mut Checks, s: &str, runs: &[(Run, Tally)], run: &Run) {
    let Some((clean, _)) = runs.iter().find(|(r, _)| r.name == "1-clean") else {
        return; // compared with the model only (check_run)
    };
    c.check(s, run.users == clean.users, || {
        "final Graph state differs from scenario 1".into()
    });
    let (mut a, mut b) = (clean.writes.clone(), run.writes.clone());
    a.sort();
    b.sort();
    c.check(s, a == b, || {
        format!("writes differ from scenario 1 ({} vs {})", b.len(), a.len())
    });
}
