//! Worker benchmark against the Graph simulator (loopback only).
//!
//! Runs N users through the worker engine (one process, one shared Graph client, the adaptive
//! limiter finding Graph's ceiling) against a simulator with latency and an RU budget, then a
//! sample of users the community-script way (one user at a time, calls in turn), and prints
//! throughput, budget use, throttling, requests per user and the ratio.
//!
//! `cargo run --release -p mfa-preload-core --features bench --bin worker-bench -- [options]`
//!   --users N            users for the engine (10000)
//!   --baseline N         users timed the sequential way, then extrapolated (200)
//!   --latency-ms N       simulator latency per request (50)
//!   --ru N               RU per window (8000); --window-s S (10)
//!   --new-share F        share of users that need a new mobile (0.1); the rest are re-runs
//!   --concurrency N      users in flight in the engine (512)
//!   --increase F         limiter growth per round trip (the client's default)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_sim::{GraphSim, SeedUser, SimConfig};
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
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
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
            "--concurrency" => a.concurrency = val.parse().map_err(bad)?,
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

/// Seeds users `prefix{i}`; the first `new` of every 10 have no mobile yet (they get one), the
/// others already have the requested number (a verification re-run: one GET, no write).
fn seed_and_requests(
    sim: &GraphSim,
    prefix: &str,
    n: usize,
    new_share: f64,
    offset: usize,
) -> Vec<Request> {
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
        });
    }
    sim.add_users(seeds);
    reqs
}

fn client(sim: &GraphSim, limiter: LimiterConfig) -> Result<Arc<GraphClient>, String> {
    let creds = Credentials::from_pem(
        TENANT,
        CLIENT_ID,
        &fixture("test-app.crt.pem")?,
        &fixture("test-app.key.pem")?,
    )
    .map_err(|e| e.to_string())?;
    let settings = GraphSettings::single_host(&sim.base_url()).map_err(|e| e.to_string())?;
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
    let a = parse_args()?;
    let window = Duration::from_secs(a.window_s);
    let sim = GraphSim::start(SimConfig {
        latency: Duration::from_millis(a.latency_ms),
        ru_per_window: a.ru,
        window,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem")?);
    let budget_rate = f64::from(a.ru) / window.as_secs_f64();
    println!(
        "simulator: latency {} ms, {} RU / {} s ({budget_rate:.0} RU/s), writes 3000 / 150 s; GET = 1 RU, write = 2 RU",
        a.latency_ms, a.ru, a.window_s
    );

    // ---- the engine ----
    let reqs = seed_and_requests(&sim, "u", a.users, a.new_share, 0);
    let messages: Vec<InboundMessage> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            InboundMessage::new(
                i.to_string(),
                serde_json::to_string(r).unwrap_or_default(),
                1,
            )
        })
        .collect();
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
    // against the budget's rate, and how full the sliding window was kept.
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
            "  steady state (t >= {} s, {} samples): {:.1}% of the budget rate spent; sliding window {:.1}% full on average",
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
    // The shortest run the simulator's two sliding windows allow for this work: a full window
    // may be spent at once, the rest only as it slides.
    let defaults = SimConfig::default();
    let ru_floor = (stats.ru_used as f64 - f64::from(a.ru)).max(0.0) / budget_rate;
    let write_floor = (stats.writes.saturating_sub(1)
        / u64::from(defaults.writes_per_window.max(1))) as f64
        * defaults.write_window.as_secs_f64();
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
