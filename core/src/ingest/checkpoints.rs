//! What the ingest keeps between invocations: checkpoints (snapshots and progress records), the
//! continuation message, the claim on a file, and the report.
//!
//! Layout in the upload bucket, for an object `KEY` and one upload of it (`RUN`, from its ETag and
//! the event's sequencer):
//! - `reports/KEY.ingest.json`: the report (status `running` while continuations go on).
//! - `checkpoints/KEY/RUN/claim`: who is ingesting from the start (first invocation only).
//! - `checkpoints/KEY/RUN/snapshot-N`: where continuation N starts (cursor, counts, header, the
//!   duplicate filter); written by invocation N-1 before it hands over.
//! - `checkpoints/KEY/RUN/progress-N`: how far invocation N got with everything sent; a retry of N
//!   replays up to there without sending again.

use super::engine::{Counts, Cursor, Tag};
use crate::csv::Layout;
use crate::dedupe::DedupeMeta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Prefix of the reports (the ingest ignores objects under it).
pub const REPORTS_PREFIX: &str = "reports/";

/// Whether an object key names an input file: it ends in `.csv`, in any case (`USERS.CSV` too).
/// S3 event filters match suffixes case-sensitively, so the event subscribes to the prefix alone
/// and this is the one place that decides.
pub fn is_csv_key(key: &str) -> bool {
    key.len() >= 4
        && key.is_char_boundary(key.len() - 4)
        && key[key.len() - 4..].eq_ignore_ascii_case(".csv")
}
/// Prefix of the checkpoint state (ignored as input too).
pub const CHECKPOINTS_PREFIX: &str = "checkpoints/";
const SNAPSHOT_MAGIC: &[u8; 8] = b"MFAPSNP1";

/// Which upload of which object is being ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRef {
    pub bucket: String,
    pub key: String,
    /// Without quotes.
    pub etag: String,
    /// Distinguishes two uploads with the same content (ETag + S3 event sequencer or version).
    pub run: String,
}

impl FileRef {
    pub fn new(bucket: &str, key: &str, etag: &str, upload_id: Option<&str>) -> FileRef {
        let etag = etag.trim_matches('"').to_string();
        let run = match upload_id {
            Some(u) if !u.is_empty() => format!("{etag}-{}", sanitise(u)),
            _ => etag.clone(),
        };
        FileRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            etag,
            run: sanitise(&run),
        }
    }

    pub fn report_key(&self) -> String {
        report_key(&self.key)
    }

    /// `checkpoints/KEY/RUN/`: every checkpoint object of this upload.
    pub fn checkpoint_dir(&self) -> String {
        format!("{CHECKPOINTS_PREFIX}{}/{}/", self.key, self.run)
    }

    pub fn claim_key(&self) -> String {
        format!("{}claim", self.checkpoint_dir())
    }

    pub fn snapshot_key(&self, seq: u32) -> String {
        format!("{}snapshot-{seq:06}", self.checkpoint_dir())
    }

    pub fn progress_key(&self, seq: u32) -> String {
        format!("{}progress-{seq:06}", self.checkpoint_dir())
    }

    /// FIFO message group: one file's continuations run one after the other.
    pub fn group_id(&self) -> String {
        hex_digest(&format!("{}\n{}", self.bucket, self.key))
    }

    /// FIFO deduplication id of continuation `seq`.
    pub fn dedupe_id(&self, seq: u32) -> String {
        hex_digest(&format!(
            "{}\n{}\n{}\n{seq}",
            self.bucket, self.key, self.run
        ))
    }
}

/// `reports/<key>.ingest.json`.
pub fn report_key(key: &str) -> String {
    format!("{REPORTS_PREFIX}{key}.ingest.json")
}

fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn hex_digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The continuation message on the control queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Continuation {
    pub v: u32,
    pub file: FileRef,
    /// The invocation number to run (1 = the first continuation).
    pub seq: u32,
}

/// The first invocation's hold on a file, so that a duplicate S3 event does not ingest it twice;
/// a retry after a crash takes it over once `expires_ms` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub owner: String,
    pub expires_ms: u64,
}

/// Where an invocation starts: everything needed to go on from the cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub v: u32,
    pub file: FileRef,
    pub seq: u32,
    pub layout: Layout,
    /// Line number of the first data row (where the confirm pass starts).
    pub data_start_row: u64,
    pub cursor: Cursor,
    pub counts: Counts,
    pub dedupe: DedupeMeta,
    pub started_at: String,
    pub attempts: u32,
    /// The object size the duplicate filter was sized for (the filter itself is in the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size: Option<u64>,
}

