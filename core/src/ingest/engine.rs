//! The ingest core: rows from the CSV reader -> validation and normalisation -> whole-file
//! duplicate checks -> encoded messages -> a sink. No AWS here: the Lambda driver, the benchmark
//! and the tests plug in their own [`Source`] and [`Sink`].
//!
//! The file is read in up to two passes (see [`crate::dedupe`]): the main pass decides almost every
//! row; rows that may repeat an earlier one are decided by a confirm pass over the file. A
//! [`Cursor`] says where the next row starts, so an invocation can stop anywhere and a later one go
//! on from there.

use crate::csv::{ColumnMapping, CsvReader, Field, HeaderError, Layout, RawRow, RowError};
use crate::dedupe::{key_hash, Bloom, Dedupe, KeyHash, KeyKind};
use crate::dlq::DlqEntry;
use crate::message::{Job, MESSAGE_VERSION};
use crate::outbound::OutMessage;
use crate::reason::Reason;
use crate::validate::{asks_sms_sign_in, validate, Settings, ValidRow};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Instant;
use thiserror::Error;
use tokio::io::AsyncRead;

/// The `stage` of ingest DLQ entries.
pub const STAGE: &str = "ingest";

/// A byte stream the reader can consume.
pub type ByteStream = Box<dyn AsyncRead + Send + Unpin>;

/// Where the file's bytes come from: the whole object, or from a byte offset on.
pub trait Source: Send + Sync {
    fn open_at(&self, offset: u64) -> impl Future<Output = Result<Opened, SourceError>> + Send;
}

/// An opened object: its bytes from the offset asked for, and its size.
pub struct Opened {
    pub stream: ByteStream,
    /// The whole object's size in bytes, as the read that opened it says (for S3: the version
    /// being ingested, pinned by its ETag).
    pub size: u64,
}

/// How the duplicate filter of a file read from its start is sized.
#[derive(Debug, Clone)]
pub enum FilterSize {
    /// For the object as it is opened ([`Opened::size`]).
    Object,
    /// For an object of this many bytes: a retry sizes the filter as the first attempt did (the
    /// size its progress record holds), so it defers the same rows.
    Bytes(u64),
    /// This filter.
    Given(Bloom),
}

impl From<Bloom> for FilterSize {
    fn from(b: Bloom) -> FilterSize {
        FilterSize::Given(b)
    }
}

#[derive(Debug, Error)]
pub enum SourceError {
    /// The object is not the version being ingested any more (new ETag).
    #[error("the object changed while it was being ingested (now ETag {0})")]
    Changed(String),
    #[error("the object is gone")]
    NotFound,
    #[error("reading the object failed: {0}")]
    Other(String),
}

/// Which pass a row was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Main,
    Confirm,
    Done,
}

/// A row of a pass: the identity of the one message the row can produce there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    pub pass: Pass,
    pub row: u64,
}

/// Where the next row starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    pub pass: Pass,
    /// Absolute byte offset of the next record.
    pub offset: u64,
    /// Line number of the next record.
    pub next_row: u64,
}

impl Cursor {
    pub fn start(offset: u64, next_row: u64) -> Cursor {
        Cursor {
            pass: Pass::Main,
            offset,
            next_row,
        }
    }

    /// Every row tagged before this cursor has been read.
    pub fn tag(&self) -> Tag {
        Tag {
            pass: self.pass,
            row: self.next_row,
        }
    }
}

/// Running totals. When the ingest completes, `rows_read == enqueued + rejected_total()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub rows_read: u64,
    pub enqueued: u64,
    pub rejected: BTreeMap<Reason, u64>,
    /// Suspected duplicates waiting for the confirm pass.
    pub deferred: u64,
}

impl Counts {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn reject(&mut self, reason: Reason) {
        *self.rejected.entry(reason).or_insert(0) += 1;
    }

