//! Adaptive admission shared by every task using one [`crate::graph::GraphClient`].
//!
//! Graph's budget is not hard-coded (README, "Performance"): the limiter finds it from Graph's answers.
//! It assumes nothing about how Graph counts (a token bucket, as Microsoft describes identity and
//! access throttling, or a window): only that Graph says when the budget is nearly or wholly spent,
//! and that other clients (other instances of this engine, other apps) may spend the same budget.
//! Three mechanisms work together:
//!
//! 1. **Concurrency (AIMD)**, in the manner of TCP congestion control: above the threshold each
//!    success raises the limit on requests in flight by `increase / limit` (about `increase` per
//!    round trip); a 429 sets the threshold to `decrease` x the limit and (with `slow_start`)
//!    restarts from `min`, doubling per round trip back to the threshold (and from the start,
//!    with `initial_slow_start`, doubling from `initial` until the first 429). One cut per congestion
//!    event: answers to requests sent before the last cut neither cut nor grow it. The limit only
//!    grows on answers to requests sent while at least half of it was in use (RFC 7661's test of
//!    a validated congestion window): a limit the engine is not using says nothing.
//! 2. **A pace** (requests per second), learned at Graph's first signal: a 429, or the first
//!    answer carrying `x-ms-throttle-limit-percentage` (Graph sends it from 0.8 of a limit on),
//!    which starts the pace at under half the rate answered. From then on requests are sent no
//!    faster than the pace. The signals move it once per round trip (an *epoch*):
//!    - a 429 cuts it to `pace_decrease` x the lower of the pace and the rate actually answered in
//!      the last second. A 429 while our own rate is below the pace means the budget is shared
//!      (other instances joined): the pace shrinks to what we really got. Each further 429 to a
//!      request that was already in flight takes its share off the pace, so that it ends at
//!      about the share of those requests Graph admitted. The pace then resumes
//!      no lower than what Graph admitted over the whole cycle, from the last resume to the next
//!      (the pause now due included), once that cycle is 2 s or more: a budget that comes back in
//!      chunks (a window: the cycle is then about its length) is spent at the rate it comes
//!      back, not probed for again from a fraction of it;
//!    - `x-ms-throttle-limit-percentage` at or above `slow_down_at` and rising (or nearly 1) cuts
//!      it by up to `PERCENTAGE_CUT` (in proportion to the share of such answers in the epoch),
//!      before any 429;
//!    - an epoch without either, in which the pace held requests back, grows it by `probe_growth`
//!      x the pace plus `PROBE_STEP` per second (the additive part lets instances that share a
//!      budget draw level). A pace the engine is not using does not grow.
//! 3. **`Retry-After`** (whole seconds, as Graph sends it; fractions and dates are accepted too)
//!    pauses *all* tasks until it has elapsed.

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
    /// Multiplicative cut of the concurrency on a 429 (0.8 = keep four fifths as the threshold).
    pub decrease: f64,
    /// Additive growth per round trip's worth of successes.
    pub increase: f64,
    /// After a 429, restart from `min` and double per round trip up to the threshold (true), or
    /// continue additively from the threshold (false).
    pub slow_start: bool,
    /// Before the first 429, double per round trip from `initial` (true), or grow additively
    /// from the start (false).
    pub initial_slow_start: bool,
    /// Learn a pace from Graph's signals and send no faster (see the module docs).
    pub pace: bool,
    /// Cut of the pace on a 429 (0.7 = seven tenths of the rate Graph answered).
    pub pace_decrease: f64,
    /// Growth of the pace per second while it holds requests back (0.1 = 10 % per second).
    pub probe_growth: f64,
    /// `x-ms-throttle-limit-percentage` from which the pace slows down (Graph sends the header
    /// above 0.8 of a limit).
    pub slow_down_at: f64,
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
            initial_slow_start: true,
            pace: true,
            pace_decrease: 0.7,
            probe_growth: 0.1,
            slow_down_at: 0.9,
        }
    }
}

