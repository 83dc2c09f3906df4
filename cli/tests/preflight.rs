//! What the CLI does when the app is not allowed to, or cannot sign in: `doctor`, and `apply` /
//! `export` stopping with exit code 2 and the words that say what to fix. Against a simulator
//! standing in for Graph (GRAPH_BASE_URL / LOGIN_BASE_URL).

mod common;
use common::*;

use std::path::Path;
use std::time::Duration;

use graph_sim::{GraphSim, SeedUser, SimConfig};

async fn sim(cert: &str) -> GraphSim {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text(cert));
    for u in ["ada@contoso.com", "bob@contoso.com", "cy@contoso.com"] {
        sim.add_user(SeedUser::new(u));
    }
    sim
}

fn users_file(dir: &Path, header: &str, rows: &[&str]) -> String {
    let p = dir.join("users.csv");
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    s(&p).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_when_all_is_set_and_names_what_is_missing() {
    let sim = sim("test-app.crt.pem").await;
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let file = users_file(
        dir.path(),
        "UPN,Mobile,Email",
        &["ada@contoso.com,+31 612345678,ada@fabrikam.com"],
    );
    let o = cli(
        &sim,
        dir.path(),
        &[
            "doctor",
            "--credentials",
            &creds,
            "--file",
            &file,
            "--user",
            "ada@contoso.com",
        ],
    )
    .await;
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    for line in [
        "[ ok ] credentials",
        "[ ok ] certificate",
        "[ ok ] token",
        "[ ok ] clock",
        "[ ok ] user",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.contains("all checks passed"), "{out}");
    assert_eq!(sim.write_log().len(), 0, "doctor never writes");

    // Phone consent only: the email column needs its own permission.
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let o = cli(
        &sim,
        dir.path(),
        &["doctor", "--credentials", &creds, "--file", &file],
    )
    .await;
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(
        out.contains("[FAIL] permission") && out.contains("UserAuthMethod-Email.ReadWrite.All"),
        "{out}"
    );
    assert!(
        out.contains(
            "writing phone methods (mobile, alternate mobile, office, SMS sign-in): granted"
        ),
        "{out}"
    );
    // A user that does not exist fails the last check.
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthenticationMethod.ReadWrite.All"]);
    let o = cli(
        &sim,
        dir.path(),
        &[
            "doctor",
            "--credentials",
            &creds,
            "--file",
            &file,
            "--user",
            "gone@contoso.com",
        ],
    )
    .await;
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("[FAIL] user") && stdout(&o).contains("not found"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_translates_a_certificate_entra_does_not_know() {
    // The app registration holds another certificate than the one in the secret.
    let sim = sim("other-app.crt.pem").await;
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let o = cli(&sim, dir.path(), &["doctor", "--credentials", &creds]).await;
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("[FAIL] token"), "{out}");
    assert!(
        out.contains("AADSTS700027") && out.contains("upload"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_stops_with_exit_2_on_a_missing_permission_and_resumes_once_granted() {
    let sim = sim("test-app.crt.pem").await;
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let file = users_file(
        dir.path(),
        "UPN,Mobile",
        &[
            "ada@contoso.com,+31 612345678",
            "bob@contoso.com,+31 612345679",
            "cy@contoso.com,+31 612345680",
        ],
    );
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthMethod-Email.ReadWrite.All"]);
    let results = dir.path().join("r.csv");
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            &file,
            "--credentials",
            &creds,
            "--results",
            s(&results),
        ],
    )
    .await;
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("configuration fault") && err.contains("UserAuthMethod-Phone.ReadWrite.All"),
        "{err}"
    );
    // Checked before any user was touched.
    assert_eq!(sim.stats().requests, 0);
    assert_eq!(sim.write_log().len(), 0);

    // Consent granted: the same command goes through.
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            &file,
            "--credentials",
            &creds,
            "--results",
            s(&results),
            "--overwrite",
        ],
    )
    .await;
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let (_, rows) = read_csv(&results);
    assert!(rows.iter().all(|r| r[2] == "created"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_in_the_middle_of_apply_stops_it_and_resume_finishes() {
    // Opaque tokens: the roles cannot be checked up front, so Graph's 403 is what tells.
    let sim = sim("test-app.crt.pem").await;
    sim.set_opaque_tokens(true);
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let file = users_file(
        dir.path(),
        "UPN,Mobile",
        &[
            "ada@contoso.com,+31 612345678",
            "bob@contoso.com,+31 612345679",
        ],
    );
    sim.set_app_roles(TENANT, CLIENT, &["User.Read.All"]);
    let results = dir.path().join("r.csv");
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            &file,
            "--credentials",
            &creds,
            "--results",
            s(&results),
            "--concurrency",
            "1",
        ],
    )
    .await;
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("accessDenied"), "{}", stderr(&o));
    assert!(stdout(&o).contains("--resume"), "{}", stdout(&o));
    let (_, rows) = read_csv(&results);
    assert_eq!(rows.len(), 1, "the second user was not started: {rows:?}");
    assert_eq!(
        (rows[0][2].as_str(), rows[0][3].as_str()),
        ("failed", "configuration_fault")
    );
    // Fixed: --resume does the faulted row and the one not started.
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthMethod-Phone.ReadWrite.All"]);
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            &file,
            "--credentials",
            &creds,
            "--resume",
            s(&results),
        ],
    )
    .await;
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let (_, rows) = read_csv(&results);
    let created: Vec<_> = rows.iter().filter(|r| r[2] == "created").collect();
    assert_eq!(created.len(), 2, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_needs_user_read_all_and_writes_a_private_file() {
    let sim = sim("test-app.crt.pem").await;
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let out = dir.path().join("export.csv");
    // What the set-up granted before: the authentication-methods permission only.
    sim.set_app_roles(TENANT, CLIENT, &["UserAuthenticationMethod.ReadWrite.All"]);
    let o = cli(
        &sim,
        dir.path(),
        &["export", "--credentials", &creds, "--out", s(&out)],
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("User.Read.All"), "{}", stderr(&o));
    assert_eq!(sim.stats().requests, 0);
    sim.set_app_roles(
        TENANT,
        CLIENT,
        &[
            "UserAuthMethod-Phone.Read.All",
            "UserAuthMethod-Email.Read.All",
            "User.Read.All",
        ],
    );
    let o = cli(
        &sim,
        dir.path(),
        &["export", "--credentials", &creds, "--out", s(&out)],
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (_, rows) = read_csv(&out);
    assert_eq!(rows.len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_conflict_is_a_note_or_the_rows_reason_and_a_late_user_is_waited_for() {
    let sim = GraphSim::start(SimConfig {
        sms_sign_in_policy: true,
        echo_numbers_in_errors: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text("test-app.crt.pem"));
    sim.add_user(SeedUser {
        mobile: Some("+31 612345678".into()),
        sms_sign_in_enabled: true,
        ..SeedUser::new("owner@contoso.com")
    });
    for u in ["note@contoso.com", "ask@contoso.com", "hire@contoso.com"] {
        sim.add_user(SeedUser::new(u));
    }
    sim.hide_user_for("hire@contoso.com", Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let creds = secret(dir.path());
    let file = users_file(
        dir.path(),
        "UPN,Mobile,OfficePhone,SmsSignIn",
        &[
            "note@contoso.com,+31 612345678,+31 201234567,",
            "ask@contoso.com,+31 612345678,+31 201234568,enable",
            "hire@contoso.com,+31 612345699,,",
        ],
    );
    let results = dir.path().join("r.csv");
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            &file,
            "--credentials",
            &creds,
            "--results",
            s(&results),
            "--user-not-found-retry",
            "20",
        ],
    )
    .await;
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let (_, rows) = read_csv(&results);
    let row = |u: &str| rows.iter().find(|r| r[1] == u).expect("row").clone();
    let note = row("note@contoso.com");
    assert_eq!(note[2], "created", "{note:?}");
    assert!(note[4].contains("SMS sign-in is not active"), "{note:?}");
    let ask = row("ask@contoso.com");
    assert_eq!(
        (ask[2].as_str(), ask[3].as_str()),
        ("rejected", "sms_signin_number_not_unique"),
        "{ask:?}"
    );
    assert!(ask[4].contains("office:create"), "{ask:?}");
    // Graph's text quoted the number; the results do not.
    for r in &rows {
        assert!(!r[4].contains("612345678"), "{r:?}");
    }
    for u in ["note@contoso.com", "ask@contoso.com"] {
        let st = sim.user(u).unwrap();
        assert_eq!(st.mobile.as_deref(), Some("+31 612345678"), "{u}");
        assert!(st.office.is_some(), "{u}");
    }
    // The user that appeared 3 s after the run started.
    assert_eq!(row("hire@contoso.com")[2], "created");
}