    /// A row counted as enqueued whose message went to the DLQ instead (SQS refused it).
    fn rerouted(&mut self) {
        self.enqueued = self.enqueued.saturating_sub(1);
        self.reject(Reason::InvalidRow);
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The work queue (a v1 request).
    Queue,
    /// The dead-letter queue (a rejected row).
    Dlq,
}

#[derive(Debug, Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where messages go. `send` may return before the message is confirmed; `flush` waits until
/// every message sent so far is confirmed.
pub trait Sink: Send {
    fn send(
        &mut self,
        tag: Tag,
        dest: Dest,
        msg: OutMessage,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// After a failure: every message confirmed sent since the last successful flush (waits for
    /// calls in flight).
    fn settle(&mut self) -> impl Future<Output = Vec<Tag>> + Send;
    /// Work-queue messages the sink dead-lettered instead (the queue refused them) since it was
    /// last asked; their rows count as rejected, not enqueued.
    fn take_rerouted(&mut self) -> Vec<Tag> {
        Vec::new()
    }
}

/// A sink that batches like SQS (10 entries, 256 KiB) and keeps counts (and, if asked, the
/// messages) in memory: benchmarks and tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub keep: bool,
    pub queue: u64,
    pub dlq: u64,
    pub bytes: u64,
    /// Batches "sent".
    pub batches: u64,
    pending: [Vec<OutMessage>; 2],
    pending_bytes: [usize; 2],
    pub messages: Vec<(Tag, Dest, OutMessage)>,
    /// Fail every send after this many messages (tests of the failure path).
    pub fail_after: Option<u64>,
    unflushed: Vec<Tag>,
}

impl MemorySink {
    pub fn keeping() -> MemorySink {
        MemorySink {
            keep: true,
            ..MemorySink::default()
        }
    }
}

impl Sink for MemorySink {
    async fn send(&mut self, tag: Tag, dest: Dest, msg: OutMessage) -> Result<(), SinkError> {
        if self.fail_after.is_some_and(|n| self.queue + self.dlq >= n) {
            return Err(SinkError("the sink is failing (test)".into()));
        }
        let i = match dest {
            Dest::Queue => {
                self.queue += 1;
                0
            }
            Dest::Dlq => {
                self.dlq += 1;
                1
            }
        };
        self.bytes += msg.body.len() as u64;
        self.unflushed.push(tag);
        if self.keep {
            self.messages.push((tag, dest, msg.clone()));
        }
        if !self.pending[i].is_empty()
            && self.pending_bytes[i] + msg.size() > crate::aws::sqs::MAX_BATCH_BYTES
        {
            self.batches += 1;
            self.pending[i].clear();
            self.pending_bytes[i] = 0;
        }
        self.pending_bytes[i] += msg.size();
        self.pending[i].push(msg);
        if self.pending[i].len() >= crate::aws::sqs::MAX_BATCH_ENTRIES {
            self.batches += 1;
            self.pending[i].clear();
            self.pending_bytes[i] = 0;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        for i in 0..2 {
            if !self.pending[i].is_empty() {
                self.batches += 1;
                self.pending[i].clear();
                self.pending_bytes[i] = 0;
            }
        }
        self.unflushed.clear();
        Ok(())
    }

    async fn settle(&mut self) -> Vec<Tag> {
        std::mem::take(&mut self.unflushed)
    }
}

/// Why an ingest could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("{0}")]
    Source(#[from] SourceError),
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("sending messages failed: {0}")]
    Sink(#[from] SinkError),
    #[error("reading the file failed at row {row}: {detail}")]
    Read { row: u64, detail: String },
    #[error("encoding a message failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Rows an earlier attempt of the same invocation already sent: replayed (to rebuild counts and
/// the duplicate filter) but not sent again.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub until: Option<Tag>,
    pub sent: HashSet<Tag>,
    /// Of those, work-queue messages that went to the DLQ instead ([`Sink::take_rerouted`]).
    pub rerouted: HashSet<Tag>,
}

impl Replay {
    fn covers(&self, tag: Tag) -> bool {
        self.until.is_some_and(|u| tag < u) || self.sent.contains(&tag)
    }
}

/// How far [`Engine::advance`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// `max_rows` rows read; call again.
    Rows,
    /// The stop time came.
    Stopped,
    /// Every row of the file is decided.
    Finished,
}

/// Row-level decisions, free of I/O.
#[derive(Debug, Clone)]
pub struct Processor {
    /// Index of the user column.
    pub user_column: Option<usize>,
    pub layout: Layout,
    pub settings: Settings,
    pub job: Job,
    pub counts: Counts,
    pub dedupe: Dedupe,
    /// Whether the job (bucket, key, ETag) is SQS-legal text as JSON. Validation lets no cell
    /// through that holds a character SQS refuses, so a request is SQS-legal when its job is: the
    /// common case needs no look at each request's characters.
    job_is_sqs_text: bool,
}

impl Processor {
    pub fn new(
        layout: Layout,
        settings: Settings,
        job: Job,
        counts: Counts,
        dedupe: Dedupe,
    ) -> Processor {
        let user_column = layout.fields.iter().position(|f| *f == Some(Field::User));
        let job_is_sqs_text =
            serde_json::to_string(&job).is_ok_and(|j| crate::sqs_text::is_sqs_text(&j));
        Processor {
            user_column,
            layout,
            settings,
            job,
            counts,
            dedupe,
            job_is_sqs_text,
        }
    }

