//! The engine's limiter against both of the simulator's throttle models (a token bucket, as
//! Graph counts, and a sliding window), with and without `x-ms-throttle-limit-percentage`, alone
//! and with a second engine spending the same tenant budget. The assertions are on outcomes and
//! counts, never on times: the benchmark (`worker-bench --instances`) reports the throughput.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use graph_sim::{GraphSim, SeedUser, SimConfig, ThrottleModel};
use mfa_preload_core::graph::{GraphClient, LimiterConfig};
use mfa_preload_core::worker::{Disposition, InboundMessage};
use mfa_preload_core::Outcome;
use serde_json::json;

const M1: &str = "+1 5555551234";
const MODELS: [ThrottleModel; 2] = [ThrottleModel::TokenBucket, ThrottleModel::SlidingWindow];

/// A small tenant budget so that the tests are quick: 800 RU per 2 s (400 RU/s), 5 ms latency.
const BUDGET: u64 = 800;

async fn sim(model: ThrottleModel, limit_percentage_header: bool) -> GraphSim {
    start_sim(SimConfig {
        latency: Duration::from_millis(5),
        throttle_model: model,
        limit_percentage_header,
        ru_per_window: BUDGET as u32,
        window: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
}

/// `n` re-run users `{prefix}{i}` (one GET each, no write) and their messages.
fn users(sim: &GraphSim, prefix: &str, n: usize) -> Vec<InboundMessage> {
    sim.add_users((0..n).map(|i| SeedUser {
        mobile: Some(M1.to_string()),
        ..SeedUser::new(format!("{prefix}{i}@contoso.com"))
    }));
    (0..n)
        .map(|i| {
            msg(
                &format!("{prefix}{i}"),
                body(
                    &format!("{prefix}{i}@contoso.com"),
                    json!({"mobile": M1}),
                    json!({}),
                    json!({}),
                ),
            )
        })
        .collect()
}

fn engine(sim: &GraphSim) -> Arc<GraphClient> {
    let mut opts = test_options(6);
    opts.limiter = LimiterConfig::default();
    opts.max_retry_after = Duration::from_secs(5);
    client_for(sim, &pem_secret(), opts)
}

async fn run(client: Arc<GraphClient>, msgs: Vec<InboundMessage>) {
    let (worker, dlq) = worker_with(
        client,
        mfa_preload_core::worker::WorkerConfig {
            concurrency: 64,
            ..Default::default()
        },
    );
    let reports = tokio::time::timeout(Duration::from_secs(120), worker.process(msgs))
        .await
        .expect("bounded");
    for r in &reports {
        assert_eq!(
            r.disposition,
            Disposition::Done(Outcome::Unchanged),
            "{:?}",
            r.result
        );
    }
    assert!(dlq.entries().is_empty());
}

#[tokio::test]
async fn one_engine_paces_itself_on_both_models() {
    for model in MODELS {
        for header in [true, false] {
            let sim = sim(model, header).await;
            let msgs = users(&sim, "a", 2400);
            let client = engine(&sim);
            run(client.clone(), msgs).await;
            let s = sim.stats();
            assert_eq!(s.writes, 0);
            assert!(s.peak_ru_in_window <= BUDGET, "{model} header {header}: {s:?}");
            let share = s.throttled as f64 / s.requests as f64;
            assert!(
                share < 0.05,
                "{model} header {header}: {:.1}% 429s, {s:?}",
                100.0 * share
            );
            let learned = client.limiter().snapshot();
            assert!(learned.pace.is_some(), "{model} header {header}: {learned:?}");
            sim.shutdown().await;
        }
    }
}

#[tokio::test]
async fn an_engine_shrinks_its_pace_when_another_shares_the_budget() {
    for model in MODELS {
        for header in [true, false] {
            let sim = sim(model, header).await;
            let first = engine(&sim);
            let second = engine(&sim);
            let a = users(&sim, "a", 3000);
            let b = users(&sim, "b", 1200);
            let running = tokio::spawn(run(first.clone(), a));
            // The first engine learns the budget on its own, as one instance would; after 4 s a
            // second engine joins, as a second Lambda instance would. The first engine's pace is
            // averaged over 2-4 s (alone) and 5-7 s (shared).
            let mut alone = Vec::new();
            let mut shared = Vec::new();
            let start = std::time::Instant::now();
            let mut joined = None;
            while start.elapsed() < Duration::from_secs(7) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let t = start.elapsed();
                if t >= Duration::from_secs(4) && joined.is_none() {
                    joined = Some(tokio::spawn(run(second.clone(), b.clone())));
                }
                let pace = first.limiter().snapshot().pace.unwrap_or(0.0);
                if (Duration::from_secs(2)..Duration::from_secs(4)).contains(&t) {
                    alone.push(pace);
                } else if t >= Duration::from_secs(5) {
                    shared.push(pace);
                }
            }
            if let Some(j) = joined {
                j.await.expect("second engine");
            }
            running.await.expect("first engine");
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let (alone, shared) = (mean(&alone), mean(&shared));
            assert!(
                alone > 0.0 && shared < 0.8 * alone,
                "{model} header {header}: pace {alone:.0}/s alone, {shared:.0}/s shared"
            );
            let s = sim.stats();
            assert!(s.peak_ru_in_window <= BUDGET, "{s:?}");
            let share = s.throttled as f64 / s.requests as f64;
            assert!(
                share < 0.05,
                "{model} header {header}: {:.1}% 429s, {s:?}",
                100.0 * share
            );
            sim.shutdown().await;
        }
    }
}
