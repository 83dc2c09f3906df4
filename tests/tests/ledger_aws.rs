//! The job ledger's DynamoDB adapter against the moto server: exactly-once counting under
//! concurrent and repeated records, a completion claimed once, rows in row order across pages,
//! and every item's TTL attribute. Where it can, each test compares the adapter with the
//! in-memory ledger fed the same input.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e_tests::*;
use mfa_preload_core::aws::ledger::DynamoLedger;
use mfa_preload_core::ledger::memory::MemoryLedger;
use mfa_preload_core::ledger::{
    claim_if_complete, JobKey, LedgerError, LedgerPort, ReportState, RowRecord, Stage, FAILED,
    REJECTED,
};

const RETENTION: Duration = Duration::from_secs(3 * 86_400);
/// Rows of the concurrency test's job: more than two transactions' worth.
const ROWS: u64 = 240;

async fn ledger(prefix: &str) -> (aws_sdk_dynamodb::Client, DynamoLedger) {
    let cfg = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_ledger_table(&ddb, &unique(prefix)).await;
    let ledger = DynamoLedger::new(ddb.clone(), table, RETENTION);
    (ddb, ledger)
}

/// Row `n`'s final outcome; the same for every caller unless `outcome` says otherwise.
fn row(n: u64, outcome: &str) -> RowRecord {
    let (outcome, reason, detail) = match outcome {
        "" => match n % 5 {
            0 => (
                REJECTED,
                "invalid_phone_number",
                format!("row {n}: not a valid number"),
            ),
            1 => (
                FAILED,
                "retries_exhausted",
                "Graph answered 503 five times".to_string(),
            ),
            2 => ("updated", "", String::new()),
            _ => ("created", "", String::new()),
        },
        other => (other, "", String::new()),
    };
    RowRecord {
        row: Some(n),
        user: format!("User{n}@Contoso.com"),
        outcome: outcome.to_string(),
        reason: reason.to_string(),
        detail,
        at: "2026-12-03T10:00:00Z".to_string(),
        deliveries: (n % 3 + 1) as u32,
        stage: if n.is_multiple_of(5) {
            Stage::Ingest
        } else {
            Stage::Worker
        },
    }
}

fn user_row(user: &str, outcome: &str) -> RowRecord {
    RowRecord {
        row: None,
        user: user.to_string(),
        outcome: outcome.to_string(),
        reason: String::new(),
        detail: String::new(),
        at: "2026-12-03T10:00:00Z".to_string(),
        deliveries: 1,
        stage: Stage::Worker,
    }
}

