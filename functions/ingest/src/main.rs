//! The ingest Lambda function: S3 `ObjectCreated` events and continuation messages in, requests on
//! the work queue and rejects on the DLQ out. All the work is in `mfa_preload_core::ingest`.

// The ingest's future nests the driver, the checkpoint port and the AWS SDK's own futures deeper
// than the compiler's default query depth when it lays out `main`.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use mfa_preload_core::aws::clients::{dynamodb_client, load_sdk_config, s3_client, sns_client};
use mfa_preload_core::aws::ledger::DynamoLedger;
use mfa_preload_core::aws::notify::SnsNotifier;
use mfa_preload_core::aws::s3::ObjectStore;
use mfa_preload_core::config::LedgerSettings;
use mfa_preload_core::ingest::job_reports::Notifier;
use mfa_preload_core::ingest::{Ingest, IngestConfig};
use mfa_preload_core::lambda::deadline_from_epoch_ms;
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    mfa_preload_core::logging::init_lambda();
    let config = IngestConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "ingest configuration is incomplete"))?;
    // Clients are built once and reused by every invocation of this instance.
    let sdk = load_sdk_config().await;
    let ingest = Ingest::new(
        ObjectStore::new(s3_client(&sdk)),
        aws_sdk_sqs::Client::new(&sdk),
        config,
    );
    let ledger = LedgerSettings::from_lookup(|k| std::env::var(k).ok())
        .inspect_err(|e| tracing::error!(error = %e, "job ledger configuration is invalid"))?;
    let ingest = Arc::new(match ledger {
        Some(l) => {
            tracing::info!(table = %l.table, notifications = l.topic_arn.is_some(), "job ledger configured");
            let notifier = l
                .topic_arn
                .as_deref()
                .map(|arn| Arc::new(SnsNotifier::new(sns_client(&sdk), arn)) as Arc<dyn Notifier>);
            ingest.with_ledger(
                Arc::new(DynamoLedger::with_retention_days(
                    dynamodb_client(&sdk),
                    &l.table,
                    l.retention_days,
                )),
                notifier,
            )
        }
        None => ingest,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let ingest = ingest.clone();
        async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline);
            ingest
                .handle_lambda_event(event.payload, deadline)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
