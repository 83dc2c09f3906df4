//! Helpers shared by the integration and end-to-end tests: AWS clients pointed at the moto server
//! that `scripts/test.sh` starts, throwaway buckets/queues/secrets, and queue draining.

pub mod app;
pub mod backpressure;
pub mod browser;
pub mod collector;
pub mod dataset;
pub mod lambda_rt;
pub mod poller;
pub mod secrets_scan;
pub mod token_proxy;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;
use std::path::PathBuf;

/// The moto endpoint. Integration tests need it: they fail (not skip) without it, with a hint.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: these tests talk to a moto server. \
             Run `bash scripts/test.sh`, or start `moto_server -H 127.0.0.1 -p 5000` and export \
             AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1"
        )
    })
}

/// SDK configuration for the moto server, as the functions build it from the environment.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = moto_endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// A short unique suffix for resource names, so tests can share one moto server.
pub fn unique(prefix: &str) -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{:x}{c}", n % 0xffff_ffff)
}

/// Path of a file in the repository (tests run with the package dir as cwd).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Real queues: a work queue whose redrive policy sends to a DLQ after `max_receive` receives.
pub struct Queues {
    pub queue_url: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive: u32,
    visibility_s: u32,
) -> Queues {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create DLQ")
        .queue_url
        .expect("DLQ url");
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("DLQ attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("DLQ arn");
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.to_string()});
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_s.to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    Queues {
        queue_url,
        dlq_url,
        dlq_arn,
    }
}

/// One received message: body plus string message attributes.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub attributes: HashMap<String, String>,
}

/// Received SQS messages as [`Received`], with the entries that delete them.
pub fn take(
    msgs: Vec<aws_sdk_sqs::types::Message>,
) -> (
    Vec<Received>,
    Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry>,
) {
    let mut received = Vec::with_capacity(msgs.len());
    let mut entries = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.into_iter().enumerate() {
        let attributes = m
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
            .collect();
        received.push(Received {
            body: m.body.unwrap_or_default(),
            attributes,
        });
        if let Some(h) = m.receipt_handle {
            entries.push(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h)
                    .build()
                    .expect("entry"),
            );
        }
    }
    (received, entries)
}

/// Receives and deletes everything currently in a queue (until two empty polls in a row).
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Received> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receive");
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let (received, entries) = take(msgs);
        out.extend(received);
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("delete batch");
    }
    out
}

/// Creates a bucket and returns an S3 client in path-style mode (moto).
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("create bucket");
}

pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

/// Builds a real S3 ObjectCreated event (as S3 sends it) for one key; the key is URL-encoded the
/// way S3 encodes it (space as `+`).
pub fn s3_put_event(bucket: &str, key: &str, size: u64, etag: &str) -> serde_json::Value {
    let encoded: String = key
        .split(' ')
        .map(|part| {
            part.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("+");
    serde_json::json!({
      "Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T10:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE123/abc"},
        "s3": {
          "s3SchemaVersion": "1.0",
          "configurationId": "incoming-csv",
          "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
          "object": {"key": encoded, "size": size, "eTag": etag.trim_matches('"'), "sequencer": "0A1B2C3D4E5F678901"}
        }
      }]
    })
}

/// Creates a FIFO queue (name gets the `.fifo` suffix) with a short visibility timeout; returns its URL.
pub async fn create_fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, visibility_s: u32) -> String {
    sqs.create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_s.to_string(),
        )
        .send()
        .await
        .expect("create FIFO queue")
        .queue_url
        .expect("queue url")
}

/// An SQS event as Lambda's event source mapping delivers it, for one received message.
pub fn sqs_event_json(
    queue_arn: &str,
    messages: &[aws_sdk_sqs::types::Message],
) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "messageId": m.message_id.clone().unwrap_or_default(),
                "receiptHandle": m.receipt_handle.clone().unwrap_or_default(),
                "body": m.body.clone().unwrap_or_default(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "test", "ApproximateFirstReceiveTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body.clone().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The ARN of a queue.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

/// Creates a job ledger table as template.yaml's `JobLedgerTable` (partition key `job`, sort key
/// `item`, both strings; on demand; TTL on `expiresAt`) and returns its name.
pub async fn create_ledger_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key schema element")
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("job"))
        .attribute_definitions(attr("item"))
        .key_schema(key("job", KeyType::Hash))
        .key_schema(key("item", KeyType::Range))
        .send()
        .await
        .expect("create the ledger table");
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expiresAt")
                .enabled(true)
                .build()
                .expect("TTL specification"),
        )
        .send()
        .await
        .expect("enable the ledger table's TTL");
    name.to_string()
}
