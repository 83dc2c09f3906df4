//! CloudWatch metrics as log lines in the embedded metric format (EMF): a Lambda function that
//! prints such a JSON object on stdout publishes the metric through CloudWatch Logs, without an
//! API call or a permission of its own
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//! Alarms in `template.yaml` watch these metrics in the [`NAMESPACE`] namespace.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every metric the product publishes.
pub const NAMESPACE: &str = "mfa-preload";

/// One EMF line: `metrics` (name, value; unit Count) with the dimension `Function`, and
/// `properties` as searchable fields that are not dimensions.
pub fn emf_line(function: &str, metrics: &[(&str, f64)], properties: &[(&str, &str)]) -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("Function".into(), json!(function));
    for (k, v) in properties {
        root.insert((*k).to_string(), json!(v));
    }
    for (name, value) in metrics {
        root.insert((*name).to_string(), json!(value));
    }
    Value::Object(root).to_string()
}

/// Prints [`emf_line`] on stdout (CloudWatch Logs in Lambda).
pub fn emit(function: &str, metrics: &[(&str, f64)], properties: &[(&str, &str)]) {
    println!("{}", emf_line(function, metrics, properties));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let line = emf_line(
            "worker",
            &[("ConfigurationFault", 1.0)],
            &[("fault", "missing_permission")],
        );
        let v: Value = serde_json::from_str(&line).expect("json");
        let def = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], NAMESPACE);
        assert_eq!(def["Dimensions"], json!([["Function"]]));
        assert_eq!(def["Metrics"][0]["Name"], "ConfigurationFault");
        assert_eq!(v["Function"], "worker");
        assert_eq!(v["ConfigurationFault"], 1.0);
        assert_eq!(v["fault"], "missing_permission");
        assert!(v["_aws"]["Timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000));
    }
}
