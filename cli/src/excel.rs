//! Excel-safe CSV output: a cell a spreadsheet would run as a formula is neutralised.

use std::borrow::Cow;
use std::io::Write;

/// The cell as written to a CSV: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return gets a leading `'` so spreadsheets show it as text, unless it is a Graph-form phone
/// number.
pub fn excel_safe(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
            if !mfa_preload_core::phone::is_graph_form(cell) =>
        {
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
