//! What an invocation reads from, and decides by, a file's checkpoints (layout in
//! [`super::checkpoints`]): whether the file is finished, where an invocation resumes and what a
//! retry replays, whether a continuation is still due, where the report of a replaced file goes,
//! and the clean-up at the end. All of it runs over the [`CheckpointStore`] port, so it is tested
//! below without the AWS emulator; [`super::driver`] wires it to S3 and SQS.

use super::checkpoints::{FileRef, Progress, Report, Snapshot, Status, REPORTS_PREFIX};
use super::engine::Replay;
use super::store::CheckpointStore;
use crate::aws::s3::S3Error;
use crate::dedupe::Dedupe;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Store(#[from] S3Error),
    #[error("checkpoint {key} is unusable: {why}")]
    Unusable { key: String, why: String },
}

fn unusable(key: &str, why: impl Into<String>) -> CheckpointError {
    CheckpointError::Unusable {
        key: key.to_string(),
        why: why.into(),
    }
}

/// The file's report, if there is a readable one (of any run).
pub async fn current_report(store: &impl CheckpointStore, file: &FileRef) -> Option<Report> {
    let bytes = store
        .get_bytes(&file.bucket, &file.report_key())
        .await
        .ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// This upload of the file has a final report (a duplicate event or a late continuation finds
/// nothing to do). A report of another upload, a running one or an unreadable one is not final.
pub async fn finished(store: &impl CheckpointStore, file: &FileRef) -> bool {
    current_report(store, file)
        .await
        .is_some_and(|r| r.run == file.run && r.status != Status::Running)
}

/// Writes a report to `key`.
pub async fn put_report(
    store: &impl CheckpointStore,
    bucket: &str,
    key: &str,
    report: &Report,
) -> Result<(), S3Error> {
    let body = serde_json::to_vec_pretty(report).map_err(|e| S3Error::Other {
        op: "PutObject",
        bucket: bucket.into(),
        key: key.into(),
        message: e.to_string(),
    })?;
    store.put_bytes(bucket, key, body, "application/json").await
}

/// Where the report of a run that stopped because the object was replaced goes: the file's
/// report, unless a newer upload's run already wrote there (its report is not overwritten; the
/// old run's goes beside it).
pub fn superseded_report_key(current: Option<&Report>, file: &FileRef) -> String {
    match current {
        Some(r) if r.run != file.run => format!(
            "{REPORTS_PREFIX}{}.ingest.superseded-{}.json",
            file.key, file.run
        ),
        _ => file.report_key(),
    }
}

/// Invocation `seq`'s progress record, if an attempt of it wrote one.
pub async fn load_progress(
    store: &impl CheckpointStore,
    file: &FileRef,
    seq: u32,
) -> Result<Option<Progress>, CheckpointError> {
    let key = file.progress_key(seq);
    match store.get_bytes(&file.bucket, &key).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| unusable(&key, e.to_string())),
    }
}

pub async fn put_progress(
    store: &impl CheckpointStore,
    file: &FileRef,
    p: &Progress,
) -> Result<(), CheckpointError> {
    let key = file.progress_key(p.seq);
    let bytes = serde_json::to_vec(p).map_err(|e| unusable(&key, e.to_string()))?;
    store
        .put_bytes(&file.bucket, &key, bytes, "application/json")
        .await?;
    Ok(())
}

/// What a retry of an invocation replays without sending again: everything up to the recorded
/// point, and the messages confirmed sent beyond it. Nothing without a record.
pub fn replay_of(progress: Option<&Progress>) -> Replay {
    match progress {
        Some(p) => Replay {
            until: p.flushed,
            sent: p.sent_beyond.iter().copied().collect(),
            rerouted: p.rerouted.iter().copied().collect(),
        },
        None => Replay::default(),
    }
}

