//! The passes file of `apply` (default `FILE-stem.passes.csv`): every Temporary Access Pass Graph
//! issued in the run, the one place the CLI writes a pass value. `mfa-preload passes` gathers the
//! pass files the AWS deployment wrote for an uploaded file into one such file. It is created readable and
//! writable by its owner only (0600; an existing file is narrowed to that), Excel-safe, and each
//! pass is flushed to it before the row's result is written, so a pass that was issued is never
//! lost to a crash after it.

use std::path::Path;

use mfa_preload_core::tap::{IssuedPass, PASS_FILE_HEADER};

use crate::results::{open_private, CsvFile};
use crate::Failure;

/// Appends passes to the passes file, flushing each one.
pub struct PassesWriter {
    csv: CsvFile,
    /// What was written in this run, for `--show-passes`.
    shown: Option<Vec<[String; 5]>>,
    written: usize,
}

impl PassesWriter {
    /// A new passes file with the header; an existing one is refused unless `overwrite` (it
    /// holds the passes of an earlier run, which exist nowhere else). With `append` (a
    /// `--resume`), passes are added to the file of the earlier run.
    pub fn open(
        path: &Path,
        append: bool,
        overwrite: bool,
        show: bool,
    ) -> Result<PassesWriter, Failure> {
        let exists = path.exists();
        if exists && !append && !overwrite {
            return Err(Failure::Usage(format!(
                "{} exists and holds the Temporary Access Passes of an earlier run, which are nowhere else: hand them out and move the file away, choose another --passes, or pass --overwrite",
                path.display()
            )));
        }
        let file = open_private(path, append).map_err(|e| Failure::io(path, e))?;
        let mut w = PassesWriter {
            csv: CsvFile::new(path, file),
            shown: show.then(Vec::new),
            written: 0,
        };
        if !exists || !append {
            w.csv.write(PASS_FILE_HEADER)?;
        }
        Ok(w)
    }

    /// Writes (and flushes) one pass.
    pub fn write(&mut self, user: &str, p: &IssuedPass) -> Result<(), Failure> {
        self.write_row(p.file_row(user))
    }

    /// Writes (and flushes) one row of [`PASS_FILE_HEADER`].
    pub fn write_row(&mut self, cells: [String; 5]) -> Result<(), Failure> {
        self.csv.write(&cells)?;
        if let Some(shown) = &mut self.shown {
            shown.push(cells);
        }
        self.written += 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        self.csv.path()
    }

    /// Passes written in this run.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The passes of this run, when `--show-passes` asked for them.
    pub fn shown(&self) -> Option<&[[String; 5]]> {
        self.shown.as_deref()
    }
}

/// `mfa-preload passes s3://BUCKET/KEY`: the pass files of an uploaded file (every run, or
/// `run`) into one passes file at `out`, in run and row order. Run it as the helpdesk principal
/// (`PassReaderPrincipalArn`): only it may decrypt them.
pub async fn fetch(
    url: &str,
    run: Option<&str>,
    out: &Path,
    overwrite: bool,
) -> Result<u8, Failure> {
    use mfa_preload_core::aws::clients::{load_sdk_config, s3_client};
    use mfa_preload_core::aws::s3::ObjectStore;
    use mfa_preload_core::worker::passes::pass_files_prefix;
    let (bucket, key) = crate::status::parse_s3_url(url)?;
    let store = ObjectStore::new(s3_client(&load_sdk_config().await));
    let prefix = pass_files_prefix(&key, run);
    let mut keys: Vec<String> = store
        .list_keys(&bucket, &prefix)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?
        .into_iter()
        // `<run>/<row:08>.csv` under the prefix: a later upload's key that merely starts
        // with this one (`users.csv.old/...`) is not this file's.
        .filter(|k| {
            let rest = &k[prefix.len()..];
            let parts: Vec<&str> = rest.split('/').collect();
            let file = if run.is_some() { parts.as_slice() } else { parts.get(1..).unwrap_or(&[]) };
            matches!(file, [f] if f.ends_with(".csv") && f.len() == 12 && f[..8].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    // Zero-padded rows: the keys sort in run and row order.
    keys.sort();
    if keys.is_empty() {
        return Err(Failure::Usage(format!(
            "no pass files under s3://{bucket}/{prefix}: no row of {url} asked for a Temporary Access Pass (or they expired: PassRetentionDays)"
        )));
    }
    let mut w = PassesWriter::open(out, false, overwrite, false)?;
    for k in &keys {
        let bytes = store
            .get_bytes(&bucket, k)
            .await
            .map_err(|e| {
                Failure::Usage(format!(
                    "{e} (run this as PassReaderPrincipalArn: only it may decrypt pass files)"
                ))
            })?
            .unwrap_or_default();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes.as_slice());
        for rec in r.records() {
            let rec = rec.map_err(|e| Failure::Usage(format!("s3://{bucket}/{k}: {e}")))?;
            let cell = |i: usize| rec.get(i).unwrap_or("").to_string();
            w.write_row([cell(0), cell(1), cell(2), cell(3), cell(4)])?;
        }
    }
    println!(
        "{} Temporary Access Passes of {url} written to {} (readable by you only: hand them out, then delete the file)",
        w.written(),
        w.path().display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_preload_core::tap::PassValue;

    fn pass(v: &str) -> IssuedPass {
        IssuedPass {
            method_id: "m".into(),
            value: PassValue::new(v.into()),
            start: Some("2027-01-04T07:00:00Z".into()),
            lifetime_in_minutes: 480,
            is_usable_once: true,
            created: None,
        }
    }

    #[test]
    fn the_file_is_private_excel_safe_and_never_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.passes.csv");
        let mut w = PassesWriter::open(&path, false, false, false).unwrap();
        w.write("a@contoso.com", &pass("+drkzqAD")).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "UPN,TemporaryAccessPass,StartDateTime,LifetimeInMinutes,IsUsableOnce\na@contoso.com,'+drkzqAD,2027-01-04T07:00:00Z,480,true\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // An earlier run's passes are not overwritten by accident.
        let err = PassesWriter::open(&path, false, false, false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("earlier run"), "{err}");
        // A resume appends, and narrows a file someone widened.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut w = PassesWriter::open(&path, true, false, true).unwrap();
        w.write("b@contoso.com", &pass("Q7x9kLm2")).unwrap();
        assert_eq!(w.shown().map(<[_]>::len), Some(1));
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
    }
}
