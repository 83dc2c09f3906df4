//! The README's DLQ table ("The dead-letter queue") and `Reason::what_to_do` say the same: the
//! table is read at run time, each row's "what to do" cell compared with the code's.

use std::path::PathBuf;

use mfa_preload_core::reason::Reason;

/// Markdown cell text -> plain text: backticks out, runs of whitespace as one space.
fn normalise(s: &str) -> String {
    s.replace('`', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// `(reason code, what to do)` of every row of the DLQ table.
fn dlq_table(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("\n### The dead-letter queue")
        .nth(1)
        .expect("README has a section \"### The dead-letter queue\"");
    let section = section.split("\n#").next().unwrap_or(section);
    let mut lines = section
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('|'));
    let header = cells(lines.next().expect("the section has a table"));
    let reason_col = header
        .iter()
        .position(|h| h == "reason")
        .expect("a reason column");
    let todo_col = header
        .iter()
        .position(|h| h == "what to do")
        .expect("a \"what to do\" column");
    let separator = lines.next().expect("the table's separator line");
    assert!(separator.contains("---"), "{separator}");
    lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let c = cells(l);
            assert_eq!(
                c.len(),
                header.len(),
                "a table line with a `|` in a cell? {l}"
            );
            (
                c[reason_col].trim_matches('`').to_string(),
                c[todo_col].clone(),
            )
        })
        .collect()
}

#[test]
fn what_to_do_is_the_readme_dlq_table() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR (run through cargo)");
    let path = PathBuf::from(dir).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let table = dlq_table(&readme);
    let mut seen = Vec::new();
    for (code, todo) in &table {
        let reason =
            Reason::parse(code).unwrap_or_else(|| panic!("unknown reason {code:?} in README"));
        assert_eq!(
            normalise(reason.what_to_do()),
            normalise(todo),
            "what to do for {code}: Reason::what_to_do and README's DLQ table differ"
        );
        assert!(!seen.contains(&reason), "{code} twice in the table");
        seen.push(reason);
    }
    // Every reason that can reach the DLQ has its row; a configuration fault never does.
    for r in Reason::ALL {
        assert_eq!(
            seen.contains(&r),
            r != Reason::ConfigurationFault,
            "{r}: in the README's DLQ table exactly when it can be dead-lettered"
        );
    }
}

#[test]
fn every_reason_says_what_to_do() {
    for r in Reason::ALL {
        let t = r.what_to_do();
        assert!(!t.trim().is_empty(), "{r}");
        assert!(!t.contains('`'), "{r}: plain text, without Markdown");
    }
}
