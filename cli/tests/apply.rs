//! `plan`, `apply` and `export` against the in-process simulator (`--simulate`), with the
//! simulator's state kept in a file so runs can be checked across processes.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const SUCCESS: [&str; 5] = [
    "created",
    "updated",
    "deleted",
    "unchanged",
    "skipped_exists",
];

/// Results rows keyed by row number; panics on a row written twice.
fn results_by_row(path: &Path) -> BTreeMap<u64, Vec<String>> {
    let (header, rows) = read_csv(path);
    assert_eq!(header, ["row", "user", "outcome", "reason", "detail"]);
    let mut out = BTreeMap::new();
    for r in rows {
        let row: u64 = r[0].parse().expect("row number");
        assert!(out.insert(row, r.clone()).is_none(), "row {row} twice");
    }
    out
}

/// Number of writes a results detail lists (`writes: a, b`).
fn listed_writes(detail: &str) -> usize {
    detail
        .split("writes: ")
        .nth(1)
        .map(|w| w.split(", ").count())
        .unwrap_or(0)
}

#[test]
fn plan_writes_nothing_and_apply_does_what_it_planned() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state.json");
    let input = repo("examples/users.csv");
    let plan_csv = dir.path().join("plan.csv");
    let o = run(
        &[
            "plan",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--out",
            s(&plan_csv),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        writes(&state(&st)).is_empty(),
        "plan made writes: {:?}",
        writes(&state(&st))
    );
    let (header, plan_rows) = read_csv(&plan_csv);
    assert_eq!(
        header,
        ["row", "user", "outcome", "reason", "writes", "detail"]
    );
    assert_eq!(plan_rows.len(), 40);
    let planned: HashMap<u64, (String, String, usize)> = plan_rows
        .iter()
        .map(|r| {
            let n = if r[4].is_empty() {
                0
            } else {
                r[4].split(", ").count()
            };
            (r[0].parse().unwrap(), (r[2].clone(), r[3].clone(), n))
        })
        .collect();
    let planned_writes: usize = planned.values().map(|p| p.2).sum();
    assert!(planned_writes > 20, "{planned_writes}");
    for (row, (outcome, _, n)) in &planned {
        if outcome == "created" || outcome == "updated" {
            assert!(*n > 0, "row {row} is {outcome} with no write");
        }
        if outcome == "unchanged" || outcome == "rejected" {
            assert_eq!(*n, 0, "row {row} is {outcome} with writes");
        }
    }
    assert!(stdout(&o).contains("nothing written"), "{}", stdout(&o));

    // Same simulated tenant: apply does exactly what was planned.
    let results = dir.path().join("results.csv");
    let o = run(
        &[
            "apply",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--results",
            s(&results),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let got = results_by_row(&results);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (2..=41).collect::<Vec<u64>>()
    );
    for (row, r) in &got {
        let (outcome, reason, _) = &planned[row];
        assert_eq!((&r[2], &r[3]), (outcome, reason), "row {row}: {r:?}");
    }
    let ws = writes(&state(&st));
    assert_eq!(ws.len(), planned_writes, "writes made vs planned");
    let listed: usize = got.values().map(|r| listed_writes(&r[4])).sum();
    assert_eq!(listed, ws.len(), "results list every write");
    // Output: counts by outcome and reason add up to the rows.
    let out = stdout(&o);
    assert!(out.contains("40 rows"), "{out}");
    let created = got.values().filter(|r| r[2] == "created").count();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["created", &created.to_string()]),
        "{out}"
    );

    // A second run changes nothing.
    let again = dir.path().join("again.csv");
    let o = run(
        &[
            "apply",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--results",
            s(&again),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(writes(&state(&st)).len(), ws.len(), "a re-run wrote");
    for (row, r) in results_by_row(&again) {
        assert!(
            ["unchanged", "skipped_exists", "rejected"].contains(&r[2].as_str()),
            "row {row}: {r:?}"
        );
    }
}

#[test]
fn apply_simulate_reports_every_row_once_with_varied_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    // Default results path: FILE-stem.results.csv in the current directory.
    let o = run(
        &["apply", s(&repo("examples/users.csv")), "--simulate"],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let got = results_by_row(&dir.path().join("users.results.csv"));
    assert_eq!(got.len(), 40);
    let reasons: HashMap<u64, &str> = got.iter().map(|(k, r)| (*k, r[3].as_str())).collect();
    assert_eq!(reasons[&37], "duplicate_user_in_file");
    assert_eq!(reasons[&38], "invalid_phone_number");
    assert_eq!(reasons[&39], "invalid_user");
    assert_eq!(reasons[&40], "invalid_row");
    assert_eq!(reasons[&41], "invalid_email");
    let outcomes: HashSet<&str> = got.values().map(|r| r[2].as_str()).collect();
    for o in ["created", "unchanged", "rejected"] {
        assert!(outcomes.contains(o), "{outcomes:?}");
    }
    for r in got.values() {
        assert!(
            SUCCESS.contains(&r[2].as_str()) || (r[2] == "rejected" && !r[3].is_empty()),
            "{r:?}"
        );
        // No whole phone number in the results.
        assert!(!r[4].contains("612345678"), "{r:?}");
    }
    // The same run again overwrites the results in simulate mode; a real run refuses instead.
    let o = run(
        &["apply", s(&repo("examples/users.csv")), "--simulate"],
        dir.path(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        results_by_row(&dir.path().join("users.results.csv")).len(),
        40
    );
}

#[test]
fn cells_that_look_like_formulas_are_neutralised_in_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("evil.csv");
    std::fs::write(
        &input,
        "UPN,Mobile\n=HYPERLINK(\"http://x\"),+31 612345678\n-1+2@contoso.com,+31 612345679\nok@contoso.com,+31 612345670\n",
    )
    .unwrap();
    let results = dir.path().join("r.csv");
    let o = run(
        &["apply", s(&input), "--simulate", "--results", s(&results)],
        dir.path(),
    );
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let raw = std::fs::read_to_string(&results).unwrap();
    assert!(raw.contains("'=HYPERLINK"), "{raw}");
    assert!(raw.contains("'-1+2@contoso.com"), "{raw}");
    for line in raw.lines() {
        for cell in line.split(',') {
            assert!(
                !cell.starts_with(['=', '@', '-']) && !cell.starts_with("\"="),
                "unsafe cell {cell:?} in {raw}"
            );
        }
    }
    let got = results_by_row(&results);
    assert_eq!(got[&2][3], "invalid_row");
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 300);
    let st = dir.path().join("state.json");
    let results = dir.path().join("results.csv");
    let mut child = bin()
        .args([
            "apply",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--results",
            s(&results),
            "--concurrency",
            "4",
        ])
        .env("MFA_PRELOAD_SIM_LATENCY_MS", "20")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some rows are done, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&results)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines > 20 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--resume"));
    let first = results_by_row(&results);
    assert!(
        first.len() >= 20 && first.len() < 300,
        "partial results: {}",
        first.len()
    );
    let st1 = state(&st);
    let users_first: HashSet<String> = writes(&st1)
        .iter()
        .map(|w| w["upn"].as_str().unwrap().to_lowercase())
        .collect();
    // Every user with a write has its row in the results (in-flight users were finished).
    let done_users: HashSet<String> = first.values().map(|r| r[1].to_lowercase()).collect();
    assert!(users_first.is_subset(&done_users));

    let o = bin()
        .args([
            "apply",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
            "--resume",
            s(&results),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(matches!(code(&o), 0 | 1), "{}{}", stdout(&o), stderr(&o));
    let all = results_by_row(&results);
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        (2..=301).collect::<Vec<u64>>()
    );
    // Rows done before the interruption are kept as they were.
    for (row, r) in &first {
        assert_eq!(&all[row], r);
    }
    // No user is written by both runs, and no write happens twice.
    let ws = writes(&state(&st));
    let second: Vec<&serde_json::Value> = ws[writes(&st1).len()..].iter().collect();
    for w in &second {
        let upn = w["upn"].as_str().unwrap().to_lowercase();
        assert!(!users_first.contains(&upn), "{upn} written again");
    }
    let mut seen = HashSet::new();
    for w in &ws {
        let key = (
            w["upn"].to_string(),
            w["method"].to_string(),
            w["op"].to_string(),
        );
        assert!(seen.insert(key.clone()), "write twice: {key:?}");
    }
    assert!(!second.is_empty());
}

