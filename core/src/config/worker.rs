//! The worker engine's settings (`WORKER_CONCURRENCY`, `MAX_RECEIVE_COUNT`,
//! `USER_NOT_FOUND_RETRY_SECONDS`, `CONFIGURATION_FAULT_RETRY_SECONDS`).

use std::time::Duration;

use super::{ConfigError, Env};

/// Worker tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Users of one batch processed at the same time (the Graph client's limiter still bounds
    /// requests in flight).
    pub concurrency: usize,
    /// On this receive a transient failure is dead-lettered as `retries_exhausted` instead of
    /// retried. Keep it equal to the queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// `user_not_found` is final only this long after the message was first sent
    /// (`USER_NOT_FOUND_RETRY_SECONDS`; zero: at once).
    pub user_not_found_retry: Duration,
    /// Visibility of a message returned for a configuration fault
    /// (`CONFIGURATION_FAULT_RETRY_SECONDS`).
    pub config_fault_retry: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            max_receive_count: 5,
            user_not_found_retry: Duration::from_secs(300),
            config_fault_retry: Duration::from_secs(900),
        }
    }
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

impl WorkerConfig {
    /// `WORKER_CONCURRENCY` (1-10000), `MAX_RECEIVE_COUNT` (1-1000),
    /// `USER_NOT_FOUND_RETRY_SECONDS` (0-43200) and `CONFIGURATION_FAULT_RETRY_SECONDS`
    /// (1-43200, whole seconds); defaults otherwise.
    pub fn from_lookup<F>(lookup: F) -> Result<WorkerConfig, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env(lookup);
        let max_visibility = MAX_VISIBILITY.as_secs();
        let mut c = WorkerConfig::default();
        if let Some(n) = env.whole("WORKER_CONCURRENCY", 1..=10_000)? {
            c.concurrency = n as usize;
        }
        if let Some(n) = env.whole("MAX_RECEIVE_COUNT", 1..=1_000)? {
            c.max_receive_count = n as u32;
        }
        if let Some(n) = env.whole("USER_NOT_FOUND_RETRY_SECONDS", 0..=max_visibility)? {
            c.user_not_found_retry = Duration::from_secs(n);
        }
        if let Some(n) = env.whole("CONFIGURATION_FAULT_RETRY_SECONDS", 1..=max_visibility)? {
            c.config_fault_retry = Duration::from_secs(n);
        }
        Ok(c)
    }

    pub fn from_env() -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_config_from_lookup() {
        let c = WorkerConfig::from_lookup(|k| match k {
            "WORKER_CONCURRENCY" => Some("32".into()),
            "MAX_RECEIVE_COUNT" => Some("3".into()),
            "USER_NOT_FOUND_RETRY_SECONDS" => Some("0".into()),
            "CONFIGURATION_FAULT_RETRY_SECONDS" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c,
            WorkerConfig {
                concurrency: 32,
                max_receive_count: 3,
                user_not_found_retry: Duration::ZERO,
                config_fault_retry: Duration::from_secs(60),
            }
        );
        for (var, bad) in [
            ("USER_NOT_FOUND_RETRY_SECONDS", "-1"),
            ("USER_NOT_FOUND_RETRY_SECONDS", "50000"),
            ("CONFIGURATION_FAULT_RETRY_SECONDS", "0"),
            ("CONFIGURATION_FAULT_RETRY_SECONDS", "43201"),
        ] {
            let e =
                WorkerConfig::from_lookup(|k| (k == var).then(|| bad.to_string())).expect_err(bad);
            assert!(e.to_string().contains(var), "{e}");
        }
        let e =
            WorkerConfig::from_lookup(|k| (k == "MAX_RECEIVE_COUNT").then(|| "zero".to_string()))
                .unwrap_err();
        assert!(e.to_string().contains("MAX_RECEIVE_COUNT") && e.to_string().contains("zero"));
        assert_eq!(
            WorkerConfig::from_lookup(|_| None).unwrap(),
            WorkerConfig::default()
        );
    }
}
