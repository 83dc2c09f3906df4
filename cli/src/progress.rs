//! Progress on stderr: a bar (rows done, rate, ETA) on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain progress lines are printed at most.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
    label: &'static str,
    total: u64,
}

struct Plain {
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} rows, {rate}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} rows/s", s.per_sec());
                },
            )
            .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(label);
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            plain: Mutex::new(Plain {
                done: 0,
                started: now,
                last: now,
            }),
            label,
            total,
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
            return;
        }
        let Ok(mut p) = self.plain.lock() else { return };
        p.done += 1;
        let now = Instant::now();
        if now.duration_since(p.last) >= PLAIN_EVERY || p.done == self.total {
            p.last = now;
            let secs = now.duration_since(p.started).as_secs_f64().max(0.001);
            let rate = p.done as f64 / secs;
            let left = self.total.saturating_sub(p.done);
            let eta = if rate > 0.0 { left as f64 / rate } else { 0.0 };
            eprintln!(
                "{}: {}/{} rows, {:.1} rows/s, ETA {:.0}s",
                self.label, p.done, self.total, rate, eta
            );
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