#[test]
fn resume_refuses_the_results_of_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.csv");
    let o = run(
        &[
            "apply",
            s(&fixture("community-format.csv")),
            "--simulate",
            "--results",
            s(&results),
        ],
        dir.path(),
    );
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let before = std::fs::read_to_string(&results).unwrap();
    let o = run(
        &[
            "apply",
            s(&repo("examples/users.csv")),
            "--simulate",
            "--resume",
            s(&results),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("another input"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&results).unwrap(), before);
}

#[test]
fn export_lists_users_with_their_methods() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state.json");
    let input = repo("examples/users.csv");
    let o = run(
        &["apply", s(&input), "--simulate", "--simulate-state", s(&st)],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let users = state(&st)["users"].as_array().unwrap().clone();

    // Every user, through several pages.
    let out = dir.path().join("all.csv");
    let o = run(
        &[
            "export",
            "--simulate",
            "--simulate-state",
            s(&st),
            "--out",
            s(&out),
            "--page-size",
            "7",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (header, rows) = read_csv(&out);
    assert_eq!(
        header,
        [
            "user",
            "mobile",
            "alternateMobile",
            "office",
            "email",
            "hasPhoneMethod",
            "error"
        ]
    );
    assert_eq!(rows.len(), users.len());
    assert!(users.len() > 7);
    for u in &users {
        let upn = u["upn"].as_str().unwrap();
        let r = rows.iter().find(|r| r[0] == upn).expect("user exported");
        let cell = |k: &str| u[k].as_str().unwrap_or("").to_string();
        assert_eq!(r[1], cell("mobile"));
        assert_eq!(r[2], cell("alternateMobile"));
        assert_eq!(r[3], cell("office"));
        assert_eq!(r[4], cell("email"));
        assert_eq!(
            r[5],
            (!u["mobile"].is_null() || !u["office"].is_null()).to_string()
        );
    }
    let anna = rows
        .iter()
        .find(|r| r[0] == "anna.devries@contoso.com")
        .unwrap();
    assert_eq!(
        anna[1], "+31 612345678",
        "Graph-form numbers are kept as they are"
    );

    // Listed users; one that does not exist is reported.
    let o = run(
        &[
            "export",
            "--users",
            s(&input),
            "--simulate",
            "--simulate-state",
            s(&st),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let text = stdout(&o);
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 38, "{text}");
    assert!(
        rows.iter().any(|r| r[6].starts_with("user_not_found")),
        "{text}"
    );
}