/// Where continuation `seq` starts: its snapshot and the duplicate filter in it.
pub async fn load_snapshot(
    store: &impl CheckpointStore,
    file: &FileRef,
    seq: u32,
) -> Result<(Snapshot, Dedupe), CheckpointError> {
    let key = file.snapshot_key(seq);
    let bytes = store
        .get_bytes(&file.bucket, &key)
        .await?
        .ok_or_else(|| unusable(&key, "missing"))?;
    let (snap, bloom) = Snapshot::decode(&bytes).map_err(|why| unusable(&key, why))?;
    if snap.file.run != file.run || snap.seq != seq {
        return Err(unusable(
            &key,
            format!(
                "it is continuation {} of run {}, not {seq} of {}",
                snap.seq, snap.file.run, file.run
            ),
        ));
    }
    let dedupe = Dedupe::restore(&snap.dedupe, bloom)
        .ok_or_else(|| unusable(&key, "duplicate filter does not match its description"))?;
    Ok((snap, dedupe))
}

/// Writes the snapshot continuation `snap.seq` starts from, with the duplicate filter's bits.
pub async fn put_snapshot(
    store: &impl CheckpointStore,
    file: &FileRef,
    snap: &Snapshot,
    bloom: &[u8],
) -> Result<(), CheckpointError> {
    let key = file.snapshot_key(snap.seq);
    let bytes = snap
        .encode(bloom)
        .map_err(|e| unusable(&key, e.to_string()))?;
    store
        .put_bytes(&file.bucket, &key, bytes, "application/octet-stream")
        .await?;
    Ok(())
}

/// Invocation `seq` has been handed over to: its snapshot exists.
pub async fn handed_over(
    store: &impl CheckpointStore,
    file: &FileRef,
    seq: u32,
) -> Result<bool, CheckpointError> {
    Ok(store.exists(&file.bucket, &file.snapshot_key(seq)).await?)
}

/// Invocation `seq` has a snapshot but may lack its continuation message (the invocation that
/// wrote the snapshot failed before sending it): the message is due unless the invocation has
/// already run (a progress record) or handed over in turn (the next snapshot).
pub async fn continuation_due(
    store: &impl CheckpointStore,
    file: &FileRef,
    seq: u32,
) -> Result<bool, CheckpointError> {
    let started = store.exists(&file.bucket, &file.progress_key(seq)).await?
        || handed_over(store, file, seq + 1).await?;
    Ok(!started)
}

