//! The CSV reader (README, "CSV format"): streaming, constant memory, exact byte offsets.
//!
//! Records are cut from the byte stream by a small quote-aware scanner (so the reader knows the
//! absolute offset and line of every record, can resume a file from any record boundary, and never
//! holds more than [`MAX_RECORD_BYTES`] of one record), then split into fields by `csv-core`.
//! No field of this format holds a line break: every line is one record. A line whose quoted value
//! is still open at its end, or longer than the limit, is rejected as `invalid_row` on its own and
//! reading goes on with the next line. A carriage return anywhere but at the end of a line is data
//! (validation rejects the cell), never a record end.
//!
//! What the tools administrators export with write before the header is understood: a byte order
//! mark, Excel's `sep=;` line (the separator it names is used), and Windows PowerShell's
//! `#TYPE ...` line. UTF-16 files (Excel's "Unicode Text") are decoded as they stream in; offsets
//! stay those of the file's bytes, so a continuation resumes them like any other.

use crate::reason::Reason;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest record accepted (a real row is well under 1 KiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// The fields of a row (README, "CSV format").
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
    TapLifetimeMinutes,
    TapStart,
    TapUsableOnce,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::User,
        Field::Mobile,
        Field::AlternateMobile,
        Field::Office,
        Field::Email,
        Field::ForcedUpdate,
        Field::ForcedRemoval,
        Field::SmsSignIn,
        Field::DefaultMethod,
        Field::TapLifetimeMinutes,
        Field::TapStart,
        Field::TapUsableOnce,
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
            Field::TapLifetimeMinutes => "tapLifetimeMinutes",
            Field::TapStart => "tapStart",
            Field::TapUsableOnce => "tapUsableOnce",
        }
    }

    /// Accepted headers (README, "CSV format"), besides the field's own name.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::User => &["UPN", "UserPrincipalName", "User", "ObjectId", "Id"],
            Field::Mobile => &["Mobile", "MobilePhone"],
            Field::AlternateMobile => &["AlternateMobile", "AlternateMobilePhone"],
            // `businessPhones` and `otherMails`: Graph's own property names (exports of users).
            Field::Office => &["OfficePhone", "Office", "BusinessPhones", "BusinessPhone"],
            Field::Email => &[
                "Email",
                "AlternateEmail",
                "AuthenticationEmail",
                "OtherMails",
            ],
            Field::ForcedUpdate => &["ForcedUpdate"],
            Field::ForcedRemoval => &["ForcedRemoval"],
            Field::SmsSignIn => &["SmsSignIn"],
            Field::DefaultMethod => &["DefaultMethod"],
            Field::TapLifetimeMinutes => &["TapLifetimeMinutes", "TemporaryAccessPass"],
            Field::TapStart => &["TapStart", "TapStartDateTime"],
            Field::TapUsableOnce => &["TapUsableOnce", "TapIsUsableOnce"],
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

/// How the file's bytes encode its text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    #[default]
    Utf8,
    /// UTF-16, little-endian (what Excel's "Unicode Text" and Windows tools save).
    Utf16Le,
    /// UTF-16, big-endian.
    Utf16Be,
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
    #[serde(default)]
    pub encoding: Encoding,
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

