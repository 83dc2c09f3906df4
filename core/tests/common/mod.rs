//! Helpers for the engine's tests against the Graph simulator.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use graph_sim::{GraphSim, SimConfig};
use mfa_preload_core::config::GraphSettings;
use mfa_preload_core::dlq::MemoryDlq;
use mfa_preload_core::graph::{ClientOptions, Credentials, GraphClient, LimiterConfig};
use mfa_preload_core::worker::{InboundMessage, Worker, WorkerConfig};
use serde_json::{json, Value};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture")
}

pub fn pem_secret() -> String {
    json!({
        "tenantId": TENANT,
        "clientId": CLIENT_ID,
        "certificatePem": fixture("test-app.crt.pem"),
        "privateKeyPem": fixture("test-app.key.pem"),
    })
    .to_string()
}

pub fn pfx_secret() -> String {
    let pfx = std::fs::read(fixture_path("test-app.pfx")).expect("pfx");
    json!({
        "tenantId": TENANT,
        "clientId": CLIENT_ID,
        "pfxBase64": base64::engine::general_purpose::STANDARD.encode(pfx),
        "pfxPassword": "test-pfx-password",
    })
    .to_string()
}

/// Fast retries for tests.
pub fn test_options(max_attempts: u32) -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_attempts,
        max_throttled_attempts: max_attempts.max(12),
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

pub async fn start_sim(cfg: SimConfig) -> GraphSim {
    let sim = GraphSim::start(cfg).await.expect("simulator");
    sim.register_app(TENANT, CLIENT_ID, &fixture("test-app.crt.pem"));
    sim
}

pub fn client_for(sim: &GraphSim, secret: &str, opts: ClientOptions) -> Arc<GraphClient> {
    let creds = Credentials::from_secret_json(secret).expect("credentials");
    let settings = GraphSettings::single_host(&sim.base_url()).expect("settings");
    Arc::new(GraphClient::new(settings, creds, opts).expect("client"))
}

pub fn worker_for(client: Arc<GraphClient>, max_receive_count: u32) -> (Worker, Arc<MemoryDlq>) {
    let dlq = Arc::new(MemoryDlq::new());
    let w = Worker::new(
        client,
        dlq.clone(),
        WorkerConfig {
            concurrency: 16,
            max_receive_count,
            ..WorkerConfig::default()
        },
    );
    (w, dlq)
}

pub fn worker_with(client: Arc<GraphClient>, config: WorkerConfig) -> (Worker, Arc<MemoryDlq>) {
    let dlq = Arc::new(MemoryDlq::new());
    (Worker::new(client, dlq.clone(), config), dlq)
}

/// A v1 request body.
pub fn body(user: &str, methods: Value, policy: Value, extra: Value) -> String {
    let mut v = json!({
        "v": 1,
        "job": {"bucket": "mfa-in", "key": "incoming/users.csv", "etag": "\"e1\""},
        "row": 2,
        "user": user,
        "methods": methods,
        "policy": policy,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

pub fn msg(id: &str, body: String) -> InboundMessage {
    InboundMessage::new(id, body, 1)
}
