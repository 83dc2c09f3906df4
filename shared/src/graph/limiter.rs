//! Adaptive concurrency shared by every task using one [`crate::graph::GraphClient`].
//!
//! Graph's budget is not hard-coded (SPEC section 7): the limiter finds it. It is an AIMD limit
//! on requests in flight, in the manner of TCP congestion control:
//! - above the threshold each success raises the limit by `increase / limit` (about `increase`
//!   per round trip);
//! - a 429 sets the threshold to `decrease` x the limit and restarts from `min` (once per
//!   congestion event: 429s of requests sent before the last cut do not cut again), and its
//!   `Retry-After` pauses *all* tasks until it has elapsed, so everyone backs off together;
//! - after the pause the limit doubles per round trip (+1 per success) up to the threshold, so a
//!   herd of requests does not meet a window that has only just begun to free.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Tuning of [`AdaptiveLimiter`].
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterConfig {
    /// Requests in flight at start.
    pub initial: usize,
    /// Never fewer in flight than this.
    pub min: usize,
    /// Never more in flight than this.
    pub max: usize,
    /// Multiplicative cut on a 429 (0.75 = keep three quarters).
    pub decrease: f64,
    /// Additive growth per round trip's worth of successes.
    pub increase: f64,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            initial: 8,
            min: 1,
            max: 256,
            decrease: 0.8,
            increase: 1.0,
        }
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    threshold: f64,
    in_flight: usize,
    paused_until: Option<Instant>,
    epoch: u64,
    cuts: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct AdaptiveLimiter {
    cfg: LimiterConfig,
    state: Mutex<State>,
    notify: Notify,
}

/// A slot for one request; report how it went with [`Permit::success`] /
/// [`Permit::throttled`], or drop it (neutral).
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a AdaptiveLimiter,
    epoch: u64,
    released: bool,
}

/// A snapshot for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimiterSnapshot {
    pub limit: f64,
    /// Below it the limit grows by one per success (slow start); above, additively.
    pub threshold: f64,
    pub in_flight: usize,
    pub paused_for: Duration,
    pub cuts: u64,
}

impl AdaptiveLimiter {
    pub fn new(cfg: LimiterConfig) -> AdaptiveLimiter {
        let mut cfg = cfg;
        cfg.min = cfg.min.max(1);
        cfg.max = cfg.max.max(cfg.min);
        cfg.initial = cfg.initial.clamp(cfg.min, cfg.max);
        if cfg.decrease.is_nan() || cfg.decrease <= 0.0 || cfg.decrease >= 1.0 {
            cfg.decrease = 0.8;
        }
        if cfg.increase.is_nan() || cfg.increase <= 0.0 {
            cfg.increase = 1.0;
        }
        AdaptiveLimiter {
            state: Mutex::new(State {
                limit: cfg.initial as f64,
                threshold: cfg.initial as f64,
                in_flight: 0,
                paused_until: None,
                epoch: 0,
                cuts: 0,
            }),
            cfg,
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> LimiterSnapshot {
        let s = self.lock();
        let now = Instant::now();
        LimiterSnapshot {
            limit: s.limit,
            threshold: s.threshold,
            in_flight: s.in_flight,
            paused_for: s
                .paused_until
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::ZERO),
            cuts: s.cuts,
        }
    }

    /// Waits until no pause is in force and a slot is free.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.paused_until {
                    Some(t) if t > now => Some(t - now),
                    _ => {
                        s.paused_until = None;
                        if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                            s.in_flight += 1;
                            return Permit {
                                limiter: self,
                                epoch: s.epoch,
                                released: false,
                            };
                        }
                        None
                    }
                }
            };
            match pause {
                Some(d) => tokio::time::sleep(d).await,
                None => notified.await,
            }
        }
    }

    fn release(&self, s: &mut State) {
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

impl Permit<'_> {
    /// The request succeeded (or failed for a reason unrelated to load): grow the limit.
    pub fn success(mut self) {
        let l = self.limiter;
        let grew = {
            let mut s = l.lock();
            l.release(&mut s);
            let before = s.limit.floor();
            let step = if s.limit < s.threshold {
                1.0
            } else {
                l.cfg.increase / s.limit.max(1.0)
            };
            s.limit = (s.limit + step).min(l.cfg.max as f64);
            s.limit.floor() > before
        };
        self.released = true;
        if grew {
            l.notify.notify_waiters();
        } else {
            l.notify.notify_one();
        }
    }

    /// The request got 429: pause everyone for `retry_after` (if given) and cut the limit.
    pub fn throttled(mut self, retry_after: Option<Duration>) {
        let l = self.limiter;
        {
            let mut s = l.lock();
            l.release(&mut s);
            if let Some(ra) = retry_after {
                let until = Instant::now() + ra;
                if s.paused_until.is_none_or(|t| t < until) {
                    s.paused_until = Some(until);
                }
            }
            if self.epoch == s.epoch {
                s.threshold = (s.limit * l.cfg.decrease).max(l.cfg.min as f64);
                s.limit = l.cfg.min as f64;
                s.epoch += 1;
                s.cuts += 1;
            }
        }
        self.released = true;
        l.notify.notify_one();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.released {
            let mut s = self.limiter.lock();
            self.limiter.release(&mut s);
            drop(s);
            self.limiter.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cfg(initial: usize) -> LimiterConfig {
        LimiterConfig {
            initial,
            min: 1,
            max: 10,
            decrease: 0.5,
            increase: 1.0,
        }
    }

    #[tokio::test]
    async fn limits_in_flight_and_wakes_waiters() {
        let l = Arc::new(AdaptiveLimiter::new(cfg(2)));
        let a = l.acquire().await;
        let _b = l.acquire().await;
        assert_eq!(l.snapshot().in_flight, 2);
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let _p = l2.acquire().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a third request must wait");
        drop(a);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("waiter woken")
            .unwrap();
    }

    #[tokio::test]
    async fn grows_additively_and_cuts_once_per_event() {
        let l = AdaptiveLimiter::new(cfg(2));
        for _ in 0..4 {
            l.acquire().await.success();
        }
        // +1/2 per success at limit 2, then +1/3 ...
        let grown = l.snapshot().limit;
        assert!(grown > 3.0 && grown < 4.0, "{grown}");
        // Two requests in flight from the same epoch both get 429: one cut only.
        let p1 = l.acquire().await;
        let p2 = l.acquire().await;
        p1.throttled(None);
        p2.throttled(None);
        let after = l.snapshot();
        assert!((after.threshold - grown * 0.5).abs() < 1e-9, "{after:?}");
        assert_eq!(after.limit, 1.0);
        assert_eq!(after.cuts, 1);
        assert_eq!(after.in_flight, 0);
        // Slow start back up to the threshold (+1 per success), then additive again.
        l.acquire().await.success();
        assert_eq!(l.snapshot().limit, 2.0);
        for _ in 0..5 {
            l.acquire().await.success();
        }
        let s = l.snapshot();
        assert!(s.limit > s.threshold && s.limit < 4.0, "{s:?}");
        // Never below min.
        for _ in 0..10 {
            l.acquire().await.throttled(None);
        }
        assert_eq!(l.snapshot().limit, 1.0);
        assert_eq!(l.snapshot().threshold, 1.0);
    }

    #[tokio::test]
    async fn retry_after_pauses_everyone() {
        let l = AdaptiveLimiter::new(cfg(4));
        l.acquire()
            .await
            .throttled(Some(Duration::from_millis(150)));
        assert!(l.snapshot().paused_for > Duration::from_millis(100));
        let start = Instant::now();
        let _p = l.acquire().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(140), "{waited:?}");
    }
}
