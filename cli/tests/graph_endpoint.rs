//! The real-Graph path (credentials, GRAPH_BASE_URL / LOGIN_BASE_URL) against a simulator started
//! by the test, standing in for Microsoft Graph.

mod common;
use common::*;

use graph_sim::{GraphSim, SeedUser, SimConfig};

async fn sim() -> GraphSim {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text("test-app.crt.pem"));
    sim.add_user(SeedUser::new("johnny.bravo@contoso.com"));
    sim.add_user(SeedUser {
        mobile: Some("+31 612345083".into()),
        ..SeedUser::new("donald.duck@contoso.com")
    });
    sim.add_user(SeedUser {
        mobile: Some("+31 612340000".into()),
        ..SeedUser::new("daisy.duck@contoso.com")
    });
    sim.add_user(SeedUser::new("scrooge.mcduck@contoso.com"));
    // gyro.gearloose does not exist.
    sim
}

async fn apply_with(sim: &GraphSim, dir: &std::path::Path, creds: &[&str]) -> std::process::Output {
    let results = dir.join("results.csv");
    let mut args = vec![
        "apply".to_string(),
        s(&fixture("community-format.csv")).to_string(),
        "--results".into(),
        s(&results).to_string(),
        "--overwrite".into(),
    ];
    args.extend(creds.iter().map(|c| c.to_string()));
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args(&args)
        .env("GRAPH_BASE_URL", sim.base_url())
        .env("LOGIN_BASE_URL", sim.base_url())
        .current_dir(dir);
    tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
        .await
        .expect("apply finishes")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_secret_json_against_graph_base_url() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secret(dir.path());
    let o = apply_with(&sim, dir.path(), &["--credentials", &secret]).await;
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let (_, rows) = read_csv(&dir.path().join("results.csv"));
    let by_user = |u: &str| rows.iter().find(|r| r[1] == u).expect("row").clone();
    assert_eq!(by_user("johnny.bravo@contoso.com")[2], "created");
    // donald: same mobile, ForcedUpdate on, office created.
    assert_eq!(by_user("donald.duck@contoso.com")[2], "created");
    // daisy: a different mobile and ForcedUpdate: updated (the office is created, which wins).
    assert!(by_user("daisy.duck@contoso.com")[4].contains("mobile=updated"));
    assert_eq!(
        (
            by_user("gyro.gearloose@contoso.com")[2].as_str(),
            by_user("gyro.gearloose@contoso.com")[3].as_str()
        ),
        ("rejected", "user_not_found")
    );
    let daisy = sim.user("daisy.duck@contoso.com").unwrap();
    assert_eq!(daisy.mobile.as_deref(), Some("+31 612345186"));
    assert_eq!(daisy.office.as_deref(), Some("+31 101234091"));
    assert!(sim.stats().token_requests >= 1);

    // Nothing is left to do on a second run.
    let before = sim.write_log().len();
    let o = apply_with(&sim, dir.path(), &["--credentials", &secret]).await;
    assert_eq!(code(&o), 1);
    assert_eq!(sim.write_log().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_flags_work_and_wrong_ones_are_usage_errors() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = repo("tests/fixtures/test-app.crt.pem");
    let key = repo("tests/fixtures/test-app.key.pem");
    let o = apply_with(
        &sim,
        dir.path(),
        &[
            "--tenant-id",
            TENANT,
            "--client-id",
            CLIENT,
            "--certificate",
            s(&cert),
            "--private-key",
            s(&key),
        ],
    )
    .await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(
        sim.user("scrooge.mcduck@contoso.com")
            .unwrap()
            .mobile
            .as_deref(),
        Some("+31 612345996")
    );

    // Three of the four flags.
    let o = apply_with(
        &sim,
        dir.path(),
        &[
            "--tenant-id",
            TENANT,
            "--client-id",
            CLIENT,
            "--certificate",
            s(&cert),
        ],
    )
    .await;
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("all four"), "{}", stderr(&o));

    // A certificate given as the private key.
    let o = apply_with(
        &sim,
        dir.path(),
        &[
            "--tenant-id",
            TENANT,
            "--client-id",
            CLIENT,
            "--certificate",
            s(&cert),
            "--private-key",
            s(&cert),
        ],
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!stderr(&o).contains("BEGIN"), "no key material in errors");

    let o = apply_with(
        &sim,
        dir.path(),
        &[
            "--cloud",
            "mars",
            "--tenant-id",
            TENANT,
            "--client-id",
            CLIENT,
            "--certificate",
            s(&cert),
            "--private-key",
            s(&key),
        ],
    )
    .await;
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("mars"), "{}", stderr(&o));
}
