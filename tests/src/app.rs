//! The test app registration the worker tests run as: its tenant and client id, its credentials
//! secret (the PEM pair under tests/fixtures), and Graph client options with quick retries, so
//! that the tests spend their time on the pipeline, not on waiting.

use std::time::Duration;

use mfa_preload_core::graph::{ClientOptions, LimiterConfig};

use crate::repo_path;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// A file of tests/fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_path(&format!("tests/fixtures/{name}"))).expect("fixture")
}

/// A text file of tests/fixtures.
pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("utf-8")
}

/// The credentials secret of the test app: the PEM certificate and key.
pub fn pem_secret() -> String {
    serde_json::json!({
        "tenantId": TENANT,
        "clientId": CLIENT_ID,
        "certificatePem": fixture_text("test-app.crt.pem"),
        "privateKeyPem": fixture_text("test-app.key.pem"),
    })
    .to_string()
}

/// Quick retries and a warm limiter.
pub fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_attempts: 6,
        max_throttled_attempts: 12,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
        limiter: LimiterConfig {
            initial: 16,
            ..LimiterConfig::default()
        },
        roles_recheck: Duration::ZERO,
    }
}