/// How far back the answered rate is measured.
const MEASURE_SPAN: Duration = Duration::from_secs(1);
/// The shortest time the answered rate is measured over.
const MIN_MEASURE: Duration = Duration::from_millis(20);
/// Shortest epoch of the pace (at least one round trip too).
const MIN_EPOCH: Duration = Duration::from_millis(100);
/// Largest cut of the pace per epoch from `x-ms-throttle-limit-percentage`.
const PERCENTAGE_CUT: f64 = 0.06;
/// From this usage share on, the pace slows down even when the share is not rising.
const NEARLY_SPENT: f64 = 0.99;
/// Sends the pace lets go early, so timer granularity does not slow it down.
const PACE_SLACK: Duration = Duration::from_millis(20);
/// A cycle (resume to resume) from which the pace after a 429 is at least what Graph admitted
/// over it.
const LONG_CYCLE: Duration = Duration::from_secs(2);
/// Share of that cycle's rate the pace resumes at.
const GOODPUT_MARGIN: f64 = 0.95;
/// Additive growth of the pace, in requests per second per second (see [`steer`]).
const PROBE_STEP: f64 = 40.0;
/// The slowest pace, in requests per second.
const MIN_PACE: f64 = 1.0;
/// Graph adds `x-ms-throttle-limit-percentage` from this share of a limit on.
const HEADER_FROM: f64 = 0.8;
/// The 429s of one congestion event take the pace down to this share of its cut at most.
const MAX_SHRINK: f64 = 0.25;

#[derive(Debug)]
struct Pace {
    /// Requests per second.
    rate: f64,
    /// The next free send time.
    next_at: Instant,
    epoch: u64,
    epoch_started: Instant,
    /// Answers in this epoch, those with the percentage at or above `slow_down_at`, and the
    /// highest percentage seen.
    answers: u32,
    marked: u32,
    highest: Option<f64>,
    /// The highest percentage of the last epoch that had one.
    last_highest: Option<f64>,
    /// The pace held a request back in this epoch.
    limited: bool,
    /// At the last 429 cut: the new rate and the requests then in flight. Each of those that
    /// comes back 429 too takes its share off the rate, so the pace ends at about the share of
    /// them Graph admitted.
    cut_rate: f64,
    cut_in_flight: usize,
    /// This epoch follows a 429 cut: a nearly spent budget is expected and cuts nothing more.
    after_429: bool,
    /// When the pace resumed after the last 429 cut (the start of a cycle), and the answers
    /// counted until then.
    cycle_start: Instant,
    answers_at_cycle_start: u64,
    /// The pace the 429s of one event cannot go below.
    shrink_floor: f64,
}

impl Pace {
    fn new(rate: f64, now: Instant) -> Pace {
        Pace {
            rate: rate.max(MIN_PACE),
            next_at: now,
            epoch: 0,
            epoch_started: now,
            answers: 0,
            marked: 0,
            highest: None,
            last_highest: None,
            limited: false,
            cut_rate: rate,
            cut_in_flight: 1,
            after_429: false,
            cycle_start: now,
            answers_at_cycle_start: 0,
            shrink_floor: MIN_PACE,
        }
    }

    /// The rate was just set by a 429: the pace resumes at `resume`, a new cycle starts there
    /// (`answers` counted so far), and the requests now in flight may take it down to `floor`
    /// (or a share of the new rate) at most.
    fn cut_by_429(&mut self, floor: f64, resume: Instant, in_flight: usize, answers: u64) {
        self.next_at = resume;
        self.cut_rate = self.rate;
        self.cut_in_flight = in_flight;
        self.after_429 = true;
        self.cycle_start = resume;
        self.answers_at_cycle_start = answers;
        self.shrink_floor = floor.max(self.rate * MAX_SHRINK);
    }

    fn next_epoch(&mut self, now: Instant) {
        self.epoch += 1;
        self.epoch_started = now;
        self.answers = 0;
        self.marked = 0;
        self.last_highest = self.highest;
        self.highest = None;
        self.limited = false;
        self.after_429 = false;
    }
}

