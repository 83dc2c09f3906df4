//! Configuration read from the environment, one place for every function and the CLI:
//! [`GraphSettings`] (Graph endpoints), [`IngestConfig`], [`WorkerConfig`], and the readers they
//! share ([`Env`]: blank is unset, required values, whole numbers and seconds in a range), with
//! one error type that names the variable.
//!
//! Every reader takes a lookup closure (`Fn(&str) -> Option<String>`) so it can be tested without
//! touching the process environment; `from_env` wrappers pass `std::env::var`.

mod graph;
mod ingest;
mod ledger;
mod passes;
mod worker;

pub use graph::{normalise_base_url, GraphCloud, GraphSettings};
pub use ingest::IngestConfig;
pub use ledger::{LedgerSettings, DEFAULT_RETENTION_DAYS};
pub use passes::PassDeliverySettings;
pub use worker::{WorkerConfig, MAX_VISIBILITY};

use std::ops::RangeInclusive;
use std::time::Duration;

/// An unusable configuration value. Values of these variables are not secret and are echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("GRAPH_CLOUD is '{0}': expected one of global, usgov, usgovdod, china")]
    UnknownCloud(String),
    #[error("{var} is '{value}': {why} (expected scheme and host only, e.g. {example})")]
    InvalidBaseUrl {
        var: &'static str,
        value: String,
        why: String,
        example: &'static str,
    },
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var}: {why}")]
    Invalid { var: &'static str, why: String },
}

/// Variables read through a lookup closure. A value is trimmed; blank means unset.
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The trimmed value, `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A value that must be set.
    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing(var))
    }

    /// A whole number in `range`, `None` when unset.
    pub fn whole(
        &self,
        var: &'static str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(v) = self.get(var) else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::Invalid {
                var,
                why: format!(
                    "'{v}' is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }

    /// A positive number of seconds (decimals allowed) up to `max`, `None` when unset.
    pub fn seconds(
        &self,
        var: &'static str,
        max: Duration,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = self.get(var) else {
            return Ok(None);
        };
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= max.as_secs_f64() => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            _ => Err(ConfigError::Invalid {
                var,
                why: format!(
                    "'{v}' is not a positive number of seconds up to {}",
                    max.as_secs()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn readers_name_the_variable_and_treat_blank_as_unset() {
        let e = env(&[
            ("A", " 7 "),
            ("B", "  "),
            ("C", "x"),
            ("D", "0.5"),
            ("E", "-1"),
        ]);
        assert_eq!(e.get("A").as_deref(), Some("7"));
        assert_eq!(e.get("B"), None);
        assert_eq!(e.required("A").unwrap(), "7");
        assert_eq!(e.required("B").unwrap_err(), ConfigError::Missing("B"));
        assert_eq!(e.whole("A", 1..=10).unwrap(), Some(7));
        assert_eq!(e.whole("B", 1..=10).unwrap(), None);
        for (var, range) in [("A", 8..=10), ("C", 0..=10), ("E", 0..=10)] {
            let msg = e.whole(var, range).unwrap_err().to_string();
            assert!(
                msg.starts_with(var) && msg.contains("whole number"),
                "{msg}"
            );
        }
        assert_eq!(
            e.seconds("D", Duration::from_secs(60)).unwrap(),
            Some(Duration::from_millis(500))
        );
        assert!(e.seconds("A", Duration::from_secs(5)).is_err());
        assert!(e.seconds("E", Duration::from_secs(60)).is_err());
        assert_eq!(e.seconds("B", Duration::from_secs(60)).unwrap(), None);
    }
}
