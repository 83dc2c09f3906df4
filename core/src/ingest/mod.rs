//! The ingest: CSV rows -> validated, normalised, de-duplicated v1 requests on the work queue, and
//! rejects on the DLQ, across as many invocations as a file needs.
//!
//! - [`engine`]: the core (no AWS): row decisions, the two passes, cursors, sinks.
//! - [`sqs_sink`]: the sink on SQS with an exact account of what is sent.
//! - [`checkpoints`]: checkpoints, continuation messages, claims and the report.
//! - [`store`]: the checkpoint store, a port (S3 in Lambda, memory in tests).
//! - [`claim`]: which invocation reads a file, over that port.
//! - [`resume`]: what an invocation reads from and decides by the checkpoints, over that port.
//! - [`driver`]: the Lambda-facing orchestration of S3 events and continuations.
//! - [`job_reports`]: a completed job's results CSV, HTML report and notification.

pub mod checkpoints;
pub mod claim;
pub mod driver;
pub mod engine;
pub mod job_reports;
pub mod resume;
pub mod sqs_sink;
pub mod store;

/// The function's settings live with all configuration ([`crate::config`]).
pub use crate::config::IngestConfig;
pub use checkpoints::{now_rfc3339, report_key, Report, Status};
pub use driver::{FileOutcome, Ingest, IngestError, S3Source, S3Sources, SourceFactory};
pub use engine::{
    run_to_end, Advance, ByteStream, BytesSource, Counts, Cursor, Dest, Engine, FileSource,
    FilterSize, MemorySink, Opened, Pass, Sink, Source, SourceError, Tag,
};