/// A header that makes the whole file unusable. Texts taken from the file are masked
/// ([`crate::mask::mask_header`]): a file whose first line is data must not put whole phone
/// numbers into a report, a log or the CLI's error.
#[derive(Debug, Error)]
pub enum HeaderError {
    #[error("the file is empty: a header row is required (e.g. UPN,Mobile,OfficePhone)")]
    Empty,
    #[error("the header row is not UTF-8 text (save the file as CSV UTF-8)")]
    NotUtf8,
    #[error("the header row is longer than {MAX_RECORD_BYTES} bytes")]
    TooLong,
    #[error("line {line} looks like data, not a header ({}): the first line must name the columns, e.g. UPN,Mobile,OfficePhone", .cells.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "))]
    NoHeader { line: u64, cells: Vec<String> },
    #[error("unknown column(s) {}: not one of the accepted headers; fix the name or map it (COLUMN_MAPPING / --map 'Their Header=ours', or =ignore)", .0.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "))]
    UnknownColumns(Vec<String>),
    #[error("no user column: one of UPN, UserPrincipalName, User, ObjectId or Id is required")]
    MissingUser,
    #[error("columns '{first}' and '{second}' both mean {field}; map one of them to ignore (COLUMN_MAPPING / --map '{second}=ignore')")]
    DuplicateColumn {
        field: String,
        first: String,
        second: String,
    },
    #[error("the header row has a '\"' that is not closed on its line")]
    OpenQuote,
    #[error("the first line '{0}' must name one separator character, e.g. sep=; or sep=,")]
    SeparatorLine(String),
    #[error("the lines end with a carriage return alone (classic Mac OS line ends); save the file as CSV UTF-8 (line ends CRLF or LF)")]
    CarriageReturnLines,
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
    /// Absolute byte offsets of the record in the file (end = start of the next).
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

    /// Every cell one after the other, and where each ends (validation scans the whole row once).
    pub fn text(&self) -> (&str, &[usize]) {
        (&self.text, &self.ends)
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
    /// Byte offsets in the file: where the record starts and where the next one does.
    start: u64,
    end: u64,
    line: u64,
    /// `None` when the record was longer than the limit (its bytes were dropped).
    bytes: Option<Vec<u8>>,
    /// The field (0-based) whose quoted value was still open at the end of the line.
    open_quote: Option<usize>,
}

/// UTF-16 -> UTF-8 as the bytes stream in, with where each decoded line starts in the file.
struct Utf16 {
    big_endian: bool,
    /// Bytes read and not yet decoded (at most one: half a code unit).
    carry: Vec<u8>,
    /// A high surrogate waiting for its low half.
    high: Option<u16>,
    /// File offset of the next byte to decode.
    src: u64,
    /// (decoded offset, file offset) just after each decoded line feed, in order; the reader drops
    /// the marks behind it, so this holds at most the line ends of the decoded buffer.
    marks: VecDeque<(u64, u64)>,
}

impl Utf16 {
    fn new(big_endian: bool, offset: u64) -> Utf16 {
        Utf16 {
            big_endian,
            carry: Vec::new(),
            high: None,
            src: offset,
            marks: VecDeque::from([(offset, offset)]),
        }
    }

    /// Decodes `input` (after any carried byte) onto `out`, whose end is at decoded offset `base`
    /// plus its length. An unpaired surrogate becomes the byte 0xFF, which is not UTF-8: the row
    /// holding it is rejected rather than read with a stand-in character.
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, base: u64, eof: bool) {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(input);
        let mut units = bytes.chunks_exact(2);
        for pair in &mut units {
            let u = if self.big_endian {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_le_bytes([pair[0], pair[1]])
            };
            self.src += 2;
            if let Some(h) = self.high.take() {
                if (0xDC00..=0xDFFF).contains(&u) {
                    let c = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(u) - 0xDC00);
                    push_char(out, c);
                    continue;
                }
                out.push(0xFF);
            }
            match u {
                0xD800..=0xDBFF => self.high = Some(u),
                0xDC00..=0xDFFF => out.push(0xFF),
                _ => {
                    push_char(out, u32::from(u));
                    if u == 0x0A {
                        self.marks.push_back((base + out.len() as u64, self.src));
                    }
                }
            }
        }
        self.carry = units.remainder().to_vec();
        if eof {
            if self.high.take().is_some() {
                out.push(0xFF);
            }
            if !self.carry.is_empty() {
                self.src += self.carry.len() as u64;
                self.carry.clear();
                out.push(0xFF);
            }
        }
    }

    /// The file offset of decoded offset `at`, which is the start of the stream or just after a
    /// line feed, or the end of everything decoded.
    fn file_offset(&mut self, at: u64) -> u64 {
        while let Some(&(decoded, file)) = self.marks.front() {
            if decoded < at {
                self.marks.pop_front();
                continue;
            }
            if decoded == at {
                return file;
            }
            break;
        }
        self.src
    }
}

