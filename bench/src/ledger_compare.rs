//! `worker-bench --ledger-compare`: the worker's throughput with and without the job ledger,
//! side by side in one run, as Lambda runs it: `ENVS` execution environments (one worker each,
//! one shared Graph client and tenant budget) take batches of `BATCH` messages from one queue;
//! with the ledger each batch's outcomes are recorded in DynamoDB (the moto server on
//! `AWS_ENDPOINT_URL`) through the real adapter. Write units are counted from the transactions
//! the adapter sends (DynamoDB charges a transactional write 2 units per item of up to 1 KB).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use graph_sim::{GraphSim, SimConfig};
use mfa_preload_core::aws::ledger::{DynamoLedger, MAX_ROWS_PER_TRANSACTION, SHARDS};
use mfa_preload_core::dlq::MemoryDlq;
use mfa_preload_core::graph::LimiterConfig;
use mfa_preload_core::ledger::{
    JobKey, JobSummary, LedgerError, LedgerPort, ReportRequests, RowRecord,
};
use mfa_preload_core::message::Job;
use mfa_preload_core::worker::{Disposition, InboundMessage, Worker, WorkerConfig};

use super::{client, fixture, seed_and_requests, Args, CLIENT_ID, TENANT};

/// Execution environments (the event source's maximum concurrency).
const ENVS: usize = 10;
/// Users in flight per invocation: the template's `WorkerUserConcurrency` default (a batch of
/// fewer users has them all in flight).
const USER_CONCURRENCY: usize = 16;

/// Counts what goes through the ledger, for the write units.
struct Counting {
    inner: DynamoLedger,
    records: AtomicU64,
    rows: AtomicU64,
    /// Write units of the record transactions: 2 per item (rows + one counter shard per
    /// transaction of at most [`MAX_ROWS_PER_TRANSACTION`] rows).
    wcu: AtomicU64,
    other_writes: AtomicU64,
    summaries: AtomicU64,
}

#[async_trait]
impl LedgerPort for Counting {
    async fn record(
        &self,
        job: &JobKey,
        label: &str,
        rows: &[RowRecord],
    ) -> Result<u64, LedgerError> {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let txns = rows.len().div_ceil(MAX_ROWS_PER_TRANSACTION) as u64;
        self.wcu
            .fetch_add(2 * (rows.len() as u64 + txns), Ordering::Relaxed);
        self.inner.record(job, label, rows).await
    }
    async fn set_expected(
        &self,
        job: &JobKey,
        label: &str,
        expected: u64,
        rows_read: u64,
    ) -> Result<(), LedgerError> {
        self.other_writes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .set_expected(job, label, expected, rows_read)
            .await
    }
    async fn summary(&self, job: &JobKey) -> Result<Option<JobSummary>, LedgerError> {
        self.summaries.fetch_add(1, Ordering::Relaxed);
        self.inner.summary(job).await
    }
    async fn rows(&self, job: &JobKey) -> Result<Vec<RowRecord>, LedgerError> {
        self.inner.rows(job).await
    }
    async fn claim_completion(&self, job: &JobKey, at: &str) -> Result<bool, LedgerError> {
        self.other_writes.fetch_add(1, Ordering::Relaxed);
        self.inner.claim_completion(job, at).await
    }
    async fn release_completion(&self, job: &JobKey) -> Result<(), LedgerError> {
        self.inner.release_completion(job).await
    }
    async fn mark_reported(&self, job: &JobKey, at: &str) -> Result<(), LedgerError> {
        self.inner.mark_reported(job, at).await
    }
}

/// The report request is counted, not sent.
#[derive(Default)]
struct Requests(AtomicU64);

