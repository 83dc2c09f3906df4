//! Worker benchmark against the Graph simulator (loopback only).
//!
//! Runs N users through the worker engine (one process, one shared Graph client, the adaptive
//! limiter finding Graph's ceiling) against a simulator with latency and an RU budget, then a
//! sample of users the community-script way (one user at a time, calls in turn), and prints
//! throughput, budget use, throttling, requests per user and the ratio.
//!
//! With `--instances 1,4,16` it runs instead N engine instances in separate processes (the bench
//! starts itself again as each child, as Lambda runs one engine per instance) sharing one
//! simulated tenant budget, for every N and every model of `--models`, and prints a table: users/s
//! as a share of the ceiling the budget sets, the share of 429s, and the run time against the
//! shortest run the limits allow.
//!
//! `cargo build --release --workspace --features mfa-preload-core/bench`, then
//! `target/release/worker-bench [options]`:
//!   --users N            users for the engine (10000; with --instances: in all, split evenly)
//!   --baseline N         users timed the sequential way, then extrapolated (200)
//!   --latency-ms N       simulator latency per request (50)
//!   --ru N               RU per window (8000); --window-s S (10)
//!   --new-share F        share of users that need a new mobile (0.1); the rest are re-runs
//!   --concurrency N      users in flight in the engine (512)
//!   --increase F         limiter growth per round trip (the client's default)
//!   --model M            token-bucket (default) or sliding-window
//!   --instances LIST     e.g. 1,4,16: the several-instances run (no baseline)
//!   --models LIST        models for --instances (token-bucket,sliding-window)
//!   --no-limit-percentage  the simulator sends no x-ms-throttle-limit-percentage
//!   --ledger-compare     users/s with and without the job ledger (DynamoDB on the moto server
//!                        at AWS_ENDPOINT_URL), side by side, and its write units per user
//!   --ledger-batches LIST  batch sizes (messages per invocation) of --ledger-compare (10,100)

#[path = "../ledger_compare.rs"]
mod ledger_compare;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_sim::{GraphSim, SeedUser, SimConfig, ThrottleModel};
use mfa_preload_core::apply::apply;
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::dlq::MemoryDlq;
use mfa_preload_core::graph::{ClientOptions, Credentials, GraphClient, LimiterConfig};
use mfa_preload_core::message::{Job, Methods, Policy, Request, MESSAGE_VERSION};
use mfa_preload_core::worker::{Disposition, InboundMessage, Worker, WorkerConfig};
use mfa_preload_core::Outcome;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

