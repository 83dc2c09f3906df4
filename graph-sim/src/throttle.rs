//! Graph's identity-and-access budgets: resource units for every request and a separate write
//! budget, each counted as a token bucket (Graph's model, the default) or a sliding window.
//!
//! Sources (see also the crate docs, "Throttling"):
//! - "Throttling is based on a token bucket algorithm, which works by adding individual costs of
//!   requests. The sum of request costs is then compared against pre-determined limits. Only the
//!   requests exceeding the limits will be throttled."
//!   (<https://learn.microsoft.com/en-us/graph/throttling-limits#identity-and-access-service-limits>)
//! - `Retry-After` in whole seconds: "We are receiving a "retry-after" set to 1 on v1 endpoint
//!   anytime we hit a 429" (microsoftgraph/msgraph-sdk-javascript#297); "Microsoft Graph API sends
//!   max 10-20s in 'retry-after' header"
//!   (<https://learn.microsoft.com/en-us/answers/questions/648796/retry-after-header-upper-limit-or-range>).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::ThrottleModel;

/// Resource units charged for a read (GET).
pub const READ_COST_RU: u32 = 1;
/// Resource units charged for a write (POST, PATCH, DELETE, including SMS sign-in actions).
pub const WRITE_COST_RU: u32 = 2;

/// Usage share above which Graph adds `x-ms-throttle-limit-percentage` to a response: "Returned
/// only when the application consumed more than 0.8 of its limit"
/// (<https://learn.microsoft.com/en-us/graph/throttling-limits#regular-responses-requests>).
pub const LIMIT_PERCENTAGE_FROM: f64 = 0.8;
/// Highest value of `x-ms-throttle-limit-percentage`: "The value ranges from 0.8 to 1.8" (same
/// page; microsoftgraph/microsoft-graph-docs#15227: "we report when the consumption surpasses
/// the 100% limit by at least another 80%").
pub const LIMIT_PERCENTAGE_MAX: f64 = 1.8;

/// At most `limit` units inside any sliding `window`.
#[derive(Debug)]
struct SlidingWindow {
    log: VecDeque<(Instant, u32)>,
    used: u64,
}

impl SlidingWindow {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(t, cost)) = self.log.front() {
            if t + window <= now {
                self.used -= u64::from(cost);
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long until enough units leave the window for `cost` to fit.
    fn wait_for(&self, now: Instant, cost: u64, limit: u64, window: Duration) -> Duration {
        let mut remaining = self.used;
        for &(t, c) in &self.log {
            remaining -= u64::from(c);
            if remaining + cost <= limit {
                return (t + window).saturating_duration_since(now);
            }
        }
        window
    }
}

/// A bucket of `limit` tokens refilled continuously at `limit / window` per second; a request
/// takes its cost out of it.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn refill(&mut self, now: Instant, limit: u32, window: Duration) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        let rate = f64::from(limit) / window.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + dt * rate).min(f64::from(limit));
        self.at = now;
    }
}

#[derive(Debug)]
enum Count {
    Window(SlidingWindow),
    Bucket(TokenBucket),
}

/// One budget: `limit` units per `window` (`limit == 0`: unlimited), counted by `model`.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u32,
    window: Duration,
    count: Count,
    peak: u64,
}

impl Budget {
    pub(crate) fn new(model: ThrottleModel, limit: u32, window: Duration, now: Instant) -> Self {
        let count = match model {
            ThrottleModel::SlidingWindow => Count::Window(SlidingWindow {
                log: VecDeque::new(),
                used: 0,
            }),
            ThrottleModel::TokenBucket => Count::Bucket(TokenBucket {
                tokens: f64::from(limit),
                at: now,
            }),
        };
        Budget {
            limit,
            window,
            count,
            peak: 0,
        }
    }

    /// New limit and window; what was spent stays spent (a bucket keeps its tokens, at most the
    /// new capacity).
    pub(crate) fn reconfigure(&mut self, limit: u32, window: Duration, now: Instant) {
        self.settle(now);
        self.limit = limit;
        self.window = window;
        if let Count::Bucket(b) = &mut self.count {
            b.tokens = b.tokens.min(f64::from(limit));
        }
    }

    /// Brings the count up to `now` (expire the window, refill the bucket).
    fn settle(&mut self, now: Instant) {
        match &mut self.count {
            Count::Window(w) => w.expire(now, self.window),
            Count::Bucket(b) => b.refill(now, self.limit, self.window),
        }
    }

