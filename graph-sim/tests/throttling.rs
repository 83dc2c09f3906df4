//! Resource-unit and write budgets on both models: 429 with a whole-second Retry-After and
//! Graph's throttling headers, a bucket that refills continuously, a window that gives its
//! budget back only as requests leave it, and `x-ms-throttle-limit-percentage` above 0.8.

mod common;

use std::time::Duration;

use common::*;
use graph_sim::{SeedUser, SimConfig, ThrottleModel};
use reqwest::{Method, Response};
use serde_json::json;

const ADA: &str = "ada@contoso.com";
const MODELS: [ThrottleModel; 2] = [ThrottleModel::TokenBucket, ThrottleModel::SlidingWindow];

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn raw_retry_after(resp: &Response) -> Option<String> {
    header(resp, "retry-after")
}

async fn get_status(env: &Env) -> u16 {
    env.send(Method::GET, &phones(ADA), None)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_default_is_a_token_bucket_answering_whole_seconds_and_graphs_headers() {
    // 5 RU per 10 s: a bucket of 5, one unit back every 2 s.
    let cfg = SimConfig {
        ru_per_window: 5,
        window: Duration::from_secs(10),
        ..SimConfig::default()
    };
    assert_eq!(cfg.throttle_model, ThrottleModel::TokenBucket);
    let mut env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    env.token = env.fetch_token().await;
    for _ in 0..5 {
        assert_eq!(get_status(&env).await, 200);
    }
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    assert_eq!(resp.status().as_u16(), 429);
    // One unit missing at 0.5 RU/s: just under 2 s, rounded up to whole seconds.
    assert_eq!(raw_retry_after(&resp).as_deref(), Some("2"));
    assert_eq!(
        header(&resp, "x-ms-throttle-scope"),
        Some(format!("Tenant_Application/ReadWrite/{CLIENT_ID}/{TENANT}"))
    );
    assert_eq!(
        header(&resp, "x-ms-throttle-information").as_deref(),
        Some("ResourceUnitLimitExceeded")
    );
    // A refused request costs nothing and so reports no resource units.
    assert_eq!(header(&resp, "x-ms-resource-unit"), None);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let stats = env.sim.stats();
    assert_eq!(stats.throttled, 1);
    assert_eq!(stats.ru_used, 5);
    assert_eq!(stats.peak_ru_in_window, 5);
}

#[tokio::test]
async fn a_bucket_gives_units_back_continuously() {
    // 4 RU per second: a unit back every 250 ms.
    let cfg = SimConfig {
        ru_per_window: 4,
        window: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    for _ in 0..4 {
        assert_eq!(get_status(&env).await, 200);
    }
    assert_eq!(get_status(&env).await, 429);
    // Half the window later, half the budget is back: two reads fit, a third does not.
    tokio::time::sleep(Duration::from_millis(560)).await;
    assert_eq!(get_status(&env).await, 200);
    assert_eq!(get_status(&env).await, 200);
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(raw_retry_after(&resp).as_deref(), Some("1"));
}

#[tokio::test]
async fn a_window_gives_nothing_back_until_requests_leave_it() {
    let cfg = SimConfig {
        throttle_model: ThrottleModel::SlidingWindow,
        ru_per_window: 4,
        window: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    for _ in 0..4 {
        assert_eq!(get_status(&env).await, 200);
    }
    // Half the window later nothing has left it (a bucket would take two reads here).
    tokio::time::sleep(Duration::from_millis(560)).await;
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    assert_eq!(resp.status().as_u16(), 429);
    // About 0.44 s until the oldest leaves: whole seconds, rounded up.
    assert_eq!(raw_retry_after(&resp).as_deref(), Some("1"));
    assert_eq!(
        header(&resp, "x-ms-throttle-information").as_deref(),
        Some("ResourceUnitLimitExceeded")
    );
    // Once the window has passed, the whole budget is back at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..4 {
        assert_eq!(get_status(&env).await, 200);
    }
    assert_eq!(get_status(&env).await, 429);
    let stats = env.sim.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.ru_used, 8);
    assert_eq!(stats.peak_ru_in_window, 4);
}

#[tokio::test]
async fn usage_headers_on_both_models() {
    for model in MODELS {
        // 10 RU per 1,000 s: nothing comes back during the test.
        let cfg = SimConfig {
            throttle_model: model,
            ru_per_window: 10,
            window: Duration::from_secs(1000),
            ..SimConfig::default()
        };
        let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
        let mut percentages = Vec::new();
        for _ in 0..8 {
            let resp = env.send(Method::GET, &phones(ADA), None).await;
            assert_eq!(resp.status().as_u16(), 200, "{model}");
            assert_eq!(
                header(&resp, "x-ms-resource-unit").as_deref(),
                Some("1"),
                "{model}"
            );
            percentages.push(header(&resp, "x-ms-throttle-limit-percentage"));
        }
        // A write costs 2 RU.
        let resp = env
            .send(
                Method::POST,
                &phones(ADA),
                phone_body("+1 2065550100", "mobile"),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 201, "{model}");
        assert_eq!(
            header(&resp, "x-ms-resource-unit").as_deref(),
            Some("2"),
            "{model}"
        );
        percentages.push(header(&resp, "x-ms-throttle-limit-percentage"));
        // Absent up to 0.8 of the limit, then the share in use.
        let mut expected: Vec<Option<String>> = vec![None; 8];
        expected.push(Some("1.00".into()));
        assert_eq!(percentages, expected, "{model}");
        assert_eq!(get_status(&env).await, 429, "{model}");
        env.sim.shutdown().await;
    }
    // 9 of 10 units: the header says 0.90; turned off, it is never sent.
    let env = Env::with_users(
        SimConfig {
            ru_per_window: 10,
            window: Duration::from_secs(1000),
            ..SimConfig::default()
        },
        vec![SeedUser::new(ADA)],
    )
    .await;
    for _ in 0..8 {
        get_status(&env).await;
    }
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    assert_eq!(
        header(&resp, "x-ms-throttle-limit-percentage").as_deref(),
        Some("0.90")
    );
    env.sim.set_limit_percentage_header(false);
    let resp = env.send(Method::GET, &phones(ADA), None).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "x-ms-throttle-limit-percentage"), None);
    assert_eq!(header(&resp, "x-ms-resource-unit").as_deref(), Some("1"));
}

