//! The token endpoint: certificate assertions accepted and refused in AAD's error shape, and
//! bearer tokens on Graph endpoints.

mod common;

use common::*;
use graph_sim::{GraphSim, SeedUser, SimConfig};
use reqwest::Method;

async fn sim() -> GraphSim {
    let sim = GraphSim::start(SimConfig::default()).await.expect("start");
    sim.register_app(TENANT, CLIENT_ID, &app_cert());
    sim
}

fn assert_aad_error(status: u16, body: &serde_json::Value, want_status: u16, want_error: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"], want_error, "body: {body}");
    let desc = body["error_description"]
        .as_str()
        .expect("error_description");
    assert!(desc.starts_with("AADSTS"), "{desc}");
    assert!(body.get("access_token").is_none());
}

#[tokio::test]
async fn valid_assertion_gets_a_token_that_graph_accepts() {
    let sim = sim().await;
    sim.add_user(SeedUser::new("ada@contoso.com"));
    let base = sim.base_url();
    let client = http();
    let (status, body) = token_request(&client, &base, &Assertion::valid(&base).sign()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().expect("access_token");
    assert!(token.len() >= 32);

    let resp = client
        .get(format!("{base}{}", phones("ada@contoso.com")))
        .bearer_auth(token)
        .send()
        .await
        .expect("graph");
    assert_eq!(resp.status().as_u16(), 200);
    let stats = sim.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.requests, 1);
}

#[tokio::test]
async fn signature_by_another_key_is_rejected() {
    let sim = sim().await;
    let base = sim.base_url();
    let mut a = Assertion::valid(&base);
    a.key_pem = fixture("other-app.key.pem");
    let (status, body) = token_request(&http(), &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
    let desc = body["error_description"].as_str().unwrap_or("");
    assert!(
        desc.contains("AADSTS700027") && desc.contains("signature validation"),
        "{desc}"
    );
    assert_eq!(sim.stats().token_errors, 1);
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let sim = sim().await;
    let base = sim.base_url();
    let mut a = Assertion::valid(&base);
    a.aud = "https://login.microsoftonline.com/other/oauth2/v2.0/token".into();
    let (status, body) = token_request(&http(), &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
    let desc = body["error_description"].as_str().unwrap_or("");
    assert!(desc.contains("audience"), "{desc}");
}

#[tokio::test]
async fn expired_or_too_long_assertions_are_rejected() {
    let sim = sim().await;
    let base = sim.base_url();
    let client = http();
    let mut a = Assertion::valid(&base);
    a.nbf = now() - 1200;
    a.iat = a.nbf;
    a.exp = now() - 600;
    let (status, body) = token_request(&client, &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("700024"));

    let mut a = Assertion::valid(&base);
    a.exp = a.iat + 3600;
    let (status, body) = token_request(&client, &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn wrong_or_missing_thumbprint_is_rejected() {
    let sim = sim().await;
    let base = sim.base_url();
    let client = http();
    let mut a = Assertion::valid(&base);
    a.x5t_s256 = Some(thumbprint_s256(&fixture("other-app.crt.pem")));
    let (status, body) = token_request(&client, &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");

    let mut a = Assertion::valid(&base);
    a.x5t_s256 = None;
    let (status, body) = token_request(&client, &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn replayed_or_missing_jti_is_rejected() {
    let sim = sim().await;
    let base = sim.base_url();
    let client = http();
    let signed = Assertion::valid(&base).sign();
    let (status, _) = token_request(&client, &base, &signed).await;
    assert_eq!(status, 200);
    let (status, body) = token_request(&client, &base, &signed).await;
    assert_aad_error(status, &body, 401, "invalid_client");

    let mut a = Assertion::valid(&base);
    a.jti = None;
    let (status, body) = token_request(&client, &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn issuer_and_subject_must_be_the_client() {
    let sim = sim().await;
    let base = sim.base_url();
    let mut a = Assertion::valid(&base);
    a.sub = "someone-else".into();
    let (status, body) = token_request(&http(), &base, &a.sign()).await;
    assert_aad_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn unknown_tenant_app_and_bad_scope_are_bad_requests() {
    let sim = sim().await;
    let base = sim.base_url();
    let client = http();
    let assertion = Assertion::valid(&base).sign();

    let resp = client
        .post(format!("{base}/other-tenant/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", &format!("{base}/.default")),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");

    let resp = client
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_scope");

    let mut a = Assertion::valid(&base);
    a.iss = "00000000-0000-0000-0000-000000000000".into();
    a.sub = a.iss.clone();
    let resp = client
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", a.iss.as_str()),
            ("scope", &format!("{base}/.default")),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a.sign()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn graph_requires_a_valid_token_and_revocation_forces_refresh() {
    let env = Env::with_users(SimConfig::default(), vec![SeedUser::new("ada@contoso.com")]).await;
    let (status, _) = env
        .call(Method::GET, &phones("ada@contoso.com"), None)
        .await;
    assert_eq!(status, 200);

    let resp = env
        .client
        .get(env.url(&phones("ada@contoso.com")))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    env.sim.revoke_tokens();
    let (status, body) = env
        .call(Method::GET, &phones("ada@contoso.com"), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    // A fresh token from the endpoint works again.
    let base = env.sim.base_url();
    let (status, body) = token_request(&env.client, &base, &Assertion::valid(&base).sign()).await;
    assert_eq!(status, 200);
    let resp = env
        .client
        .get(env.url(&phones("ada@contoso.com")))
        .bearer_auth(body["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(env.sim.stats().unauthorized, 2);
}
