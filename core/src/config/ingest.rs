//! The ingest function's settings.

use std::time::Duration;

use super::{ConfigError, Env, MAX_VISIBILITY};
use crate::csv::ColumnMapping;
use crate::validate::Settings;

/// Settings of the ingest function (environment).
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub queue_url: String,
    pub dlq_url: String,
    /// FIFO queue for continuation messages.
    pub control_queue_url: String,
    pub settings: Settings,
    pub mapping: ColumnMapping,
    /// Cap on the seconds one invocation works on a file (`INGEST_TIME_BUDGET_SECONDS`); the
    /// Lambda deadline always applies.
    pub time_budget: Option<Duration>,
    /// Time kept before the deadline to flush, write the snapshot and hand over.
    pub safety_margin: Duration,
    /// Rows between progress records.
    pub progress_rows: u64,
    /// `SendMessageBatch` calls in flight.
    pub max_in_flight: usize,
    /// Attempts per batch and the first back-off between them, before an invocation gives up
    /// and fails (it is retried from its progress record).
    pub send_attempts: u32,
    pub send_backoff: Duration,
    /// How soon a failed continuation is tried again (`CONTINUATION_RETRY_SECONDS`, default 60):
    /// its visibility is set to this instead of waiting out the control queue's visibility
    /// timeout (6 x the function timeout).
    pub continuation_retry: Duration,
}

impl IngestConfig {
    /// `QUEUE_URL`, `DLQ_URL`, `CONTROL_QUEUE_URL` (required), `DEFAULT_COUNTRY`,
    /// `COLUMN_MAPPING`, `INGEST_TIME_BUDGET_SECONDS`, `INGEST_SAFETY_MARGIN_SECONDS`,
    /// `INGEST_MAX_IN_FLIGHT` (1-256) and `CONTINUATION_RETRY_SECONDS` (up to 43200).
    pub fn from_lookup<F>(lookup: F) -> Result<IngestConfig, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env(lookup);
        let invalid = |var: &'static str, why: String| ConfigError::Invalid { var, why };
        let default_country = match env.get("DEFAULT_COUNTRY") {
            None => None,
            Some(c) => Some(
                crate::phone::parse_country(&c)
                    .map_err(|e| invalid("DEFAULT_COUNTRY", e.to_string()))?,
            ),
        };
        let mapping = match env.get("COLUMN_MAPPING") {
            None => ColumnMapping::default(),
            Some(m) => ColumnMapping::from_env_value(&m)
                .map_err(|e| invalid("COLUMN_MAPPING", e.to_string()))?,
        };
        // Longer than any Lambda invocation (900 s) is allowed: the deadline still applies.
        let day = Duration::from_secs(86_400);
        Ok(IngestConfig {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
            control_queue_url: env.required("CONTROL_QUEUE_URL")?,
            settings: Settings { default_country },
            mapping,
            time_budget: env.seconds("INGEST_TIME_BUDGET_SECONDS", day)?,
            safety_margin: env
                .seconds("INGEST_SAFETY_MARGIN_SECONDS", day)?
                .unwrap_or(Duration::from_secs(60)),
            progress_rows: 5_000,
            max_in_flight: env.whole("INGEST_MAX_IN_FLIGHT", 1..=256)?.unwrap_or(16) as usize,
            send_attempts: 8,
            send_backoff: Duration::from_millis(100),
            // SQS allows visibility timeouts up to 12 hours.
            continuation_retry: env
                .seconds("CONTINUATION_RETRY_SECONDS", MAX_VISIBILITY)?
                .unwrap_or(Duration::from_secs(60)),
        })
    }

    pub fn from_env() -> Result<IngestConfig, ConfigError> {
        IngestConfig::from_lookup(|k| std::env::var(k).ok())
    }
}