    fn reject(
        &mut self,
        row: u64,
        column: Option<String>,
        reason: Reason,
        detail: String,
        request: serde_json::Value,
        user: Option<String>,
    ) -> Result<OutMessage, serde_json::Error> {
        self.counts.reject(reason);
        let entry = DlqEntry {
            v: MESSAGE_VERSION,
            reason,
            detail,
            job: Some(self.job.clone()),
            row: Some(row),
            column,
            request,
            stage: STAGE.to_string(),
            user,
        };
        OutMessage::dlq(&entry)
    }

    /// The row as the file had it, for the DLQ entry.
    fn raw_request(&self, raw: &RawRow) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (i, cell) in raw.cells().enumerate() {
            let h = self
                .layout
                .headers
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column {}", i + 1));
            m.insert(h, serde_json::Value::String(cell.to_string()));
        }
        serde_json::Value::Object(m)
    }

    /// The user key of a row whose user cell is valid.
    fn user_key(&self, raw: &RawRow) -> Option<KeyHash> {
        let cell = raw.cell(self.user_column?)?;
        let user = crate::user::validate_user(cell).ok()?;
        Some(key_hash(KeyKind::User, &crate::user::user_key(&user)))
    }

    fn accept(
        &mut self,
        tag: Tag,
        valid: ValidRow,
    ) -> Result<Option<(Tag, Dest, OutMessage)>, serde_json::Error> {
        self.counts.enqueued += 1;
        let body = serde_json::to_string(&valid.into_request(self.job.clone()))?;
        let msg = if self.job_is_sqs_text {
            OutMessage {
                body,
                attributes: Vec::new(),
            }
        } else {
            OutMessage::new(body, Vec::new())
        };
        Ok(Some((tag, Dest::Queue, msg)))
    }

    fn reject_row(
        &mut self,
        tag: Tag,
        raw: &RawRow,
        e: RowError,
    ) -> Result<Option<(Tag, Dest, OutMessage)>, serde_json::Error> {
        let request = self.raw_request(raw);
        let user = self
            .user_column
            .and_then(|c| raw.cell(c))
            .and_then(|cell| crate::user::validate_user(cell).ok());
        let msg = self.reject(e.row, e.column, e.reason, e.detail, request, user)?;
        Ok(Some((tag, Dest::Dlq, msg)))
    }

    /// Main pass: the message for this row, if it is decided now.
    pub fn main_row(
        &mut self,
        item: Result<RawRow, RowError>,
    ) -> Result<Option<(Tag, Dest, OutMessage)>, serde_json::Error> {
        self.counts.rows_read += 1;
        let raw = match item {
            Ok(raw) => raw,
            Err(e) => {
                let tag = Tag {
                    pass: Pass::Main,
                    row: e.row,
                };
                let msg = self.reject(
                    e.row,
                    e.column,
                    e.reason,
                    e.detail,
                    serde_json::Value::Null,
                    None,
                )?;
                return Ok(Some((tag, Dest::Dlq, msg)));
            }
        };
        let tag = Tag {
            pass: Pass::Main,
            row: raw.row,
        };
        let checked = validate(&raw, &self.layout, &self.settings);
        let sms = checked
            .as_ref()
            .ok()
            .and_then(|v| v.sms_key())
            .map(|k| key_hash(KeyKind::SmsNumber, &k));
        let uk = match &checked {
            Ok(v) => Some(key_hash(KeyKind::User, &crate::user::user_key(&v.user))),
            Err(_) => self.user_key(&raw),
        };
        let Some(uk) = uk else {
            // No usable user: validation names the problem.
            return match checked {
                Err(e) => self.reject_row(tag, &raw, e),
                Ok(_) => {
                    let e = RowError {
                        row: raw.row,
                        column: None,
                        reason: Reason::InvalidUser,
                        detail: "no usable user".into(),
                    };
                    self.reject_row(tag, &raw, e)
                }
            };
        };
        let keys: Vec<KeyHash> = std::iter::once(uk).chain(sms).collect();
        if self.dedupe.maybe_seen(uk) {
            self.dedupe.defer(raw.row, &keys);
            self.counts.deferred += 1;
            return Ok(None);
        }
        let valid = match checked {
            Err(e) => return self.reject_row(tag, &raw, e),
            Ok(v) => v,
        };
        if sms.is_some_and(|k| self.dedupe.maybe_seen(k)) {
            self.dedupe.defer(raw.row, &keys);
            self.counts.deferred += 1;
            return Ok(None);
        }
        self.accept(tag, valid)
    }