/// Deletes the run's checkpoint objects, best effort: they are small and under their own prefix.
/// When listing fails, the known ones up to invocation `last_seq` go.
pub async fn cleanup(store: &impl CheckpointStore, file: &FileRef, last_seq: u32) {
    let keys = match store.list_keys(&file.bucket, &file.checkpoint_dir()).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "listing checkpoints to delete failed; deleting the known ones");
            let mut keys: Vec<String> = (0..=last_seq.min(10_000))
                .flat_map(|s| [file.snapshot_key(s), file.progress_key(s)])
                .collect();
            keys.push(file.claim_key());
            keys
        }
    };
    for k in keys {
        if let Err(e) = store.delete(&file.bucket, &k).await {
            tracing::warn!(error = %e, "deleting a checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::Layout;
    use crate::dedupe::Bloom;
    use crate::ingest::engine::{Counts, Cursor, Pass, Tag};
    use crate::ingest::store::memory::MemoryStore;

    fn file() -> FileRef {
        FileRef::new("b", "incoming/users.csv", "\"etag\"", Some("seq1"))
    }

    fn tag(row: u64) -> Tag {
        Tag {
            pass: Pass::Main,
            row,
        }
    }

    fn snapshot(file: &FileRef, seq: u32, bloom: &Bloom) -> Snapshot {
        let dedupe = Dedupe::new(Bloom::with_bits(bloom.bits(), bloom.hashes()));
        Snapshot {
            v: 1,
            file: file.clone(),
            seq,
            layout: Layout {
                delimiter: b',',
                headers: vec!["UPN".into(), "MobilePhone".into()],
                fields: vec![None, None],
                data_start: 18,
                encoding: Default::default(),
            },
            data_start_row: 2,
            cursor: Cursor::start(9_000, 501),
            counts: Counts {
                rows_read: 500,
                ..Counts::default()
            },
            dedupe: dedupe.meta(),
            started_at: "2026-12-03T10:00:00.000Z".into(),
            attempts: 2,
            object_size: Some(40_000),
        }
    }

    fn report(file: &FileRef, run: &str, status: Status) -> Report {
        let mut r = Report::new(file, status, &Counts::default(), "2026-12-03T10:00:00.000Z");
        r.run = run.into();
        r
    }

    #[tokio::test]
    async fn a_retry_replays_exactly_what_the_failed_attempt_recorded() {
        let store = MemoryStore::default();
        let f = file();
        assert!(load_progress(&store, &f, 3).await.unwrap().is_none());
        let fresh = replay_of(None);
        assert_eq!((fresh.until, fresh.sent.len()), (None, 0));
        let p = Progress {
            seq: 3,
            flushed: Some(tag(1_200)),
            sent_beyond: vec![tag(1_203), tag(1_207)],
            attempts: 1,
            object_size: Some(40_000),
            rerouted: vec![tag(1_207)],
        };
        put_progress(&store, &f, &p).await.unwrap();
        assert!(store.get_raw(&f.progress_key(3)).is_some());
        let back = load_progress(&store, &f, 3)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(back, p);
        let r = replay_of(Some(&back));
        assert_eq!(r.until, Some(tag(1_200)));
        let mut sent: Vec<_> = r.sent.iter().map(|t| t.row).collect();
        sent.sort_unstable();
        assert_eq!(sent, [1_203, 1_207]);
        assert!(r.rerouted.contains(&tag(1_207)) && r.rerouted.len() == 1);
        // Another invocation's record is its own.
        assert!(load_progress(&store, &f, 2).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unreadable_progress_record_names_its_key() {
        let store = MemoryStore::default();
        let f = file();
        store.put_raw(&f.progress_key(1), b"{\"seq\": ");
        let e = load_progress(&store, &f, 1).await.unwrap_err().to_string();
        assert!(e.contains(&f.progress_key(1)), "{e}");
    }

    #[tokio::test]
    async fn a_continuation_resumes_from_its_snapshot_and_a_damaged_one_is_named() {
        let store = MemoryStore::default();
        let f = file();
        let bloom = Bloom::with_bits(4_096, 3);
        let snap = snapshot(&f, 2, &bloom);
        put_snapshot(&store, &f, &snap, &bloom.to_bytes())
            .await
            .unwrap();
        let (back, dedupe) = load_snapshot(&store, &f, 2).await.unwrap();
        assert_eq!(back, snap);
        assert_eq!(dedupe.meta(), snap.dedupe);

        let key = |seq| f.snapshot_key(seq);
        let why = |e: CheckpointError| match e {
            CheckpointError::Unusable { key, why } => (key, why),
            other => panic!("expected an unusable checkpoint, got {other}"),
        };
        // Missing.
        let (k, w) = why(load_snapshot(&store, &f, 3).await.unwrap_err());
        assert_eq!((k, w.as_str()), (key(3), "missing"));
        // Cut short.
        let bytes = store.get_raw(&key(2)).unwrap();
        store.put_raw(&key(3), &bytes[..bytes.len() / 2]);
        let (k, w) = why(load_snapshot(&store, &f, 3).await.unwrap_err());
        assert_eq!(k, key(3));
        assert!(w.contains("truncated") || w.contains("JSON"), "{w}");
        // The filter's bits do not match its description.
        let short = snap.encode(&bloom.to_bytes()[..8]).unwrap();
        store.put_raw(&key(2), &short);
        let (_, w) = why(load_snapshot(&store, &f, 2).await.unwrap_err());
        assert!(w.contains("duplicate filter"), "{w}");
        // Another continuation's snapshot under this one's name.
        let other = snapshot(&f, 5, &bloom);
        store.put_raw(&key(2), &other.encode(&bloom.to_bytes()).unwrap());
        let (_, w) = why(load_snapshot(&store, &f, 2).await.unwrap_err());
        assert!(w.contains("continuation 5"), "{w}");
    }

    #[tokio::test]
    async fn a_continuation_is_due_only_when_nobody_ran_or_passed_on_its_invocation() {
        let store = MemoryStore::default();
        let f = file();
        store.put_raw(&f.snapshot_key(2), b"snapshot");
        assert!(handed_over(&store, &f, 2).await.unwrap());
        assert!(!handed_over(&store, &f, 3).await.unwrap());
        // The hand-over wrote the snapshot and failed before sending the message.
        assert!(continuation_due(&store, &f, 2).await.unwrap());
        // Invocation 2 ran (and recorded progress): its message was delivered.
        store.put_raw(&f.progress_key(2), b"{}");
        assert!(!continuation_due(&store, &f, 2).await.unwrap());
        store.delete("b", &f.progress_key(2)).await.unwrap();
        // Invocation 2 handed over in turn.
        store.put_raw(&f.snapshot_key(3), b"snapshot");
        assert!(!continuation_due(&store, &f, 2).await.unwrap());
        // Another upload's checkpoints say nothing about this one.
        let other = FileRef::new("b", "incoming/users.csv", "\"etag\"", Some("seq2"));
        assert!(!handed_over(&store, &other, 2).await.unwrap());
    }

    #[tokio::test]
    async fn finished_means_a_final_report_of_this_upload() {
        let store = MemoryStore::default();
        let f = file();
        assert!(!finished(&store, &f).await);
        for (run, status, done) in [
            (f.run.as_str(), Status::Running, false),
            ("another-run", Status::Complete, false),
            (f.run.as_str(), Status::Complete, true),
            (f.run.as_str(), Status::Rejected, true),
            (f.run.as_str(), Status::Superseded, true),
        ] {
            put_report(&store, "b", &f.report_key(), &report(&f, run, status))
                .await
                .unwrap();
            assert_eq!(finished(&store, &f).await, done, "{run} {status:?}");
        }
        store.put_raw(&f.report_key(), b"not json");
        assert!(!finished(&store, &f).await);
    }

    #[tokio::test]
    async fn a_replaced_file_leaves_a_newer_uploads_report_alone() {
        let store = MemoryStore::default();
        let f = file();
        assert_eq!(superseded_report_key(None, &f), f.report_key());
        let own = report(&f, &f.run, Status::Running);
        assert_eq!(superseded_report_key(Some(&own), &f), f.report_key());
        put_report(
            &store,
            "b",
            &f.report_key(),
            &report(&f, "newer", Status::Running),
        )
        .await
        .unwrap();
        let current = current_report(&store, &f).await;
        let key = superseded_report_key(current.as_ref(), &f);
        assert_eq!(
            key,
            format!(
                "reports/incoming/users.csv.ingest.superseded-{}.json",
                f.run
            )
        );
    }

    #[tokio::test]
    async fn cleanup_removes_this_uploads_checkpoints_only() {
        let store = MemoryStore::default();
        let f = file();
        let other = FileRef::new("b", "incoming/users.csv", "\"etag\"", Some("seq2"));
        for file in [&f, &other] {
            for k in [file.claim_key(), file.snapshot_key(1), file.progress_key(1)] {
                store.put_raw(&k, b"x");
            }
        }
        store.put_raw(&f.report_key(), b"{}");
        cleanup(&store, &f, 1).await;
        let left = store.keys();
        assert!(
            left.iter().all(|k| !k.contains(&format!("/{}/", f.run))),
            "{left:?}"
        );
        assert!(left.contains(&other.claim_key()) && left.contains(&other.progress_key(1)));
        assert!(left.contains(&f.report_key()));
    }
}