    /// `None` when `cost` fits now, else how long until it would.
    fn wait_for(&mut self, now: Instant, cost: u32) -> Option<Duration> {
        self.settle(now);
        if self.limit == 0 {
            return None;
        }
        let limit = u64::from(self.limit);
        if u64::from(cost) > limit {
            // It can never fit; ask for a whole window.
            return Some(self.window);
        }
        match &self.count {
            Count::Window(w) => (w.used + u64::from(cost) > limit)
                .then(|| w.wait_for(now, u64::from(cost), limit, self.window)),
            Count::Bucket(b) => {
                let missing = f64::from(cost) - b.tokens;
                (missing > 0.0).then(|| {
                    let rate = f64::from(self.limit) / self.window.as_secs_f64().max(1e-9);
                    Duration::from_secs_f64(missing / rate)
                })
            }
        }
    }

    fn charge(&mut self, now: Instant, cost: u32) {
        match &mut self.count {
            Count::Window(w) => {
                w.log.push_back((now, cost));
                w.used += u64::from(cost);
                if self.limit == 0 {
                    // Unlimited: keep the totals for the peak without growing the log forever.
                    w.expire(now, self.window);
                }
            }
            Count::Bucket(b) => b.tokens -= f64::from(cost),
        }
        let used = self.used_now();
        self.peak = self.peak.max(used);
    }

    /// Units counted against the limit: in the window, or taken from the bucket and not yet
    /// refilled.
    fn used_now(&self) -> u64 {
        match &self.count {
            Count::Window(w) => w.used,
            Count::Bucket(b) => (f64::from(self.limit) - b.tokens).max(0.0).round() as u64,
        }
    }

    pub(crate) fn in_use(&mut self, now: Instant) -> u64 {
        self.settle(now);
        self.used_now()
    }

    /// Share of the limit in use (`None` when unlimited).
    fn share(&self) -> Option<f64> {
        (self.limit > 0).then(|| self.used_now() as f64 / f64::from(self.limit))
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    pub(crate) fn reset_peak(&mut self, now: Instant) {
        self.settle(now);
        self.peak = self.used_now();
    }
}

/// Which of Graph's limits refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    ResourceUnits,
    Writes,
}

impl Limit {
    /// The `<Limit>` part of `x-ms-throttle-scope`: "ReadWrite: All Requests for the scope",
    /// "Write: Write requests for the scope"
    /// (<https://learn.microsoft.com/en-us/graph/throttling-limits#throttled-responses-requests>).
    pub(crate) fn scope_kind(self) -> &'static str {
        match self {
            Limit::ResourceUnits => "ReadWrite",
            Limit::Writes => "Write",
        }
    }

    /// `x-ms-throttle-information`: "ResourceUnitLimitExceeded", "WriteLimitExceeded" (same page).
    pub(crate) fn information(self) -> &'static str {
        match self {
            Limit::ResourceUnits => "ResourceUnitLimitExceeded",
            Limit::Writes => "WriteLimitExceeded",
        }
    }
}

/// A request that fits: what it cost and, when above [`LIMIT_PERCENTAGE_FROM`], the usage share
/// `x-ms-throttle-limit-percentage` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Admitted {
    pub(crate) cost_ru: u32,
    pub(crate) limit_percentage: Option<f64>,
}

/// A refused request: how long until it fits and which limit refused it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Refused {
    pub(crate) wait: Duration,
    pub(crate) limit: Limit,
}

/// The two budgets Graph applies per app and tenant, and the reports service's own.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) ru: Budget,
    pub(crate) writes: Budget,
    /// Requests to the identity and access reports (the registration report), counted apart
    /// from the resource units: a different service with its own limits (see
    /// [`crate::SimConfig::report_requests_per_window`]). Unlimited unless set.
    pub(crate) reports: Budget,
}

impl Throttle {
    pub(crate) fn new(
        model: ThrottleModel,
        ru_per_window: u32,
        window: Duration,
        writes_per_window: u32,
        write_window: Duration,
    ) -> Self {
        let now = Instant::now();
        Throttle {
            ru: Budget::new(model, ru_per_window, window, now),
            writes: Budget::new(model, writes_per_window, write_window, now),
            reports: Budget::new(
                ThrottleModel::SlidingWindow,
                0,
                Duration::from_secs(10),
                now,
            ),
        }
    }

    /// The reports budget: `limit` requests in any sliding `window` (0 = unlimited).
    pub(crate) fn with_reports(mut self, limit: u32, window: Duration) -> Self {
        self.reports = Budget::new(ThrottleModel::SlidingWindow, limit, window, Instant::now());
        self
    }

