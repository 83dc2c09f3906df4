//! The AWS adapters against the moto server: batching, attributes, ranged reads, changed objects.

use e2e_tests::*;
use mfa_preload_core::aws::s3::{ObjectStore, S3Error};
use mfa_preload_core::aws::sqs::{BatchPipeline, OutMessage, SqsSender};
use mfa_preload_core::{DlqEntry, Reason};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn pipeline_sends_every_message_exactly_once() {
    let cfg = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let q = create_queues(&sqs, &unique("pipe"), 3, 30).await;
    let mut p = BatchPipeline::new(SqsSender::new(sqs.clone(), &q.queue_url), 4);
    for i in 0..137 {
        p.push(OutMessage {
            body: format!("{{\"n\":{i}}}"),
            attributes: vec![],
        })
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    assert_eq!(p.sent(), 137);
    let got = drain(&sqs, &q.queue_url).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..137).collect::<Vec<_>>());
}

#[tokio::test]
async fn dlq_messages_carry_reason_and_detail_attributes() {
    let cfg = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let q = create_queues(&sqs, &unique("dlqattr"), 3, 30).await;
    let entry = DlqEntry {
        v: 1,
        reason: Reason::InvalidPhoneNumber,
        detail: "row 7, column Mobile: not a valid phone number".into(),
        job: None,
        row: Some(7),
        column: Some("Mobile".into()),
        request: serde_json::json!({"UPN": "a@b.example", "Mobile": "call me"}),
        stage: "ingest".into(),
        user: None,
    };
    SqsSender::new(sqs.clone(), &q.dlq_url)
        .send_batch(vec![OutMessage::dlq(&entry).unwrap()])
        .await
        .unwrap();
    let got = drain(&sqs, &q.dlq_url).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["reason"], "invalid_phone_number");
    assert_eq!(got[0].attributes["row"], "7");
    assert!(got[0].attributes["detail"].contains("column Mobile"));
    let body: DlqEntry = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body, entry);
}

#[tokio::test]
async fn ranged_reads_and_changed_objects() {
    let cfg = sdk_config().await;
    let s3 = s3_client(&cfg);
    let bucket = unique("ranged");
    create_bucket(&s3, &bucket).await;
    let store = ObjectStore::new(s3.clone());
    store
        .put_bytes(
            &bucket,
            "incoming/a.csv",
            b"0123456789".to_vec(),
            "text/csv",
        )
        .await
        .unwrap();
    let etag = store
        .etag(&bucket, "incoming/a.csv")
        .await
        .unwrap()
        .expect("exists");
    let mut opened = store
        .open(&bucket, "incoming/a.csv", 4, Some(&etag))
        .await
        .unwrap();
    let mut s = String::new();
    opened.body.read_to_string(&mut s).await.unwrap();
    assert_eq!(s, "456789");
    assert_eq!(opened.size, 10);
    store
        .put_bytes(&bucket, "incoming/a.csv", b"changed!!".to_vec(), "text/csv")
        .await
        .unwrap();
    match store.open(&bucket, "incoming/a.csv", 0, Some(&etag)).await {
        Err(S3Error::Changed { .. }) => {}
        other => panic!("expected Changed, got {:?}", other.map(|o| o.etag)),
    }
    assert!(store
        .get_bytes(&bucket, "nope.json")
        .await
        .unwrap()
        .is_none());
}
