//! Prometheus metrics, through the `metrics` facade: code counts where things
//! happen (requests, the write path, the stores, event streams), and a scrape
//! adds the gauges read off the views before rendering.
//!
//! The names follow Prometheus' conventions: `tasklog_` first, base units
//! (`_seconds`), `_total` on counters. Until [`install`] runs (a server's
//! start), every count is a no-op.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram, Counter, Histogram};
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

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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
        // Histograms keep each sample until they are folded into buckets: a
        // scrape does it, and so does this, so memory stays flat unscraped.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("tasklog-metrics".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
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
        "Time to make a batch durable: the WAL's fdatasync (embedded), the batch's writes and their COMMIT, sent together (PostgreSQL)"
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
    describe_gauge!(
        "tasklog_queue_paused",
        "1 while a task type's queue is paused (claims hand out none of its tasks), else 0"
    );
    describe_gauge!("tasklog_event_streams_open", "Open event streams (SSE)");
    describe_gauge!(
        "tasklog_consumer_lag_events",
        "Events past a durable consumer's acknowledged position, by consumer"
    );
}

/// A request answered: `route` is the route's template (`unmatched` for none).
pub fn request(method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
    use axum::http::Method;
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let route = cached(&ROUTES, route, |route| RouteMetrics {
        route: route.to_owned(),
        answers: Mutex::default(),
    });
    let mut answers = route.answers.lock().expect("route metrics lock");
    let found = answers
        .iter()
        .position(|a| a.method == method && a.status == status);
    let answer = match found {
        Some(i) => &answers[i],
        None => {
            let labels = [
                ("method", method.to_owned()),
                ("route", route.route.clone()),
            ];
            answers.push(Answered {
                method,
                status,
                count: counter!(
                    "tasklog_http_requests_total",
                    &[&labels[..], &[("status", status.to_string())]].concat()
                ),
                duration: histogram!("tasklog_http_request_duration_seconds", &labels),
            });
            answers.last().expect("just pushed")
        }
    };
    answer.count.increment(1);
    answer.duration.record(elapsed.as_secs_f64());
}

/// Looking a metric up by its labels hashes and compares them all: the
/// handles of the labels a request or a write uses are kept here instead,
/// found by one `&str`.
type Cache<V> = LazyLock<RwLock<HashMap<String, Arc<V>>>>;

fn cached<V>(cache: &Cache<V>, key: &str, make: impl FnOnce(&str) -> V) -> Arc<V> {
    if let Some(found) = cache.read().expect("metrics cache lock").get(key) {
        return found.clone();
    }
    let mut cache = cache.write().expect("metrics cache lock");
    cache
        .entry(key.to_owned())
        .or_insert_with(|| Arc::new(make(key)))
        .clone()
}

/// The requests of one route, by method and status.
struct RouteMetrics {
    route: String,
    answers: Mutex<Vec<Answered>>,
}

struct Answered {
    method: &'static str,
    status: u16,
    count: Counter,
    duration: Histogram,
}

static ROUTES: Cache<RouteMetrics> = LazyLock::new(RwLock::default);

/// What a task type's writes are counted in.
struct TypeMetrics {
    created: Counter,
    claims: Counter,
    claim_wait: Histogram,
    completed_runs: Histogram,
    failed_runs: Histogram,
    dead_letters: Counter,
    retries: Counter,
    expiries: Counter,
    lease_lapses: Counter,
    cancellations: Counter,
}

impl TypeMetrics {
    fn of(task_type: &str) -> Self {
        let t = || ("type", task_type.to_owned());
        let runs = |outcome: &'static str| {
            histogram!(
                "tasklog_task_run_duration_seconds",
                &[t(), ("outcome", outcome.to_owned())]
            )
        };
        TypeMetrics {
            created: counter!("tasklog_tasks_created_total", &[t()]),
            claims: counter!("tasklog_task_claims_total", &[t()]),
            claim_wait: histogram!("tasklog_task_claim_wait_seconds", &[t()]),
            completed_runs: runs("completed"),
            failed_runs: runs("failed"),
            dead_letters: counter!("tasklog_task_dead_letters_total", &[t()]),
            retries: counter!("tasklog_task_retries_total", &[t()]),
            expiries: counter!("tasklog_task_expiries_total", &[t()]),
            lease_lapses: counter!("tasklog_task_lease_lapses_total", &[t()]),
            cancellations: counter!("tasklog_task_cancellations_total", &[t()]),
        }
    }
}

static TYPES: Cache<TypeMetrics> = LazyLock::new(RwLock::default);

/// A token's rate limit refused a request.
pub fn rate_limited(token: &str) {
    counter!("tasklog_http_rate_limited_total", "token" => token.to_owned()).increment(1);
}

/// An append by the write path, and how long it took to be durable.
pub fn append(outcome: &'static str, elapsed: Duration) {
    static APPENDS: Cache<(Counter, Histogram)> = LazyLock::new(RwLock::default);
    let (count, duration) = &*cached(&APPENDS, outcome, |outcome| {
        (
            counter!("tasklog_appends_total", "outcome" => outcome.to_owned()),
            histogram!("tasklog_append_duration_seconds"),
        )
    });
    count.increment(1);
    if outcome == "ok" {
        duration.record(elapsed.as_secs_f64());
    }
}

/// Counts what `events`, appended at `now`, did to `task` (as it was before).
pub fn task_events(task: Option<&TaskView>, events: &[TaskEvent], now: DateTime<Utc>) {
    let seconds = |from: DateTime<Utc>| (now - from).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let task_type = match (events.first(), task) {
        (Some(TaskEvent::Created(created)), _) => created.task_type.as_str(),
        (_, Some(task)) => task.task_type.as_str(),
        (_, None) => return,
    };
    let counts = cached(&TYPES, task_type, TypeMetrics::of);
    for (i, event) in events.iter().enumerate() {
        match event {
            TaskEvent::Created(_) => counts.created.increment(1),
            TaskEvent::Started(_) => {
                let waited_from = task.map_or(now, |t| t.available_time.max(t.modified_time));
                counts.claim_wait.record(seconds(waited_from).max(0.0));
                counts.claims.increment(1);
            }
            TaskEvent::Completed(_) | TaskEvent::Failed(_) => {
                let completed = matches!(event, TaskEvent::Completed(_));
                if let Some(started) = task.and_then(|t| t.run_time) {
                    let runs = if completed {
                        &counts.completed_runs
                    } else {
                        &counts.failed_runs
                    };
                    runs.record(seconds(started).max(0.0));
                }
                if !completed && super::failed_for_good(events, i) {
                    counts.dead_letters.increment(1);
                }
            }
            TaskEvent::Retried(_) => counts.retries.increment(1),
            TaskEvent::Expired(_) => counts.expiries.increment(1),
            TaskEvent::Requeued(_) => counts.lease_lapses.increment(1),
            TaskEvent::Cancelled(_) => counts.cancellations.increment(1),
            TaskEvent::LeaseRenewed(_) => {}
        }
    }
}

/// An open event stream, counted in `tasklog_event_streams_open` while it lives.
pub struct OpenStream(());

impl OpenStream {
    pub fn opened() -> Self {
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
        for (task_type, queue) in &views.queues {
            gauge!("tasklog_queue_paused", "type" => task_type.clone()).set(if queue.paused {
                1.0
            } else {
                0.0
            });
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