struct Args {
    users: usize,
    baseline: usize,
    latency_ms: u64,
    ru: u32,
    window_s: u64,
    new_share: f64,
    concurrency: usize,
    increase: f64,
    decrease: f64,
    slow_start: bool,
    model: ThrottleModel,
    instances: Vec<usize>,
    models: Vec<ThrottleModel>,
    limit_percentage: bool,
    /// Set in a child: the simulator's base URL and the prefix of its users.
    child_of: Option<String>,
    prefix: String,
    offset: usize,
    concurrency_set: bool,
    /// `--ledger-compare`, and its batch sizes (`--ledger-batches`).
    ledger_compare: bool,
    ledger_batches: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        users: 10_000,
        baseline: 200,
        latency_ms: 50,
        ru: 8000,
        window_s: 10,
        new_share: 0.1,
        concurrency: 512,
        increase: LimiterConfig::default().increase,
        decrease: LimiterConfig::default().decrease,
        slow_start: LimiterConfig::default().slow_start,
        model: ThrottleModel::default(),
        instances: Vec::new(),
        models: vec![ThrottleModel::TokenBucket, ThrottleModel::SlidingWindow],
        limit_percentage: true,
        child_of: None,
        prefix: "u".into(),
        offset: 0,
        concurrency_set: false,
        ledger_compare: false,
        ledger_batches: vec![10, 100],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-limit-percentage" {
            a.limit_percentage = false;
            continue;
        }
        if flag == "--ledger-compare" {
            a.ledger_compare = true;
            continue;
        }
        let val = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag}: '{val}' is not a number");
        match flag.as_str() {
            "--users" => a.users = val.parse().map_err(bad)?,
            "--baseline" => a.baseline = val.parse().map_err(bad)?,
            "--latency-ms" => a.latency_ms = val.parse().map_err(bad)?,
            "--ru" => a.ru = val.parse().map_err(bad)?,
            "--window-s" => a.window_s = val.parse().map_err(bad)?,
            "--new-share" => {
                a.new_share = val
                    .parse()
                    .map_err(|_| format!("{flag}: '{val}' is not a number"))?
            }
            "--concurrency" => {
                a.concurrency = val.parse().map_err(bad)?;
                a.concurrency_set = true;
            }
            "--model" => a.model = val.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--models" => {
                a.models = val
                    .split(',')
                    .map(|m| m.parse().map_err(|e| format!("{flag}: {e}")))
                    .collect::<Result<_, String>>()?
            }
            "--instances" => {
                a.instances = val
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("{flag}: '{n}' is not a positive number")),
                    })
                    .collect::<Result<_, String>>()?
            }
            "--ledger-batches" => {
                a.ledger_batches = val
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("{flag}: '{n}' is not a positive number")),
                    })
                    .collect::<Result<_, String>>()?
            }
            "--child-of" => a.child_of = Some(val),
            "--prefix" => a.prefix = val,
            "--offset" => a.offset = val.parse().map_err(bad)?,
            "--decrease" => {
                a.decrease = val
                    .parse()
                    .map_err(|_| format!("{flag}: '{val}' is not a number"))?
            }
            "--slow-start" => {
                a.slow_start = val
                    .parse()
                    .map_err(|_| format!("{flag}: '{val}' is not true/false"))?
            }
            "--increase" => {
                a.increase = val
                    .parse()
                    .map_err(|_| format!("{flag}: '{val}' is not a number"))?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn fixture(name: &str) -> Result<String, String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

fn number(i: usize) -> String {
    format!("+1 555{:07}", i)
}

/// Users `prefix{i}` and their requests: one in every `1 / new_share` has no mobile yet (it gets
/// one), the others already have the requested number (a verification re-run: one GET, no write).
fn users_and_requests(
    prefix: &str,
    n: usize,
    new_share: f64,
    offset: usize,
) -> (Vec<SeedUser>, Vec<Request>) {
    let new_every = if new_share > 0.0 {
        (1.0 / new_share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let mut seeds = Vec::with_capacity(n);
    let mut reqs = Vec::with_capacity(n);
    for i in 0..n {
        let upn = format!("{prefix}{i}@bench.example");
        let num = number(offset + i);
        let is_new = i % new_every == 0;
        seeds.push(SeedUser {
            mobile: (!is_new).then(|| num.clone()),
            ..SeedUser::new(upn.clone())
        });
        reqs.push(Request {
            v: MESSAGE_VERSION,
            job: Job::Producer {
                producer: "bench".into(),
                id: None,
            },
            row: Some(i as u64 + 2),
            user: upn,
            methods: Methods {
                mobile: Some(Some(num)),
                ..Methods::default()
            },
            policy: Policy::default(),
            sms_sign_in: None,
            default_method: None,
            temporary_access_pass: None,
            reply_to: None,
        });
    }
    (seeds, reqs)
}

/// Seeds the users of [`users_and_requests`] into `sim` and returns their requests.
fn seed_and_requests(
    sim: &GraphSim,
    prefix: &str,
    n: usize,
    new_share: f64,
    offset: usize,
) -> Vec<Request> {
    let (seeds, reqs) = users_and_requests(prefix, n, new_share, offset);
    sim.add_users(seeds);
    reqs
}

fn messages(reqs: &[Request]) -> Vec<InboundMessage> {
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            InboundMessage::new(
                i.to_string(),
                serde_json::to_string(r).unwrap_or_default(),
                1,
            )
        })
        .collect()
}

fn client(sim: &GraphSim, limiter: LimiterConfig) -> Result<Arc<GraphClient>, String> {
    client_at(&sim.base_url(), limiter)
}

fn client_at(base_url: &str, limiter: LimiterConfig) -> Result<Arc<GraphClient>, String> {
    let creds = Credentials::from_pem(
        TENANT,
        CLIENT_ID,
        &fixture("test-app.crt.pem")?,
        &fixture("test-app.key.pem")?,
    )
    .map_err(|e| e.to_string())?;
    let settings = GraphSettings::single_host(base_url).map_err(|e| e.to_string())?;
    let opts = ClientOptions {
        limiter,
        ..ClientOptions::default()
    };
    GraphClient::new(settings, creds, opts)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("worker-bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let mut a = parse_args()?;
    if let Some(base_url) = a.child_of.clone() {
        return instances::child(&a, &base_url).await;
    }
    if a.ledger_compare {
        return ledger_compare::run(&a).await;
    }
    if !a.instances.is_empty() {
        if !a.concurrency_set {
            a.concurrency = instances::DEFAULT_CONCURRENCY;
        }
        return instances::run(&a).await;
    }
    let window = Duration::from_secs(a.window_s);
    let sim = GraphSim::start(SimConfig {
        latency: Duration::from_millis(a.latency_ms),
        throttle_model: a.model,
        limit_percentage_header: a.limit_percentage,
        ru_per_window: a.ru,
        window,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem")?);
    let budget_rate = f64::from(a.ru) / window.as_secs_f64();
    println!(
        "simulator: latency {} ms, {} RU / {} s ({budget_rate:.0} RU/s), writes 3000 / 150 s, {}; GET = 1 RU, write = 2 RU",
        a.latency_ms, a.ru, a.window_s, a.model
    );

    // ---- the engine ----
    let reqs = seed_and_requests(&sim, "u", a.users, a.new_share, 0);
    let messages = messages(&reqs);
    let engine = client(
        &sim,
        LimiterConfig {
            increase: a.increase,
            decrease: a.decrease,
            slow_start: a.slow_start,
            ..LimiterConfig::default()
        },
    )?;
    let worker = Worker::new(
        engine.clone(),
        Arc::new(MemoryDlq::new()),
        WorkerConfig {
            concurrency: a.concurrency,
            max_receive_count: 5,
            ..WorkerConfig::default()
        },
    );
    sim.reset_stats();
    let start = Instant::now();
    // Sample the simulator's counters while the run goes.
    let finished = std::sync::atomic::AtomicBool::new(false);
    let sim_ref = &sim;
    let finished_ref = &finished;
    let engine_ref = &engine;
    let sampler = async move {
        let mut samples: Vec<(Duration, u64, u64, u64, f64)> = Vec::new();
        while !finished_ref.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let s = sim_ref.stats();
            samples.push((
                start.elapsed(),
                s.ru_used,
                s.ru_in_window,
                s.throttled,
                engine_ref.stats().concurrency_limit,
            ));
        }
        samples
    };
    let work = async {
        let r = worker.process(messages).await;
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    };
    let (reports, samples) = tokio::join!(work, sampler);
    let elapsed = start.elapsed();
    let stats = sim.stats();
    let cstats = engine.stats();
    let done = reports
        .iter()
        .filter(|r| matches!(r.disposition, Disposition::Done(_)))
        .count();
    let created = reports
        .iter()
        .filter(|r| r.disposition == Disposition::Done(Outcome::Created))
        .count();
    let unchanged = reports
        .iter()
        .filter(|r| r.disposition == Disposition::Done(Outcome::Unchanged))
        .count();
    let users_per_s = a.users as f64 / elapsed.as_secs_f64();
    let answered = stats.requests.max(1) as f64;

    // Steady state: from the end of the first window to the last sample, RU spent per second
    // against the budget's rate, and how much of the budget was in use.
    let steady: Vec<_> = samples.iter().filter(|x| x.0 >= window).collect();
    let steady_share = match (steady.first(), steady.last()) {
        (Some(f), Some(l)) if l.0 > f.0 => {
            Some(((l.1 - f.1) as f64 / (l.0 - f.0).as_secs_f64()) / budget_rate)
        }
        _ => None,
    };
    let window_fill = if steady.is_empty() {
        None
    } else {
        Some(steady.iter().map(|x| x.2 as f64).sum::<f64>() / steady.len() as f64 / f64::from(a.ru))
    };
    println!("\nengine: {} users in {:.2} s = {users_per_s:.0} users/s ({done} done: {created} created, {unchanged} unchanged)", a.users, elapsed.as_secs_f64());
    println!(
        "  Graph requests {} (GET {}, POST {}, PATCH {}, DELETE {}) = {:.3} per user; writes {} = {:.3} per user",
        stats.requests,
        stats.gets,
        stats.posts,
        stats.patches,
        stats.deletes,
        stats.requests as f64 / a.users as f64,
        stats.writes,
        stats.writes as f64 / a.users as f64
    );
    println!(
        "  429 answers {} = {:.2}% of requests; client retries {}; token requests {}; final concurrency limit {:.1}",
        stats.throttled,
        100.0 * stats.throttled as f64 / answered,
        cstats.retries,
        cstats.token_requests,
        cstats.concurrency_limit
    );
    let accepted_ru = stats.ru_used as f64;
    let over_run = accepted_ru / elapsed.as_secs_f64();
    println!(
        "  RU used {} = {over_run:.0} RU/s over the run = {:.1}% of the budget rate; peak RU in one window {} = {:.1}% of the window",
        stats.ru_used,
        100.0 * over_run / budget_rate,
        stats.peak_ru_in_window,
        100.0 * stats.peak_ru_in_window as f64 / f64::from(a.ru)
    );
    match (steady_share, window_fill) {
        (Some(rate), Some(fill)) => println!(
            "  steady state (t >= {} s, {} samples): {:.1}% of the budget rate spent; budget {:.1}% in use on average",
            a.window_s,
            steady.len(),
            100.0 * rate,
            100.0 * fill
        ),
        _ => println!("  steady state: the run ended within the first window"),
    }

    if std::env::var_os("BENCH_TIMELINE").is_some() {
        println!("  timeline (t s: RU/s, 429s, limit):");
        let mut prev = (Duration::ZERO, 0u64, 0u64);
        for x in samples.iter().step_by(5) {
            let dt = (x.0 - prev.0).as_secs_f64().max(1e-9);
            println!(
                "    {:5.1}: {:5.0} RU/s {:4} x429 limit {:5.1}",
                x.0.as_secs_f64(),
                (x.1 - prev.1) as f64 / dt,
                x.3 - prev.2,
                x.4
            );
            prev = (x.0, x.1, x.3);
        }
    }

    // ---- the community-script way: one user at a time, calls in turn ----
    let sample = seed_and_requests(&sim, "b", a.baseline, a.new_share, a.users);
    let sequential = client(
        &sim,
        LimiterConfig {
            initial: 1,
            min: 1,
            max: 1,
            ..LimiterConfig::default()
        },
    )?;
    sim.reset_stats();
    // Let the RU window drain so the baseline is not throttled by the engine's run.
    tokio::time::sleep(window).await;
    let bstart = Instant::now();
    let mut bdone = 0usize;
    for r in &sample {
        if apply(&sequential, r).await.outcome.is_ok() {
            bdone += 1;
        }
    }
    let belapsed = bstart.elapsed();
    let bstats = sim.stats();
    let per_user = belapsed.as_secs_f64() / a.baseline.max(1) as f64;
    let baseline_rate = 1.0 / per_user;
    let extrapolated = per_user * a.users as f64;
    println!(
        "\nbaseline (sequential): {} users timed in {:.2} s ({bdone} ok) = {baseline_rate:.1} users/s, {:.1} ms per user, {:.3} requests per user",
        a.baseline,
        belapsed.as_secs_f64(),
        per_user * 1000.0,
        bstats.requests as f64 / a.baseline.max(1) as f64
    );
    if a.baseline < a.users {
        println!(
            "  extrapolated to {} users: {:.0} s ({:.1} min) -- an extrapolation from the {}-user sample, not a measured run",
            a.users,
            extrapolated,
            extrapolated / 60.0,
            a.baseline
        );
    }
    println!(
        "\nratio engine / baseline: {:.1}x",
        users_per_s / baseline_rate
    );
    // What the budget allows at all: no client can do more users/s than budget / RU per user.
    let ru_per_user = stats.ru_used as f64 / a.users.max(1) as f64;
    if ru_per_user > 0.0 {
        let ceiling = budget_rate / ru_per_user;
        println!(
            "ceiling set by the budget: {budget_rate:.0} RU/s / {ru_per_user:.3} RU per user = {ceiling:.0} users/s = {:.1}x the baseline; the engine reached {:.1}% of it",
            ceiling / baseline_rate,
            100.0 * users_per_s / ceiling
        );
    }
    // The shortest run the simulator's two budgets allow for this work.
    let defaults = SimConfig::default();
    let ru_floor = shortest_run(a.model, stats.ru_used, a.ru, window);
    let write_floor = shortest_run(
        a.model,
        stats.writes,
        defaults.writes_per_window,
        defaults.write_window,
    );
    let floor = ru_floor.max(write_floor);
    if floor > 0.0 {
        println!(
            "shortest run the limits allow: {floor:.1} s (RU {ru_floor:.1} s, writes {write_floor:.1} s at {} per {} s); the engine took {:.1} s = {:.2}x that",
            defaults.writes_per_window,
            defaults.write_window.as_secs(),
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() / floor
        );
    }
    sim.shutdown().await;
    Ok(())
}

/// The shortest run, in seconds, in which `units` of a budget of `limit` per `window` can be
/// spent: a token bucket lets its `limit` go at once and then refills at `limit / window` per
/// second; a sliding window lets `limit` go at once and the next `limit` one window later.
fn shortest_run(model: ThrottleModel, units: u64, limit: u32, window: Duration) -> f64 {
    if limit == 0 || units == 0 {
        return 0.0;
    }
    let limit = f64::from(limit);
    let units = units as f64;
    match model {
        ThrottleModel::TokenBucket => (units - limit).max(0.0) / (limit / window.as_secs_f64()),
        ThrottleModel::SlidingWindow => ((units / limit).ceil() - 1.0) * window.as_secs_f64(),
    }
}

/// `--instances`: several engine processes sharing one simulated tenant budget.
mod instances {
    use super::*;

    use serde::{Deserialize, Serialize};
    use tokio::io::AsyncReadExt;

    /// Users in flight per instance unless `--concurrency` says otherwise.
    pub(super) const DEFAULT_CONCURRENCY: usize = 64;

    /// What a child reports on its stdout (one JSON line).
    #[derive(Debug, Serialize, Deserialize)]
    struct ChildReport {
        users: usize,
        done: usize,
        requests: u64,
        throttled: u64,
        elapsed_s: f64,
        pace: Option<f64>,
    }

    /// One instance: its users as one batch through one worker, then a report.
    pub(super) async fn child(a: &Args, base_url: &str) -> Result<(), String> {
        let (_, reqs) = users_and_requests(&a.prefix, a.users, a.new_share, a.offset);
        let engine = client_at(base_url, LimiterConfig::default())?;
        let worker = Worker::new(
            engine.clone(),
            Arc::new(MemoryDlq::new()),
            WorkerConfig {
                concurrency: a.concurrency,
                max_receive_count: 5,
                ..WorkerConfig::default()
            },
        );
        let start = Instant::now();
        let reports = if std::env::var_os("BENCH_PACE").is_some() {
            // Print the limiter's state as the run goes (for tuning).
            let watch = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    eprintln!(
                        "      {} {:5.2} s: {:?}",
                        a.prefix,
                        start.elapsed().as_secs_f64(),
                        engine.limiter().snapshot()
                    );
                }
            };
            tokio::select! {
                r = worker.process(messages(&reqs)) => r,
                () = watch => Vec::new(),
            }
        } else {
            worker.process(messages(&reqs)).await
        };
        let elapsed = start.elapsed();
        let cstats = engine.stats();
        let report = ChildReport {
            users: a.users,
            done: reports
                .iter()
                .filter(|r| matches!(r.disposition, Disposition::Done(_)))
                .count(),
            requests: cstats.requests,
            throttled: cstats.throttled,
            elapsed_s: elapsed.as_secs_f64(),
            pace: cstats.pace,
        };
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
        Ok(())
    }

    /// Sets the flag when dropped (the run is over, however it ended).
    struct SetOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One row of the table.
    struct Row {
        model: ThrottleModel,
        instances: usize,
        users: usize,
        done: usize,
        elapsed: f64,
        requests: u64,
        throttled: u64,
        ru_used: u64,
        writes: u64,
        shortest: f64,
        slowest_child: f64,
        fastest_child: f64,
    }

    pub(super) async fn run(a: &Args) -> Result<(), String> {
        let window = Duration::from_secs(a.window_s);
        let budget_rate = f64::from(a.ru) / window.as_secs_f64();
        let defaults = SimConfig::default();
        println!(
            "simulator: latency {} ms, {} RU / {} s ({budget_rate:.0} RU/s), writes {} / {} s, x-ms-throttle-limit-percentage {}; GET = 1 RU, write = 2 RU",
            a.latency_ms,
            a.ru,
            a.window_s,
            defaults.writes_per_window,
            defaults.write_window.as_secs(),
            if a.limit_percentage { "sent" } else { "never sent" }
        );
        println!(
            "work: {} users in all ({:.0}% new), split evenly over the instances; {} users in flight per instance",
            a.users,
            100.0 * a.new_share,
            a.concurrency
        );
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut rows = Vec::new();
        for &model in &a.models {
            for &n in &a.instances {
                let row = one_run(a, &exe, model, n).await?;
                eprintln!(
                    "worker-bench: {model}, {n} instance(s): {:.1} s, {} 429s",
                    row.elapsed, row.throttled
                );
                rows.push(row);
            }
        }
        println!();
        println!("| model | instances | users | run time | users/s | ceiling (users/s) | share of the ceiling | requests | 429s | share of 429s | shortest run | run / shortest | instances finished within |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let users_per_s = r.done as f64 / r.elapsed;
            // The ceiling for this work: the users in the shortest run the limits allow.
            let ceiling = r.users as f64 / r.shortest.max(1e-9);
            println!(
                "| {} | {} | {} | {:.1} s | {:.0} | {:.0} | {:.1}% | {} | {} | {:.2}% | {:.1} s | {:.2}x | {:.1}-{:.1} s |",
                r.model,
                r.instances,
                r.users,
                r.elapsed,
                users_per_s,
                ceiling,
                100.0 * users_per_s / ceiling,
                r.requests,
                r.throttled,
                100.0 * r.throttled as f64 / r.requests.max(1) as f64,
                r.shortest,
                r.elapsed / r.shortest.max(1e-9),
                r.fastest_child,
                r.slowest_child,
            );
        }
        println!();
        for r in &rows {
            println!(
                "{} x{}: RU used {} ({:.3} per user), writes {}; shortest run = {}",
                r.model,
                r.instances,
                r.ru_used,
                r.ru_used as f64 / r.users.max(1) as f64,
                r.writes,
                match r.model {
                    ThrottleModel::TokenBucket => format!(
                        "({} - {}) RU / {budget_rate:.0} RU/s = {:.1} s",
                        r.ru_used, a.ru, r.shortest
                    ),
                    ThrottleModel::SlidingWindow => format!(
                        "(ceil({} / {}) - 1) x {} s = {:.1} s",
                        r.ru_used, a.ru, a.window_s, r.shortest
                    ),
                }
            );
        }
        Ok(())
    }

    async fn one_run(
        a: &Args,
        exe: &std::path::Path,
        model: ThrottleModel,
        n: usize,
    ) -> Result<Row, String> {
        let window = Duration::from_secs(a.window_s);
        let sim = GraphSim::start(SimConfig {
            latency: Duration::from_millis(a.latency_ms),
            throttle_model: model,
            limit_percentage_header: a.limit_percentage,
            ru_per_window: a.ru,
            window,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem")?);
        let mut shares = Vec::with_capacity(n);
        let mut offset = 0;
        for k in 0..n {
            let count = a.users / n + usize::from(k < a.users % n);
            let prefix = format!("i{k}-");
            let (seeds, _) = users_and_requests(&prefix, count, a.new_share, offset);
            sim.add_users(seeds);
            shares.push((prefix, count, offset));
            offset += count;
        }
        sim.reset_stats();
        let start = Instant::now();
        let mut children = Vec::with_capacity(n);
        for (prefix, count, offset) in &shares {
            let child = tokio::process::Command::new(exe)
                .args([
                    "--child-of",
                    &sim.base_url(),
                    "--prefix",
                    prefix,
                    "--users",
                    &count.to_string(),
                    "--offset",
                    &offset.to_string(),
                    "--new-share",
                    &a.new_share.to_string(),
                    "--concurrency",
                    &a.concurrency.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start an instance: {e}"))?;
            children.push(child);
        }
        // Sample the simulator while the instances run (BENCH_TIMELINE prints it).
        let timeline = std::env::var_os("BENCH_TIMELINE").is_some();
        let finished = std::sync::atomic::AtomicBool::new(false);
        let sampler = async {
            let mut prev = (0u64, 0u64);
            let mut t = 0.0;
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                t += 0.5;
                let s = sim.stats();
                if timeline {
                    eprintln!(
                        "    {t:5.1} s: {:5.0} RU/s, {:4} x429, budget in use {:5}",
                        (s.ru_used - prev.0) as f64 / 0.5,
                        s.throttled - prev.1,
                        s.ru_in_window
                    );
                }
                prev = (s.ru_used, s.throttled);
            }
        };
        let wait_all = async {
            let _done = SetOnDrop(&finished);
            let mut reports = Vec::with_capacity(n);
            for mut child in children {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    stdout
                        .read_to_string(&mut out)
                        .await
                        .map_err(|e| format!("instance output: {e}"))?;
                }
                let status = child.wait().await.map_err(|e| format!("instance: {e}"))?;
                if !status.success() {
                    return Err(format!("an instance failed: {status}"));
                }
                // The engine's metrics go to stdout too (CloudWatch's embedded format): the
                // report is the last line that reads as one.
                let report: ChildReport = out
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str(l.trim()).ok())
                    .ok_or_else(|| format!("no instance report in '{}'", out.trim()))?;
                reports.push(report);
            }
            Ok::<_, String>(reports)
        };
        let (reports, ()) = tokio::join!(wait_all, sampler);
        let reports = reports?;
        let elapsed = start.elapsed().as_secs_f64();
        let stats = sim.stats();
        sim.shutdown().await;
        let defaults = SimConfig::default();
        let shortest = shortest_run(model, stats.ru_used, a.ru, window).max(shortest_run(
            model,
            stats.writes,
            defaults.writes_per_window,
            defaults.write_window,
        ));
        Ok(Row {
            model,
            instances: n,
            users: a.users,
            done: reports.iter().map(|r| r.done).sum(),
            elapsed,
            requests: stats.requests,
            throttled: stats.throttled,
            ru_used: stats.ru_used,
            writes: stats.writes,
            shortest,
            slowest_child: reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max),
            fastest_child: reports
                .iter()
                .map(|r| r.elapsed_s)
                .fold(f64::INFINITY, f64::min),
        })
    }
}
