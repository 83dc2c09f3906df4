//! Settings of the job ledger (both functions and the CLI's `status`).

use super::{ConfigError, Env};

/// Days a ledger item lives after its last write unless `LEDGER_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// `LEDGER_TABLE` (the DynamoDB table; unset: no ledger), `LEDGER_RETENTION_DAYS`, and for the
/// worker `CONTROL_QUEUE_URL` (where a completed job's reports are asked for) and for the ingest
/// `JOB_TOPIC_ARN` (where the "job complete" notification goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub table: String,
    pub retention_days: u32,
    pub control_queue_url: Option<String>,
    pub topic_arn: Option<String>,
}

impl LedgerSettings {
    /// `None` when `LEDGER_TABLE` is unset.
    pub fn from_lookup<F>(lookup: F) -> Result<Option<LedgerSettings>, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env(lookup);
        let Some(table) = env.get("LEDGER_TABLE") else {
            return Ok(None);
        };
        let retention_days = env
            .whole("LEDGER_RETENTION_DAYS", 1..=3650)?
            .map_or(DEFAULT_RETENTION_DAYS, |d| d as u32);
        Ok(Some(LedgerSettings {
            table,
            retention_days,
            control_queue_url: env.get("CONTROL_QUEUE_URL"),
            topic_arn: env.get("JOB_TOPIC_ARN"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_table_no_ledger_and_retention_is_checked() {
        assert_eq!(LedgerSettings::from_lookup(lookup(&[])).unwrap(), None);
        let s = LedgerSettings::from_lookup(lookup(&[("LEDGER_TABLE", "t")]))
            .unwrap()
            .unwrap();
        assert_eq!(s.retention_days, DEFAULT_RETENTION_DAYS);
        let bad = LedgerSettings::from_lookup(lookup(&[
            ("LEDGER_TABLE", "t"),
            ("LEDGER_RETENTION_DAYS", "0"),
        ]));
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("LEDGER_RETENTION_DAYS"));
    }
}