fn tally(rows: &[RowRecord]) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for r in rows {
        *t.entry(r.outcome.clone()).or_default() += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_and_repeated_records_count_each_row_exactly_once() {
    let (_, dynamo) = ledger("ledger-once").await;
    let dynamo = Arc::new(dynamo);
    let job = JobKey::of_file("bucket", "incoming/users.csv", "run-1");
    let label = "s3://bucket/incoming/users.csv";

    // 8 writers, overlapping sets of rows 2..=ROWS + 1 (each about 200 rows: several transactions per
    // call), each batch with rows repeated inside it, as redeliveries and concurrent workers give.
    let batches: Vec<Vec<RowRecord>> = (0..8u64)
        .map(|t| {
            let mut b: Vec<RowRecord> = (2..=ROWS + 1)
                .filter(|n| (n + t) % 4 != 0)
                .map(|n| row(n, ""))
                .collect();
            let again: Vec<RowRecord> = b.iter().step_by(7).cloned().collect();
            b.extend(again);
            let by = (t as usize * 37) % b.len();
            b.rotate_left(by);
            b
        })
        .collect();
    let distinct: HashSet<u64> = batches.iter().flatten().filter_map(|r| r.row).collect();
    assert_eq!(distinct.len() as u64, ROWS);

    let tasks: Vec<_> = batches
        .iter()
        .cloned()
        .map(|b| {
            let l = dynamo.clone();
            let job = job.clone();
            tokio::spawn(async move {
                let mut new = 0;
                for part in b.chunks(150) {
                    new += l.record(&job, label, part).await.expect("record");
                }
                new
            })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t.await.expect("task");
    }
    assert_eq!(
        new, ROWS,
        "the writers' new rows add up to the distinct rows"
    );
    dynamo
        .set_expected(&job, label, ROWS, ROWS + 1)
        .await
        .unwrap();

    let memory = MemoryLedger::new();
    for b in &batches {
        memory.record(&job, label, b).await.unwrap();
    }
    memory
        .set_expected(&job, label, ROWS, ROWS + 1)
        .await
        .unwrap();
    let want = memory.summary(&job).await.unwrap().unwrap();
    let got = dynamo.summary(&job).await.unwrap().expect("a summary");
    assert_eq!(got, want);
    assert_eq!(got.done, ROWS);
    assert!(got.is_complete());
    assert_eq!(
        dynamo.rows(&job).await.unwrap(),
        memory.rows(&job).await.unwrap()
    );

    // Recorded again with other outcomes (a redelivery after a changed answer): nothing new, and
    // the first outcome stands.
    let later: Vec<RowRecord> = (2..=ROWS + 1).map(|n| row(n, "unchanged")).collect();
    assert_eq!(dynamo.record(&job, label, &later).await.unwrap(), 0);
    assert_eq!(dynamo.summary(&job).await.unwrap().unwrap(), want);
    assert_eq!(
        dynamo.rows(&job).await.unwrap(),
        memory.rows(&job).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_outcome_of_a_row_stands_when_writers_disagree() {
    let (_, dynamo) = ledger("ledger-first").await;
    let dynamo = Arc::new(dynamo);
    let job = JobKey::of_producer("onboarding/42");

    // 8 writers record rows 1..=120 at once, each with its own outcome for every row.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let l = dynamo.clone();
            let job = job.clone();
            tokio::spawn(async move {
                let rows: Vec<RowRecord> = (1..=120u64)
                    .map(|n| row(n, &format!("outcome{t}")))
                    .collect();
                l.record(&job, "onboarding/42", &rows)
                    .await
                    .expect("record")
            })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t.await.expect("task");
    }
    assert_eq!(new, 120);
    let rows = dynamo.rows(&job).await.unwrap();
    assert_eq!(rows.len(), 120);
    let s = dynamo.summary(&job).await.unwrap().unwrap();
    assert_eq!(s.done, 120);
    // The counts are those of the outcomes that were kept, row by row.
    assert_eq!(s.by_outcome, tally(&rows));

    // A writer that comes later changes nothing.
    let again: Vec<RowRecord> = (1..=120u64).map(|n| row(n, "created")).collect();
    assert_eq!(
        dynamo.record(&job, "onboarding/42", &again).await.unwrap(),
        0
    );
    assert_eq!(dynamo.rows(&job).await.unwrap(), rows);
    assert_eq!(dynamo.summary(&job).await.unwrap().unwrap(), s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_raced_for_is_claimed_once_and_again_after_a_release() {
    let (_, dynamo) = ledger("ledger-claim").await;
    let dynamo = Arc::new(dynamo);
    let job = JobKey::of_file("bucket", "incoming/claim.csv", "run-1");
    let label = "s3://bucket/incoming/claim.csv";
    let rows: Vec<RowRecord> = (2..=11u64).map(|n| row(n, "")).collect();
    dynamo.record(&job, label, &rows).await.unwrap();
    dynamo.set_expected(&job, label, 10, 10).await.unwrap();

    async fn race(l: &Arc<DynamoLedger>, job: &JobKey, round: &str) -> Vec<String> {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let l = l.clone();
                let job = job.clone();
                let at = format!("{round}-{t}");
                tokio::spawn(async move {
                    let won = claim_if_complete(l.as_ref(), &job, &at)
                        .await
                        .expect("claim_if_complete")
                        .is_some();
                    // A direct claim after the summary's check: always too late.
                    assert!(!l.claim_completion(&job, "late").await.expect("claim"));
                    won.then_some(at)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            winners.extend(t.await.expect("task"));
        }
        winners
    }

    let winners = race(&dynamo, &job, "first").await;
    assert_eq!(winners.len(), 1, "one claim wins: {winners:?}");
    let s = dynamo.summary(&job).await.unwrap().unwrap();
    assert_eq!(s.completed_at.as_ref(), Some(&winners[0]));
    assert_eq!(s.report, Some(ReportState::Requested));

    // The report request could not be sent: the claim is given back and claimed again, once.
    dynamo.release_completion(&job).await.unwrap();
    let s = dynamo.summary(&job).await.unwrap().unwrap();
    assert_eq!((s.completed_at, s.report), (None, None));
    let winners = race(&dynamo, &job, "second").await;
    assert_eq!(winners.len(), 1, "one claim wins again: {winners:?}");

    // Once the reports are written, a release takes nothing back.
    dynamo
        .mark_reported(&job, "2026-12-03T12:00:00Z")
        .await
        .unwrap();
    dynamo.release_completion(&job).await.unwrap();
    let s = dynamo.summary(&job).await.unwrap().unwrap();
    assert_eq!(s.completed_at.as_ref(), Some(&winners[0]));
    assert_eq!(s.report, Some(ReportState::Written));
    assert!(!dynamo.claim_completion(&job, "after").await.unwrap());
}

#[tokio::test]
async fn rows_come_back_in_row_order_across_pages_with_user_rows_last() {
    let (_, dynamo) = ledger("ledger-rows").await;
    let paged = dynamo.clone().with_page_size(7);
    let job = JobKey::of_file("bucket", "incoming/order.csv", "run-1");
    let label = "s3://bucket/incoming/order.csv";

    // Row numbers of every width, recorded out of order, and messages without a row.
    let mut numbers: Vec<u64> = (2..=200).collect();
    numbers.extend([1_000, 9_999, 10_000, 123_456, 99_999_999_999]);
    numbers.reverse();
    numbers.rotate_left(61);
    let mut input: Vec<RowRecord> = numbers.iter().map(|&n| row(n, "")).collect();
    for user in [
        "zed@contoso.com",
        "Alice@Contoso.com",
        "bob@contoso.com",
        "Carol@contoso.com",
    ] {
        input.push(user_row(user, "created"));
    }
    input.rotate_left(100);
    let memory = MemoryLedger::new();
    for part in input.chunks(45) {
        paged.record(&job, label, part).await.unwrap();
        memory.record(&job, label, part).await.unwrap();
    }

    let want = memory.rows(&job).await.unwrap();
    let got = paged.rows(&job).await.unwrap();
    assert_eq!(got.len(), numbers.len() + 4);
    assert_eq!(got, want);
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    let got_numbers: Vec<u64> = got.iter().filter_map(|r| r.row).collect();
    assert_eq!(got_numbers, sorted, "rows in row order");
    let users: Vec<&str> = got[numbers.len()..]
        .iter()
        .map(|r| r.user.as_str())
        .collect();
    assert_eq!(
        users,
        [
            "Alice@Contoso.com",
            "bob@contoso.com",
            "Carol@contoso.com",
            "zed@contoso.com"
        ],
        "rows without a number last, by user"
    );
    // The shards too are read across pages (7 items a page).
    assert_eq!(
        paged.summary(&job).await.unwrap(),
        memory.summary(&job).await.unwrap()
    );
    assert_eq!(dynamo.rows(&job).await.unwrap(), want);
}

#[tokio::test]
async fn the_adapter_answers_as_the_memory_ledger_does() {
    let (_, dynamo) = ledger("ledger-same").await;
    let memory = MemoryLedger::new();
    let ports: [&dyn LedgerPort; 2] = [&memory, &dynamo];
    let job = JobKey::of_producer("hr/2026-12");
    let unknown = JobKey::of_producer("hr/never");
    let mut long = row(9, REJECTED);
    long.reason = "invalid_email".into();
    long.detail = "é".repeat(1_000);
    let mut early = row(3, "created");
    early.at = "2026-12-03T09:00:00Z".into();
    let mut late = row(4, "updated");
    late.at = "2026-12-03T13:00:00Z".into();

    let mut answers: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for (p, answer) in ports.iter().zip(answers.iter_mut()) {
        let mut note = |what: String| answer.push(what);
        note(format!("{:?}", p.summary(&unknown).await.unwrap()));
        note(format!(
            "{:?}",
            p.claim_completion(&unknown, "t0").await.unwrap()
        ));
        p.release_completion(&unknown).await.unwrap();
        p.mark_reported(&unknown, "t0").await.unwrap();
        note(format!("{:?}", p.summary(&unknown).await.unwrap()));
        // An empty record makes the job known, with its label.
        note(format!(
            "{:?}",
            p.record(&job, "hr/2026-12", &[]).await.unwrap()
        ));
        note(format!("{:?}", p.summary(&job).await.unwrap()));
        let first = [early.clone(), long.clone(), early.clone(), late.clone()];
        note(format!(
            "{:?}",
            p.record(&job, "hr/2026-12", &first).await.unwrap()
        ));
        note(format!("{:?}", p.summary(&job).await.unwrap()));
        note(format!(
            "{:?}",
            claim_if_complete(*p, &job, "t1").await.unwrap()
        ));
        p.set_expected(&job, "other label", 4, 5).await.unwrap();
        note(format!(
            "{:?}",
            claim_if_complete(*p, &job, "t2").await.unwrap()
        ));
        // Shards keep the first and last `at` of writes that come in time order (module docs).
        let mut dana = user_row("Dana@contoso.com", "created");
        dana.at = "2026-12-03T14:00:00Z".into();
        let second = [dana, row(4, "deleted")];
        note(format!(
            "{:?}",
            p.record(&job, "hr/2026-12", &second).await.unwrap()
        ));
        note(format!(
            "{:?}",
            claim_if_complete(*p, &job, "t3").await.unwrap()
        ));
        note(format!(
            "{:?}",
            claim_if_complete(*p, &job, "t4").await.unwrap()
        ));
        p.mark_reported(&job, "t5").await.unwrap();
        p.release_completion(&job).await.unwrap();
        note(format!("{:?}", p.summary(&job).await.unwrap()));
        note(format!("{:?}", p.rows(&job).await.unwrap()));
        // A job with counts but no header: claimed, and marked, as in memory.
        let counts_only = JobKey::of_producer("hr/counts-only");
        p.record(&counts_only, "", &[row(2, "created")])
            .await
            .unwrap();
        note(format!(
            "{:?}",
            p.claim_completion(&counts_only, "t6").await.unwrap()
        ));
        note(format!(
            "{:?}",
            p.claim_completion(&counts_only, "t7").await.unwrap()
        ));
        p.mark_reported(&counts_only, "t8").await.unwrap();
        note(format!("{:?}", p.summary(&counts_only).await.unwrap()));
    }
    for (i, (m, d)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(
            d, m,
            "answer {i}: DynamoDB (left) and memory (right) differ"
        );
    }
    assert_eq!(answers[0].len(), answers[1].len());
    // The bounded detail is what was stored.
    let kept = dynamo.rows(&job).await.unwrap();
    assert_eq!(
        kept.iter()
            .find(|r| r.row == Some(9))
            .unwrap()
            .detail
            .chars()
            .count(),
        400
    );
}

#[tokio::test]
async fn every_item_expires_about_now_plus_the_retention() {
    let (ddb, dynamo) = ledger("ledger-ttl").await;
    let job = JobKey::of_file("bucket", "incoming/ttl.csv", "run-1");
    let label = "s3://bucket/incoming/ttl.csv";
    let rows: Vec<RowRecord> = (2..=40u64).map(|n| row(n, "")).collect();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    dynamo.record(&job, label, &rows).await.unwrap();
    dynamo
        .record(&job, label, &[user_row("x@contoso.com", "created")])
        .await
        .unwrap();
    dynamo.set_expected(&job, label, 40, 40).await.unwrap();
    assert!(dynamo.claim_completion(&job, "t1").await.unwrap());
    dynamo.mark_reported(&job, "t2").await.unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let ttl = ddb
        .describe_time_to_live()
        .table_name(dynamo.table())
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description.expect("TTL description");
    assert_eq!(spec.attribute_name.as_deref(), Some("expiresAt"));

    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .query()
            .table_name(dynamo.table())
            .key_condition_expression("#job = :job")
            .expression_attribute_names("#job", "job")
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    // The header, at least one counter shard, 40 rows.
    assert!(items.len() >= 42, "{} items", items.len());
    let kinds: HashSet<String> = items
        .iter()
        .map(|i| {
            let key = i["item"].as_s().unwrap();
            key.split('#').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        HashSet::from(["job", "count", "row", "user"].map(String::from))
    );
    for item in &items {
        let key = item["item"].as_s().unwrap();
        let at: u64 = item
            .get("expiresAt")
            .unwrap_or_else(|| panic!("{key} has no expiresAt"))
            .as_n()
            .unwrap_or_else(|_| panic!("{key}: expiresAt is not a number"))
            .parse()
            .unwrap();
        let ttl = RETENTION.as_secs();
        assert!(
            (before + ttl..=after + ttl + 1).contains(&at),
            "{key}: expiresAt {at} is not now + {ttl} s ({before}..{after} + ttl)"
        );
    }
}

#[tokio::test]
async fn a_missing_table_is_a_store_error_naming_it() {
    let cfg = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let l = DynamoLedger::new(ddb, "no-such-ledger-table", RETENTION);
    let job = JobKey::of_producer("x/1");
    let err = l.record(&job, "x/1", &[row(2, "")]).await.unwrap_err();
    let LedgerError::Store(msg) = &err else {
        panic!("not a store error: {err:?}");
    };
    assert!(msg.contains("no-such-ledger-table"), "{msg}");
    assert!(msg.contains("ResourceNotFoundException"), "{msg}");
    assert!(matches!(l.summary(&job).await, Err(LedgerError::Store(_))));
}
