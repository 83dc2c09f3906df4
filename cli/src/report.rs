//! Human summaries on standard output: counts by outcome and reason, and the first rows.

use std::collections::BTreeMap;

use crate::results::ResultRow;

/// Counts by outcome and by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub outcomes: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
    pub rows: u64,
}

impl Tally {
    pub fn add(&mut self, r: &ResultRow) {
        self.rows += 1;
        *self.outcomes.entry(r.outcome.clone()).or_default() += 1;
        if !r.reason.is_empty() {
            *self.reasons.entry(r.reason.clone()).or_default() += 1;
        }
    }

    /// Rows that did not end in a success outcome.
    pub fn not_ok(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !is_success(o))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn print(&self, title: &str) {
        println!("{title}: {} rows", self.rows);
        println!("  {:<32} {:>8}", "outcome", "rows");
        for (o, n) in &self.outcomes {
            println!("  {o:<32} {n:>8}");
        }
        if !self.reasons.is_empty() {
            println!("  {:<32} {:>8}", "reason", "rows");
            for (r, n) in &self.reasons {
                println!("  {r:<32} {n:>8}");
            }
        }
    }
}

/// The outcomes of README "Reading results" (anything else is `rejected` or `failed`).
pub fn is_success(outcome: &str) -> bool {
    mfa_preload_core::Outcome::parse(outcome).is_some()
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The first `n` rows as a table (by row number).
pub fn print_rows(rows: &[ResultRow], n: usize) {
    if n == 0 || rows.is_empty() {
        return;
    }
    let mut sorted: Vec<&ResultRow> = rows.iter().collect();
    sorted.sort_by_key(|r| r.row);
    println!();
    println!(
        "{:>6}  {:<34} {:<15} {:<29} detail",
        "row", "user", "outcome", "reason"
    );
    for r in sorted.iter().take(n) {
        println!(
            "{:>6}  {:<34} {:<15} {:<29} {}",
            r.row,
            clip(&r.user, 34),
            r.outcome,
            r.reason,
            clip(&r.detail, 90)
        );
    }
    if sorted.len() > n {
        println!("  ... {} more rows", sorted.len() - n);
    }
}
