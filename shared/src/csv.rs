//! The CSV reader of SPEC section 2: streaming, constant memory, exact byte offsets.
//!
//! Records are cut from the byte stream by a small quote-aware scanner (so the reader knows the
//! absolute offset and line of every record, can resume a file from any record boundary, and never
//! holds more than [`MAX_RECORD_BYTES`] of one record), then split into fields by `csv-core`.
//! A record longer than the limit is rejected as `invalid_row` and skipped up to the next line end.

use crate::reason::Reason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest record accepted (a real row is well under 1 KiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// The fields of a row (SPEC section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    User,
    Mobile,
    AlternateMobile,
    Office,
    Email,
    ForcedUpdate,
    ForcedRemoval,
    SmsSignIn,
    DefaultMethod,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::User,
        Field::Mobile,
        Field::AlternateMobile,
        Field::Office,
        Field::Email,
        Field::ForcedUpdate,
        Field::ForcedRemoval,
        Field::SmsSignIn,
        Field::DefaultMethod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::User => "user",
            Field::Mobile => "mobile",
            Field::AlternateMobile => "alternateMobile",
            Field::Office => "office",
            Field::Email => "email",
            Field::ForcedUpdate => "forcedUpdate",
            Field::ForcedRemoval => "forcedRemoval",
            Field::SmsSignIn => "smsSignIn",
            Field::DefaultMethod => "defaultMethod",
        }
    }

    /// Accepted headers (SPEC section 2), besides the field's own name.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::User => &["UPN", "UserPrincipalName", "User", "ObjectId", "Id"],
            Field::Mobile => &["Mobile", "MobilePhone"],
            Field::AlternateMobile => &["AlternateMobile", "AlternateMobilePhone"],
            Field::Office => &["OfficePhone", "Office"],
            Field::Email => &["Email", "AlternateEmail", "AuthenticationEmail"],
            Field::ForcedUpdate => &["ForcedUpdate"],
            Field::ForcedRemoval => &["ForcedRemoval"],
            Field::SmsSignIn => &["SmsSignIn"],
            Field::DefaultMethod => &["DefaultMethod"],
        }
    }
}

/// Header matching ignores case, spaces, `_` and `-`.
pub fn normalise_header(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn field_for(normalised: &str) -> Option<Field> {
    Field::ALL.into_iter().find(|f| {
        normalise_header(f.name()) == normalised
            || f.aliases()
                .iter()
                .any(|a| normalise_header(a) == normalised)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    #[error("column mapping '{0}' is not of the form 'Their Header=ours'")]
    Syntax(String),
    #[error("column mapping '{pair}': '{target}' is not a field (use one of user, mobile, alternateMobile, office, email, forcedUpdate, forcedRemoval, smsSignIn, defaultMethod, or ignore)")]
    UnknownTarget { pair: String, target: String },
}

/// Where a mapped column goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    Field(Field),
    /// Read and dropped (e.g. a legacy `Status` column).
    Ignore,
}

/// Extra header names for other exports: `Their Header=ours`, where `ours` is a field name, an
/// accepted header, or `ignore`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Normalised header -> target.
    pub entries: BTreeMap<String, Target>,
}

impl ColumnMapping {
    /// From `--map` values (each `Their Header=ours`).
    pub fn parse(pairs: &[String]) -> Result<ColumnMapping, MappingError> {
        let mut entries = BTreeMap::new();
        for pair in pairs {
            let (theirs, ours) = pair
                .split_once('=')
                .ok_or_else(|| MappingError::Syntax(pair.clone()))?;
            let (theirs, ours) = (normalise_header(theirs), normalise_header(ours));
            if theirs.is_empty() || ours.is_empty() {
                return Err(MappingError::Syntax(pair.clone()));
            }
            let target = if ours == "ignore" {
                Target::Ignore
            } else {
                Target::Field(field_for(&ours).ok_or_else(|| MappingError::UnknownTarget {
                    pair: pair.clone(),
                    target: ours.clone(),
                })?)
            };
            entries.insert(theirs, target);
        }
        Ok(ColumnMapping { entries })
    }

    /// From the `COLUMN_MAPPING` variable: pairs separated by `,` (or `;`).
    pub fn from_env_value(s: &str) -> Result<ColumnMapping, MappingError> {
        let pairs: Vec<String> = s
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        ColumnMapping::parse(&pairs)
    }

    fn target(&self, header: &str) -> Option<Target> {
        let n = normalise_header(header);
        if let Some(t) = self.entries.get(&n) {
            return Some(*t);
        }
        field_for(&n).map(Target::Field)
    }
}

/// What the header said; stored in ingest checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub delimiter: u8,
    /// Headers as written in the file.
    pub headers: Vec<String>,
    /// Per column: the field, or `None` for an ignored column.
    pub fields: Vec<Option<Field>>,
    /// Byte offset of the first data row.
    pub data_start: u64,
}