    /// Charges a request to the reports service, or tells how long until it would fit. A
    /// refused request is not charged, as on the other budgets.
    pub(crate) fn admit_report(&mut self, now: Instant) -> Result<(), Duration> {
        match self.reports.wait_for(now, 1) {
            None => {
                self.reports.charge(now, 1);
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }

    /// Charges a request or tells how long to wait (the later of the two budgets). A refused
    /// request is not charged ("Only the requests exceeding the limits will be throttled").
    pub(crate) fn admit(&mut self, now: Instant, is_write: bool) -> Result<Admitted, Refused> {
        let cost = if is_write {
            WRITE_COST_RU
        } else {
            READ_COST_RU
        };
        let ru_wait = self.ru.wait_for(now, cost);
        let write_wait = if is_write {
            self.writes.wait_for(now, 1)
        } else {
            None
        };
        match (ru_wait, write_wait) {
            (None, None) => {
                self.ru.charge(now, cost);
                let mut share = self.ru.share();
                if is_write {
                    self.writes.charge(now, 1);
                    share = match (share, self.writes.share()) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                Ok(Admitted {
                    cost_ru: cost,
                    limit_percentage: share
                        .filter(|s| *s > LIMIT_PERCENTAGE_FROM)
                        .map(|s| s.min(LIMIT_PERCENTAGE_MAX)),
                })
            }
            (ru, None) => Err(Refused {
                wait: ru.unwrap_or_default(),
                limit: Limit::ResourceUnits,
            }),
            (None, Some(w)) => Err(Refused {
                wait: w,
                limit: Limit::Writes,
            }),
            (Some(r), Some(w)) if r >= w => Err(Refused {
                wait: r,
                limit: Limit::ResourceUnits,
            }),
            (Some(_), Some(w)) => Err(Refused {
                wait: w,
                limit: Limit::Writes,
            }),
        }
    }
}

/// Formats a throttling wait as Graph's `Retry-After`: whole seconds, rounded up, at least 1
/// (see the module docs).
pub(crate) fn format_retry_after(wait: Duration) -> String {
    wait.as_micros().div_ceil(1_000_000).max(1).to_string()
}

/// Formats a fractional `Retry-After` (injected faults only, so a client's parsing of
/// fractions stays tested): milliseconds precision, at least 0.001, no trailing zeros.
pub(crate) fn format_fractional_retry_after(wait: Duration) -> String {
    let ms = wait.as_micros().div_ceil(1000).max(1);
    let secs = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        secs.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{secs}.{}", f.trim_end_matches('0'))
    }
}

/// Formats `x-ms-throttle-limit-percentage` ("0.85").
pub(crate) fn format_limit_percentage(share: f64) -> String {
    format!("{share:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(ru: u32, w: Duration, writes: u32, ww: Duration) -> Throttle {
        Throttle::new(ThrottleModel::SlidingWindow, ru, w, writes, ww)
    }

    fn bucket(ru: u32, w: Duration, writes: u32, ww: Duration) -> Throttle {
        Throttle::new(ThrottleModel::TokenBucket, ru, w, writes, ww)
    }

    #[test]
    fn window_fills_then_waits_until_the_oldest_leaves() {
        let mut t = window(3, Duration::from_millis(100), 0, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.admit(t0 + Duration::from_millis(i * 10), false).is_ok());
        }
        let refused = t
            .admit(t0 + Duration::from_millis(30), false)
            .expect_err("fourth read must be throttled");
        assert_eq!(refused.wait, Duration::from_millis(70));
        assert_eq!(refused.limit, Limit::ResourceUnits);
        assert!(t.admit(t0 + Duration::from_millis(100), false).is_ok());
        assert_eq!(t.ru.peak(), 3);
    }

    #[test]
    fn bucket_spends_its_capacity_then_refills_continuously() {
        // 10 RU per second: capacity 10, one unit back every 100 ms.
        let t0 = Instant::now();
        let mut t = bucket(10, Duration::from_secs(1), 0, Duration::from_secs(1));
        for _ in 0..10 {
            assert!(t.admit(t0, false).is_ok());
        }
        let refused = t.admit(t0, false).expect_err("bucket empty");
        assert_eq!(refused.wait, Duration::from_millis(100));
        // Half a unit back after 50 ms: a read (1 RU) still waits 50 ms more.
        let refused = t
            .admit(t0 + Duration::from_millis(50), false)
            .expect_err("half a token");
        assert!(
            refused.wait.abs_diff(Duration::from_millis(50)) < Duration::from_micros(10),
            "{refused:?}"
        );
        assert!(t.admit(t0 + Duration::from_millis(100), false).is_ok());
        // Unlike a window, the bucket does not give a whole budget back at once: 300 ms later
        // three units have come back, not ten.
        let later = t0 + Duration::from_millis(400);
        for _ in 0..3 {
            assert!(t.admit(later, false).is_ok());
        }
        assert!(t.admit(later, false).is_err());
        // It never holds more than its capacity.
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(t.admit(much_later, false).is_ok());
        }
        assert!(t.admit(much_later, false).is_err());
        assert_eq!(t.ru.peak(), 10);
    }

