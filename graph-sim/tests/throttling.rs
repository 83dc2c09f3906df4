//! Resource-unit and write budgets: 429 with a parseable Retry-After, recovery after the window.

mod common;

use std::time::{Duration, Instant};

use common::*;
use graph_sim::{SeedUser, SimConfig};
use reqwest::Method;
use serde_json::json;

const ADA: &str = "ada@contoso.com";

#[tokio::test]
async fn read_budget_throttles_then_recovers() {
    let cfg = SimConfig {
        ru_per_window: 5,
        window: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            env.send(Method::GET, &phones(ADA), None)
                .await
                .status()
                .as_u16(),
            200
        );
    }
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    let elapsed = start.elapsed();
    assert_eq!(resp.status().as_u16(), 429);
    let wait = retry_after(&resp).expect("Retry-After seconds");
    assert!(wait > 0.0 && wait <= 0.2, "Retry-After {wait}");
    // The oldest request leaves the window 200 ms after it was admitted.
    assert!(
        wait <= 0.2 - elapsed.as_secs_f64() + 0.05,
        "Retry-After {wait} after {elapsed:?}"
    );
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "TooManyRequests");

    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    assert_eq!(
        env.send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16(),
        200
    );

    let stats = env.sim.stats();
    assert_eq!(stats.throttled, 1);
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.ru_used, 6);
    assert_eq!(stats.peak_ru_in_window, 5);
}

#[tokio::test]
async fn writes_cost_two_units_and_have_their_own_budget() {
    let cfg = SimConfig {
        ru_per_window: 100,
        window: Duration::from_millis(200),
        writes_per_window: 2,
        write_window: Duration::from_millis(300),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    let (s1, _) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550100", "mobile"),
        )
        .await;
    let (s2, _) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550199", "office"),
        )
        .await;
    assert_eq!((s1, s2), (201, 201));
    let resp = env
        .send(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550101", "alternateMobile"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 429);
    let wait = retry_after(&resp).expect("Retry-After");
    assert!(wait > 0.0 && wait <= 0.3, "{wait}");
    // Reads still pass: only the write budget is spent.
    assert_eq!(
        env.send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16(),
        200
    );
    // The throttled write changed nothing.
    assert_eq!(env.sim.user(ADA).expect("user").alternate_mobile, None);

    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let (status, _) = env
        .call(
            Method::POST,
            &phones(ADA),
            phone_body("+1 2065550101", "alternateMobile"),
        )
        .await;
    assert_eq!(status, 201);
    let stats = env.sim.stats();
    assert_eq!(stats.writes, 3);
    assert_eq!(stats.ru_used, 3 * 2 + 1);
    assert_eq!(stats.peak_writes_in_window, 2);
}

#[tokio::test]
async fn batch_requests_are_throttled_one_by_one() {
    let cfg = SimConfig {
        ru_per_window: 3,
        window: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    let requests: Vec<_> = (0..5)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{ADA}/authentication/phoneMethods")}))
        .collect();
    let (status, body) = env
        .call(
            Method::POST,
            "/v1.0/$batch",
            Some(json!({"requests": requests})),
        )
        .await;
    assert_eq!(status, 200);
    let responses = body["responses"].as_array().expect("responses");
    let statuses: Vec<u64> = responses
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let ra = responses[3]["headers"]["Retry-After"]
        .as_str()
        .expect("Retry-After");
    let ra: f64 = ra.parse().expect("seconds");
    assert!(ra > 0.0 && ra <= 0.2);
}

#[tokio::test]
async fn token_requests_are_not_throttled() {
    let cfg = SimConfig {
        ru_per_window: 1,
        window: Duration::from_secs(10),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    assert_eq!(
        env.send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        env.send(Method::GET, &phones(ADA), None)
            .await
            .status()
            .as_u16(),
        429
    );
    let base = env.sim.base_url();
    for _ in 0..3 {
        let (status, _) = token_request(&env.client, &base, &Assertion::valid(&base).sign()).await;
        assert_eq!(status, 200);
    }
}