    /// Confirm pass: the message for a suspect row; other rows only feed the exact check.
    pub fn confirm_row(
        &mut self,
        item: Result<RawRow, RowError>,
    ) -> Result<Option<(Tag, Dest, OutMessage)>, serde_json::Error> {
        let Ok(raw) = item else { return Ok(None) };
        let Some(uk) = self.user_key(&raw) else {
            return Ok(None);
        };
        let row = raw.row;
        if !self.dedupe.is_suspect(row) {
            self.dedupe.first_use(uk, row);
            // Only a row that asks for SMS sign-in can hold a tracked number.
            if self.dedupe.tracks_any() && asks_sms_sign_in(&raw, &self.layout) {
                if let Ok(v) = validate(&raw, &self.layout, &self.settings) {
                    if let Some(k) = v.sms_key() {
                        self.dedupe.first_use(key_hash(KeyKind::SmsNumber, &k), row);
                    }
                }
            }
            return Ok(None);
        }
        let tag = Tag {
            pass: Pass::Confirm,
            row,
        };
        self.counts.deferred = self.counts.deferred.saturating_sub(1);
        self.dedupe.mark_decided();
        if let Some(first) = self.dedupe.first_use(uk, row) {
            let user = raw
                .cell(self.user_column.unwrap_or(0))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            let e = RowError {
                row,
                column: self.layout.header_of(Field::User).map(str::to_string),
                reason: Reason::DuplicateUserInFile,
                detail: format!("user {user} already appears in row {first}; only the first row of a user is processed"),
            };
            return self.reject_row(tag, &raw, e);
        }
        let valid = match validate(&raw, &self.layout, &self.settings) {
            Err(e) => return self.reject_row(tag, &raw, e),
            Ok(v) => v,
        };
        if let Some(k) = valid.sms_key() {
            if let Some(first) = self.dedupe.first_use(key_hash(KeyKind::SmsNumber, &k), row) {
                let e = RowError {
                    row,
                    column: self.layout.header_of(Field::SmsSignIn).map(str::to_string),
                    reason: Reason::SmsSigninNumberNotUnique,
                    detail: format!(
                        "row {first} already asks for SMS sign-in with mobile {}; a number can be used for SMS sign-in by one user only",
                        crate::mask::mask_phone(&k)
                    ),
                };
                return self.reject_row(tag, &raw, e);
            }
        }
        self.accept(tag, valid)
    }
}

/// One invocation's work on a file: reads rows from the cursor, sends their messages, stops when
/// told to, and says where it stopped.
pub struct Engine<S: Source, K: Sink> {
    source: S,
    sink: K,
    reader: Option<CsvReader<ByteStream>>,
    pub proc: Processor,
    cursor: Cursor,
    data_start_row: u64,
    replay: Replay,
    /// The cursor at the last successful flush.
    flushed: Cursor,
    /// The object size the duplicate filter was sized for (when the engine started the file).
    object_size: Option<u64>,
    /// Work-queue messages of this invocation that went to the DLQ instead, confirmed.
    rerouted: Vec<Tag>,
}