fn push_char(out: &mut Vec<u8>, c: u32) {
    let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// The streaming reader.
pub struct CsvReader<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Offset of `buf[pos]` in the decoded text (for UTF-8 files: in the file).
    decoded: u64,
    /// File offset where the next record starts.
    file_offset: u64,
    line: u64,
    layout: Layout,
    utf16: Option<Utf16>,
    raw: Vec<u8>,
    splitter: csv_core::Reader,
    split_out: Vec<u8>,
    split_ends: Vec<usize>,
    io_error: Option<String>,
}

fn splitter(delimiter: u8) -> csv_core::Reader {
    // Records are cut before they are split: a line feed never reaches the splitter, and a
    // carriage return inside a line is data (csv-core's default would end the record there and
    // drop the cells after it).
    csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv_core::Terminator::Any(b'\n'))
        .build()
}

impl<R: AsyncRead + Unpin + Send> CsvReader<R> {
    fn raw(src: R, offset: u64, line: u64, layout: Layout) -> CsvReader<R> {
        let utf16 = match layout.encoding {
            Encoding::Utf8 => None,
            Encoding::Utf16Le => Some(Utf16::new(false, offset)),
            Encoding::Utf16Be => Some(Utf16::new(true, offset)),
        };
        CsvReader {
            src,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            eof: false,
            decoded: offset,
            file_offset: offset,
            line,
            splitter: splitter(layout.delimiter),
            layout,
            utf16,
            raw: Vec::new(),
            split_out: Vec::new(),
            split_ends: Vec::new(),
            io_error: None,
        }
    }