#[async_trait]
impl ReportRequests for Requests {
    async fn request(&self, _job: &Job) -> Result<(), String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Pass {
    elapsed: Duration,
    done: usize,
}

/// One pass: every message through `ENVS` workers in batches of `batch`.
async fn pass(
    a: &Args,
    batch: usize,
    sim: &GraphSim,
    prefix: &str,
    ledger: Option<(Arc<Counting>, Arc<Requests>)>,
) -> Result<Pass, String> {
    let reqs = seed_and_requests(sim, prefix, a.users, a.new_share, 0);
    let job = Job::S3 {
        bucket: "bench-bucket".into(),
        key: format!("incoming/{prefix}.csv"),
        etag: "e".into(),
        run: Some(format!("e-{prefix}")),
    };
    if let Some((l, _)) = &ledger {
        l.set_expected(
            &JobKey::of(&job),
            &job.label(),
            reqs.len() as u64,
            reqs.len() as u64,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let queue: Arc<Mutex<VecDeque<InboundMessage>>> = Arc::new(Mutex::new(
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.job = job.clone();
                r.row = Some(i as u64 + 2);
                InboundMessage::new(
                    format!("{prefix}-{i}"),
                    serde_json::to_string(&r).unwrap_or_default(),
                    1,
                )
            })
            .collect(),
    ));
    let engine = client(sim, LimiterConfig::default())?;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut envs = tokio::task::JoinSet::new();
    for _ in 0..ENVS {
        let mut worker = Worker::new(
            engine.clone(),
            Arc::new(MemoryDlq::new()),
            WorkerConfig {
                concurrency: batch.min(USER_CONCURRENCY),
                max_receive_count: 5,
                ..WorkerConfig::default()
            },
        );
        if let Some((l, r)) = &ledger {
            worker = worker.with_ledger(
                l.clone() as Arc<dyn LedgerPort>,
                Some(r.clone() as Arc<dyn ReportRequests>),
            );
        }
        let (queue, done) = (queue.clone(), done.clone());
        envs.spawn(async move {
            loop {
                let batch: Vec<InboundMessage> = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    let n = q.len().min(batch);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let reports = worker.process(batch).await;
                let ok = reports
                    .iter()
                    .filter(|r| matches!(r.disposition, Disposition::Done(_)))
                    .count();
                done.fetch_add(ok as u64, Ordering::Relaxed);
            }
        });
    }
    while envs.join_next().await.is_some() {}
    Ok(Pass {
        elapsed: start.elapsed(),
        done: done.load(Ordering::Relaxed) as usize,
    })
}

pub(super) async fn run(a: &Args) -> Result<(), String> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return Err("--ledger-compare writes to DynamoDB: start the moto server and set AWS_ENDPOINT_URL (see scripts/bench.sh)".into());
    }
    let sdk = mfa_preload_core::aws::clients::load_sdk_config().await;
    let ddb = mfa_preload_core::aws::clients::dynamodb_client(&sdk);
    let table = format!("bench-ledger-{}", std::process::id());
    create_table(&ddb, &table).await?;
    let sim = GraphSim::start(SimConfig {
        latency: Duration::from_millis(a.latency_ms),
        throttle_model: a.model,
        ru_per_window: a.ru,
        window: Duration::from_secs(a.window_s),
        ..SimConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem")?);
    println!(
        "ledger compare: {} users per pass, {ENVS} environments, batches of {:?} ({USER_CONCURRENCY} users in flight per invocation at most), simulator latency {} ms, {} RU / {} s; ledger: DynamoDB table {table} on {}",
        a.users,
        a.ledger_batches,
        a.latency_ms,
        a.ru,
        a.window_s,
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    let mut table_rows = Vec::new();
    let mut summaries = Vec::new();
    for &batch in &a.ledger_batches {
        let counting = Arc::new(Counting {
            inner: DynamoLedger::with_retention_days(ddb.clone(), &table, 1),
            records: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            wcu: AtomicU64::new(0),
            other_writes: AtomicU64::new(0),
            summaries: AtomicU64::new(0),
        });
        let requests = Arc::new(Requests::default());
        // Alternate the two, twice each, so drift on the machine falls on both.
        let mut without = Vec::new();
        let mut with = Vec::new();
        for round in 0..2 {
            // A pause between passes lets the simulator's budget refill.
            tokio::time::sleep(Duration::from_secs(a.window_s)).await;
            without.push(pass(a, batch, &sim, &format!("b{batch}n{round}"), None).await?);
            tokio::time::sleep(Duration::from_secs(a.window_s)).await;
            with.push(
                pass(
                    a,
                    batch,
                    &sim,
                    &format!("b{batch}l{round}"),
                    Some((counting.clone(), requests.clone())),
                )
                .await?,
            );
        }
        let rate = |p: &[Pass]| {
            let users: usize = p.iter().map(|x| x.done).sum();
            let secs: f64 = p.iter().map(|x| x.elapsed.as_secs_f64()).sum();
            users as f64 / secs.max(1e-9)
        };
        let (r0, r1) = (rate(&without), rate(&with));
        for (name, p) in without
            .iter()
            .map(|p| ("without ledger", p))
            .chain(with.iter().map(|p| ("with ledger", p)))
        {
            table_rows.push(format!(
                "| {batch} | {name} | {} | {:.1} s | {:.0} |",
                p.done,
                p.elapsed.as_secs_f64(),
                p.done as f64 / p.elapsed.as_secs_f64().max(1e-9)
            ));
        }
        let rows = counting.rows.load(Ordering::Relaxed).max(1);
        let wcu =
            counting.wcu.load(Ordering::Relaxed) + counting.other_writes.load(Ordering::Relaxed);
        let per_user = wcu as f64 / rows as f64;
        let records = counting.records.load(Ordering::Relaxed);
        let reads = counting.summaries.load(Ordering::Relaxed);
        // On-demand prices (us-east-1): $0.625 per million write request units, $0.125 per
        // million read request units. Reads: one summary check per batch (a consistent
        // BatchGetItem of the header and the counter shards: 1 unit per item, each rounded up to
        // 4 KB), and the reports' Query of every row once (about 250 bytes a row, 4 KB per unit).
        let reads_per_user = (1 + SHARDS) as f64 / batch as f64 + 250.0 / 4096.0;
        let cost = 100_000.0 * (per_user * 0.625 + reads_per_user * 0.125) / 1e6;
        summaries.push(format!(
            "batches of {batch}: users/s without the ledger {r0:.0}, with it {r1:.0}: the ledger costs {:.1}% of users/s\n\
             batches of {batch}: {records} record calls for {rows} rows, {wcu} write units ({per_user:.2} per user: 2 per item of a transaction, rows + one counter shard per transaction of up to {MAX_ROWS_PER_TRANSACTION} rows, plus the expected count and the completion claim); {reads} summary reads ({} DynamoDB requests per user); {} report requests\n\
             batches of {batch}: cost per 100,000 users at on-demand prices: {:.0} WRU x $0.625/M + {:.0} RRU x $0.125/M = ${cost:.3}",
            100.0 * (1.0 - r1 / r0.max(1e-9)),
            format_args!("{:.2}", (records * (batch.div_ceil(MAX_ROWS_PER_TRANSACTION) as u64) + reads) as f64 / rows as f64),
            requests.0.load(Ordering::Relaxed),
            100_000.0 * per_user,
            100_000.0 * reads_per_user
        ));
    }
    println!("| batch | pass | users | time | users/s |");
    println!("|---:|---|---:|---:|---:|");
    for r in &table_rows {
        println!("{r}");
    }
    for s in &summaries {
        println!("{s}");
    }
    sim.shutdown().await;
    Ok(())
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| e.to_string())
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("job")?)
        .attribute_definitions(attr("item")?)
        .key_schema(key("job", KeyType::Hash)?)
        .key_schema(key("item", KeyType::Range)?)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "create table {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })
}
