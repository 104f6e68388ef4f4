//! Prometheus metrics, through the `metrics` facade: code counts where things
//! happen (requests, the write path, the stores, event streams), and a scrape
//! adds the gauges read off the views before rendering.
//!
//! The names follow Prometheus' conventions: `tasklog_` first, base units
//! (`_seconds`), `_total` on counters. Until [`install`] runs (a server's
//! start), every count is a no-op.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tasklog_events::TaskEvent;
use tasklog_projections::{TaskState, TaskView};

use crate::app::service::Service;

/// Latency buckets, in seconds: a claim's long poll reaches a minute.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// How long tasks wait and run, in seconds: up to a day.
const TASK_SECONDS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];
/// Appends per batch.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process' recorder, once; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Prefix("tasklog_task_".into()), TASK_SECONDS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("tasklog_append_batch_size".into()), BATCH)
            })
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may be in place: this one's handle then
        // renders what it has, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "tasklog_http_requests_total",
        "HTTP requests answered, by method, route and status"
    );
    describe_histogram!(
        "tasklog_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request (to its headers), by method and route"
    );
    describe_counter!(
        "tasklog_http_rate_limited_total",
        "Requests refused by a token's rate limit, by token"
    );
    describe_gauge!("tasklog_tasks", "Tasks in the views, by type and state");
    describe_counter!("tasklog_tasks_created_total", "Tasks created, by type");
    describe_counter!(
        "tasklog_task_claims_total",
        "Tasks handed to a worker, by type"
    );
    describe_histogram!(
        "tasklog_task_claim_wait_seconds",
        Unit::Seconds,
        "How long a task was available before a worker claimed it, by type"
    );
    describe_histogram!(
        "tasklog_task_run_duration_seconds",
        Unit::Seconds,
        "How long runs took, by type and outcome (completed, failed)"
    );
    describe_counter!(
        "tasklog_task_retries_total",
        "Failed tasks queued again, by type"
    );
    describe_counter!(
        "tasklog_task_expiries_total",
        "Tasks still pending at their expiration time, by type"
    );
    describe_counter!(
        "tasklog_task_lease_lapses_total",
        "Running tasks queued again because their worker's lease lapsed, by type"
    );
    describe_counter!(
        "tasklog_task_dead_letters_total",
        "Tasks failed with no retry left, by type"
    );
    describe_counter!(
        "tasklog_task_cancellations_total",
        "Tasks cancelled, by type"
    );
    describe_counter!(
        "tasklog_appends_total",
        "Appends to the log by this node, by outcome (ok, conflict, error)"
    );
    describe_histogram!(
        "tasklog_append_duration_seconds",
        Unit::Seconds,
        "Time for an append to be durable, as the write path waits for it"
    );
    describe_histogram!(
        "tasklog_append_batch_size",
        "Appends the store's writer committed in one transaction"
    );
    describe_histogram!(
        "tasklog_store_sync_duration_seconds",
        Unit::Seconds,
        "Time to make a batch durable: the WAL's fdatasync (embedded), the COMMIT (PostgreSQL)"
    );
    describe_gauge!(
        "tasklog_log_head_position",
        "The position of the newest event in the log"
    );
    describe_gauge!(
        "tasklog_views_position",
        "The log position the views have applied"
    );
    describe_gauge!(
        "tasklog_views_lag_events",
        "Events in the log the views have not applied yet"
    );
    describe_gauge!("tasklog_event_streams_open", "Open event streams (SSE)");
    describe_gauge!(
        "tasklog_consumer_lag_events",
        "Events past a durable consumer's acknowledged position, by consumer"
    );
}

