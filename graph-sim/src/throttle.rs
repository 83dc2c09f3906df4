//! Sliding-window budgets: resource units for every Graph request and a separate write budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Resource units charged for a read (GET).
pub const READ_COST_RU: u32 = 1;
/// Resource units charged for a write (POST, PATCH, DELETE, including SMS sign-in actions).
pub const WRITE_COST_RU: u32 = 2;

/// One budget: at most `limit` units inside any sliding `window` (`limit == 0`: unlimited).
#[derive(Debug)]
pub(crate) struct SlidingBudget {
    limit: u32,
    window: Duration,
    log: VecDeque<(Instant, u32)>,
    used: u64,
    peak: u64,
}

impl SlidingBudget {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        SlidingBudget {
            limit,
            window,
            log: VecDeque::new(),
            used: 0,
            peak: 0,
        }
    }

    pub(crate) fn reconfigure(&mut self, limit: u32, window: Duration) {
        self.limit = limit;
        self.window = window;
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, cost)) = self.log.front() {
            if t + self.window <= now {
                self.used -= u64::from(cost);
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// `None` when `cost` fits now, else how long until enough units leave the window.
    fn wait_for(&mut self, now: Instant, cost: u32) -> Option<Duration> {
        self.expire(now);
        let limit = u64::from(self.limit);
        let cost = u64::from(cost);
        if self.limit == 0 || self.used + cost <= limit {
            return None;
        }
        let mut remaining = self.used;
        for &(t, c) in &self.log {
            remaining -= u64::from(c);
            if remaining + cost <= limit {
                return Some((t + self.window).saturating_duration_since(now));
            }
        }
        // The cost alone exceeds the limit: it can never fit; ask for a whole window.
        Some(self.window)
    }

    fn charge(&mut self, now: Instant, cost: u32) {
        if self.limit == 0 {
            // Unlimited: keep totals for the peak statistic without growing the log forever.
            self.expire(now);
        }
        self.log.push_back((now, cost));
        self.used += u64::from(cost);
        self.peak = self.peak.max(self.used);
    }

    pub(crate) fn in_window(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.used
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    pub(crate) fn reset_peak(&mut self, now: Instant) {
        self.expire(now);
        self.peak = self.used;
    }
}

/// The two budgets Graph applies per app and tenant.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) ru: SlidingBudget,
    pub(crate) writes: SlidingBudget,
}

impl Throttle {
    pub(crate) fn new(
        ru_per_window: u32,
        window: Duration,
        writes_per_window: u32,
        write_window: Duration,
    ) -> Self {
        Throttle {
            ru: SlidingBudget::new(ru_per_window, window),
            writes: SlidingBudget::new(writes_per_window, write_window),
        }
    }

    /// Charges a request or tells how long to wait (the later of the two budgets). A refused
    /// request is not charged.
    pub(crate) fn admit(&mut self, now: Instant, is_write: bool) -> Result<(), Duration> {
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
                if is_write {
                    self.writes.charge(now, 1);
                }
                Ok(())
            }
            (a, b) => Err(a.unwrap_or_default().max(b.unwrap_or_default())),
        }
    }
}

/// Formats a wait as Graph's `Retry-After` seconds: milliseconds precision, at least 0.001,
/// no trailing zeros ("0.35", "2", "0.001").
pub(crate) fn format_retry_after(wait: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fill_the_budget_then_wait_until_the_oldest_leaves() {
        let mut t = Throttle::new(3, Duration::from_millis(100), 0, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.admit(t0 + Duration::from_millis(i * 10), false).is_ok());
        }
        let wait = t
            .admit(t0 + Duration::from_millis(30), false)
            .expect_err("fourth read must be throttled");
        assert_eq!(wait, Duration::from_millis(70));
        assert!(t.admit(t0 + Duration::from_millis(100), false).is_ok());
        assert_eq!(t.ru.peak(), 3);
    }

    #[test]
    fn writes_cost_two_units_and_one_write() {
        let mut t = Throttle::new(5, Duration::from_secs(1), 2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(t.admit(t0, true).is_ok());
        assert!(t.admit(t0, true).is_ok());
        assert_eq!(t.ru.in_window(t0), 4);
        // RU budget still has 1 unit but the write budget is spent for 10 s.
        let wait = t.admit(t0, true).expect_err("write budget exhausted");
        assert_eq!(wait, Duration::from_secs(10));
        assert!(t.admit(t0, false).is_ok());
        assert!(t.admit(t0, false).is_err());
    }

    #[test]
    fn zero_limit_is_unlimited() {
        let mut t = Throttle::new(0, Duration::from_millis(10), 0, Duration::from_millis(10));
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(t.admit(t0, true).is_ok());
        }
    }

    #[test]
    fn retry_after_format() {
        assert_eq!(format_retry_after(Duration::from_millis(350)), "0.35");
        assert_eq!(format_retry_after(Duration::from_secs(2)), "2");
        assert_eq!(format_retry_after(Duration::ZERO), "0.001");
        assert_eq!(
            format_retry_after(Duration::from_micros(1_000_001)),
            "1.001"
        );
        assert_eq!(format_retry_after(Duration::from_millis(1050)), "1.05");
    }
}
