//! Temporary Access Passes through the command line: `apply` writes every pass to the passes
//! file (0600, the one place a value goes), `--passes` and `--show-passes`, a second run does not
//! overwrite an earlier run's passes, and `check` refuses bad TAP cells by row and column.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use graph_sim::{GraphSim, SeedUser, SimConfig};
use serde_json::json;

const TAP_FILE: &str = "\
UPN,Mobile,TapLifetimeMinutes,TapStart,TapUsableOnce
ada@contoso.com,+31 612345601,60,2099-01-04T08:00:00+01:00,yes
bob@contoso.com,+31 612345602,120,2099-01-04 07:30Z,no
cyd@contoso.com,+31 612345603,480,,
";

/// The users of [`TAP_FILE`] and the start each pass must have in UTC (empty: from now).
const WANT: [(&str, &str, &str, &str); 3] = [
    ("ada@contoso.com", "2099-01-04T07:00:00Z", "60", "true"),
    ("bob@contoso.com", "2099-01-04T07:30:00Z", "120", "false"),
    ("cyd@contoso.com", "", "480", "true"),
];

const PASSES_HEADER: [&str; 5] = [
    "UPN",
    "TemporaryAccessPass",
    "StartDateTime",
    "LifetimeInMinutes",
    "IsUsableOnce",
];

/// `dir/in/users-tap.csv`, holding [`TAP_FILE`].
fn tap_input(dir: &Path) -> PathBuf {
    let input = dir.join("in").join("users-tap.csv");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, TAP_FILE).unwrap();
    input
}

/// A simulator state holding the file's users without any method, so that every one of them
/// exists and gets a pass (the seeding of `--simulate` alone leaves some out).
fn tap_state(dir: &Path) -> PathBuf {
    let users: Vec<serde_json::Value> = WANT
        .iter()
        .enumerate()
        .map(|(i, (upn, ..))| {
            json!({
                "id": format!("0000000{i}-1111-4222-8333-444444444444"),
                "upn": upn,
            })
        })
        .collect();
    let p = dir.join("state.json");
    std::fs::write(&p, json!({"users": users, "writes": []}).to_string()).unwrap();
    p
}

/// The value as the spreadsheet shows it: the passes file neutralises a leading `=`, `+`, `-`,
/// `@` with a `'` (Excel-safe).
fn unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

