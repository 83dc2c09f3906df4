//! The worker Lambda function: SQS batches of requests in, Graph writes, DLQ entries and a
//! partial batch response out. All the work is in `mfa_preload_core::worker`.
//!
//! The SDK clients, the credentials, the Graph client (token cache, adaptive limiter) and the DLQ
//! sender are built once per execution environment, before the first event, and reused by every
//! invocation. A start-up failure (a missing variable, an unreadable or malformed secret) is one
//! error log line and a non-zero exit, which Lambda reports as an init error.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use mfa_preload_core::aws::clients::load_sdk_config;
use mfa_preload_core::lambda::deadline_from_epoch_ms;
use mfa_preload_core::worker::{build_from_env, Worker};

async fn handle(worker: &Worker, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
    // Permanent rejects went to the DLQ; only transient failures, and what the deadline left
    // unfinished, come back to SQS.
    let deadline = deadline_from_epoch_ms(event.context.deadline);
    worker
        .handle_event_until(event.payload, Some(deadline))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    mfa_preload_core::logging::init_lambda();
    let sdk = load_sdk_config().await;
    let worker = match build_from_env(&sdk).await {
        Ok(w) => Arc::new(w),
        Err(e) => {
            tracing::error!(error = %e, "the worker cannot start");
            std::process::exit(1);
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, Error>(handle(&worker, event).await) }
    }))
    .await
}
