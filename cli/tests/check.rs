//! `check`: validation with no network, the rejects file and exit codes.

mod common;
use common::*;

fn rejects_of(path: &std::path::Path) -> Vec<(u64, String, String)> {
    let (header, rows) = read_csv(path);
    assert_eq!(header, ["row", "column", "reason", "detail"]);
    rows.into_iter()
        .map(|r| {
            assert!(!r[3].is_empty(), "every reject has a detail: {r:?}");
            (r[0].parse().expect("row"), r[1].clone(), r[2].clone())
        })
        .collect()
}

#[test]
fn examples_file_rejects_the_bad_rows_by_row_column_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rej.csv");
    let o = run(
        &[
            "check",
            s(&repo("examples/users.csv")),
            "--rejects",
            s(&rejects),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let got = rejects_of(&rejects);
    let want: Vec<(u64, String, String)> = [
        (37, "UPN", "duplicate_user_in_file"),
        (38, "Mobile", "invalid_phone_number"),
        (39, "UPN", "invalid_user"),
        (40, "ForcedUpdate", "invalid_row"),
        (41, "Email", "invalid_email"),
    ]
    .into_iter()
    .map(|(r, c, why)| (r, c.to_string(), why.to_string()))
    .collect();
    assert_eq!(got, want);
    let out = stdout(&o);
    assert!(out.contains("35 valid, 5 rejected"), "{out}");
    assert!(out.contains("invalid_phone_number"), "{out}");
}

#[test]
fn default_rejects_file_goes_to_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in").join("legacy.csv");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::copy(fixture("legacy-sms-mfa-export.csv"), &input).unwrap();
    let o = run(
        &[
            "check",
            s(&input),
            "--map",
            "Username=user",
            "--map",
            "Phone=mobile",
            "--map",
            "Backup Phone=alternateMobile",
            "--map",
            "Desk Phone=office",
            "--map",
            "Status=ignore",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let got = rejects_of(&dir.path().join("legacy.rejects.csv"));
    assert_eq!(
        got,
        vec![
            (14, "Phone".into(), "invalid_phone_number".into()),
            (15, "Username".into(), "duplicate_user_in_file".into()),
        ]
    );
}

#[test]
fn clean_file_exits_zero_with_an_empty_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("r.csv");
    let o = run(
        &[
            "check",
            s(&fixture("community-format.csv")),
            "--rejects",
            s(&rejects),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(rejects_of(&rejects).is_empty());
    assert!(stdout(&o).contains("5 valid, 0 rejected"), "{}", stdout(&o));
}

#[test]
fn default_country_decides_national_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("r.csv");
    let file = fixture("excel-de-semicolon.csv");
    // Without a country every national number is refused.
    let o = run(&["check", s(&file), "--rejects", s(&rejects)], dir.path());
    assert_eq!(code(&o), 1);
    let without = rejects_of(&rejects);
    assert_eq!(without.len(), 6, "{without:?}");
    assert!(without
        .iter()
        .filter(|r| r.0 != 3)
        .all(|r| r.2 == "invalid_phone_number"));
    // With DE only the UPN with a non-ASCII letter is left.
    let o = bin()
        .args(["check", s(&file), "--rejects", s(&rejects)])
        .env("DEFAULT_COUNTRY", "DE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(
        rejects_of(&rejects),
        vec![(3, "UserPrincipalName".into(), "invalid_user".into())]
    );
}

#[test]
fn unusable_header_and_missing_file_exit_two_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["check", s(&fixture("bad-header.csv"))], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("'Mobil'"), "{}", stderr(&o));
    assert!(!dir.path().join("bad-header.rejects.csv").exists());

    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let o = run(&["check", s(&empty)], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));

    let o = run(&["check", "no-such-file.csv"], dir.path());
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no-such-file.csv"), "{}", stderr(&o));

    let o = run(
        &[
            "check",
            s(&fixture("community-format.csv")),
            "--map",
            "nonsense",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 2);
    let o = run(
        &[
            "check",
            s(&fixture("community-format.csv")),
            "--default-country",
            "XX",
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("XX"), "{}", stderr(&o));
}

#[test]
fn unknown_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["check", "--frobnicate", "x.csv"], dir.path());
    assert_eq!(code(&o), 2);
    let o = run(&["apply", s(&fixture("community-format.csv"))], dir.path());
    assert_eq!(code(&o), 2, "no credentials is a usage error");
    assert!(stderr(&o).contains("no credentials"), "{}", stderr(&o));
    let bad = dir.path().join("secret.json");
    std::fs::write(&bad, "{not json").unwrap();
    let o = run(
        &[
            "apply",
            s(&fixture("community-format.csv")),
            "--credentials",
            s(&bad),
        ],
        dir.path(),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("JSON"), "{}", stderr(&o));
    assert!(!dir.path().join("community-format.results.csv").exists());
}

#[test]
fn a_stray_quote_costs_one_row_and_a_file_without_header_is_named_masked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("stray.csv");
    let mut csv = String::from("UPN,Mobile\n");
    csv.push_str("stray@contoso.com,\"+31 612345600\n");
    for i in 0..1000 {
        csv.push_str(&format!("user{i}@contoso.com,+31 6{:08}\n", 20_000_000 + i));
    }
    std::fs::write(&input, csv).unwrap();
    let rejects = dir.path().join("r.csv");
    let o = run(&["check", s(&input), "--rejects", s(&rejects)], dir.path());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1000 valid, 1 rejected"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        rejects_of(&rejects),
        vec![(2, "Mobile".into(), "invalid_row".into())]
    );

    let headerless = dir.path().join("data-only.csv");
    std::fs::write(
        &headerless,
        "someone@contoso.com,+31 612345678,+31 201234567\n",
    )
    .unwrap();
    let o = run(&["check", s(&headerless)], dir.path());
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("not a header"), "{err}");
    for number in ["612345678", "201234567"] {
        assert!(!err.contains(number), "{err}");
        assert!(!stdout(&o).contains(number));
    }
}