    #[test]
    fn writes_cost_two_units_and_one_write_on_both_models() {
        for model in [ThrottleModel::SlidingWindow, ThrottleModel::TokenBucket] {
            let t0 = Instant::now();
            let mut t = Throttle {
                ru: Budget::new(model, 5, Duration::from_secs(1), t0),
                writes: Budget::new(model, 2, Duration::from_secs(10), t0),
                reports: Budget::new(model, 0, Duration::from_secs(10), t0),
            };
            assert_eq!(t.admit(t0, true).map(|a| a.cost_ru), Ok(2));
            assert!(t.admit(t0, true).is_ok());
            assert_eq!(t.ru.in_use(t0), 4, "{model:?}");
            // RU budget still has 1 unit but the write budget is spent.
            let refused = t.admit(t0, true).expect_err("write budget exhausted");
            assert_eq!(refused.limit, Limit::Writes, "{model:?}");
            let expected = match model {
                ThrottleModel::SlidingWindow => Duration::from_secs(10),
                // Two writes per 10 s come back at one per 5 s.
                ThrottleModel::TokenBucket => Duration::from_secs(5),
            };
            assert_eq!(refused.wait, expected, "{model:?}");
            assert_eq!(t.admit(t0, false).map(|a| a.cost_ru), Ok(1));
            assert_eq!(
                t.admit(t0, false).map_err(|r| r.limit),
                Err(Limit::ResourceUnits)
            );
        }
    }

    #[test]
    fn limit_percentage_only_above_four_fifths() {
        for model in [ThrottleModel::SlidingWindow, ThrottleModel::TokenBucket] {
            let t0 = Instant::now();
            let mut t = Throttle {
                ru: Budget::new(model, 10, Duration::from_secs(1000), t0),
                writes: Budget::new(model, 0, Duration::from_secs(1), t0),
                reports: Budget::new(model, 0, Duration::from_secs(10), t0),
            };
            let shares: Vec<Option<f64>> = (0..10)
                .map(|_| t.admit(t0, false).expect("fits").limit_percentage)
                .collect();
            assert_eq!(
                shares,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(0.9),
                    Some(1.0)
                ],
                "{model:?}"
            );
        }
        assert_eq!(format_limit_percentage(0.9), "0.90");
    }

    #[test]
    fn zero_limit_is_unlimited() {
        for model in [ThrottleModel::SlidingWindow, ThrottleModel::TokenBucket] {
            let mut t = Throttle::new(
                model,
                0,
                Duration::from_millis(10),
                0,
                Duration::from_millis(10),
            );
            let t0 = Instant::now();
            for _ in 0..10_000 {
                assert_eq!(
                    t.admit(t0, true).map(|a| a.limit_percentage),
                    Ok(None),
                    "{model:?}"
                );
            }
        }
    }

    #[test]
    fn reports_are_five_in_any_ten_seconds_apart_from_the_units() {
        let t0 = Instant::now();
        let mut t = bucket(10, Duration::from_secs(1), 0, Duration::from_secs(1))
            .with_reports(5, Duration::from_secs(10));
        for i in 0..5 {
            assert!(t.admit_report(t0 + Duration::from_millis(i * 100)).is_ok());
        }
        // The sixth waits until the first leaves the window: 10 s after it.
        let wait = t
            .admit_report(t0 + Duration::from_millis(500))
            .expect_err("a sixth in 10 s");
        assert_eq!(wait, Duration::from_millis(9_500));
        assert_eq!(format_retry_after(wait), "10");
        // The resource units are untouched.
        assert!(t.admit(t0, false).is_ok());
        assert_eq!(t.ru.in_use(t0), 1);
        assert!(t.admit_report(t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(format_retry_after(Duration::ZERO), "1");
        assert_eq!(format_retry_after(Duration::from_millis(350)), "1");
        assert_eq!(format_retry_after(Duration::from_secs(1)), "1");
        assert_eq!(format_retry_after(Duration::from_micros(1_000_001)), "2");
        assert_eq!(format_retry_after(Duration::from_millis(7250)), "8");
    }

    #[test]
    fn fractional_retry_after_format() {
        assert_eq!(
            format_fractional_retry_after(Duration::from_millis(350)),
            "0.35"
        );
        assert_eq!(format_fractional_retry_after(Duration::from_secs(2)), "2");
        assert_eq!(format_fractional_retry_after(Duration::ZERO), "0.001");
        assert_eq!(
            format_fractional_retry_after(Duration::from_millis(1050)),
            "1.05"
        );
    }
}
