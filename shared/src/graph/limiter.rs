//! Adaptive admission shared by every task using one [`crate::graph::GraphClient`].
//!
//! Graph's budget is not hard-coded (README, "Performance"): the limiter finds it from 429s and
//! `Retry-After`. Two mechanisms work together:
//!
//! 1. **Concurrency (AIMD)**, in the manner of TCP congestion control: above the threshold each
//!    success raises the limit on requests in flight by `increase / limit` (about `increase` per
//!    round trip); a 429 sets the threshold to `decrease` x the limit and (with `slow_start`)
//!    restarts from `min`, doubling per round trip back to the threshold. One cut per congestion
//!    event: answers to requests sent before the last cut neither cut nor grow it.
//! 2. **A learned sliding window.** Graph budgets are "N units per window". At the first 429 the
//!    limiter learns the window from `Retry-After` (the oldest request still counted was sent
//!    `now + Retry-After - window` ago: for a first fill, at the start) and the budget from the
//!    requests it sees charged in that window. From then on it admits a request only while its
//!    own count of charged requests in the last window is under the learned budget, so it sends
//!    at the rate the server's window frees instead of probing into it; every later 429
//!    re-measures the budget, and the budget grows by `probe_growth` per window without 429s.
//!
//! Any 429's `Retry-After` also pauses *all* tasks until it has elapsed.

use std::collections::VecDeque;
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
    /// Multiplicative cut on a 429 (0.8 = keep four fifths as the new threshold).
    pub decrease: f64,
    /// Additive growth per round trip's worth of successes.
    pub increase: f64,
    /// After a 429, restart from `min` and double per round trip up to the threshold (true), or
    /// continue additively from the threshold (false).
    pub slow_start: bool,
    /// Learn the budget window from `Retry-After` and pace to it (see the module docs).
    pub learn_window: bool,
    /// Growth of the learned budget per window without a 429 (0.02 = 2 %).
    pub probe_growth: f64,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            initial: 8,
            min: 1,
            max: 256,
            decrease: 0.8,
            increase: 0.5,
            slow_start: true,
            learn_window: true,
            probe_growth: 0.02,
        }
    }
}

/// Shortest and longest window the limiter will believe.
const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(600);
/// Margin kept under a measured budget.
const BUDGET_MARGIN: f64 = 0.98;
/// Share of the learned budget that must have been answered in the window for a 429 to
/// re-measure the budget (see [`learn`]).
const REMEASURE_SHARE: f64 = 0.9;

#[derive(Debug, Clone, Copy)]
struct Model {
    window: Duration,
    budget: f64,
    grown_at: Instant,
}

#[derive(Debug)]
struct State {
    limit: f64,
    threshold: f64,
    in_flight: usize,
    paused_until: Option<Instant>,
    epoch: u64,
    cuts: u64,
    /// Send times of requests the server charged (or may charge: those in flight), oldest first.
    sends: VecDeque<Instant>,
    model: Option<Model>,
}

impl State {
    fn horizon(&self) -> Duration {
        self.model.map(|m| m.window).unwrap_or(MAX_WINDOW)
    }

