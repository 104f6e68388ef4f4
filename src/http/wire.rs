//! What goes over the wire: the contract's bodies are in `tasklog-api`; the
//! server turns its views into them here.

use serde::Serialize;
use serde_json::Value;
use tasklog_api::schedules::Schedule;
use tasklog_projections::{ScheduleView, TaskView};

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

/// A schedule as the API answers it.
pub fn wire_schedule(view: &ScheduleView) -> Schedule {
    let definition = &view.definition;
    let state = match (view.paused, view.next_run_time) {
        (true, _) => "paused",
        (false, Some(_)) => "active",
        (false, None) => "ended",
    };
    let json = |v| serde_json::to_value(v).expect("schedules serialise");
    Schedule {
        id: view.id.to_string(),
        name: definition.name.clone(),
        task: json(&definition.task),
        recurrence: serde_json::to_value(&definition.recurrence).expect("serialises"),
        start_time: wire_time(definition.start_time),
        end_time: definition.end_time.map(wire_time),
        start_mode: json_text(&definition.start_mode),
        state: state.into(),
        next_run_time: view.next_run_time.map(wire_time),
        last_run_time: view.last_run.as_ref().map(|r| wire_time(r.run_time)),
        last_task_id: view.last_run.as_ref().map(|r| r.task_id.to_string()),
        runs: view.runs,
        created_time: wire_time(view.created_time),
        modified_time: wire_time(view.modified_time),
    }
}

fn json_text(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        _ => String::new(),
    }
}