#[derive(Debug)]
struct State {
    limit: f64,
    threshold: f64,
    in_flight: usize,
    paused_until: Option<Instant>,
    /// The last pause, for measuring the answered rate over unpaused time only.
    last_pause: Option<(Instant, Instant)>,
    epoch: u64,
    cuts: u64,
    started: Instant,
    /// When answers (other than 429) came, oldest first, over the last [`MEASURE_SPAN`].
    answered: VecDeque<Instant>,
    /// Answers (other than 429) so far.
    answers: u64,
    pace: Option<Pace>,
}

impl State {
    /// Answers per second over the last second of unpaused time (`None`: no answer yet).
    fn measured(&mut self, now: Instant) -> Option<f64> {
        let from = now.checked_sub(MEASURE_SPAN).unwrap_or(self.started);
        while self.answered.front().is_some_and(|t| *t < from) {
            self.answered.pop_front();
        }
        let from = from.max(self.started);
        let mut span = now.saturating_duration_since(from);
        if let Some((start, end)) = self.last_pause {
            let overlap = end.min(now).saturating_duration_since(start.max(from));
            span = span.saturating_sub(overlap);
        }
        // Right after the start or a pause there is little to go by: what came back over at
        // least MIN_MEASURE still counts, however short the time (a burst reads high, and the
        // cuts that follow correct it).
        (!self.answered.is_empty())
            .then(|| self.answered.len() as f64 / span.max(MIN_MEASURE).as_secs_f64())
    }

