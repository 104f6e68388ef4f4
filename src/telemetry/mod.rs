//! What operators see of a running node: [`logs`] (a line per request, the
//! jobs' activity, errors with their causes), [`metrics`] (Prometheus) and
//! [`traces`] (OpenTelemetry, linked to the events).

pub mod logs;
pub mod metrics;
pub mod traces;

use chrono::{DateTime, Utc};
use tasklog_events::{TaskEvent, TaskId};
use tasklog_projections::TaskView;

/// Whether `events[i]`, a failure, is final: no retry follows it in the
/// same write.
fn failed_for_good(events: &[TaskEvent], i: usize) -> bool {
    !matches!(events.get(i + 1), Some(TaskEvent::Retried(_)))
}

/// What a durable write did to task `id` (`before`: as it was): counted, and
/// what the jobs and retries did logged.
pub fn task_written(
    id: TaskId,
    before: Option<&TaskView>,
    events: &[TaskEvent],
    now: DateTime<Utc>,
) {
    metrics::task_events(before, events, now);
    let task_type = before.map_or("", |t| t.task_type.as_str());
    for (i, event) in events.iter().enumerate() {
        match event {
            TaskEvent::Expired(_) => {
                tracing::info!(task = %id, r#type = task_type, "the task expired: still pending at its expiration time")
            }
            TaskEvent::Requeued(requeued) => {
                tracing::info!(task = %id, r#type = task_type, worker = %requeued.worker, "the worker's lease lapsed: the task is queued again")
            }
            TaskEvent::Retried(retried) => {
                tracing::info!(task = %id, r#type = task_type, available_time = %retried.available_time, automatic = retried.automatic, "the task is queued for another run")
            }
            TaskEvent::Failed(failed) if failed_for_good(events, i) => {
                tracing::info!(task = %id, r#type = task_type, error = %failed.error, "the task failed with no run left")
            }
            _ => {}
        }
    }
}
