//! Every method of a user (`/authentication/methods`), the registration report (paged, its own
//! budget of 5 requests per 10 s, AuditLog.Read.All, Entra ID P1/P2) and `/users/$count`.

mod common;

use std::time::Duration;

use common::*;
use graph_sim::{MethodKind, SeedUser, SimConfig, PASSWORD_METHOD_ID};
use reqwest::Method;
use serde_json::Value;

const REPORT: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";

fn users(n: usize) -> Vec<SeedUser> {
    (0..n)
        .map(|i| SeedUser {
            mobile: (i % 2 == 0).then(|| format!("+1 20655501{:02}", i % 100)),
            methods: if i % 3 == 0 {
                vec![MethodKind::WindowsHello]
            } else {
                Vec::new()
            },
            ..SeedUser::new(format!("user{i}@contoso.com"))
        })
        .collect()
}

/// Follows the report's pages; returns the rows and the number of pages.
async fn all_rows(env: &Env, first: &str) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut url = env.url(first);
    let mut pages = 0;
    loop {
        let resp = env
            .client
            .get(&url)
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("report page");
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.expect("json");
        pages += 1;
        rows.extend(body["value"].as_array().expect("value").iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return (rows, pages),
        }
    }
}

fn unthrottled_reports() -> SimConfig {
    SimConfig {
        report_requests_per_window: 0,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn every_method_is_listed_with_its_type() {
    let env = Env::with_users(
        SimConfig::default(),
        vec![SeedUser {
            mobile: Some("+1 2065550100".into()),
            email: Some("ada@example.org".into()),
            methods: MethodKind::ALL.to_vec(),
            ..SeedUser::new("ada@contoso.com")
        }],
    )
    .await;
    let (status, body) = env
        .call(
            Method::GET,
            "/v1.0/users/ada%40contoso.com/authentication/methods",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let value = body["value"].as_array().expect("value");
    let types: Vec<&str> = value
        .iter()
        .map(|m| m["@odata.type"].as_str().expect("@odata.type"))
        .collect();
    assert_eq!(value[0]["id"], PASSWORD_METHOD_ID);
    for t in [
        "#microsoft.graph.passwordAuthenticationMethod",
        "#microsoft.graph.phoneAuthenticationMethod",
        "#microsoft.graph.emailAuthenticationMethod",
        "#microsoft.graph.fido2AuthenticationMethod",
        "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
        "#microsoft.graph.x509CertificateAuthenticationMethod",
        "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
        "#microsoft.graph.softwareOathAuthenticationMethod",
        "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    // Two fido2 methods: the security key and the passkey in Authenticator.
    assert_eq!(value.len(), 3 + MethodKind::ALL.len());
    let phone = value
        .iter()
        .find(|m| m["@odata.type"] == "#microsoft.graph.phoneAuthenticationMethod")
        .expect("phone");
    assert_eq!(phone["phoneType"], "mobile");
    assert_eq!(phone["phoneNumber"], "+1 2065550100");
}

#[tokio::test]
async fn listing_every_method_needs_the_broad_read_permission() {
    let mut env =
        Env::with_users(SimConfig::default(), vec![SeedUser::new("ada@contoso.com")]).await;
    // The phone permission reads phones, not every method.
    env.sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &["UserAuthMethod-Phone.Read.All", "AuditLog.Read.All"],
    );
    env.token = env.fetch_token().await;
    let (status, body) = env
        .call(
            Method::GET,
            "/v1.0/users/ada@contoso.com/authentication/methods",
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "accessDenied");
    env.sim
        .set_app_roles(TENANT, CLIENT_ID, &["UserAuthenticationMethod.Read.All"]);
    env.token = env.fetch_token().await;
    let (status, _) = env
        .call(
            Method::GET,
            "/v1.0/users/ada@contoso.com/authentication/methods",
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_report_pages_with_top_and_next_links_and_rows_follow_the_methods() {
    let env = Env::with_users(unthrottled_reports(), users(250)).await;
    // Default page: 100.
    let (status, first) = env.call(Method::GET, REPORT, None).await;
    assert_eq!(status, 200);
    assert_eq!(first["value"].as_array().expect("value").len(), 100);
    let next = first["@odata.nextLink"].as_str().expect("nextLink");
    assert!(next.starts_with(&env.sim.base_url()), "{next}");
    assert!(next.contains("$skiptoken="), "{next}");
    // $top=999 in one page; $top=40 in seven.
    let (rows, pages) = all_rows(&env, &format!("{REPORT}?$top=999")).await;
    assert_eq!((rows.len(), pages), (250, 1));
    let (rows, pages) = all_rows(&env, &format!("{REPORT}?$top=40")).await;
    assert_eq!((rows.len(), pages), (250, 7));
    let ids: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 250, "each user once");
    let (status, body) = env
        .call(Method::GET, &format!("{REPORT}?$top=1000"), None)
        .await;
    assert_eq!(status, 400, "{body}");
    // The rows: user0 has a mobile and Windows Hello, user1 nothing.
    let row = |upn: &str| {
        rows.iter()
            .find(|r| r["userPrincipalName"] == upn)
            .expect("row")
            .clone()
    };
    let u0 = row("user0@contoso.com");
    assert_eq!(
        u0["methodsRegistered"],
        serde_json::json!(["mobilePhone", "windowsHelloForBusiness"])
    );
    assert_eq!(u0["isPasswordlessCapable"], true);
    assert_eq!(u0["isMfaRegistered"], true);
    let u1 = row("user1@contoso.com");
    assert_eq!(u1["methodsRegistered"], serde_json::json!([]));
    assert_eq!(u1["isMfaCapable"], false);
    assert!(u1.get("defaultMfaMethod").is_none(), "beta only");
    for key in [
        "userDisplayName",
        "isSsprRegistered",
        "isSystemPreferredAuthenticationMethodEnabled",
        "systemPreferredAuthenticationMethods",
        "userPreferredMethodForSecondaryAuthentication",
        "lastUpdatedDateTime",
    ] {
        assert!(u1.get(key).is_some(), "{key}");
    }
    // The report is not charged against the resource units.
    assert_eq!(env.sim.stats().ru_used, 0);
}

#[tokio::test]
async fn the_report_allows_five_requests_in_ten_seconds_and_answers_whole_seconds() {
    let env = Env::with_users(SimConfig::default(), users(3)).await;
    for _ in 0..5 {
        assert_eq!(env.call(Method::GET, REPORT, None).await.0, 200);
    }
    let resp = env.send(Method::GET, REPORT, None).await;
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((9..=10).contains(&retry), "{retry}");
    // Other routes still pass: the budgets are apart.
    assert_eq!(
        env.call(Method::GET, "/v1.0/users", None).await.0,
        200,
        "users are not held back by the report's budget"
    );
    let stats = env.sim.stats();
    assert_eq!((stats.report_requests, stats.report_throttled), (6, 1));
    // A shorter window for the test: the budget comes back once the window has passed.
    env.sim.set_report_budget(5, Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(env.call(Method::GET, REPORT, None).await.0, 200);
}

#[tokio::test]
async fn the_report_needs_audit_log_and_a_premium_tenant() {
    let mut env = Env::with_users(unthrottled_reports(), users(2)).await;
    env.sim.set_app_roles(
        TENANT,
        CLIENT_ID,
        &["UserAuthenticationMethod.Read.All", "User.Read.All"],
    );
    env.token = env.fetch_token().await;
    let (status, body) = env.call(Method::GET, REPORT, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["code"],
        "Authentication_MSGraphPermissionMissing"
    );
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("AuditLog.Read.All"));
    env.sim
        .set_app_roles(TENANT, CLIENT_ID, &["AuditLog.Read.All"]);
    env.token = env.fetch_token().await;
    assert_eq!(env.call(Method::GET, REPORT, None).await.0, 200);
    env.sim.set_premium_license(false);
    let (status, body) = env.call(Method::GET, REPORT, None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["code"],
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
}

#[tokio::test]
async fn counting_users_needs_eventual_consistency() {
    let env = Env::with_users(SimConfig::default(), users(42)).await;
    let (status, body) = env.call(Method::GET, "/v1.0/users/$count", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "Request_BadRequest");
    let resp = env
        .client
        .get(env.url("/v1.0/users/$count"))
        .bearer_auth(&env.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("count");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(resp.text().await.expect("text"), "42");
}