    fn pause(&mut self, now: Instant, ra: Duration) {
        let until = now + ra;
        if self.paused_until.is_none_or(|t| t < until) {
            self.paused_until = Some(until);
            let start = match self.last_pause {
                Some((s, e)) if e >= now => s,
                _ => now,
            };
            self.last_pause = Some((start, until));
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct AdaptiveLimiter {
    cfg: LimiterConfig,
    state: Mutex<State>,
    notify: Notify,
    /// Requests wait for the pace one at a time, in order.
    pace_gate: tokio::sync::Mutex<()>,
}

/// A slot for one request; report how it went with [`Permit::success`] /
/// [`Permit::answered`] / [`Permit::throttled`], or drop it (neutral).
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a AdaptiveLimiter,
    epoch: u64,
    pace_epoch: Option<u64>,
    sent: Instant,
    /// At least half the concurrency limit was in use when this request was sent: its answer
    /// may grow the limit.
    saturated: bool,
    released: bool,
}

/// What [`AdaptiveLimiter::acquire`] does next.
enum Next<'a> {
    Go(Permit<'a>),
    /// Wait for the pace's turn.
    Pace,
    Sleep(Duration),
    /// Wait for a slot to free up.
    Wait,
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
    /// The learned pace in requests per second, once Graph signalled its limit.
    pub pace: Option<f64>,
    /// Cuts of the pace so far (429s and `x-ms-throttle-limit-percentage`).
    pub pace_epochs: u64,
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
        if cfg.pace_decrease.is_nan() || cfg.pace_decrease <= 0.0 || cfg.pace_decrease >= 1.0 {
            cfg.pace_decrease = 0.7;
        }
        if cfg.increase.is_nan() || cfg.increase <= 0.0 {
            cfg.increase = 1.0;
        }
        if cfg.probe_growth.is_nan() || cfg.probe_growth < 0.0 {
            cfg.probe_growth = 0.1;
        }
        if cfg.slow_down_at.is_nan() || cfg.slow_down_at <= 0.0 {
            cfg.slow_down_at = 0.9;
        }
        let now = Instant::now();
        AdaptiveLimiter {
            state: Mutex::new(State {
                limit: cfg.initial as f64,
                threshold: if cfg.initial_slow_start {
                    cfg.max as f64
                } else {
                    cfg.initial as f64
                },
                in_flight: 0,
                paused_until: None,
                last_pause: None,
                epoch: 0,
                cuts: 0,
                started: now,
                answered: VecDeque::new(),
                answers: 0,
                pace: None,
            }),
            cfg,
            notify: Notify::new(),
            pace_gate: tokio::sync::Mutex::new(()),
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
            pace: s.pace.as_ref().map(|p| p.rate),
            pace_epochs: s.pace.as_ref().map(|p| p.epoch).unwrap_or(0),
        }
    }

    /// Waits until no pause is in force, the pace allows a send and a slot is free.
    pub async fn acquire(&self) -> Permit<'_> {
        // Whether this request has had its turn from the pace.
        let mut paced = false;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = self.try_admit(paced);
            match next {
                Next::Go(permit) => return permit,
                Next::Pace => {
                    // False when a pause began meanwhile: go round again.
                    paced = self.pace_turn().await;
                }
                Next::Sleep(d) => {
                    // Wake early if a slot frees up or a pause begins.
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = notified => {}
                    }
                }
                Next::Wait => notified.await,
            }
        }
    }

    /// One look at the state: what `acquire` does next.
    fn try_admit(&self, paced: bool) -> Next<'_> {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(t) = s.paused_until.filter(|t| *t > now) {
            return Next::Sleep(t - now);
        }
        s.paused_until = None;
        if s.pace.is_some() && !paced {
            return Next::Pace;
        }
        if (s.in_flight as f64) < s.limit.floor().max(1.0) {
            s.in_flight += 1;
            return Next::Go(Permit {
                limiter: self,
                epoch: s.epoch,
                pace_epoch: s.pace.as_ref().map(|p| p.epoch),
                sent: now,
                saturated: s.in_flight as f64 >= (s.limit.floor() / 2.0).max(1.0),
                released: false,
            });
        }
        Next::Wait
    }

    /// Waits, first in, first out, for the pace's next send time and takes it. False when a
    /// pause began meanwhile (the turn is not taken).
    async fn pace_turn(&self) -> bool {
        let _turn = self.pace_gate.lock().await;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                if s.paused_until.is_some_and(|t| t > now) {
                    return false;
                }
                let Some(p) = s.pace.as_mut() else {
                    return true;
                };
                let earliest = now.checked_sub(PACE_SLACK).unwrap_or(now);
                let slot = p.next_at.max(earliest);
                if slot > now {
                    p.limited = true;
                    slot - now
                } else {
                    p.next_at = slot + Duration::from_secs_f64(1.0 / p.rate.max(MIN_PACE));
                    return true;
                }
            };
            // Wake early if the pace changes or a pause begins.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = notified => {}
            }
        }
    }

    fn release(&self, s: &mut State) {
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

impl Permit<'_> {
    /// The request succeeded (or failed for a reason unrelated to load) and its answer carried
    /// no `x-ms-throttle-limit-percentage`.
    pub fn success(self) {
        self.answered(None);
    }

    /// The request was answered (not 429); `limit_percentage` is the answer's
    /// `x-ms-throttle-limit-percentage`, if any.
    pub fn answered(mut self, limit_percentage: Option<f64>) {
        let l = self.limiter;
        let grew = {
            let mut s = l.lock();
            l.release(&mut s);
            let now = Instant::now();
            s.answered.push_back(now);
            s.answers += 1;
            let before = s.limit.floor();
            // Requests sent before the last cut say nothing about the new limit, nor does a
            // limit the engine was not filling.
            let step = if self.epoch != s.epoch || !self.saturated {
                0.0
            } else if s.limit < s.threshold {
                1.0
            } else {
                l.cfg.increase / s.limit.max(1.0)
            };
            s.limit = (s.limit + step).min(l.cfg.max as f64);
            if l.cfg.pace {
                steer(&l.cfg, &mut s, now, self.sent, limit_percentage);
            }
            s.limit.floor() > before
        };
        self.released = true;
        if grew {
            l.notify.notify_waiters();
        } else {
            l.notify.notify_one();
        }
    }

    /// The request got 429: pause everyone for `retry_after` (if given), cut the concurrency
    /// and the pace.
    pub fn throttled(mut self, retry_after: Option<Duration>) {
        let l = self.limiter;
        {
            let mut s = l.lock();
            l.release(&mut s);
            let now = Instant::now();
            if let Some(ra) = retry_after {
                s.pause(now, ra);
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
            }
            if l.cfg.pace {
                let measured = s.measured(now);
                let resume = s.paused_until.unwrap_or(now).max(now);
                let in_flight = s.in_flight + 1;
                let answers = s.answers;
                let started = s.started;
                let pause = retry_after.unwrap_or_default();
                // What Graph admitted over the whole cycle since the pace last resumed, the pause
                // now due included. Measured resume to resume, a window's cycle counts its
                // pause once; from LONG_CYCLE on the pace resumes at that, not lower.
                let goodput = |since: Instant, answered_before: u64| {
                    let cycle = (now + pause).saturating_duration_since(since);
                    (cycle >= LONG_CYCLE).then(|| {
                        answers.saturating_sub(answered_before) as f64 / cycle.as_secs_f64()
                    })
                };
                match s.pace.as_mut() {
                    None => {
                        let rate = measured.unwrap_or(1.0 / MIN_EPOCH.as_secs_f64());
                        let floor = goodput(started, 0).map_or(MIN_PACE, |g| g * GOODPUT_MARGIN);
                        let mut p = Pace::new((rate * l.cfg.pace_decrease).max(floor), now);
                        p.cut_by_429(floor, resume, in_flight, answers);
                        s.pace = Some(p);
                    }
                    // Sent in the current epoch (a request sent before there was a pace is
                    // older than any cut).
                    Some(p) if self.pace_epoch == Some(p.epoch) => {
                        let base = measured.map_or(p.rate, |m| m.min(p.rate));
                        let floor = goodput(p.cycle_start, p.answers_at_cycle_start)
                            .map_or(MIN_PACE, |g| g * GOODPUT_MARGIN);
                        p.rate = (base * l.cfg.pace_decrease).max(floor).max(MIN_PACE);
                        p.next_epoch(now);
                        p.cut_by_429(floor, resume, in_flight, answers);
                    }
                    // Sent before the last cut, and refused too: Graph admitted less of what was
                    // in flight than the cut assumed.
                    Some(p) => {
                        p.rate = (p.rate - p.cut_rate / p.cut_in_flight.max(1) as f64)
                            .max(p.shrink_floor)
                            .max(MIN_PACE);
                    }
                }
            }
        }
        self.released = true;
        l.notify.notify_waiters();
    }
}

