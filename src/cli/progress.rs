//! How far a long command has come: a bar with the rate and the time left on
//! a terminal, a log line every few seconds elsewhere (a pipe, a CI log).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is logged when there is no terminal to draw on.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// One command's progress; clones share it, so concurrent loops can count.
#[derive(Clone)]
pub struct Progress(Arc<Inner>);

struct Inner {
    what: String,
    unit: &'static str,
    bar: Option<ProgressBar>,
    done: AtomicU64,
    total: AtomicU64,
    started: Instant,
    next_line: Mutex<Instant>,
}

impl Progress {
    /// `what` is under way, `total` `unit`s to go (0: not known yet).
    pub fn new(what: impl Into<String>, unit: &'static str, total: u64) -> Self {
        let what = what.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = format!(
                "{{msg}} {{bar:40}} {{human_pos}}/{{human_len}} {unit}, {{per_sec}}, {{eta}} left"
            );
            let bar = ProgressBar::new(total);
            bar.set_style(ProgressStyle::with_template(&template).expect("a progress template"));
            bar.set_message(what.clone());
            bar
        });
        let started = Instant::now();
        Progress(Arc::new(Inner {
            what,
            unit,
            bar,
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
            started,
            next_line: Mutex::new(started + LINE_EVERY),
        }))
    }

    /// `done` of `total` now.
    pub fn set(&self, done: u64, total: u64) {
        self.0.done.store(done, Ordering::Relaxed);
        self.0.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.0.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
        self.log_now_and_then();
    }

    /// `n` more done.
    pub fn add(&self, n: u64) {
        self.0.done.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.0.bar {
            bar.inc(n);
        }
        self.log_now_and_then();
    }

    /// Takes the bar off the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.0.bar {
            bar.finish_and_clear();
        }
    }

    fn log_now_and_then(&self) {
        let inner = &*self.0;
        if inner.bar.is_some() {
            return;
        }
        let now = Instant::now();
        {
            let mut next_line = inner.next_line.lock().expect("progress lock");
            if now < *next_line {
                return;
            }
            *next_line = now + LINE_EVERY;
        }
        let done = inner.done.load(Ordering::Relaxed);
        let total = inner.total.load(Ordering::Relaxed);
        let per_s = done as f64 / inner.started.elapsed().as_secs_f64().max(1e-9);
        let left_s =
            (total > done).then(|| ((total - done) as f64 / per_s.max(1e-9)).round() as u64);
        tracing::info!(
            done,
            total,
            unit = inner.unit,
            per_s = per_s as u64,
            left_s,
            "{}",
            inner.what
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
