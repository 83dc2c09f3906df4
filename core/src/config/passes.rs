//! Settings of the Temporary Access Pass delivery (the worker).

use super::{ConfigError, Env};
use crate::message::is_queue_arn;

/// `PASS_BUCKET`, `PASS_KMS_KEY_ARN` and `PASS_DELIVERY_QUEUE_ARNS` (comma-separated queue ARNs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassDeliverySettings {
    pub bucket: String,
    pub kms_key: String,
    pub queues: Vec<String>,
}

impl PassDeliverySettings {
    /// `None` when `PASS_BUCKET` is unset (the worker then refuses pass requests as a
    /// configuration fault).
    pub fn from_lookup<F>(lookup: F) -> Result<Option<PassDeliverySettings>, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env(lookup);
        let Some(bucket) = env.get("PASS_BUCKET") else {
            return Ok(None);
        };
        let kms_key = env.required("PASS_KMS_KEY_ARN")?;
        let mut queues = Vec::new();
        for q in env
            .get("PASS_DELIVERY_QUEUE_ARNS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            if !is_queue_arn(q) {
                return Err(ConfigError::Invalid {
                    var: "PASS_DELIVERY_QUEUE_ARNS",
                    why: format!("'{q}' is not an SQS queue ARN"),
                });
            }
            queues.push(q.to_string());
        }
        Ok(Some(PassDeliverySettings {
            bucket,
            kms_key,
            queues,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let vars = |v: &'static [(&'static str, &'static str)]| {
            move |k: &str| v.iter().find(|(n, _)| *n == k).map(|(_, x)| x.to_string())
        };
        assert_eq!(PassDeliverySettings::from_lookup(vars(&[])).unwrap(), None);
        let s = PassDeliverySettings::from_lookup(vars(&[
            ("PASS_BUCKET", "b"),
            (
                "PASS_KMS_KEY_ARN",
                "arn:aws:kms:eu-west-1:123456789012:key/k",
            ),
            (
                "PASS_DELIVERY_QUEUE_ARNS",
                " arn:aws:sqs:eu-west-1:123456789012:a , arn:aws:sqs:eu-west-1:123456789012:b.fifo",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.queues.len(), 2);
        let e = PassDeliverySettings::from_lookup(vars(&[("PASS_BUCKET", "b")])).unwrap_err();
        assert!(e.to_string().contains("PASS_KMS_KEY_ARN"), "{e}");
        let e = PassDeliverySettings::from_lookup(vars(&[
            ("PASS_BUCKET", "b"),
            ("PASS_KMS_KEY_ARN", "k"),
            ("PASS_DELIVERY_QUEUE_ARNS", "https://sqs/q"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("PASS_DELIVERY_QUEUE_ARNS"), "{e}");
    }
}
