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

/// A small tenant budget so that the tests are quick: 200 RU per 1 s, 5 ms latency.
async fn sim(model: ThrottleModel, limit_percentage_header: bool) -> GraphSim {
    start_sim(SimConfig {
        latency: Duration::from_millis(5),
        throttle_model: model,
        limit_percentage_header,
        ru_per_window: 200,
        window: Duration::from_secs(1),
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
            let msgs = users(&sim, "a", 1000);
            let client = engine(&sim);
            run(client.clone(), msgs).await;
            let s = sim.stats();
            assert_eq!(s.writes, 0);
            assert!(s.peak_ru_in_window <= 200, "{model} header {header}: {s:?}");
            let share = s.throttled as f64 / s.requests as f64;
            assert!(
                share < 0.05,
                "{model} header {header}: {:.1}% 429s, {s:?}",
                100.0 * share
            );
            let learned = client.limiter().snapshot();
            assert!(learned.pace.is_some(), "{model} header {header}: {learned:?}");
            if header && model == ThrottleModel::TokenBucket {
                // The header warns before the bucket is empty: hardly a 429.
                assert!(s.throttled <= 20, "{model}: {s:?}");
            }
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
            let a = users(&sim, "a", 1400);
            let b = users(&sim, "b", 700);
            let alone = {
                let watched = first.clone();
                let watcher = tokio::spawn(async move {
                    // Let the first engine learn the budget on its own.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    watched.limiter().snapshot().pace
                });
                let running = tokio::spawn(run(first.clone(), a));
                let alone = watcher.await.expect("watcher");
                // Now a second engine joins, as a second Lambda instance would.
                run(second.clone(), b).await;
                let shared = first.limiter().snapshot().pace;
                running.await.expect("first engine");
                (alone, shared)
            };
            let (Some(alone), Some(shared)) = alone else {
                panic!("{model} header {header}: no pace learned: {alone:?}");
            };
            assert!(
                shared < alone,
                "{model} header {header}: pace {alone:.0}/s alone, {shared:.0}/s shared"
            );
            let s = sim.stats();
            assert!(s.peak_ru_in_window <= 200, "{s:?}");
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
