//! What the functions' entry glue shares about Lambda itself: which service sent an event, S3's
//! encoding of object keys, and the invocation's deadline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `eventSource` of an event's first record (`aws:s3`, `aws:sqs`; S3 test events and SNS
/// spell it `EventSource`), or `""`.
pub fn event_source(event: &serde_json::Value) -> &str {
    event
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
        .and_then(|s| s.as_str())
        .unwrap_or_default()
}

/// Keys in S3 events are URL-encoded with `+` for space.
pub fn decode_event_key(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Lambda context's deadline (ms since the epoch) as an `Instant`.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(unix_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_keys_and_deadlines() {
        let s3 = serde_json::json!({"Records": [{"eventSource": "aws:s3"}]});
        assert_eq!(event_source(&s3), "aws:s3");
        let sns = serde_json::json!({"Records": [{"EventSource": "aws:sns"}]});
        assert_eq!(event_source(&sns), "aws:sns");
        assert_eq!(event_source(&serde_json::json!({})), "");
        assert_eq!(
            decode_event_key("incoming/a+b%2Bc%C3%A9.csv"),
            "incoming/a b+cé.csv"
        );
        let d = deadline_from_epoch_ms(unix_ms() + 10_000);
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(8) && left <= Duration::from_secs(10),
            "{left:?}"
        );
        assert!(deadline_from_epoch_ms(0) <= Instant::now());
    }
}