    /// Reads the header (byte order mark, encoding, `sep=` and `#TYPE` lines, delimiter) and
    /// positions at the first data row.
    pub async fn open(src: R, mapping: &ColumnMapping) -> Result<CsvReader<R>, HeaderError> {
        let empty = Layout {
            delimiter: b',',
            headers: Vec::new(),
            fields: Vec::new(),
            data_start: 0,
            encoding: Encoding::Utf8,
        };
        let mut r = CsvReader::raw(src, 0, 1, empty);
        r.fill().await.map_err(|e| HeaderError::Io(e.to_string()))?;
        let head = &r.buf[..r.buf.len().min(4)];
        let utf16 = match head {
            [0xFF, 0xFE, ..] => Some((Encoding::Utf16Le, 2)),
            [0xFE, 0xFF, ..] => Some((Encoding::Utf16Be, 2)),
            // No byte order mark, but ASCII text in 16-bit units.
            [a, 0, b, 0] if *a != 0 && *b != 0 => Some((Encoding::Utf16Le, 0)),
            [0, a, 0, b] if *a != 0 && *b != 0 => Some((Encoding::Utf16Be, 0)),
            _ => None,
        };
        if let Some((encoding, bom)) = utf16 {
            let raw = r.buf.split_off(bom);
            r.buf.clear();
            r.layout.encoding = encoding;
            r.decoded = bom as u64;
            r.file_offset = bom as u64;
            let mut d = Utf16::new(encoding == Encoding::Utf16Be, bom as u64);
            d.decode(&raw, &mut r.buf, r.decoded, r.eof);
            r.utf16 = Some(d);
        } else if r.buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            r.pos = 3;
            r.decoded = 3;
            r.file_offset = 3;
        }
        // The header: the first line with something on it, after a `sep=` line (Excel) and
        // `#TYPE` lines (Windows PowerShell's Export-Csv).
        let mut declared = None;
        let mut first = true;
        let (header, header_line) = loop {
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
            if std::mem::take(&mut first) {
                if let Some(sep) = separator_line(&bytes)? {
                    declared = Some(sep);
                    continue;
                }
            }
            if bytes.starts_with(b"#TYPE ") {
                continue;
            }
            if cut.open_quote.is_some() {
                return Err(HeaderError::OpenQuote);
            }
            break (bytes, cut.line);
        };
        let text = std::str::from_utf8(&header).map_err(|_| HeaderError::NotUtf8)?;
        if text.contains('\r') {
            return Err(HeaderError::CarriageReturnLines);
        }
        let delimiter = declared.unwrap_or_else(|| detect_delimiter(text));
        r.layout.delimiter = delimiter;
        r.splitter = splitter(delimiter);
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
                            first: crate::mask::mask_header(first),
                            second: crate::mask::mask_header(h),
                        });
                    }
                    seen.insert(f, h.clone());
                    fields.push(Some(f));
                }
            }
        }
        if seen.is_empty() && unknown.iter().any(|h| looks_like_data(h)) {
            return Err(HeaderError::NoHeader {
                line: header_line,
                cells: headers
                    .iter()
                    .filter(|h| !h.is_empty())
                    .map(|h| crate::mask::mask_header(h))
                    .collect(),
            });
        }
        if !unknown.is_empty() {
            return Err(HeaderError::UnknownColumns(
                unknown
                    .iter()
                    .map(|h| crate::mask::mask_header(h))
                    .collect(),
            ));
        }
        if !seen.contains_key(&Field::User) {
            return Err(HeaderError::MissingUser);
        }
        r.layout.headers = headers;
        r.layout.fields = fields;
        r.layout.data_start = r.file_offset;
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

    /// Absolute byte offset in the file where the next record starts.
    pub fn offset(&self) -> u64 {
        self.file_offset
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
            if let Some(field) = cut.open_quote {
                return Some(Err(RowError {
                    row,
                    column: self.layout.headers.get(field).cloned(),
                    reason: Reason::InvalidRow,
                    detail: "a quoted value is not closed on its line (a '\"' without its closing '\"'); a value cannot span lines, so this line alone is rejected and reading goes on with the next".into(),
                }));
            }
            let Some((text, mut ends)) = self.split(&bytes) else {
                let at = std::str::from_utf8(&bytes)
                    .err()
                    .map(|e| e.valid_up_to())
                    .unwrap_or(0);
                let detail = match self.layout.encoding {
                    Encoding::Utf8 => format!("the row is not UTF-8 text (bad byte at position {}); save the file as CSV UTF-8", at + 1),
                    Encoding::Utf16Le | Encoding::Utf16Be => "the row is not UTF-16 text (half of a character pair without the other); save the file as CSV UTF-8".to_string(),
                };
                return Some(Err(RowError {
                    row,
                    column: self.column_at_byte(&bytes, at),
                    reason: Reason::InvalidRow,
                    detail,
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
                        (self.layout.delimiter as char).escape_default()
                    ),
                }));
            }
            ends.resize(self.layout.headers.len(), text.len());
            return Some(Ok(RawRow {
                row,
                start: cut.start,
                end: cut.end,
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
        // The record has no terminator: the second call (on no input) ends it.
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
        let Some(utf16) = self.utf16.as_mut() else {
            self.buf.resize(old + READ_CHUNK, 0);
            let n = self.src.read(&mut self.buf[old..]).await;
            return match n {
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
            };
        };
        // `buf` ends at decoded offset `decoded + buf.len()` (`pos` is 0 here).
        let base = self.decoded;
        self.raw.resize(READ_CHUNK, 0);
        loop {
            let n = self.src.read(&mut self.raw).await?;
            let eof = n == 0;
            utf16.decode(&self.raw[..n], &mut self.buf, base, eof);
            if eof {
                self.eof = true;
                return Ok(self.buf.len() > old);
            }
            if self.buf.len() > old {
                return Ok(true);
            }
        }
    }

    /// The file offset of the reader's position (the start of a record).
    fn file_offset_here(&mut self) -> u64 {
        match self.utf16.as_mut() {
            None => self.decoded,
            Some(d) => d.file_offset(self.decoded),
        }
    }

    fn finish_cut(
        &mut self,
        start: u64,
        line: u64,
        bytes: Option<Vec<u8>>,
        open_quote: Option<usize>,
    ) -> Cut {
        self.file_offset = self.file_offset_here();
        Cut {
            start,
            end: self.file_offset,
            line,
            bytes,
            open_quote,
        }
    }

    /// Cuts the next record: the next line, without its `\n` / `\r\n`. Memory stays bounded: an
    /// over-long record's bytes are dropped.
    async fn cut(&mut self) -> std::io::Result<Option<Cut>> {
        let start = self.file_offset;
        let begin = self.decoded;
        let line = self.line;
        let delim = self.layout.delimiter;
        // The common record: a whole line in the buffer, without quotes.
        let ready = &self.buf[self.pos..];
        if let Some(nl) = memchr::memchr(b'\n', ready) {
            if nl <= MAX_RECORD_BYTES && memchr::memchr(b'"', &ready[..nl]).is_none() {
                let rec = trim_cr(ready[..nl].to_vec());
                self.line += 1;
                self.decoded += (nl + 1) as u64;
                self.pos += nl + 1;
                return Ok(Some(self.finish_cut(start, line, Some(rec), None)));
            }
        }
        let mut state = Scan::FieldStart;
        let (mut field, mut quoted_field) = (0usize, 0usize);
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
                self.decoded += (i - self.pos) as u64;
                self.pos = i;
                if !self.fill().await? {
                    if self.decoded == begin {
                        return Ok(None);
                    }
                    let bytes = (!too_long).then(|| trim_cr(rec));
                    let open = (state == Scan::Quoted).then_some(quoted_field);
                    return Ok(Some(self.finish_cut(start, line, bytes, open)));
                }
                i = self.pos;
                continue;
            }
            let b = self.buf[i];
            i += 1;
            if b == b'\n' {
                self.line += 1;
                if !too_long {
                    rec.extend_from_slice(&self.buf[self.pos..i - 1]);
                    too_long = rec.len() > MAX_RECORD_BYTES;
                }
                self.decoded += (i - self.pos) as u64;
                self.pos = i;
                let bytes = (!too_long).then(|| trim_cr(rec));
                let open = (state == Scan::Quoted).then_some(quoted_field);
                return Ok(Some(self.finish_cut(start, line, bytes, open)));
            }
            state = match (state, b) {
                (Scan::FieldStart, b'"') => {
                    quoted_field = field;
                    Scan::Quoted
                }
                (Scan::QuoteInQuoted, b'"') => Scan::Quoted,
                (Scan::Quoted, b'"') => Scan::QuoteInQuoted,
                (Scan::Quoted, _) => Scan::Quoted,
                (_, d) if d == delim => {
                    field += 1;
                    Scan::FieldStart
                }
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

/// Excel's `sep=X` first line: the separator it declares; `None` when the line is something else.
fn separator_line(line: &[u8]) -> Result<Option<u8>, HeaderError> {
    if line.len() < 4 || !line[..4].eq_ignore_ascii_case(b"sep=") {
        return Ok(None);
    }
    // Nothing but the separator may follow (a tab is one), bar the trailing delimiters a
    // spreadsheet may add to fill the row.
    let rest = &line[4..];
    let ok = |b: u8| b == b'\t' || (b.is_ascii_punctuation() && b != b'"');
    match rest {
        [d, tail @ ..] if ok(*d) && tail.iter().all(|t| t == d || *t == b' ') => Ok(Some(*d)),
        _ => Err(HeaderError::SeparatorLine(crate::mask::mask_header(
            &String::from_utf8_lossy(line),
        ))),
    }
}

/// A header cell that can only be data: an address or a number.
fn looks_like_data(cell: &str) -> bool {
    cell.contains('@') || cell.chars().filter(char::is_ascii_digit).count() >= 5
}

/// The delimiter the header uses most outside quotes: `;` (European Excel) or a tab (Excel's
/// "Unicode Text") over `,`; `,` when none is used more.
fn detect_delimiter(header: &str) -> u8 {
    let (mut commas, mut semis, mut tabs, mut quoted) = (0, 0, 0, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semis += 1,
            '\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    if tabs > commas && tabs > semis {
        b'\t'
    } else if semis > commas {
        b';'
    } else {
        b','
    }
}
