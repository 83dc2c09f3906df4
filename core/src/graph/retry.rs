//! `Retry-After` parsing and exponential backoff with full jitter.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value: delay seconds (Graph sends whole seconds; fractions such as
/// `0.35` are accepted too) or an HTTP-date. Negative, non-finite or unparsable values give `None`; a date in the past gives 0.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Clamp absurd values before converting (Duration panics on overflow).
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        return None;
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Full-jitter exponential backoff for attempt `attempt` (1-based): a uniform draw in
/// `[0, min(cap, base * 2^(attempt-1))]`, at least 1 ms.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(cap);
    let ms = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random_range(1..=ms))
}

/// A short description of a reqwest failure (timeout / connect / other), without URLs' queries.
pub fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else if e.is_request() {
        "request failed"
    } else {
        "error"
    };
    // The source chain says e.g. "connection closed before message completed".
    let mut detail = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_fractions_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(" 0.35 ", now),
            Some(Duration::from_millis(350))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("1e12", now),
            Some(Duration::from_secs(86_400))
        );
        let later = now + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 1..30 {
            let d = backoff_delay(attempt, base, cap);
            assert!(
                d >= Duration::from_millis(1) && d <= cap,
                "{attempt}: {d:?}"
            );
        }
        for _ in 0..50 {
            assert!(backoff_delay(1, base, cap) <= base);
        }
        // Later attempts can wait longer than the first ever could.
        let max_late = (0..200).map(|_| backoff_delay(6, base, cap)).max().unwrap();
        assert!(max_late > base, "{max_late:?}");
    }
}
