//! The job ledger's command-line side against the moto server: `mfa-preload status` on a running
//! job shows partial counts and downloads the results so far; a job whose last row SQS moved to
//! the DLQ by itself (its redrive policy, no `reason` attribute) completes after
//! `status --reconcile`, which leaves the DLQ as it was and asks for the job's reports once.

use std::process::Command;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use e2e_tests::lambda_rt::release_binary;
use e2e_tests::*;
use mfa_preload_core::aws::ledger::DynamoLedger;
use mfa_preload_core::ledger::{JobKey, LedgerPort, RowRecord, Stage};
use mfa_preload_core::message::Job;

const KEY: &str = "incoming/onboarding week 49.csv";

fn job(bucket: &str) -> Job {
    Job::S3 {
        bucket: bucket.into(),
        key: KEY.into(),
        etag: "0123abcd".into(),
        run: Some("0123abcd-00A1".into()),
    }
}

fn done(row: u64, outcome: &str) -> RowRecord {
    RowRecord {
        row: Some(row),
        user: format!("user{row}@contoso.com"),
        outcome: outcome.into(),
        reason: String::new(),
        detail: String::new(),
        at: format!("2026-12-03T10:00:{:02}Z", row),
        deliveries: 1,
        stage: Stage::Worker,
    }
}

/// The bucket with the file's ingest report (which names the run `status` looks up).
async fn bucket_with_report(s3: &aws_sdk_s3::Client, job: &Job) -> String {
    let Job::S3 {
        bucket, key, run, ..
    } = job
    else {
        unreachable!()
    };
    create_bucket(s3, bucket).await;
    let report = serde_json::json!({
        "v": 1, "bucket": bucket, "key": key, "etag": "0123abcd", "run": run,
        "status": "complete", "rowsRead": 10, "enqueued": 10, "rejected": {}, "rejectedTotal": 0,
        "pending": 0, "continuations": 0, "invocations": 1,
        "startedAt": "2026-12-03T10:00:00Z", "updatedAt": "2026-12-03T10:00:01Z"
    });
    s3.put_object()
        .bucket(bucket)
        .key(mfa_preload_core::ingest::report_key(key))
        .body(report.to_string().into_bytes().into())
        .send()
        .await
        .expect("put the ingest report");
    bucket.clone()
}