/// The passes file's rows by user: (value, start, lifetime, once).
fn passes_of(path: &Path) -> Vec<(String, String, String, String, String)> {
    let (header, rows) = read_csv(path);
    assert_eq!(header, PASSES_HEADER);
    rows.into_iter()
        .map(|r| {
            assert_eq!(r.len(), 5, "{r:?}");
            (
                r[0].clone(),
                unescape(&r[1]).to_string(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
            )
        })
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `temporaryAccessPass` creates in the simulator's state file.
fn pass_creates(state_file: &Path) -> usize {
    writes(&state(state_file))
        .iter()
        .filter(|w| w["method"] == "temporaryAccessPass" && w["op"] == "create")
        .count()
}

fn apply_debug(dir: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .env("RUST_LOG", "debug")
        .current_dir(dir)
        .output()
        .expect("run mfa-preload")
}

#[test]
fn apply_writes_each_pass_to_a_private_passes_file_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = tap_input(dir.path());
    let st = tap_state(dir.path());
    let o = apply_debug(
        dir.path(),
        &["apply", s(&input), "--simulate", "--simulate-state", s(&st)],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // FILE-stem.passes.csv in the current directory, readable by its owner only.
    let passes = dir.path().join("users-tap.passes.csv");
    assert!(passes.exists(), "{}", stdout(&o));
    #[cfg(unix)]
    assert_eq!(mode(&passes), 0o600, "{:o}", mode(&passes));
    let got = passes_of(&passes);
    assert_eq!(got.len(), WANT.len(), "{got:?}");
    assert_eq!(pass_creates(&st), WANT.len(), "one pass issued per user");
    for (upn, start, lifetime, once) in WANT {
        let rows: Vec<_> = got.iter().filter(|r| r.0 == upn).collect();
        assert_eq!(rows.len(), 1, "{upn}: {got:?}");
        let (_, value, got_start, got_lifetime, got_once) = rows[0];
        assert!(value.len() >= 8, "{upn}: {value:?}");
        if start.is_empty() {
            // From now: Graph's startDateTime, in UTC.
            let t = chrono::DateTime::parse_from_rfc3339(got_start).expect("a start");
            assert_eq!(t.offset().local_minus_utc(), 0, "{got_start}");
            assert!(got_start.ends_with('Z'), "{got_start}");
        } else {
            assert_eq!(got_start, start, "{upn}");
        }
        assert_eq!(
            (got_lifetime.as_str(), got_once.as_str()),
            (lifetime, once),
            "{upn}"
        );
    }
    let values: Vec<&str> = got.iter().map(|r| r.1.as_str()).collect();
    let mut distinct = values.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), values.len(), "{values:?}");

    // The results, stdout and stderr (debug logs included) hold no pass.
    let results = std::fs::read_to_string(dir.path().join("users-tap.results.csv")).unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(err.contains("DEBUG"), "debug logging is on: {err}");
    for v in &values {
        assert!(!results.contains(v), "{v} in the results: {results}");
        assert!(!out.contains(v), "{v} on stdout: {out}");
        assert!(!err.contains(v), "{v} on stderr");
    }
    for r in read_csv(&dir.path().join("users-tap.results.csv")).1 {
        assert_eq!(r[2], "created", "{r:?}");
        assert!(r[4].contains("temporaryAccessPass=created"), "{r:?}");
        // The start the CLI asked Graph for is in UTC already (the passes file shows
        // Graph's answer).
        let (_, start, lifetime, once) = WANT.iter().find(|w| w.0 == r[1]).expect("a user");
        let once = if *once == "true" { ", once" } else { "" };
        let asked = if start.is_empty() {
            format!("temporaryAccessPass:create({lifetime} min{once})")
        } else {
            format!("temporaryAccessPass:create({lifetime} min{once}, from {start})")
        };
        assert!(r[4].contains(&asked), "{asked} not in {r:?}");
    }
    assert!(out.contains("users-tap.passes.csv"), "{out}");

    // --passes elsewhere and --show-passes: the values are on stdout too.
    let other = tempfile::tempdir().unwrap();
    let input = tap_input(other.path());
    let st = tap_state(other.path());
    std::fs::create_dir_all(other.path().join("secret")).unwrap();
    let chosen = other.path().join("secret").join("handout.csv");
    let o = apply_debug(
        other.path(),
        &[
            "apply",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--passes",
            s(&chosen),
            "--show-passes",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(!other.path().join("users-tap.passes.csv").exists());
    #[cfg(unix)]
    assert_eq!(mode(&chosen), 0o600);
    let got = passes_of(&chosen);
    assert_eq!(got.len(), WANT.len());
    let out = stdout(&o);
    for (upn, value, ..) in &got {
        let line = out
            .lines()
            .find(|l| l.contains(value.as_str()))
            .unwrap_or_else(|| panic!("{upn}'s pass is not shown: {out}"));
        assert!(line.contains(upn.as_str()), "{line}");
        assert!(!stderr(&o).contains(value.as_str()), "{value} on stderr");
    }
    let results = std::fs::read_to_string(other.path().join("users-tap.results.csv")).unwrap();
    assert!(got.iter().all(|r| !results.contains(&r.1)), "{results}");
}

async fn tap_sim() -> GraphSim {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    sim.register_app(TENANT, CLIENT, &fixture_text("test-app.crt.pem"));
    for (upn, ..) in WANT {
        sim.add_user(SeedUser::new(upn));
    }
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_does_not_overwrite_the_passes_of_the_first() {
    // Against Graph (here a simulator standing in for it): `--simulate` replaces its own
    // files, whose passes are not real.
    let sim = tap_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let input = tap_input(dir.path());
    let secret = secret(dir.path());
    let o = cli(
        &sim,
        dir.path(),
        &["apply", s(&input), "--credentials", &secret],
    )
    .await;
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let passes = dir.path().join("users-tap.passes.csv");
    let first = std::fs::read_to_string(&passes).unwrap();
    let issued = sim.issued_passes();
    assert_eq!(issued.len(), WANT.len());
    let got = passes_of(&passes);
    for p in &issued {
        assert!(
            got.iter()
                .any(|r| r.0.eq_ignore_ascii_case(&p.upn) && r.1 == p.value),
            "{} is not in the passes file: {first}",
            p.upn
        );
    }

    // Again, with a new results file but the same passes file: refused before any user.
    let again = dir.path().join("again.results.csv");
    let o = cli(
        &sim,
        dir.path(),
        &[
            "apply",
            s(&input),
            "--credentials",
            &secret,
            "--results",
            s(&again),
        ],
    )
    .await;
    assert_ne!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("users-tap.passes.csv"), "{err}");
    assert!(err.contains("earlier run"), "{err}");
    // The refusal leaves nothing behind: no results file that would refuse the next run.
    assert!(!again.exists(), "a results file was left behind");
    assert_eq!(sim.issued_passes().len(), issued.len(), "a pass was issued");
    assert_eq!(std::fs::read_to_string(&passes).unwrap(), first);
    for p in &issued {
        assert_eq!(
            sim.tap_state(&p.upn).map(|t| t.id),
            Some(p.method_id.clone()),
            "{}",
            p.upn
        );
    }
}

#[test]
fn check_rejects_bad_tap_cells_by_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tap-check.csv");
    std::fs::write(
        &input,
        "\
UPN,Mobile,TapLifetimeMinutes,TapStart,TapUsableOnce
ok1@contoso.com,+31 612345601,60,2099-01-04T08:00:00+01:00,yes
short@contoso.com,+31 612345602,5,,
nozone@contoso.com,+31 612345603,60,2099-01-04T08:00:00,
nolife@contoso.com,+31 612345604,,2099-01-04T08:00:00Z,
ok2@contoso.com,+31 612345605,,,
ok3@contoso.com,+31 612345606,43200,,no
",
    )
    .unwrap();
    let rejects = dir.path().join("rej.csv");
    let o = run(&["check", s(&input), "--rejects", s(&rejects)], dir.path());
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let (header, rows) = read_csv(&rejects);
    assert_eq!(header, ["row", "column", "reason", "detail"]);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("3", "TapLifetimeMinutes", "invalid_row"),
            ("4", "TapStart", "invalid_row"),
            ("5", "TapStart", "invalid_row"),
        ]
    );
    let detail = |row: &str| rows.iter().find(|r| r[0] == row).unwrap()[3].clone();
    assert!(detail("3").contains("10 to 43200"), "{}", detail("3"));
    assert!(detail("4").contains("time zone"), "{}", detail("4"));
    assert!(
        detail("5").contains("without TapLifetimeMinutes"),
        "{}",
        detail("5")
    );
    assert!(stdout(&o).contains("3 valid, 3 rejected"), "{}", stdout(&o));
}