impl Snapshot {
    /// Binary form: magic, JSON length (u64 LE), JSON, then the filter's bits.
    pub fn encode(&self, bloom: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        let json = serde_json::to_vec(self)?;
        let mut out = Vec::with_capacity(16 + json.len() + bloom.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(bloom);
        Ok(out)
    }

    /// The snapshot and the filter's bits; `Err` names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Snapshot, &[u8]), String> {
        if bytes.len() < 16 || &bytes[..8] != SNAPSHOT_MAGIC {
            return Err("not an ingest snapshot".into());
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let len = u64::from_le_bytes(len) as usize;
        let end = 16usize
            .checked_add(len)
            .filter(|e| *e <= bytes.len())
            .ok_or("snapshot is truncated")?;
        let snap: Snapshot =
            serde_json::from_slice(&bytes[16..end]).map_err(|e| format!("snapshot JSON: {e}"))?;
        Ok((snap, &bytes[end..]))
    }
}

/// How far one invocation got with everything up to `flushed` confirmed sent, plus the messages
/// confirmed sent beyond it when it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub seq: u32,
    pub flushed: Option<Tag>,
    pub sent_beyond: Vec<Tag>,
    pub attempts: u32,
    /// The object size the duplicate filter was sized for: a retry of the first invocation sizes
    /// its filter from this, not from a new look at the object, so it defers the same rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_size: Option<u64>,
    /// Of the messages sent, work-queue requests SQS refused whose rows went to the DLQ instead:
    /// a retry that replays them counts them as rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerouted: Vec<Tag>,
}

/// The state of a file's ingest in its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Continuations are still going.
    Running,
    /// Every row is enqueued or rejected.
    Complete,
    /// The header is unusable: nothing was enqueued.
    Rejected,
    /// The object changed (new ETag) while it was being ingested; the new version is ingested on
    /// its own event.
    Superseded,
    /// Not read: the object's name does not end in `.csv` (any case).
    Skipped,
}

/// `reports/<key>.ingest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub v: u32,
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub run: String,
    pub status: Status,
    pub rows_read: u64,
    pub enqueued: u64,
    /// Rows rejected, by reason code.
    pub rejected: BTreeMap<String, u64>,
    pub rejected_total: u64,
    /// Rows waiting for the duplicate check's second pass (0 once complete).
    pub pending: u64,
    /// Invocations after the first that took the file further.
    pub continuations: u32,
    /// Every invocation that worked on the file, retries included.
    pub invocations: u32,
    /// How the file's header was read (delimiter, column -> field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeMap<String, String>>,
    /// Why the file was rejected or superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: String,
    pub updated_at: String,
}

impl Report {
    pub fn new(file: &FileRef, status: Status, counts: &Counts, started_at: &str) -> Report {
        Report {
            v: 1,
            bucket: file.bucket.clone(),
            key: file.key.clone(),
            etag: file.etag.clone(),
            run: file.run.clone(),
            status,
            rows_read: counts.rows_read,
            enqueued: counts.enqueued,
            rejected: counts
                .rejected
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect(),
            rejected_total: counts.rejected_total(),
            pending: counts.deferred,
            continuations: 0,
            invocations: 1,
            columns: None,
            error: None,
            started_at: started_at.to_string(),
            updated_at: now_rfc3339(),
        }
    }

    pub fn with_layout(mut self, layout: &Layout) -> Report {
        let mut cols = BTreeMap::new();
        for (h, f) in layout.headers.iter().zip(&layout.fields) {
            cols.insert(
                h.clone(),
                f.map(|f| f.name().to_string())
                    .unwrap_or_else(|| "ignored".into()),
            );
        }
        self.columns = Some(cols);
        self
    }
}

/// The current time as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_uploaded_twice_gets_two_runs_and_keys_stay_in_their_prefixes() {
        let a = FileRef::new(
            "b",
            "incoming/x y.csv",
            "\"abc\"",
            Some("0055AED6DCD90281E5"),
        );
        let b = FileRef::new("b", "incoming/x y.csv", "abc", Some("0055AED6DCD90281E6"));
        assert_eq!(a.etag, "abc");
        assert_ne!(a.run, b.run);
        assert!(a
            .snapshot_key(3)
            .starts_with("checkpoints/incoming/x y.csv/abc-0055AED6DCD90281E5/"));
        assert_eq!(a.report_key(), "reports/incoming/x y.csv.ingest.json");
        assert_eq!(a.group_id(), b.group_id());
        assert_ne!(a.dedupe_id(1), b.dedupe_id(1));
        assert!(a.dedupe_id(1).len() <= 128);
        let odd = FileRef::new("b", "k", "e", Some("../x"));
        assert!(!odd.run.contains('/'));
    }

    #[test]
    fn snapshot_round_trips_and_rejects_garbage() {
        let layout = Layout {
            delimiter: b',',
            headers: vec!["UPN".into()],
            fields: vec![None],
            data_start: 4,
            encoding: Default::default(),
        };
        let snap = Snapshot {
            v: 1,
            file: FileRef::new("b", "k", "e", None),
            seq: 2,
            layout,
            data_start_row: 2,
            cursor: Cursor::start(4, 2),
            counts: Counts::default(),
            dedupe: DedupeMeta::default(),
            started_at: now_rfc3339(),
            attempts: 1,
            object_size: Some(1234),
        };
        let bytes = snap.encode(&[1, 2, 3, 4, 5, 6, 7, 8]).expect("encode");
        let (back, bloom) = Snapshot::decode(&bytes).expect("decode");
        assert_eq!(back, snap);
        assert_eq!(bloom, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(Snapshot::decode(b"hello").is_err());
        assert!(Snapshot::decode(&bytes[..20]).is_err());
    }
}
