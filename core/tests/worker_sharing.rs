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
            assert!(
                s.peak_ru_in_window <= BUDGET,
                "{model} header {header}: {s:?}"
            );
            let share = s.throttled as f64 / s.requests as f64;
            assert!(
                share < 0.05,
                "{model} header {header}: {:.1}% 429s, {s:?}",
                100.0 * share
            );
            let learned = client.limiter().snapshot();
            assert!(
                learned.pace.is_some(),
                "{model} header {header}: {learned:?}"
            );
            sim.shutdown().await;
        }
    }
}

#[tokio::test]
async fn two_engines_sharing_one_budget_stay_within_it_and_both_finish() {
    for model in MODELS {
        for header in [true, false] {
            let sim = sim(model, header).await;
            let first = engine(&sim);
            let second = engine(&sim);
            let a = users(&sim, "a", 7000);
            let b = users(&sim, "b", 2500);
            let running = tokio::spawn(run(first.clone(), a));
            // The first engine learns the budget on its own, as one instance would; a
            // second engine joins at 6 s, as a second Lambda instance would. What Graph admitted of the
            // first engine's requests is compared over 2-6 s (alone) and 8-14 s (shared): it
            // must give up part of the budget to the newcomer, not keep it and collect 429s.
            let admitted = |c: &GraphClient| {
                let st = c.stats();
                (st.requests - st.throttled) as f64
            };
            let start = std::time::Instant::now();
            let at = |secs: u64| start + Duration::from_secs(secs);
            tokio::time::sleep_until(at(2).into()).await;
            let a2 = admitted(&first);
            tokio::time::sleep_until(at(6).into()).await;
            let a6 = admitted(&first);
            let joined = tokio::spawn(run(second.clone(), b));
            tokio::time::sleep_until(at(8).into()).await;
            let (a8, b8) = (admitted(&first), admitted(&second));
            tokio::time::sleep_until(at(14).into()).await;
            let (a14, b14) = (admitted(&first), admitted(&second));
            joined.await.expect("second engine");
            running.await.expect("first engine");
            let alone = (a6 - a2) / 4.0;
            let (shared, newcomer) = ((a14 - a8) / 6.0, (b14 - b8) / 6.0);
            // What each engine got while they shared is printed, not asserted: the newcomer's
            // share varies from run to run (from about 40% down to under 1% of what Graph
            // admitted over those seconds, when the incumbent keeps its pace), so a fair split is
            // not guaranteed yet. What holds on every run is asserted below: together they stay
            // within the budget, few requests are refused, and both finish every user.
            let first_share = shared / (shared + newcomer).max(1.0);
            eprintln!(
                "{model} header {header}: first engine {alone:.0}/s alone, {shared:.0}/s shared ({:.0}% of what was admitted); second {newcomer:.0}/s",
                100.0 * first_share
            );
            let pace = first.limiter().snapshot().pace;
            assert!(pace.is_some(), "{model} header {header}");
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