#[tokio::test]
async fn writes_cost_two_units_and_have_their_own_budget() {
    for model in MODELS {
        let cfg = SimConfig {
            throttle_model: model,
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
        assert_eq!((s1, s2), (201, 201), "{model}");
        let resp = env
            .send(
                Method::POST,
                &phones(ADA),
                phone_body("+1 2065550101", "alternateMobile"),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 429, "{model}");
        assert_eq!(raw_retry_after(&resp).as_deref(), Some("1"), "{model}");
        assert_eq!(
            header(&resp, "x-ms-throttle-scope"),
            Some("Tenant_Application/Write/sim-client/sim-tenant".to_string()),
            "{model}"
        );
        assert_eq!(
            header(&resp, "x-ms-throttle-information").as_deref(),
            Some("WriteLimitExceeded"),
            "{model}"
        );
        // Reads still pass: only the write budget is spent.
        assert_eq!(get_status(&env).await, 200, "{model}");
        // The throttled write changed nothing.
        assert_eq!(env.sim.user(ADA).expect("user").alternate_mobile, None);

        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, _) = env
            .call(
                Method::POST,
                &phones(ADA),
                phone_body("+1 2065550101", "alternateMobile"),
            )
            .await;
        assert_eq!(status, 201, "{model}");
        let stats = env.sim.stats();
        assert_eq!(stats.writes, 3, "{model}");
        assert_eq!(stats.ru_used, 3 * 2 + 1, "{model}");
        assert_eq!(stats.peak_writes_in_window, 2, "{model}");
        env.sim.shutdown().await;
    }
}

#[tokio::test]
async fn batch_requests_are_throttled_one_by_one() {
    for model in MODELS {
        let cfg = SimConfig {
            throttle_model: model,
            ru_per_window: 3,
            window: Duration::from_secs(10),
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
        assert_eq!(statuses, [200, 200, 200, 429, 429], "{model}");
        let headers = &responses[3]["headers"];
        let ra: u64 = headers["Retry-After"]
            .as_str()
            .expect("Retry-After")
            .parse()
            .expect("whole seconds");
        assert!((1..=10).contains(&ra), "{model}: {ra}");
        assert_eq!(
            headers["x-ms-throttle-information"], "ResourceUnitLimitExceeded",
            "{model}"
        );
        assert_eq!(responses[2]["headers"]["x-ms-resource-unit"], "1");
        assert_eq!(
            responses[2]["headers"]["x-ms-throttle-limit-percentage"],
            "1.00"
        );
        env.sim.shutdown().await;
    }
}

#[tokio::test]
async fn token_requests_are_not_throttled() {
    let cfg = SimConfig {
        ru_per_window: 1,
        window: Duration::from_secs(10),
        ..SimConfig::default()
    };
    let env = Env::with_users(cfg, vec![SeedUser::new(ADA)]).await;
    assert_eq!(get_status(&env).await, 200);
    assert_eq!(get_status(&env).await, 429);
    let base = env.sim.base_url();
    for _ in 0..3 {
        let (status, _) = token_request(&env.client, &base, &Assertion::valid(&base).sign()).await;
        assert_eq!(status, 200);
    }
}