/// Moves the pace on an answer that was not a 429 (see the module docs, point 2).
fn steer(
    cfg: &LimiterConfig,
    s: &mut State,
    now: Instant,
    sent: Instant,
    limit_percentage: Option<f64>,
) {
    let share = limit_percentage.filter(|p| p.is_finite() && *p >= 0.0);
    let marked = share.is_some_and(|p| p >= cfg.slow_down_at);
    if s.pace.is_none() {
        let Some(share) = share.filter(|p| *p >= HEADER_FROM) else {
            return;
        };
        // The first warning, whatever its value: a fifth of the budget is left, and requests
        // already in flight will take much of it (a fleet starting at once sends its whole
        // concurrency every round trip). Start pacing well below the rate Graph answered, the
        // more so the closer the limit: under half of it at 0.81, a quarter from 0.9 on.
        let rate = s.measured(now).unwrap_or(1.0 / MIN_EPOCH.as_secs_f64());
        let factor = (0.5 * (1.0 - share) / (1.0 - HEADER_FROM)).clamp(0.25, 0.5);
        let mut p = Pace::new(rate * factor, now);
        p.highest = Some(share);
        s.pace = Some(p);
        return;
    }
    let measured = s.measured(now);
    let Some(p) = s.pace.as_mut() else {
        return;
    };
    p.answers += 1;
    p.marked += u32::from(marked);
    if let Some(v) = share {
        p.highest = Some(p.highest.map_or(v, |h| h.max(v)));
    }
    // An epoch ends with the first answer to a request sent after it began: a round trip.
    if sent < p.epoch_started || now.saturating_duration_since(p.epoch_started) < MIN_EPOCH {
        return;
    }
    let dt = now.saturating_duration_since(p.epoch_started).as_secs_f64();
    // Rising since the last epoch (a header coming back counts), or nearly spent.
    let rising = match (p.highest, p.last_highest) {
        (Some(h), _) if h >= NEARLY_SPENT => true,
        (Some(h), Some(last)) => h > last,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if p.after_429 {
        // The 429's cut stands for this epoch.
    } else if p.marked > 0 && rising {
        let share_marked = f64::from(p.marked) / f64::from(p.answers.max(1));
        let base = measured.map_or(p.rate, |m| m.min(p.rate));
        p.rate = (base * (1.0 - PERCENTAGE_CUT * share_marked)).max(MIN_PACE);
    } else if p.marked == 0 && p.limited {
        // Additive and multiplicative: instances that share a budget draw level with each
        // other, and a pace far below the budget comes back within seconds.
        p.rate += (cfg.probe_growth * p.rate + PROBE_STEP) * dt;
    }
    p.next_epoch(now);
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
            initial_slow_start: false,
            pace: false,
            ..LimiterConfig::default()
        }
    }

    fn paced(initial: usize) -> LimiterConfig {
        LimiterConfig {
            pace: true,
            max: 1000,
            ..cfg(initial)
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

    /// Fills the limit: `n` requests in flight together, then all answered.
    async fn round_trip(l: &AdaptiveLimiter, n: usize) {
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(l.acquire().await);
        }
        for p in permits {
            p.success();
        }
    }

    #[tokio::test]
    async fn grows_additively_and_cuts_once_per_event() {
        let l = AdaptiveLimiter::new(cfg(2));
        // Two round trips at the limit: +1/2 per success at limit 2, then +1/2.5 ...
        round_trip(&l, 2).await;
        round_trip(&l, 2).await;
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
        round_trip(&l, 2).await;
        round_trip(&l, 2).await;
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
    async fn an_unused_limit_does_not_grow() {
        let l = AdaptiveLimiter::new(cfg(4));
        // One request at a time under a limit of 4: less than half of it in use.
        for _ in 0..50 {
            l.acquire().await.success();
        }
        assert_eq!(l.snapshot().limit, 4.0);
        // Filling it grows it.
        round_trip(&l, 4).await;
        assert!(l.snapshot().limit > 4.0);
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
    async fn whole_second_retry_after_pauses_everyone() {
        let l = AdaptiveLimiter::new(paced(4));
        l.acquire().await.throttled(Some(Duration::from_secs(1)));
        assert!(l.snapshot().paused_for > Duration::from_millis(900));
        let start = Instant::now();
        let _p = l.acquire().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(990), "{waited:?}");
    }

    /// Sends `n` requests one after another through `l`, answering each with `percentage`.
    async fn send(l: &AdaptiveLimiter, n: usize, percentage: Option<f64>) {
        for _ in 0..n {
            l.acquire().await.answered(percentage);
        }
    }

    #[tokio::test]
    async fn the_pace_holds_requests_to_the_learned_rate() {
        let l = AdaptiveLimiter::new(paced(100));
        // 300 ms of answers at full speed, then a 429: a pace is learned.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            send(&l, 10, None).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        l.acquire().await.throttled(None);
        let pace = l.snapshot().pace.expect("a pace after a 429");
        // Hold it low to check it quickly.
        l.lock().pace.as_mut().expect("pace").rate = 100.0;
        assert!(pace > 100.0, "{pace}");
        let t = Instant::now();
        send(&l, 50, None).await;
        let took = t.elapsed();
        // 50 requests at 100/s: about half a second (less the small slack for timers).
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
    }

    #[tokio::test]
    async fn a_pace_not_used_does_not_grow_and_one_used_does() {
        let l = AdaptiveLimiter::new(paced(100));
        l.acquire().await.throttled(None);
        l.lock().pace.as_mut().expect("pace").rate = 200.0;
        // 20 requests a second, far below the pace, for 1.5 s: no growth.
        for _ in 0..30 {
            l.acquire().await.success();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(l.snapshot().pace, Some(200.0));
        // As fast as the pace lets: it holds requests back, and grows.
        send(&l, 300, None).await;
        let grown = l.snapshot().pace.expect("pace");
        assert!(grown > 200.0, "{grown}");
    }

    #[tokio::test]
    async fn a_429_while_below_the_pace_shrinks_it_to_what_was_answered() {
        let l = AdaptiveLimiter::new(paced(100));
        l.acquire().await.throttled(None);
        l.lock().pace.as_mut().expect("pace").rate = 500.0;
        // Another instance takes most of the budget: we get about 50 answers a second ...
        for _ in 0..30 {
            l.acquire().await.success();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... and a 429: the pace drops to seven tenths of that, not of 500.
        l.acquire().await.throttled(None);
        let pace = l.snapshot().pace.expect("pace");
        assert!(pace > 20.0 && pace < 45.0, "{pace}");
    }

    #[tokio::test]
    async fn a_budget_that_comes_back_in_chunks_resumes_at_what_the_cycle_admitted() {
        // A window: every request in flight is refused when it fills, however short the
        // Retry-After. The pace must not collapse to a fraction of what the cycle admitted.
        let l = AdaptiveLimiter::new(paced(100));
        l.acquire().await.throttled(None);
        l.lock().pace.as_mut().expect("pace").rate = 500.0;
        let cycle = Instant::now();
        let mut answered = 0u32;
        while cycle.elapsed() < Duration::from_millis(2_500) {
            l.acquire().await.success();
            answered += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Eight requests in flight when it fills (the concurrency set so they fit).
        l.lock().limit = 8.0;
        let mut in_flight = Vec::new();
        for _ in 0..8 {
            in_flight.push(l.acquire().await);
        }
        let pause = Duration::from_secs(1);
        let admitted = f64::from(answered) / (cycle.elapsed() + pause).as_secs_f64();
        for p in in_flight {
            p.throttled(Some(pause));
        }
        let pace = l.snapshot().pace.expect("pace");
        assert!(
            pace >= 0.9 * admitted,
            "pace {pace:.1}/s after a cycle that admitted {admitted:.1}/s"
        );
        assert!(pace <= admitted, "{pace:.1} > {admitted:.1}");
    }

    #[tokio::test]
    async fn the_limit_percentage_slows_down_before_any_429() {
        let l = AdaptiveLimiter::new(paced(100));
        // Without the header nothing starts.
        send(&l, 50, None).await;
        assert_eq!(l.snapshot().pace, None);
        // The first header, even below `slow_down_at`, starts a pace well under the rate
        // answered (a fifth of the budget is left, and much of it is in flight).
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&l, 50, None).await;
        let answered = l.lock().measured(Instant::now()).expect("answers");
        l.acquire().await.answered(Some(0.85));
        let first = l.snapshot().pace.expect("a pace from the header");
        assert!(
            first <= 0.5 * answered && first >= 0.25 * answered,
            "pace {first:.0}/s after answers at {answered:.0}/s"
        );
        // While the header keeps rising above `slow_down_at`, the pace keeps falling.
        let mut p = 0.95;
        for _ in 0..5 {
            p += 0.005;
            let t = Instant::now();
            while t.elapsed() < MIN_EPOCH + Duration::from_millis(10) {
                l.acquire().await.answered(Some(p));
            }
        }
        let later = l.snapshot().pace.expect("pace");
        assert!(later < first * 0.99, "{first} -> {later}");
        assert_eq!(l.snapshot().cuts, 0, "no 429 involved");
        // Falling again: no more cuts.
        let held = later;
        for _ in 0..3 {
            p -= 0.005;
            let t = Instant::now();
            while t.elapsed() < MIN_EPOCH + Duration::from_millis(10) {
                l.acquire().await.answered(Some(p));
            }
        }
        assert!(l.snapshot().pace.expect("pace") >= held, "{held}");
    }
}
