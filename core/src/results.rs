//! The results file's rows: one per input row (row, user, outcome, reason, detail), the same
//! columns for the CLI's `--results` file and the job ledger's `reports/<key>.results.csv`, every
//! cell Excel-safe.

use std::borrow::Cow;
use std::io::Write;

use crate::apply::UserResult;
use crate::csv::RowError;

pub const RESULTS_HEADER: [&str; 5] = ["row", "user", "outcome", "reason", "detail"];

/// Outcome of a row rejected for good (validation or Graph's refusal).
pub const REJECTED: &str = "rejected";
/// Outcome of a row that failed transiently (throttling, 5xx, network, token): `--resume`
/// tries it again.
pub const FAILED: &str = "failed";

/// One results row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub row: u64,
    pub user: String,
    /// created, updated, deleted, unchanged, skipped_exists, rejected or failed.
    pub outcome: String,
    /// The reason code for rejected and failed rows.
    pub reason: String,
    /// Human detail (numbers masked by the library).
    pub detail: String,
}

impl ResultRow {
    pub fn rejected(user: &str, e: &RowError) -> ResultRow {
        let detail = match &e.column {
            Some(c) => format!("column '{c}': {}", e.detail),
            None => e.detail.clone(),
        };
        ResultRow {
            row: e.row,
            user: user.to_string(),
            outcome: REJECTED.into(),
            reason: e.reason.as_str().into(),
            detail,
        }
    }

    pub fn from_user_result(row: u64, user: &str, res: &UserResult) -> ResultRow {
        let mut detail = res.detail();
        if !res.actions.is_empty() {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            detail.push_str("writes: ");
            detail.push_str(&res.actions.join(", "));
        }
        let (outcome, reason) = match &res.outcome {
            Ok(o) => (o.as_str().to_string(), String::new()),
            // A configuration fault is nobody's row: `--resume` tries it again once fixed.
            Err(r) => (
                if res.transient || res.config_fault.is_some() {
                    FAILED
                } else {
                    REJECTED
                }
                .to_string(),
                r.reason.as_str().to_string(),
            ),
        };
        ResultRow {
            row,
            user: user.to_string(),
            outcome,
            reason,
            detail,
        }
    }

    /// Done for good: `--resume` keeps it and does not touch the user again.
    pub fn is_final(&self) -> bool {
        self.outcome != FAILED
    }

    pub fn cells(&self) -> [String; 5] {
        [
            self.row.to_string(),
            self.user.clone(),
            self.outcome.clone(),
            self.reason.clone(),
            self.detail.clone(),
        ]
    }

    /// Whether this row was written for `user` (cells are stored Excel-safe).
    pub fn is_for_user(&self, user: &str) -> bool {
        self.user == user || self.user == excel_safe(user)
    }
}

/// Writes `rows` under [`RESULTS_HEADER`], Excel-safe.
pub fn write_csv<W: Write, I: IntoIterator<Item = ResultRow>>(w: W, rows: I) -> csv::Result<W> {
    let mut out = SafeCsv::new(w);
    out.record(RESULTS_HEADER)?;
    for r in rows {
        out.record(r.cells())?;
    }
    out.into_inner()
}

/// The cell as written to a CSV: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return gets a leading `'` so spreadsheets show it as text, unless it is a Graph-form phone
/// number.
pub fn excel_safe(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !crate::phone::is_graph_form(cell) => {
            Cow::Owned(format!("'{cell}"))
        }
        _ => Cow::Borrowed(cell),
    }
}

/// A CSV writer whose every cell goes through [`excel_safe`].
pub struct SafeCsv<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> SafeCsv<W> {
    pub fn new(w: W) -> SafeCsv<W> {
        SafeCsv {
            inner: csv::WriterBuilder::new().from_writer(w),
        }
    }

    pub fn record<I, S>(&mut self, cells: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let safe: Vec<String> = cells
            .into_iter()
            .map(|c| excel_safe(c.as_ref()).into_owned())
            .collect();
        self.inner.write_record(&safe)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer, flushed.
    pub fn into_inner(self) -> csv::Result<W> {
        self.inner
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(excel_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(excel_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(excel_safe("-2+3"), "'-2+3");
        assert_eq!(excel_safe("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(excel_safe("\tx"), "'\tx");
        assert_eq!(excel_safe("\rx"), "'\rx");
        // Near-phones that are not in Graph form are neutralised too.
        assert_eq!(excel_safe("+31612345678"), "'+31612345678");
        assert_eq!(excel_safe("+31 6123 45678"), "'+31 6123 45678");
        assert_eq!(excel_safe("+1 555x"), "'+1 555x");
    }

    #[test]
    fn graph_phones_and_plain_text_are_kept() {
        for s in [
            "+1 5555551234",
            "+1 5555551234x123",
            "+31 612345678",
            "user@contoso.com",
            "row 5: x",
            "",
        ] {
            assert_eq!(excel_safe(s), s);
        }
    }

    #[test]
    fn writer_neutralises_every_cell() {
        let mut w = SafeCsv::new(Vec::new());
        w.record(["=1+1", "+1 5555551234", "ok"]).unwrap();
        let out = String::from_utf8(w.inner.into_inner().unwrap()).unwrap();
        assert_eq!(out, "'=1+1,+1 5555551234,ok\n");
    }
}
