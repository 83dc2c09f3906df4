//! The results CSV of `apply`: one row per input row (row, user, outcome, reason, detail),
//! written and flushed as rows finish, and read back by `--resume`.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use mfa_preload_core::results::SafeCsv;
pub use mfa_preload_core::results::{ResultRow, FAILED, REJECTED, RESULTS_HEADER};

use crate::input::InputRow;
use crate::Failure;

/// A checked input row: `ok_outcome` for valid rows, else its rejection.
pub fn from_input(r: &InputRow, ok_outcome: &str) -> ResultRow {
    match &r.status {
        Ok(_) => ResultRow {
            row: r.row,
            user: r.user.clone(),
            outcome: ok_outcome.into(),
            reason: String::new(),
            detail: String::new(),
        },
        Err(e) => ResultRow::rejected(&r.user, e),
    }
}

/// A CSV file written a record at a time, each flushed, every cell Excel-safe.
pub struct CsvFile {
    path: PathBuf,
    w: SafeCsv<BufWriter<File>>,
}

impl CsvFile {
    pub fn new(path: &Path, file: File) -> CsvFile {
        CsvFile {
            path: path.to_path_buf(),
            w: SafeCsv::new(BufWriter::new(file)),
        }
    }

    /// Writes and flushes one record.
    pub fn write<I, S>(&mut self, cells: I) -> Result<(), Failure>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.w
            .record(cells)
            .map_err(|e| Failure::Usage(format!("writing {}: {e}", self.path.display())))?;
        self.w.flush().map_err(|e| Failure::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Appends rows to a results file, flushing each one.
pub struct ResultsWriter {
    csv: CsvFile,
}

impl ResultsWriter {
    /// Refuses an existing file unless `overwrite` (before anything else is created).
    pub fn refuse_existing(path: &Path, overwrite: bool) -> Result<(), Failure> {
        if path.exists() && !overwrite {
            return Err(Failure::Usage(format!(
                "{} exists: continue it with --resume {}, choose another --results, or pass --overwrite",
                path.display(),
                path.display()
            )));
        }
        Ok(())
    }

    /// A new file with the header; an existing file is refused unless `overwrite`.
    pub fn create(path: &Path, overwrite: bool) -> Result<ResultsWriter, Failure> {
        ResultsWriter::refuse_existing(path, overwrite)?;
        let file = File::create(path).map_err(|e| Failure::io(path, e))?;
        let mut w = ResultsWriter {
            csv: CsvFile::new(path, file),
        };
        w.csv.write(RESULTS_HEADER)?;
        Ok(w)
    }

    /// Opens an existing results file for appending.
    pub fn append(path: &Path) -> Result<ResultsWriter, Failure> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Failure::io(path, e))?;
        Ok(ResultsWriter {
            csv: CsvFile::new(path, file),
        })
    }

    pub fn write(&mut self, r: &ResultRow) -> Result<(), Failure> {
        self.csv.write(r.cells())
    }
}

/// Creates (or truncates) a file readable and writable by its owner only (on Unix; elsewhere the
/// directory's defaults apply): for files that hold phone numbers or secrets.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    open_private(path, false)
}

/// [`create_private`], or with `append` opens (creating if need be) for appending; an existing
/// file is narrowed to its owner too.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    if append {
        o.append(true).create(true);
    } else {
        o.write(true).create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    // An existing file keeps its mode through `open`: narrow it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Reads a results file written by [`ResultsWriter`].
pub fn read(path: &Path) -> Result<Vec<ResultRow>, Failure> {
    let bad = |why: String| Failure::Usage(format!("{}: {why}", path.display()));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| bad(e.to_string()))?;
    let header = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    if header.iter().collect::<Vec<_>>() != RESULTS_HEADER {
        return Err(bad(format!(
            "not a results file (header must be {})",
            RESULTS_HEADER.join(",")
        )));
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let cell = |i: usize| rec.get(i).unwrap_or("").to_string();
        let row = cell(0)
            .parse::<u64>()
            .map_err(|_| bad(format!("'{}' is not a row number", cell(0))))?;
        out.push(ResultRow {
            row,
            user: cell(1),
            outcome: cell(2),
            reason: cell(3),
            detail: cell(4),
        });
    }
    Ok(out)
}

/// Replaces `path` with exactly `rows` (through a temporary file and a rename).
pub fn rewrite(path: &Path, rows: &[ResultRow]) -> Result<(), Failure> {
    let tmp = path.with_extension("csv.tmp");
    {
        let mut w = ResultsWriter::create(&tmp, true)?;
        for r in rows {
            w.write(r)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| Failure::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64, user: &str, outcome: &str) -> ResultRow {
        ResultRow {
            row: n,
            user: user.into(),
            outcome: outcome.into(),
            reason: if outcome == FAILED {
                "retries_exhausted".into()
            } else {
                String::new()
            },
            detail: "mobile=created; writes: mobile:create(+31 612***678)".into(),
        }
    }

    #[test]
    fn rows_round_trip_excel_safe_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        {
            let mut w = ResultsWriter::create(&p, false).unwrap();
            w.write(&row(2, "=evil@contoso.com", "created")).unwrap();
            w.write(&row(3, "b@contoso.com", FAILED)).unwrap();
        }
        assert!(
            ResultsWriter::create(&p, false).is_err(),
            "no silent overwrite"
        );
        ResultsWriter::append(&p)
            .unwrap()
            .write(&row(4, "c@contoso.com", "unchanged"))
            .unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].user, "'=evil@contoso.com");
        assert!(back[0].is_for_user("=evil@contoso.com"));
        assert!(back[0].is_final());
        assert!(!back[1].is_final());
        assert_eq!(back[2], row(4, "c@contoso.com", "unchanged"));

        rewrite(&p, &back[..1]).unwrap();
        let again = read(&p).unwrap();
        assert_eq!(
            again,
            back[..1].to_vec(),
            "rewriting does not add quotes twice"
        );
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "UPN,Mobile\na@b.c,+1 5555551234\n").unwrap();
        assert!(read(&p).is_err());
    }
}
