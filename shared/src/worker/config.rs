//! The worker engine's settings (`WORKER_CONCURRENCY`, `MAX_RECEIVE_COUNT`,
//! `USER_NOT_FOUND_RETRY_SECONDS`, `CONFIGURATION_FAULT_RETRY_SECONDS`).

use std::time::Duration;

use crate::config::ConfigError;

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
    /// `WORKER_CONCURRENCY` and `MAX_RECEIVE_COUNT` (positive integers), defaults otherwise.
    pub fn from_lookup<F>(lookup: F) -> Result<WorkerConfig, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut c = WorkerConfig::default();
        let num = |var: &'static str| -> Result<Option<u32>, ConfigError> {
            match lookup(var).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(ConfigError::InvalidNumber { var, value: v }),
                },
            }
        };
        if let Some(n) = num("WORKER_CONCURRENCY")? {
            c.concurrency = n as usize;
        }
        if let Some(n) = num("MAX_RECEIVE_COUNT")? {
            c.max_receive_count = n;
        }
        if let Some(v) = lookup("USER_NOT_FOUND_RETRY_SECONDS").filter(|v| !v.trim().is_empty()) {
            match v.trim().parse::<u64>() {
                Ok(n) if n <= MAX_VISIBILITY.as_secs() => {
                    c.user_not_found_retry = Duration::from_secs(n)
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "USER_NOT_FOUND_RETRY_SECONDS",
                        why: format!("'{v}' is not a whole number of seconds from 0 to 43200"),
                    })
                }
            }
        }
        if let Some(n) = num("CONFIGURATION_FAULT_RETRY_SECONDS")? {
            if u64::from(n) > MAX_VISIBILITY.as_secs() {
                return Err(ConfigError::Invalid {
                    var: "CONFIGURATION_FAULT_RETRY_SECONDS",
                    why: format!("{n} is more than SQS's longest visibility, 43200"),
                });
            }
            c.config_fault_retry = Duration::from_secs(u64::from(n));
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