impl Layout {
    pub fn has(&self, f: Field) -> bool {
        self.fields.contains(&Some(f))
    }

    pub fn header_of(&self, f: Field) -> Option<&str> {
        self.fields
            .iter()
            .position(|x| *x == Some(f))
            .and_then(|i| self.headers.get(i))
            .map(String::as_str)
    }

    pub fn column_of(&self, f: Field) -> Option<usize> {
        self.fields.iter().position(|x| *x == Some(f))
    }
}

/// A header that makes the whole file unusable.
#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("the file is empty: a header row is required (e.g. UPN,Mobile,OfficePhone)")]
    Empty,
    #[error("the header row is not UTF-8 text (save the file as CSV UTF-8)")]
    NotUtf8,
    #[error("the header row is longer than {MAX_RECORD_BYTES} bytes")]
    TooLong,
    #[error("unknown column(s) {}: not one of the accepted headers; fix the name or map it (COLUMN_MAPPING / --map 'Their Header=ours', or =ignore)", .0.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "))]
    UnknownColumns(Vec<String>),
    #[error("no user column: one of UPN, UserPrincipalName, User, ObjectId or Id is required")]
    MissingUser,
    #[error("columns '{first}' and '{second}' both mean {field}")]
    DuplicateColumn {
        field: String,
        first: String,
        second: String,
    },
    #[error("reading the file failed: {0}")]
    Io(String),
}

impl HeaderError {
    pub fn reason(&self) -> Reason {
        Reason::InvalidRow
    }
}

/// One data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// Line number where the record starts (the header is line 1), as an editor shows it.
    pub row: u64,
    /// Absolute byte offsets of the record (end = start of the next).
    pub start: u64,
    pub end: u64,
    /// The unquoted fields, one after the other (one allocation per row, not one per cell).
    text: String,
    /// Where each field ends in `text`; always one per header column.
    ends: Vec<usize>,
}

impl RawRow {
    /// The cell of column `i` as the file had it (unquoted, not trimmed).
    pub fn cell(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// Every cell, in column order.
    pub fn cells(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len()).filter_map(|i| self.cell(i))
    }

    pub fn cell_count(&self) -> usize {
        self.ends.len()
    }
}

/// A row that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    /// The header as written, when one column is at fault.
    pub column: Option<String>,
    pub reason: Reason,
    pub detail: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(
                f,
                "row {}, column '{}': {} ({})",
                self.row, c, self.detail, self.reason
            ),
            None => write!(f, "row {}: {} ({})", self.row, self.detail, self.reason),
        }
    }
}

/// Quote-aware record scanner state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// One record cut from the stream (without its line end).
struct Cut {
    start: u64,
    line: u64,
    /// `None` when the record was longer than the limit (its bytes were dropped).
    bytes: Option<Vec<u8>>,
}

/// The streaming reader.
pub struct CsvReader<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Absolute offset of `buf[pos]`.
    offset: u64,
    line: u64,
    layout: Layout,
    splitter: csv_core::Reader,
    split_out: Vec<u8>,
    split_ends: Vec<usize>,
    io_error: Option<String>,
}

impl<R: AsyncRead + Unpin + Send> CsvReader<R> {
    fn raw(src: R, offset: u64, line: u64, layout: Layout) -> CsvReader<R> {
        let splitter = csv_core::ReaderBuilder::new()
            .delimiter(layout.delimiter)
            .build();
        CsvReader {
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            eof: false,
            offset,
            line,
            layout,
            splitter,
            split_out: Vec::new(),
            split_ends: Vec::new(),
            io_error: None,
        }
    }

