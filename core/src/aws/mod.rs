//! Adapters from the engine's ports to AWS: S3 objects, SQS queues, Secrets Manager, the job
//! ledger's DynamoDB table and the job notification's SNS topic.
//!
//! Clients are built once from the standard SDK configuration (region, credentials,
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` for emulators) and injected.

pub mod clients;
pub mod dlq;
pub mod ledger;
pub mod notify;
pub mod passes;
pub mod s3;
pub mod secrets;
pub mod sqs;
pub mod work_queue;
