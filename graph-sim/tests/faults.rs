//! Injected faults, each seen by a reqwest client as the right kind of failure, and never
//! changing state (except AfterCommit).

mod common;

use std::time::{Duration, Instant};

use common::*;
use graph_sim::{FaultConfig, FaultKind, SeedUser, SimConfig};
use reqwest::Method;

const ADA: &str = "ada@contoso.com";

async fn faulty(kind: FaultKind) -> Env {
    let env = Env::with_users(SimConfig::default(), vec![SeedUser::new(ADA)]).await;
    env.sim.set_faults(FaultConfig::new(1.0, vec![kind]));
    env
}

async fn assert_status_fault_leaves_no_trace(kind: FaultKind, want: u16) -> Option<f64> {
    let env = faulty(kind).await;
    let resp = env
        .send(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), want, "{kind}");
    let ra = retry_after(&resp);
    let body: serde_json::Value = resp.json().await.expect("json error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(
        env.sim.user(ADA).expect("user").mobile,
        None,
        "{kind} changed state"
    );
    assert!(env.sim.write_log().is_empty());
    assert_eq!(env.sim.stats().faults_injected, 1);
    ra
}

#[tokio::test]
async fn throttle_fault_is_a_429_with_retry_after() {
    let ra = assert_status_fault_leaves_no_trace(FaultKind::Throttle429, 429).await;
    let ra = ra.expect("Retry-After on injected 429");
    assert!((0.05..=0.5).contains(&ra), "{ra}");
}

#[tokio::test]
async fn status_faults_are_500_and_503() {
    assert_status_fault_leaves_no_trace(FaultKind::Status500, 500).await;
    if let Some(ra) = assert_status_fault_leaves_no_trace(FaultKind::Status503, 503).await {
        assert!(ra > 0.0);
    }
}

#[tokio::test]
async fn timeout_fault_makes_the_client_time_out() {
    let env = faulty(FaultKind::Timeout).await;
    env.sim.set_timeout_hold(Duration::from_secs(5));
    let start = Instant::now();
    let err = env
        .client
        .post(env.url(&phones(ADA)))
        .bearer_auth(&env.token)
        .json(&serde_json::json!({"phoneNumber": "+1 2065550100", "phoneType": "mobile"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("must time out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(env.sim.user(ADA).expect("user").mobile, None);
    env.sim.shutdown().await;
}

#[tokio::test]
async fn drop_fault_closes_the_connection() {
    let env = faulty(FaultKind::Drop).await;
    env.sim.set_timeout_hold(Duration::from_secs(5));
    let start = Instant::now();
    let err = env
        .client
        .post(env.url(&phones(ADA)))
        .bearer_auth(&env.token)
        .json(&serde_json::json!({"phoneNumber": "+1 2065550100", "phoneType": "mobile"}))
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_timeout(), "{err:?}");
    // hyper reports IncompleteMessage: the request was sent, no response came back.
    assert!(err.is_request(), "{err:?}");
    assert!(err.status().is_none());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "dropped, not held"
    );
    assert_eq!(env.sim.user(ADA).expect("user").mobile, None);

    // The server is still fine for the next connection.
    env.sim.set_faults(FaultConfig::none());
    assert_eq!(
        env.send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn after_commit_fault_applies_then_fails() {
    let env = faulty(FaultKind::AfterCommit).await;
    let resp = env
        .send(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(
        env.sim.user(ADA).expect("user").mobile.as_deref(),
        Some("+1 2065550100")
    );
    assert_eq!(env.sim.write_log().len(), 1);
}

#[tokio::test]
async fn fault_rate_is_a_probability() {
    let env = Env::with_users(SimConfig::default(), vec![SeedUser::new(ADA)]).await;
    env.sim
        .set_faults(FaultConfig::new(0.5, vec![FaultKind::Status500]));
    let mut failed = 0;
    for _ in 0..200 {
        if env
            .send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16()
            == 500
        {
            failed += 1;
        }
    }
    // Binomial(200, 0.5): 60..140 holds with overwhelming probability.
    assert!((60..=140).contains(&failed), "{failed}");
    assert_eq!(env.sim.stats().faults_injected, failed);
}

#[tokio::test]
async fn faults_spare_the_token_endpoint() {
    let env = faulty(FaultKind::Status500).await;
    let base = env.sim.base_url();
    let (status, _) = token_request(&env.client, &base, &Assertion::valid(&base).sign()).await;
    assert_eq!(status, 200);
    assert_eq!(env.sim.stats().faults_injected, 0);
}

#[tokio::test]
async fn batch_drop_fault_drops_the_whole_batch() {
    let env = faulty(FaultKind::Drop).await;
    let batch = serde_json::json!({"requests": [
        {"id": "1", "method": "POST", "url": format!("/users/{ADA}/authentication/phoneMethods"),
         "body": {"phoneNumber": "+1 2065550100", "phoneType": "mobile"}},
    ]});
    let err = env
        .client
        .post(env.url("/v1.0/$batch"))
        .bearer_auth(&env.token)
        .json(&batch)
        .send()
        .await
        .expect_err("dropped");
    assert!(!err.is_timeout());
    assert_eq!(env.sim.user(ADA).expect("user").mobile, None);
}