    /// Reads the header (BOM, `,`/`;` detection) and positions at the first data row.
    pub async fn open(src: R, mapping: &ColumnMapping) -> Result<CsvReader<R>, HeaderError> {
        let empty = Layout {
            delimiter: b',',
            headers: Vec::new(),
            fields: Vec::new(),
            data_start: 0,
        };
        let mut r = CsvReader::raw(src, 0, 1, empty);
        r.fill().await.map_err(|e| HeaderError::Io(e.to_string()))?;
        if r.buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            r.pos = 3;
            r.offset = 3;
        }
        // The header: the first line with something on it.
        let header = loop {
            let cut = match r.cut().await {
                Ok(Some(c)) => c,
                Ok(None) => return Err(HeaderError::Empty),
                Err(e) => return Err(HeaderError::Io(e.to_string())),
            };
            let Some(bytes) = cut.bytes else {
                return Err(HeaderError::TooLong);
            };
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            break bytes;
        };
        let text = std::str::from_utf8(&header).map_err(|_| HeaderError::NotUtf8)?;
        let delimiter = detect_delimiter(text);
        r.splitter = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        let headers: Vec<String> = {
            let (text, ends) = r.split(&header).ok_or(HeaderError::NotUtf8)?;
            let mut start = 0;
            ends.iter()
                .map(|&end| {
                    let h = text[start..end].trim().to_string();
                    start = end;
                    h
                })
                .collect()
        };
        let mut fields = Vec::with_capacity(headers.len());
        let mut unknown = Vec::new();
        let mut seen: BTreeMap<Field, String> = BTreeMap::new();
        for h in &headers {
            if h.is_empty() {
                // A trailing delimiter on the header line: an unnamed, ignored column.
                fields.push(None);
                continue;
            }
            match mapping.target(h) {
                None => {
                    unknown.push(h.clone());
                    fields.push(None);
                }
                Some(Target::Ignore) => fields.push(None),
                Some(Target::Field(f)) => {
                    if let Some(first) = seen.get(&f) {
                        return Err(HeaderError::DuplicateColumn {
                            field: f.name().into(),
                            first: first.clone(),
                            second: h.clone(),
                        });
                    }
                    seen.insert(f, h.clone());
                    fields.push(Some(f));
                }
            }
        }
        if !unknown.is_empty() {
            return Err(HeaderError::UnknownColumns(unknown));
        }
        if !seen.contains_key(&Field::User) {
            return Err(HeaderError::MissingUser);
        }
        r.layout = Layout {
            delimiter,
            headers,
            fields,
            data_start: r.offset,
        };
        Ok(r)
    }

    /// Goes on reading a file whose header was read before: `src` starts at absolute byte
    /// `offset`, which is the start of the record on line `next_row`.
    pub fn resume(src: R, layout: Layout, offset: u64, next_row: u64) -> CsvReader<R> {
        CsvReader::raw(src, offset, next_row, layout)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Absolute byte offset where the next record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Line number the next record starts on.
    pub fn next_row(&self) -> u64 {
        self.line
    }

    /// When [`CsvReader::next`] returned `None` because reading the stream failed: why.
    pub fn io_error(&self) -> Option<&str> {
        self.io_error.as_deref()
    }

    /// The next data row; blank lines are skipped; a bad row is an `Err` and reading goes on;
    /// `None` at the end (or on a read error, see [`CsvReader::io_error`]).
    pub async fn next(&mut self) -> Option<Result<RawRow, RowError>> {
        loop {
            let cut = match self.cut().await {
                Ok(Some(c)) => c,
                Ok(None) => return None,
                Err(e) => {
                    self.io_error = Some(e.to_string());
                    return None;
                }
            };
            let row = cut.line;
            let Some(bytes) = cut.bytes else {
                return Some(Err(RowError {
                    row,
                    column: None,
                    reason: Reason::InvalidRow,
                    detail: format!(
                        "the row is longer than {MAX_RECORD_BYTES} bytes; skipped to the next line"
                    ),
                }));
            };
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let end = self.offset;
            let Some((text, mut ends)) = self.split(&bytes) else {
                let at = std::str::from_utf8(&bytes)
                    .err()
                    .map(|e| e.valid_up_to())
                    .unwrap_or(0);
                return Some(Err(RowError {
                    row,
                    column: self.column_at_byte(&bytes, at),
                    reason: Reason::InvalidRow,
                    detail: format!("the row is not UTF-8 text (bad byte at position {}); save the file as CSV UTF-8", at + 1),
                }));
            };
            if text.trim().is_empty() {
                // `;;;;` lines that spreadsheets write for empty rows.
                continue;
            }
            if ends.len() > self.layout.headers.len() {
                return Some(Err(RowError {
                    row,
                    column: None,
                    reason: Reason::InvalidRow,
                    detail: format!(
                        "the row has {} fields but the header has {}; check for an unquoted '{}' in a value",
                        ends.len(),
                        self.layout.headers.len(),
                        self.layout.delimiter as char
                    ),
                }));
            }
            ends.resize(self.layout.headers.len(), text.len());
            return Some(Ok(RawRow {
                row,
                start: cut.start,
                end,
                text,
                ends,
            }));
        }
    }

    fn column_at_byte(&mut self, bytes: &[u8], at: usize) -> Option<String> {
        let lossy = String::from_utf8_lossy(&bytes[..at.min(bytes.len())]).into_owned();
        let idx = self
            .split(lossy.as_bytes())
            .map(|(_, ends)| ends.len().saturating_sub(1))?;
        self.layout.headers.get(idx).cloned()
    }

    /// Splits one record into its unquoted fields: their text and where each ends; `None` if it is
    /// not UTF-8.
    fn split(&mut self, rec: &[u8]) -> Option<(String, Vec<usize>)> {
        // Unquoting never makes a record longer; `ends` are positions from the record's start.
        // The scratch buffers are kept between records (bounded by the longest record kept).
        let (out, ends) = (&mut self.split_out, &mut self.split_ends);
        out.clear();
        out.resize(rec.len() + 16, 0);
        ends.clear();
        ends.resize(rec.len() + 2, 0);
        self.splitter.reset();
        let (_, nin, nout, nend) = self.splitter.read_record(rec, out, ends);
        let (_, _, nout2, nend2) =
            self.splitter
                .read_record(&rec[nin..], &mut out[nout..], &mut ends[nend..]);
        let mut ends = ends[..nend + nend2].to_vec();
        if ends.is_empty() {
            ends.push(0);
        }
        let text = std::str::from_utf8(out.get(..nout + nout2)?)
            .ok()?
            .to_string();
        // A field boundary inside a character: the bytes around a delimiter were not UTF-8.
        if !ends.iter().all(|e| text.is_char_boundary(*e)) {
            return None;
        }
        Some((text, ends))
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = self.src.read(&mut self.buf[old..]).await;
        match n {
            Ok(0) => {
                self.buf.truncate(old);
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(true)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// Cuts the next record (up to and without its `\n` / `\r\n`). Memory stays bounded: an
    /// over-long record's bytes are dropped and it ends at the next line end, quotes or not.
    async fn cut(&mut self) -> std::io::Result<Option<Cut>> {
        let start = self.offset;
        let line = self.line;
        let delim = self.layout.delimiter;
        // The common record: a whole line in the buffer, without quotes.
        let ready = &self.buf[self.pos..];
        if let Some(nl) = memchr::memchr(b'\n', ready) {
            if nl <= MAX_RECORD_BYTES && memchr::memchr(b'"', &ready[..nl]).is_none() {
                let rec = trim_cr(ready[..nl].to_vec());
                self.line += 1;
                self.offset += (nl + 1) as u64;
                self.pos += nl + 1;
                return Ok(Some(Cut {
                    start,
                    line,
                    bytes: Some(rec),
                }));
            }
        }
        let mut state = Scan::FieldStart;
        let mut rec: Vec<u8> = Vec::new();
        let mut too_long = false;
        let mut i = self.pos;
        loop {
            if i >= self.buf.len() {
                if !too_long {
                    rec.extend_from_slice(&self.buf[self.pos..i]);
                    if rec.len() > MAX_RECORD_BYTES {
                        too_long = true;
                        rec = Vec::new();
                    }
                }
                self.offset += (i - self.pos) as u64;
                self.pos = i;
                if !self.fill().await? {
                    if self.offset == start {
                        return Ok(None);
                    }
                    let bytes = if too_long { None } else { Some(trim_cr(rec)) };
                    return Ok(Some(Cut { start, line, bytes }));
                }
                i = self.pos;
                continue;
            }
            let b = self.buf[i];
            i += 1;
            if b == b'\n' {
                self.line += 1;
                if state != Scan::Quoted || too_long {
                    if !too_long {
                        rec.extend_from_slice(&self.buf[self.pos..i - 1]);
                        too_long = rec.len() > MAX_RECORD_BYTES;
                    }
                    self.offset += (i - self.pos) as u64;
                    self.pos = i;
                    let bytes = if too_long { None } else { Some(trim_cr(rec)) };
                    return Ok(Some(Cut { start, line, bytes }));
                }
                continue;
            }
            state = match (state, b) {
                (Scan::FieldStart, b'"') => Scan::Quoted,
                (Scan::QuoteInQuoted, b'"') => Scan::Quoted,
                (Scan::Quoted, b'"') => Scan::QuoteInQuoted,
                (Scan::Quoted, _) => Scan::Quoted,
                (_, d) if d == delim => Scan::FieldStart,
                _ => Scan::Unquoted,
            };
        }
    }
}

fn trim_cr(mut rec: Vec<u8>) -> Vec<u8> {
    if rec.last() == Some(&b'\r') {
        rec.pop();
    }
    rec
}

/// `;` when the header has more semicolons than commas outside quotes (European Excel), else `,`.
fn detect_delimiter(header: &str) -> u8 {
    let (mut commas, mut semis, mut quoted) = (0, 0, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas {
        b';'
    } else {
        b','
    }
}
