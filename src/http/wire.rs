//! What goes over the wire: the contract's bodies are in `tasklog-api`; the
//! server turns its views into them here.

use tasklog_projections::TaskView;

pub use tasklog_api::tasks::*;

/// A task as the API answers it.
pub fn wire_task(view: &TaskView) -> Task {
    Task {
        id: view.id.to_string(),
        name: view.name.clone(),
        task_type: view.task_type.clone(),
        priority: view.priority,
        data: view.data.clone(),
        available_time: wire_time(view.available_time),
        expiration_time: wire_time(view.expiration_time),
        state: view.state.as_str().into(),
        error: view.error.clone(),
        run_time: view.run_time.map(wire_time),
        duration: view.duration,
        created_time: wire_time(view.created_time),
        modified_time: wire_time(view.modified_time),
        worker: view.lease.as_ref().map(|l| l.worker.clone()),
        lease_expiration_time: view.lease.as_ref().map(|l| wire_time(l.expires_at)),
        attempts: view.attempts,
        max_attempts: view.retry.as_ref().map(|r| r.max_attempts),
        last_error: view.last_error.clone(),
        result: view.result.clone(),
        progress: view.progress.clone(),
        labels: view.labels.clone(),
        tags: view.tags.clone(),
        retry: view.retry.as_ref().map(RetryBody::from),
        schedule_id: view.schedule.as_ref().map(|s| s.schedule_id.to_string()),
    }
}
