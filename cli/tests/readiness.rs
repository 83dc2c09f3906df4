//! `mfa-preload readiness`: the CSV, the page and the TAP file it writes, its summary, the
//! fallback it announces once, and exit code 2 naming the permission when nothing may be read.
//! In `--simulate` mode and against a simulator standing in for Graph
//! (GRAPH_BASE_URL / LOGIN_BASE_URL).

mod common;
use common::*;

use graph_sim::seeds::mixed_tenant;
use graph_sim::{GraphSim, SimConfig};

#[test]
fn simulated_readiness_writes_the_csv_the_page_and_the_tap_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "--simulate",
            "readiness",
            "--tap-file",
            "passes.csv",
            "--tap-lifetime-minutes",
            "60",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for line in [
        "readiness of 40 users",
        "phishing_resistant         10",
        "authenticator_app           8",
        "phone_only                 14",
        "email_only                  4",
        "none                        4",
        "at risk: 22 users",
        "TAP file: passes.csv (22 users at risk, TapLifetimeMinutes 60)",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    // The CSV: one row per user.
    let (header, rows) = read_csv(&dir.path().join("readiness.csv"));
    assert_eq!(header[..4], ["user", "id", "class", "atRisk"]);
    assert_eq!(rows.len(), 40);
    let at_risk = rows.iter().filter(|r| r[3] == "true").count();
    assert_eq!(at_risk, 22);
    // The TAP file is an input file of the product's CSV format: UPN and TapLifetimeMinutes.
    let (header, rows) = read_csv(&dir.path().join("passes.csv"));
    assert_eq!(header, ["UPN", "TapLifetimeMinutes"]);
    assert_eq!(rows.len(), 22);
    assert!(rows.iter().all(|r| r[1] == "60"), "{rows:?}");
    let mut users: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    users.sort();
    let mut want: Vec<String> = (0..40)
        .filter(|i| (8..=18).contains(&(i % 20)))
        .map(|i| format!("user{i}@contoso.com"))
        .collect();
    want.sort();
    assert_eq!(users, want);
    let page = std::fs::read_to_string(dir.path().join("readiness.html")).unwrap();
    assert!(page.contains("data-class=\"phone_only\" data-value=\"14\""));
    // A second run does not overwrite what a real run wrote: --simulate may.
    let again = run(&["--simulate", "readiness"], dir.path());
    assert_eq!(code(&again), 0, "{}", stderr(&again));
}

#[test]
fn a_tap_lifetime_outside_the_policy_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "--simulate",
            "readiness",
            "--tap-file",
            "t.csv",
            "--tap-lifetime-minutes",
            "5",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!dir.path().join("readiness.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_report_permission_it_reads_each_user_and_says_so_once() {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text("test-app.crt.pem"));
    sim.add_users(mixed_tenant(20, "contoso.com"));
    sim.set_app_roles(
        TENANT,
        CLIENT,
        &["User.Read.All", "UserAuthenticationMethod.Read.All"],
    );
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let o = cli(&sim, dir.path(), &["--credentials", &creds, "readiness"]).await;
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert_eq!(
        err.matches("AuditLog.Read.All").count(),
        1,
        "said once:\n{err}"
    );
    assert!(stdout(&o).contains("read from each user's methods"));
    assert!(
        stdout(&o).contains("phone_only                  7"),
        "{}",
        stdout(&o)
    );
    assert_eq!(sim.stats().report_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_way_to_read_users_it_stops_with_exit_2_naming_the_permission() {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text("test-app.crt.pem"));
    sim.add_users(mixed_tenant(5, "contoso.com"));
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let o = cli(&sim, dir.path(), &["--credentials", &creds, "readiness"]).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("configuration fault"), "{err}");
    assert!(err.contains("AuditLog.Read.All"), "{err}");
    assert!(err.contains("UserAuthenticationMethod.Read.All"), "{err}");
    assert!(!dir.path().join("readiness.csv").exists());
    // Asked for the report alone: the report's permission.
    let o = cli(
        &sim,
        dir.path(),
        &["--credentials", &creds, "readiness", "--source", "report"],
    )
    .await;
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("grant the application permission AuditLog.Read.All"));
}
