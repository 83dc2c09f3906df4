//! The engine of mfa-preload: bulk pre-registration of Entra ID MFA/SSPR methods.
//!
//! Everything the Lambda functions, the CLI and the tests share lives here. The outside world
//! (S3, SQS, Secrets Manager, Graph) is reached through small ports so the same engine runs in
//! Lambda, on a laptop and in tests.

// Domain: what a request is and how it is decided, with no I/O.
/// Configuration from the environment, for every function and the CLI.
pub mod config;
/// The streaming CSV reader and its column mapping.
pub mod csv;
/// The duplicate-user check across a file.
pub mod dedupe;
/// Dead-letter entries, their attributes and the port they are sent through.
pub mod dlq;
/// The SSPR email address.
pub mod email;
/// Text helpers of the HTML pages.
pub(crate) mod html;
/// Masking of numbers and addresses in logs and details.
pub mod mask;
/// The v1 queue message (request) and its checks.
pub mod message;
/// Messages to send, SQS-legal and sized.
pub mod outbound;
/// Phone numbers: input to Graph's form, the form itself, comparison.
pub mod phone;
/// The pure plan: current methods + request -> ordered Graph writes.
pub mod plan;
/// Reason codes and per-user outcomes.
pub mod reason;
/// The results file's rows (CLI and job ledger), Excel-safe.
pub mod results;
/// SQS-legal text.
pub mod sqs_text;
/// Temporary Access Pass: the request, the tenant's policy, the issued pass (a secret).
pub mod tap;
/// User ids (UPN or object id).
pub mod user;
/// Row validation into requests.
pub mod validate;

// Engines: the domain driven through ports.
/// One user's plan carried out against Graph.
pub mod apply;
/// CSV file -> work queue and DLQ, across invocations.
pub mod ingest;
/// The job ledger: per job a summary and each row's final outcome.
pub mod ledger;
/// Readiness for the end of SMS and voice: the classes (pure), the page and the files, and
/// reading every user from Graph (the registration report or user by user).
pub mod readiness;
/// Queue messages -> Graph writes, DLQ entries and a batch response.
pub mod worker;

// Adapters and glue.
/// S3, SQS and Secrets Manager.
pub mod aws;
/// Microsoft Graph: token, limiter, endpoints.
pub mod graph;
/// What the Lambda entry glue shares: event sources, S3 keys, deadlines.
pub mod lambda;
/// Log set-up for Lambda and the CLI.
pub mod logging;
/// CloudWatch embedded-metric lines.
pub mod metrics;

pub use dlq::DlqEntry;
pub use message::{Job, Methods, Policy, Request, MESSAGE_VERSION};
pub use reason::{Outcome, Reason};
