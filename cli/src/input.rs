//! Reading an input file: the library's reader and validation, then the whole-file rules
//! (a user's first row wins; one SMS sign-in number per accepted row), as the ingest applies them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mfa_preload_core::csv::{
    ColumnMapping, CsvReader, Field, HeaderError, Layout, MappingError, RowError,
};
use mfa_preload_core::phone::{parse_country, PhoneError};
use mfa_preload_core::validate::{validate, Settings, ValidRow};
use mfa_preload_core::Reason;

use crate::args::InputArgs;

/// Why a file cannot be used at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Header { path: PathBuf, source: HeaderError },
    #[error("reading {path} failed: {why}")]
    Read { path: PathBuf, why: String },
    #[error("--map: {0}")]
    Mapping(#[from] MappingError),
    #[error("--default-country / DEFAULT_COUNTRY: {0}")]
    Country(#[from] PhoneError),
}

/// One data row and what became of it before any Graph call.
#[derive(Debug, Clone)]
pub struct InputRow {
    /// Line number where the record starts (the header is line 1).
    pub row: u64,
    /// The user cell as written (trimmed); empty when the row could not be split.
    pub user: String,
    pub status: Result<ValidRow, RowError>,
}

/// A whole file, read and checked.
#[derive(Debug)]
pub struct Input {
    pub path: PathBuf,
    pub rows: Vec<InputRow>,
}

impl Input {
    pub fn valid(&self) -> impl Iterator<Item = &ValidRow> {
        self.rows.iter().filter_map(|r| r.status.as_ref().ok())
    }

    pub fn rejected(&self) -> impl Iterator<Item = &RowError> {
        self.rows.iter().filter_map(|r| r.status.as_ref().err())
    }
}

/// Validation settings and column mapping from the arguments.
pub fn options(args: &InputArgs) -> Result<(Settings, ColumnMapping), InputError> {
    let default_country = match args.default_country.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(parse_country(c)?),
    };
    let mapping = ColumnMapping::parse(&args.map)?;
    Ok((Settings { default_country }, mapping))
}

/// Reads, validates and de-duplicates `path`.
pub async fn read(
    path: &Path,
    settings: &Settings,
    mapping: &ColumnMapping,
) -> Result<Input, InputError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let src = tokio::io::BufReader::new(file);
    let mut reader = CsvReader::open(src, mapping)
        .await
        .map_err(|source| InputError::Header {
            path: path.to_path_buf(),
            source,
        })?;
    let layout = reader.layout().clone();
    let user_col = layout.column_of(Field::User);
    let mut rows = Vec::new();
    let mut dedupe = FileRules::default();
    while let Some(item) = reader.next().await {
        let row = match item {
            Err(e) => InputRow {
                row: e.row,
                user: String::new(),
                status: Err(e),
            },
            Ok(raw) => {
                let user = user_col
                    .and_then(|i| raw.cell(i))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                let checked = validate(&raw, &layout, settings);
                let status = dedupe.apply(raw.row, &user, &layout, checked);
                InputRow {
                    row: raw.row,
                    user,
                    status,
                }
            }
        };
        rows.push(row);
    }
    if let Some(why) = reader.io_error() {
        return Err(InputError::Read {
            path: path.to_path_buf(),
            why: why.to_string(),
        });
    }
    Ok(Input {
        path: path.to_path_buf(),
        rows,
    })
}

/// The exact whole-file rules of the ingest (`dedupe`), with plain maps: a laptop holds them.
#[derive(Default)]
struct FileRules {
    /// User key -> first row naming the user (valid or not).
    users: HashMap<String, u64>,
    /// SMS sign-in number -> first accepted row asking for it.
    sms: HashMap<String, u64>,
}

impl FileRules {
    fn apply(
        &mut self,
        row: u64,
        user_cell: &str,
        layout: &Layout,
        checked: Result<ValidRow, RowError>,
    ) -> Result<ValidRow, RowError> {
        // Only a usable user cell claims the user (as the ingest does).
        let Ok(user) = mfa_preload_core::user::validate_user(user_cell) else {
            return checked;
        };
        let key = mfa_preload_core::user::user_key(&user);
        if let Some(first) = self.users.get(&key) {
            return Err(RowError {
                row,
                column: layout.header_of(Field::User).map(str::to_string),
                reason: Reason::DuplicateUserInFile,
                detail: format!(
                    "user {user} already appears in row {first}; only the first row of a user is processed"
                ),
            });
        }
        self.users.insert(key, row);
        let valid = checked?;
        if let Some(number) = valid.sms_key() {
            if let Some(first) = self.sms.get(&number) {
                return Err(RowError {
                    row,
                    column: layout.header_of(Field::SmsSignIn).map(str::to_string),
                    reason: Reason::SmsSigninNumberNotUnique,
                    detail: format!(
                        "row {first} already asks for SMS sign-in with mobile {}; a number can be used for SMS sign-in by one user only",
                        mfa_preload_core::mask::mask_phone(&number)
                    ),
                });
            }
            self.sms.insert(number, row);
        }
        Ok(valid)
    }
}

/// `dir/users.csv` + `rejects` -> `users.rejects.csv` (in the current directory).
pub fn default_output(input: &Path, what: &str) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    PathBuf::from(format!("{stem}.{what}.csv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_text(text: &str) -> Input {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, text).unwrap();
        read(&p, &Settings::default(), &ColumnMapping::default())
            .await
            .unwrap()
    }

    fn reasons(input: &Input) -> Vec<(u64, Option<Reason>)> {
        input
            .rows
            .iter()
            .map(|r| (r.row, r.status.as_ref().err().map(|e| e.reason)))
            .collect()
    }

    #[tokio::test]
    async fn a_users_first_row_claims_it_even_when_rejected() {
        let input = read_text(
            "UPN,Mobile\nA@contoso.com,not a number\na@contoso.com,+31 612345678\nb@contoso.com,+31 612345679\n",
        )
        .await;
        assert_eq!(
            reasons(&input),
            vec![
                (2, Some(Reason::InvalidPhoneNumber)),
                (3, Some(Reason::DuplicateUserInFile)),
                (4, None)
            ]
        );
        let dup = input.rows[1].status.as_ref().unwrap_err();
        assert_eq!(dup.column.as_deref(), Some("UPN"));
        assert!(dup.detail.contains("row 2"), "{}", dup.detail);
        assert_eq!(input.rows[1].user, "a@contoso.com");
    }

    #[tokio::test]
    async fn one_sms_sign_in_number_per_accepted_row() {
        let input = read_text(
            "UPN,Mobile,SmsSignIn\n\
             a@contoso.com,+31 612345678,enable\n\
             b@contoso.com,+31 6 1234 5678,enable\n\
             c@contoso.com,+31 612345678,\n\
             d@contoso.com,+31 612345670,enable\n",
        )
        .await;
        assert_eq!(
            reasons(&input),
            vec![
                (2, None),
                (3, Some(Reason::SmsSigninNumberNotUnique)),
                (4, None),
                (5, None)
            ]
        );
        let e = input.rows[1].status.as_ref().unwrap_err();
        assert!(!e.detail.contains("612345678"), "masked: {}", e.detail);
    }

    #[test]
    fn default_outputs_are_named_after_the_input() {
        assert_eq!(
            default_output(Path::new("/data/in/users.csv"), "rejects"),
            PathBuf::from("users.rejects.csv")
        );
    }
}