impl<S: Source, K: Sink> Engine<S, K> {
    /// Starts a file from its first byte: reads the header (an unusable header is an error and
    /// nothing is sent).
    pub async fn start(
        source: S,
        sink: K,
        mapping: &ColumnMapping,
        settings: Settings,
        job: Job,
        filter: impl Into<FilterSize>,
    ) -> Result<Engine<S, K>, StartError> {
        let opened = source.open_at(0).await?;
        let (object_size, bloom) = match filter.into() {
            FilterSize::Object => (opened.size, Bloom::for_object_size(opened.size)),
            FilterSize::Bytes(n) => (n, Bloom::for_object_size(n)),
            FilterSize::Given(b) => (opened.size, b),
        };
        let reader = CsvReader::open(opened.stream, mapping).await?;
        let layout = reader.layout().clone();
        let cursor = Cursor::start(reader.offset(), reader.next_row());
        let data_start_row = reader.next_row();
        let proc = Processor::new(layout, settings, job, Counts::default(), Dedupe::new(bloom));
        Ok(Engine {
            source,
            sink,
            reader: Some(reader),
            proc,
            cursor,
            data_start_row,
            replay: Replay::default(),
            flushed: cursor,
            object_size: Some(object_size),
            rerouted: Vec::new(),
        })
    }

    /// Goes on from a cursor with the state a snapshot holds. The reader opens lazily.
    pub fn resume(
        source: S,
        sink: K,
        proc: Processor,
        cursor: Cursor,
        data_start_row: u64,
        replay: Replay,
    ) -> Engine<S, K> {
        Engine {
            source,
            sink,
            reader: None,
            proc,
            cursor,
            data_start_row,
            replay,
            flushed: cursor,
            object_size: None,
            rerouted: Vec::new(),
        }
    }