/// A request answered: `route` is the route's template (`unmatched` for none).
pub fn request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method.to_owned();
    let route = route.to_owned();
    counter!("tasklog_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
    .increment(1);
    histogram!("tasklog_http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
}

/// A token's rate limit refused a request.
pub fn rate_limited(token: &str) {
    counter!("tasklog_http_rate_limited_total", "token" => token.to_owned()).increment(1);
}

/// An append by the write path, and how long it took to be durable.
pub fn append(outcome: &'static str, elapsed: Duration) {
    counter!("tasklog_appends_total", "outcome" => outcome).increment(1);
    if outcome == "ok" {
        histogram!("tasklog_append_duration_seconds").record(elapsed.as_secs_f64());
    }
}

/// Counts what `events`, appended at `now`, did to `task` (as it was before).
pub fn task_events(task: Option<&TaskView>, events: &[TaskEvent], now: DateTime<Utc>) {
    let seconds = |from: DateTime<Utc>| (now - from).num_microseconds().unwrap_or(0) as f64 / 1e6;
    for (i, event) in events.iter().enumerate() {
        let task_type = match (event, task) {
            (TaskEvent::Created(created), _) => created.task_type.clone(),
            (_, Some(task)) => task.task_type.clone(),
            (_, None) => continue,
        };
        match event {
            TaskEvent::Created(_) => {
                counter!("tasklog_tasks_created_total", "type" => task_type).increment(1)
            }
            TaskEvent::Started(_) => {
                let waited_from = task.map_or(now, |t| t.available_time.max(t.modified_time));
                histogram!("tasklog_task_claim_wait_seconds", "type" => task_type.clone())
                    .record(seconds(waited_from).max(0.0));
                counter!("tasklog_task_claims_total", "type" => task_type).increment(1);
            }
            TaskEvent::Completed(_) | TaskEvent::Failed(_) => {
                let outcome = if matches!(event, TaskEvent::Completed(_)) {
                    "completed"
                } else {
                    "failed"
                };
                if let Some(started) = task.and_then(|t| t.run_time) {
                    histogram!("tasklog_task_run_duration_seconds",
                        "type" => task_type.clone(), "outcome" => outcome)
                    .record(seconds(started).max(0.0));
                }
                let retried = matches!(events.get(i + 1), Some(TaskEvent::Retried(_)));
                if outcome == "failed" && !retried {
                    counter!("tasklog_task_dead_letters_total", "type" => task_type).increment(1);
                }
            }
            TaskEvent::Retried(_) => {
                counter!("tasklog_task_retries_total", "type" => task_type).increment(1)
            }
            TaskEvent::Expired(_) => {
                counter!("tasklog_task_expiries_total", "type" => task_type).increment(1)
            }
            TaskEvent::Requeued(_) => {
                counter!("tasklog_task_lease_lapses_total", "type" => task_type).increment(1)
            }
            TaskEvent::Cancelled(_) => {
                counter!("tasklog_task_cancellations_total", "type" => task_type).increment(1)
            }
            TaskEvent::LeaseRenewed(_) => {}
        }
    }
}

/// An open event stream, counted in `tasklog_event_streams_open` while it lives.
pub struct OpenStream(());

impl OpenStream {
    pub fn new() -> Self {
        gauge!("tasklog_event_streams_open").increment(1.0);
        OpenStream(())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!("tasklog_event_streams_open").decrement(1.0);
    }
}

/// The (type, state) pairs a scrape has reported, so one that empties is
/// reported as 0 instead of its last count.
static REPORTED: Mutex<BTreeSet<(String, TaskState)>> = Mutex::new(BTreeSet::new());

/// The Prometheus text of every metric, with the views' gauges as they are now.
pub async fn render(service: &Service) -> String {
    let head = service.head().await.ok();
    {
        let views = service.views.read();
        let mut reported = REPORTED.lock().expect("reported lock");
        for key in views.stats.counts.keys() {
            if !reported.contains(key) {
                reported.insert(key.clone());
            }
        }
        for (task_type, state) in reported.iter() {
            let count = views
                .stats
                .counts
                .get(&(task_type.clone(), *state))
                .copied()
                .unwrap_or(0);
            gauge!("tasklog_tasks", "type" => task_type.clone(), "state" => state.as_str())
                .set(count as f64);
        }
        let applied = views.position.0;
        gauge!("tasklog_views_position").set(applied as f64);
        if let Some(head) = head {
            gauge!("tasklog_log_head_position").set(head.0 as f64);
            gauge!("tasklog_views_lag_events").set(head.0.saturating_sub(applied) as f64);
        }
        let log_head = head.map_or(applied, |h| h.0);
        for (name, consumer) in &views.consumers {
            gauge!("tasklog_consumer_lag_events", "consumer" => name.clone())
                .set(log_head.saturating_sub(consumer.position.0) as f64);
        }
    }
    install().render()
}
