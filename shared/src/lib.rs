//! The engine of mfa-preload: bulk pre-registration of Entra ID MFA/SSPR methods.
//!
//! Everything the Lambda functions, the CLI and the tests share lives here. The outside world
//! (S3, SQS, Secrets Manager, Graph) is reached through small ports so the same engine runs in
//! Lambda, on a laptop and in tests.

pub mod apply;
pub mod aws;
pub mod config;
pub mod csv;
pub mod dedupe;
pub mod dlq;
pub mod email;
pub mod graph;
pub mod ingest;
pub mod logging;
pub mod mask;
pub mod message;
pub mod metrics;
pub mod phone;
pub mod plan;
pub mod reason;
pub mod sqs_text;
pub mod user;
pub mod validate;
pub mod worker;

pub use dlq::DlqEntry;
pub use message::{Job, Methods, Policy, Request, MESSAGE_VERSION};
pub use reason::{Outcome, Reason};