    /// Rows before `replay` were sent by an earlier attempt: read them again without sending.
    pub fn with_replay(mut self, replay: Replay) -> Engine<S, K> {
        self.replay = replay;
        self
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    pub fn data_start_row(&self) -> u64 {
        self.data_start_row
    }

    /// The object size the duplicate filter was sized for, when this engine started the file.
    pub fn object_size(&self) -> Option<u64> {
        self.object_size
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn into_sink(self) -> K {
        self.sink
    }

    /// True while rows an earlier attempt sent are being replayed.
    pub fn replaying(&self) -> bool {
        self.replay.until.is_some_and(|u| self.cursor.tag() < u)
    }

    async fn reader(&mut self) -> Result<&mut CsvReader<ByteStream>, SourceError> {
        if self.reader.is_none() {
            let opened = self.source.open_at(self.cursor.offset).await?;
            self.reader = Some(CsvReader::resume(
                opened.stream,
                self.proc.layout.clone(),
                self.cursor.offset,
                self.cursor.next_row,
            ));
        }
        // Just filled when it was empty.
        self.reader
            .as_mut()
            .ok_or_else(|| SourceError::Other("reader not open".into()))
    }

    /// Reads and decides up to `max_rows` rows, or until `stop_at`.
    pub async fn advance(
        &mut self,
        max_rows: u64,
        stop_at: Option<Instant>,
    ) -> Result<Advance, EngineError> {
        let mut n = 0u64;
        loop {
            if self.cursor.pass == Pass::Done {
                return Ok(Advance::Finished);
            }
            if n >= max_rows {
                return Ok(Advance::Rows);
            }
            if n.is_multiple_of(64) && stop_at.is_some_and(|t| Instant::now() >= t) {
                return Ok(Advance::Stopped);
            }
            if self.cursor.pass == Pass::Confirm && self.proc.dedupe.undecided() == 0 {
                // Every suspect is decided: the rest of the file has nothing more to say.
                self.end_of_pass();
                continue;
            }
            n += 1;
            let pass = self.cursor.pass;
            let reader = self.reader().await?;
            let Some(item) = reader.next().await else {
                if let Some(err) = reader.io_error() {
                    let (row, detail) = (reader.next_row(), err.to_string());
                    // Reopen at the cursor on the next attempt.
                    self.reader = None;
                    return Err(EngineError::Read { row, detail });
                }
                self.end_of_pass();
                continue;
            };
            let out = match pass {
                Pass::Main => self.proc.main_row(item)?,
                Pass::Confirm => self.proc.confirm_row(item)?,
                Pass::Done => None,
            };
            if let Some(reader) = self.reader.as_ref() {
                self.cursor.offset = reader.offset();
                self.cursor.next_row = reader.next_row();
            }
            if let Some((tag, dest, msg)) = out {
                if !self.replay.covers(tag) {
                    self.sink.send(tag, dest, msg).await?;
                } else if dest == Dest::Queue && self.replay.rerouted.contains(&tag) {
                    // An earlier attempt's message for this row went to the DLQ instead.
                    self.proc.counts.rerouted();
                }
            }
        }
    }

    fn end_of_pass(&mut self) {
        self.reader = None;
        if self.cursor.pass == Pass::Main && !self.proc.dedupe.suspects().is_empty() {
            self.proc.dedupe.restart_confirm();
            self.cursor = Cursor {
                pass: Pass::Confirm,
                offset: self.proc.layout.data_start,
                next_row: self.data_start_row,
            };
        } else {
            self.cursor.pass = Pass::Done;
        }
    }

    /// Waits until every message so far is confirmed; the cursor becomes the flushed cursor.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        let result = self.sink.flush().await;
        self.take_rerouted();
        result?;
        self.flushed = self.cursor;
        Ok(())
    }

    fn take_rerouted(&mut self) {
        for tag in self.sink.take_rerouted() {
            self.proc.counts.rerouted();
            self.rerouted.push(tag);
        }
    }

    /// Work-queue messages that went to the DLQ instead, this attempt's and earlier ones' (for
    /// progress records: a retry that replays those rows counts them as an attempt did).
    pub fn rerouted(&self) -> Vec<Tag> {
        let mut all: Vec<Tag> = self
            .replay
            .rerouted
            .iter()
            .chain(&self.rerouted)
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// What a progress record says at a successful flush: everything before the tag is sent,
    /// plus the listed messages an earlier attempt sent beyond it.
    pub fn progress_point(&self) -> (Tag, Vec<Tag>) {
        let mut flushed = self.flushed.tag();
        if let Some(u) = self.replay.until {
            flushed = flushed.max(u);
        }
        let mut beyond: Vec<Tag> = self
            .replay
            .sent
            .iter()
            .copied()
            .filter(|t| *t >= flushed)
            .collect();
        beyond.sort();
        (flushed, beyond)
    }

    /// After a failure: waits for calls in flight, then says what is sent (as
    /// [`Engine::progress_point`], plus what this attempt got confirmed since its last flush).
    pub async fn settle(&mut self) -> (Tag, Vec<Tag>) {
        let sent = self.sink.settle().await;
        self.take_rerouted();
        let (flushed, mut beyond) = self.progress_point();
        beyond.extend(sent.into_iter().filter(|t| *t >= flushed));
        beyond.sort();
        beyond.dedup();
        (flushed, beyond)
    }
}

/// Runs a whole file through the core into a sink (no checkpoints): benchmarks, local checks.
pub async fn run_to_end<S: Source, K: Sink>(
    source: S,
    sink: K,
    mapping: &ColumnMapping,
    settings: Settings,
    job: Job,
    filter: impl Into<FilterSize>,
) -> Result<(Counts, K), RunError> {
    let mut engine = Engine::start(source, sink, mapping, settings, job, filter).await?;
    // Flushed after every step, as the Lambda driver does at its progress records: what a sink
    // tracks until a flush stays bounded.
    while engine.advance(4096, None).await? != Advance::Finished {
        engine.flush().await.map_err(EngineError::from)?;
    }
    engine.flush().await.map_err(EngineError::from)?;
    Ok((engine.proc.counts.clone(), engine.into_sink()))
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// A [`Source`] over bytes in memory.
#[derive(Clone)]
pub struct BytesSource(pub std::sync::Arc<Vec<u8>>);

impl Source for BytesSource {
    async fn open_at(&self, offset: u64) -> Result<Opened, SourceError> {
        let data = self.0.clone();
        let start = (offset as usize).min(data.len());
        Ok(Opened {
            stream: Box::new(std::io::Cursor::new(data[start..].to_vec())),
            size: data.len() as u64,
        })
    }
}

/// A [`Source`] over a local file.
#[derive(Clone)]
pub struct FileSource(pub std::path::PathBuf);

impl Source for FileSource {
    async fn open_at(&self, offset: u64) -> Result<Opened, SourceError> {
        use tokio::io::AsyncSeekExt;
        let mut f = tokio::fs::File::open(&self.0)
            .await
            .map_err(|e| SourceError::Other(format!("{}: {e}", self.0.display())))?;
        let size = f
            .metadata()
            .await
            .map_err(|e| SourceError::Other(format!("{}: {e}", self.0.display())))?
            .len();
        f.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| SourceError::Other(e.to_string()))?;
        Ok(Opened {
            stream: Box::new(tokio::io::BufReader::with_capacity(256 * 1024, f)),
            size,
        })
    }
}