fn status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(release_binary("mfa-preload"))
        .arg("status")
        .args(args)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .output()
        .expect("run mfa-preload status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_shows_a_running_job_and_downloads_the_results_so_far() {
    let cfg = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let table = create_ledger_table(&ddb, &unique("ledger-status")).await;
    let bucket = unique("status");
    let j = job(&bucket);
    bucket_with_report(&s3_client(&cfg), &j).await;
    let ledger = DynamoLedger::with_retention_days(ddb, &table, 1);
    let key = JobKey::of(&j);
    ledger.set_expected(&key, &j.label(), 10, 10).await.unwrap();
    let mut rejected = done(4, "rejected");
    rejected.reason = "invalid_email".into();
    ledger
        .record(
            &key,
            &j.label(),
            &[done(2, "created"), done(3, "updated"), rejected],
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("so-far.csv");
    let url = format!("s3://{bucket}/{KEY}");
    let (code, out, err) = status(&[
        &url,
        "--table",
        &table,
        "--results",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("status: running, 3 of 10 rows done (30.0%)"),
        "{out}"
    );
    assert!(out.contains("invalid_email"), "{out}");
    assert!(out.contains("rate: "), "{out}");
    let csv = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "row,user,outcome,reason,detail");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[3].starts_with("4,user4@contoso.com,rejected,invalid_email"),
        "{csv}"
    );

    // A file that was never ingested is named, not shown as an empty job.
    let (code, _, err) = status(&[
        &format!("s3://{bucket}/incoming/other.csv"),
        "--table",
        &table,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no ingest report"), "{err}");
}

#[tokio::test]
async fn a_row_sqs_moved_to_the_dlq_by_itself_is_reconciled_and_the_job_completes() {
    let cfg = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let table = create_ledger_table(&ddb, &unique("ledger-reconcile")).await;
    let bucket = unique("reconcile");
    let j = job(&bucket);
    bucket_with_report(&s3_client(&cfg), &j).await;
    let ledger = DynamoLedger::with_retention_days(ddb, &table, 1);
    let key = JobKey::of(&j);
    ledger.set_expected(&key, &j.label(), 3, 3).await.unwrap();
    ledger
        .record(
            &key,
            &j.label(),
            &[done(2, "created"), done(3, "unchanged")],
        )
        .await
        .unwrap();

    // The last row's message: received once and never deleted (the worker crashed), so SQS's
    // redrive policy (maxReceiveCount 1) moves it to the DLQ by itself, without a reason.
    let q = create_queues(&sqs, &unique("reconcile-work"), 1, 1).await;
    let control = create_fifo_queue(&sqs, &unique("reconcile-control"), 30).await;
    let body = serde_json::json!({
        "v": 1, "job": j, "row": 4, "user": "user4@contoso.com",
        "methods": {"mobile": "+31 612345678"}
    })
    .to_string();
    sqs.send_message()
        .queue_url(&q.queue_url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&q.queue_url)
        .visibility_timeout(1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages.unwrap_or_default().len(), 1);
    let mut moved = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        // A receive after the visibility timeout is what makes SQS move it.
        let _ = sqs
            .receive_message()
            .queue_url(&q.queue_url)
            .visibility_timeout(1)
            .send()
            .await;
        let n = sqs
            .get_queue_attributes()
            .queue_url(&q.dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .and_then(|a| {
                a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
            .unwrap_or_default();
        if n == "1" {
            moved = true;
            break;
        }
    }
    assert!(moved, "SQS did not move the message to the DLQ");

    let url = format!("s3://{bucket}/{KEY}");
    let (code, out, err) = status(&[&url, "--table", &table]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("status: running, 2 of 3 rows done"), "{out}");

    let (code, out, err) = status(&[
        &url,
        "--table",
        &table,
        "--reconcile",
        "--dlq-url",
        &q.dlq_url,
        "--control-queue-url",
        &control,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("1 of this job, 1 rows recorded"), "{out}");
    assert!(out.contains("the job is complete now"), "{out}");
    assert!(out.contains("status: complete, 3 of 3 rows done"), "{out}");
    assert!(out.contains("retries_exhausted"), "{out}");

    // The DLQ still holds the message (reconcile reads without consuming).
    assert_eq!(
        messages_in(&sqs, &q.dlq_url).await,
        1,
        "reconcile must leave the DLQ as it was"
    );
    // One report request on the control queue, for this job.
    let requests = drain(&sqs, &control).await;
    assert_eq!(requests.len(), 1);
    let r: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(r["kind"], "reports");
    assert_eq!(r["job"]["run"], "0123abcd-00A1");
    let row4 = ledger
        .rows(&key)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.row == Some(4))
        .expect("row 4 recorded");
    assert_eq!(
        (row4.outcome.as_str(), row4.reason.as_str()),
        ("failed", "retries_exhausted")
    );
    assert_eq!(row4.stage, Stage::Reconcile);

    // A second reconcile records nothing and asks for nothing again.
    let (code, out, _) = status(&[
        &url,
        "--table",
        &table,
        "--reconcile",
        "--dlq-url",
        &q.dlq_url,
        "--control-queue-url",
        &control,
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("1 of this job, 0 rows recorded"), "{out}");
    assert!(drain(&sqs, &control).await.is_empty());
    assert_eq!(drain(&sqs, &q.dlq_url).await.len(), 1);
}

/// Messages in a queue, visible or not.
async fn messages_in(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let a = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .filter_map(|k| a.get(k)?.parse::<u64>().ok())
    .sum()
}