    fn prune(&mut self, now: Instant) {
        let h = self.horizon();
        while self
            .sends
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= h)
        {
            self.sends.pop_front();
        }
        // Bound memory whatever happens.
        while self.sends.len() > 1_000_000 {
            self.sends.pop_front();
        }
    }

    fn forget_send(&mut self, sent: Instant) {
        // Sends are pushed in time order: find this one (or an equal instant) and drop it.
        let i = self.sends.partition_point(|t| *t < sent);
        if self.sends.get(i) == Some(&sent) {
            self.sends.remove(i);
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct AdaptiveLimiter {
    cfg: LimiterConfig,
    state: Mutex<State>,
    notify: Notify,
}

/// A slot for one request; report how it went with [`Permit::success`] /
/// [`Permit::throttled`], or drop it (neutral: the request counts as charged).
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a AdaptiveLimiter,
    epoch: u64,
    sent: Instant,
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
    /// The learned budget window, once a 429 taught it.
    pub learned_window: Option<Duration>,
    /// The learned budget, in requests per window.
    pub learned_budget: Option<f64>,
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
        if cfg.probe_growth.is_nan() || cfg.probe_growth < 0.0 {
            cfg.probe_growth = 0.02;
        }
        AdaptiveLimiter {
            state: Mutex::new(State {
                limit: cfg.initial as f64,
                threshold: cfg.initial as f64,
                in_flight: 0,
                paused_until: None,
                epoch: 0,
                cuts: 0,
                sends: VecDeque::new(),
                model: None,
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
            learned_window: s.model.map(|m| m.window),
            learned_budget: s.model.map(|m| m.budget),
        }
    }

    /// Waits until no pause is in force, the learned window has room and a slot is free.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.paused_until {
                    Some(t) if t > now => Some(t - now),
                    _ => {
                        s.paused_until = None;
                        s.prune(now);
                        let counted = s.sends.len() as f64;
                        let oldest = s.sends.front().copied();
                        let window_wait = match s.model.as_mut() {
                            Some(m) => {
                                // Probe: let the budget grow slowly while no 429 comes.
                                let dt = now.saturating_duration_since(m.grown_at);
                                m.budget *= 1.0
                                    + self.cfg.probe_growth * dt.as_secs_f64()
                                        / m.window.as_secs_f64();
                                m.grown_at = now;
                                let w = m.window;
                                if counted >= m.budget.max(1.0) {
                                    // Full: wait for the oldest counted send to leave the window.
                                    oldest.map(|t| {
                                        (t + w)
                                            .saturating_duration_since(now)
                                            .max(Duration::from_millis(1))
                                    })
                                } else {
                                    None
                                }
                            }
                            None => None,
                        };
                        match window_wait {
                            Some(d) => Some(d),
                            None if (s.in_flight as f64) < s.limit.floor().max(1.0) => {
                                s.in_flight += 1;
                                s.sends.push_back(now);
                                return Permit {
                                    limiter: self,
                                    epoch: s.epoch,
                                    sent: now,
                                    released: false,
                                };
                            }
                            None => None,
                        }
                    }
                }
            };
            match wait {
                Some(d) => {
                    // Wake early if a slot frees up for another reason (a 429 forgets a send).
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = notified => {}
                    }
                }
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
            // Requests sent before the last cut say nothing about the new limit.
            let step = if self.epoch != s.epoch {
                0.0
            } else if s.limit < s.threshold {
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

    /// The request got 429: pause everyone for `retry_after` (if given), cut the limit, and
    /// learn or re-measure the budget window.
    pub fn throttled(mut self, retry_after: Option<Duration>) {
        let l = self.limiter;
        {
            let mut s = l.lock();
            l.release(&mut s);
            // Not charged by the server.
            s.forget_send(self.sent);
            let now = Instant::now();
            if let Some(ra) = retry_after {
                let until = now + ra;
                if s.paused_until.is_none_or(|t| t < until) {
                    s.paused_until = Some(until);
                }
            }
            if self.epoch == s.epoch {
                s.threshold = (s.limit * l.cfg.decrease).max(l.cfg.min as f64);
                s.limit = if l.cfg.slow_start {
                    l.cfg.min as f64
                } else {
                    s.threshold
                };
                s.epoch += 1;
                s.cuts += 1;
                if l.cfg.learn_window {
                    learn(&mut s, now, retry_after);
                }
            }
        }
        self.released = true;
        l.notify.notify_waiters();
    }
}

/// At a 429 the server's window is full: what we count as charged in it is the budget.
///
/// A later 429 re-measures the budget only when our own count shows that the window was full by
/// the learned budget (at least [`REMEASURE_SHARE`] of it answered in the window). A 429 that
/// comes while we were sending well below our own budget (just after a pause, in a lull, or for
/// a reason other than this budget) says nothing about the budget's size: taking that low count
/// as the budget would ratchet the pace down with every sporadic 429, to a trickle that the slow
/// probe growth takes many windows to undo. Such a 429 still cuts the concurrency and pauses for
/// its `Retry-After`.
fn learn(s: &mut State, now: Instant, retry_after: Option<Duration>) {
    let first = s.model.is_none();
    if first {
        let (Some(ra), Some(oldest)) = (retry_after, s.sends.front().copied()) else {
            return;
        };
        let window = (now + ra).saturating_duration_since(oldest);
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
            return;
        }
        s.model = Some(Model {
            window,
            budget: 0.0,
            grown_at: now,
        });
    }
    s.prune(now);
    // Requests still in flight may be refused too; count only those answered.
    let charged = s.sends.len().saturating_sub(s.in_flight) as f64;
    if let Some(m) = s.model.as_mut() {
        if first || charged >= m.budget * REMEASURE_SHARE {
            m.budget = (charged * BUDGET_MARGIN).max(1.0);
        }
        m.grown_at = now;
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
            slow_start: true,
            learn_window: false,
            probe_growth: 0.0,
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
    async fn old_epoch_successes_do_not_grow_the_limit() {
        let l = AdaptiveLimiter::new(cfg(4));
        let old = l.acquire().await;
        l.acquire().await.throttled(None);
        assert_eq!(l.snapshot().limit, 1.0);
        old.success();
        assert_eq!(l.snapshot().limit, 1.0);
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

    #[tokio::test]
    async fn learns_the_window_and_budget_from_retry_after() {
        let l = AdaptiveLimiter::new(LimiterConfig {
            learn_window: true,
            max: 100,
            initial: 100,
            ..cfg(100)
        });
        // 20 requests charged, then a 429 saying the oldest leaves in ~1.2 s.
        let start = Instant::now();
        for _ in 0..20 {
            l.acquire().await.success();
        }
        l.acquire()
            .await
            .throttled(Some(Duration::from_millis(1200)));
        let s = l.snapshot();
        let w = s.learned_window.expect("window learned");
        assert!(
            w >= Duration::from_millis(1150) && w <= start.elapsed() + Duration::from_millis(1250),
            "{w:?}"
        );
        let b = s.learned_budget.expect("budget learned");
        assert!((b - 20.0 * BUDGET_MARGIN).abs() < 1e-9, "{b}");
        // After the pause the window is still full: the next request waits for the oldest
        // charged send to leave it (about the learned window after the first send).
        let t = Instant::now();
        let _p = l.acquire().await;
        assert!(
            t.elapsed() >= Duration::from_millis(1100),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn a_429_while_under_the_learned_budget_does_not_shrink_it() {
        let l = AdaptiveLimiter::new(LimiterConfig {
            learn_window: true,
            max: 100,
            initial: 100,
            ..cfg(100)
        });
        for _ in 0..20 {
            l.acquire().await.success();
        }
        l.acquire()
            .await
            .throttled(Some(Duration::from_millis(1200)));
        let learned = l.snapshot().learned_budget.expect("budget learned");
        let window = l.snapshot().learned_window.expect("window learned");
        // Once the window has emptied, a sporadic 429 after two requests: not a full window.
        tokio::time::sleep(window + Duration::from_millis(100)).await;
        for _ in 0..2 {
            l.acquire().await.success();
        }
        l.acquire().await.throttled(None);
        assert_eq!(l.snapshot().learned_budget, Some(learned));
        assert_eq!(l.snapshot().cuts, 2, "it still cuts the concurrency");
        // A 429 when the window holds (nearly) the budget re-measures it.
        for _ in 0..17 {
            l.acquire().await.success();
        }
        l.acquire().await.throttled(None);
        let b = l.snapshot().learned_budget.expect("budget");
        assert!((b - 19.0 * BUDGET_MARGIN).abs() < 1e-9, "{b}");
    }
}
