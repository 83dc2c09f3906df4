//! Helpers: run the built binary, read the CSVs it writes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use graph_sim::GraphSim;
use serde_json::json;

/// The tenant and app of the test certificate (`tests/fixtures`), as the simulators of the
/// tests register them.
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mfa-preload"));
    c.env_remove("DEFAULT_COUNTRY")
        .env_remove("GRAPH_CLOUD")
        .env_remove("GRAPH_BASE_URL")
        .env_remove("LOGIN_BASE_URL")
        .env_remove("MFA_PRELOAD_SIM_LATENCY_MS")
        .env("RUST_LOG", "warn");
    c
}

pub fn run(args: &[&str], dir: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mfa-preload")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A test input: one of the repository's realistic samples (`tests/samples/`), else a file of
/// the CLI's own (`cli/tests/fixtures/`).
pub fn fixture(name: &str) -> PathBuf {
    let sample = repo("tests/samples").join(name);
    if sample.exists() {
        return sample;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Header and records of a CSV file.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).expect("open csv");
    let header = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| rec.expect("record").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// The simulator state file: users and every write made.
pub fn state(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("state file")).expect("state json")
}

pub fn writes(state: &serde_json::Value) -> Vec<serde_json::Value> {
    state["writes"].as_array().expect("writes").clone()
}

/// A file of `n` users with mobiles and emails (every third with ForcedUpdate).
pub fn generated(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::from("UPN,Mobile,Email,ForcedUpdate\n");
    for i in 0..n {
        let mobile = 10_000_000 + (i * 7919) % 89_999_999;
        let forced = if i % 3 == 0 { "True" } else { "False" };
        text.push_str(&format!(
            "user{i:04}@contoso.com,+31 6 {mobile:08},u{i}@example.org,{forced}\n"
        ));
    }
    let p = dir.join("generated.csv");
    std::fs::write(&p, text).expect("write generated file");
    p
}

/// A file of `tests/fixtures`.
pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("tests/fixtures/{name}"))).unwrap()
}

/// The app's credentials as the worker's secret JSON, in `dir/secret.json`; its path.
pub fn secret(dir: &Path) -> String {
    let p = dir.join("secret.json");
    std::fs::write(
        &p,
        json!({
            "tenantId": TENANT,
            "clientId": CLIENT,
            "certificatePem": fixture_text("test-app.crt.pem"),
            "privateKeyPem": fixture_text("test-app.key.pem"),
        })
        .to_string(),
    )
    .unwrap();
    s(&p).to_string()
}

/// Runs the tool in `dir` against `sim` standing in for Graph (GRAPH_BASE_URL, LOGIN_BASE_URL).
pub async fn cli(sim: &GraphSim, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args(args)
        .env("GRAPH_BASE_URL", sim.base_url())
        .env("LOGIN_BASE_URL", sim.base_url())
        .current_dir(dir);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finishes")
        .unwrap()
}
