//! Statistics and the write log count what happened.

mod common;

use common::*;
use graph_sim::{SeedUser, SimConfig, ThrottleModel, WriteRecord, MOBILE_METHOD_ID};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn stats_and_write_log_count_requests_and_writes() {
    let env = Env::with_users(
        SimConfig {
            sms_sign_in_policy: true,
            // A window holds exactly what was spent (a bucket refills while the test runs).
            throttle_model: ThrottleModel::SlidingWindow,
            ..SimConfig::default()
        },
        vec![SeedUser {
            id: Some("u-1".into()),
            ..SeedUser::new("ada@contoso.com")
        }],
    )
    .await;
    let upn = "ada@contoso.com";
    env.call(Method::GET, &phones(upn), None).await;
    env.call(
        Method::POST,
        &phones(upn),
        phone_body("+1 2065550100", "mobile"),
    )
    .await;
    env.call(
        Method::PATCH,
        &phone(upn, MOBILE_METHOD_ID),
        phone_body("+1 2065550101", "mobile"),
    )
    .await;
    env.call(
        Method::POST,
        &format!(
            "/v1.0/users/{upn}/authentication/phoneMethods/{MOBILE_METHOD_ID}/enableSmsSignIn"
        ),
        None,
    )
    .await;
    env.call(
        Method::PATCH,
        &format!("/beta/users/{upn}/authentication/signInPreferences"),
        Some(json!({"userPreferredMethodForSecondaryAuthentication": "voiceMobile"})),
    )
    .await;
    // Refused writes are counted as requests but not logged.
    let (status, _) = env
        .call(Method::DELETE, &phone(upn, MOBILE_METHOD_ID), None)
        .await;
    assert_eq!(status, 400);
    env.call(
        Method::POST,
        &format!("/v1.0/users/{upn}/authentication/emailMethods"),
        Some(json!({"emailAddress": "ada@example.org"})),
    )
    .await;

    let stats = env.sim.stats();
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.gets, 1);
    assert_eq!(stats.posts, 3);
    assert_eq!(stats.patches, 2);
    assert_eq!(stats.deletes, 1);
    assert_eq!(stats.writes, 6);
    assert_eq!(stats.ru_used, 1 + 6 * 2);
    assert_eq!(stats.ru_in_window, 13);
    assert_eq!(stats.throttled, 0);

    let rec = |method: &str, op: &str, value: Option<&str>| WriteRecord {
        user_id: "u-1".into(),
        upn: upn.into(),
        method: method.into(),
        op: op.into(),
        value: value.map(String::from),
    };
    assert_eq!(
        env.sim.write_log(),
        vec![
            rec("mobile", "create", Some("+1 2065550100")),
            rec("mobile", "update", Some("+1 2065550101")),
            rec("smsSignIn", "enable", None),
            rec("signInPreferences", "update", Some("voiceMobile")),
            rec("email", "create", Some("ada@example.org")),
        ]
    );

    env.sim.reset_stats();
    env.sim.clear_write_log();
    assert_eq!(env.sim.stats().requests, 0);
    assert!(env.sim.write_log().is_empty());
}

#[tokio::test]
async fn latency_is_added_and_adjustable() {
    let env = Env::with_users(SimConfig::default(), vec![SeedUser::new("a@contoso.com")]).await;
    env.sim.set_latency(std::time::Duration::from_millis(150));
    let start = std::time::Instant::now();
    env.call(Method::GET, &phones("a@contoso.com"), None).await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(150));
    env.sim.set_latency(std::time::Duration::ZERO);
    let start = std::time::Instant::now();
    env.call(Method::GET, &phones("a@contoso.com"), None).await;
    assert!(start.elapsed() < std::time::Duration::from_millis(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_counted() {
    let users: Vec<SeedUser> = (0..50)
        .map(|i| SeedUser::new(format!("u{i}@contoso.com")))
        .collect();
    let env = Env::with_users(SimConfig::default(), users).await;
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..25 {
        let client = env.client.clone();
        let token = env.token.clone();
        let base = env.sim.base_url();
        tasks.spawn(async move {
            let mut created = 0u64;
            for round in 0..40 {
                let upn = format!("u{}@contoso.com", (worker * 2 + round % 2) % 50);
                let url = format!("{base}{}", phones(&upn));
                let resp = if round < 2 {
                    client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"phoneNumber": format!("+1 20655{worker:05}"), "phoneType": "mobile"}))
                        .send()
                        .await
                } else {
                    client.get(&url).bearer_auth(&token).send().await
                }
                .expect("request");
                if resp.status().as_u16() == 201 {
                    created += 1;
                }
            }
            created
        });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        created += r.expect("task");
    }
    let elapsed = start.elapsed();
    eprintln!("1000 requests in {elapsed:?}");
    let stats = env.sim.stats();
    assert_eq!(stats.requests, 1000);
    assert_eq!(stats.posts, 50);
    assert_eq!(stats.gets, 950);
    assert_eq!(created, 50);
    assert_eq!(env.sim.write_log().len(), 50);
    assert!(env.sim.users().iter().all(|u| u.mobile.is_some()));
}
