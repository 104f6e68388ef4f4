//! The task view: one task as the contract shows it, folded from its stream.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use tasklog_events::task_event::{RetryPolicy, ScheduledRun};
use tasklog_events::{Position, RecordedEvent, TaskData, TaskEvent, TaskId};

/// The contract's task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Running,
    Failed,
    Completed,
}

impl TaskState {
    pub const ALL: [TaskState; 4] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Failed,
        TaskState::Completed,
    ];

    /// Whether the task is done: it leaves the hot set once its row is stored.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::Completed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Failed => "failed",
            TaskState::Completed => "completed",
        }
    }
}

/// Who holds a running task, and until when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub worker: String,
    pub expires_at: DateTime<Utc>,
    /// The token (its name) that claimed the task, if the claim came with one.
    pub holder: Option<String>,
}

/// A task as it stands after the events folded into it; read-model tables
/// keep it as JSON in this shape (a change bumps `READ_MODEL_VERSION`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: TaskId,
    pub name: String,
    pub task_type: String,
    pub priority: i64,
    pub data: TaskData,
    pub available_time: DateTime<Utc>,
    pub expiration_time: DateTime<Utc>,
    pub state: TaskState,
    pub error: Option<String>,
    pub run_time: Option<DateTime<Utc>>,
    /// Seconds from `run_time` to the end of the run.
    pub duration: Option<f64>,
    pub created_time: DateTime<Utc>,
    pub modified_time: DateTime<Utc>,
    /// The running task's lease; `None` unless running.
    pub lease: Option<Lease>,
    /// How many runs the task has started.
    pub attempts: u32,
    /// Why the last run failed or ended, kept while the task is retried.
    pub last_error: Option<String>,
    /// What the run that completed the task made (rows stored before there
    /// were results read as none, which they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// How far the current or last run got, from its last heartbeat that said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub retry: Option<RetryPolicy>,
    pub schedule: Option<ScheduledRun>,
    /// The stream revision of the last event folded in: the next expected revision.
    pub revision: u64,
    /// The global position of the last event folded in.
    pub position: Position,
    /// The global position of the task's first event: its place in listings.
    pub created_position: Position,
}

impl TaskView {
    /// Folds one event of the task's stream into the view. The first event of a
    /// stream must be `TaskCreated`; `None` then becomes the view.
    pub fn apply(view: &mut Option<TaskView>, recorded: &RecordedEvent, event: TaskEvent) {
        let at = recorded.recorded_at;
        if let TaskEvent::Created(created) = event {
            let Some(id) = TaskId::from_stream(&recorded.stream) else {
                return;
            };
            // The decoded event is this fold's own: its fields move into the view.
            *view = Some(TaskView {
                id,
                name: created.name,
                task_type: created.task_type,
                priority: created.priority,
                data: created.data,
                available_time: created.available_time,
                expiration_time: created.expiration_time,
                state: TaskState::Pending,
                error: None,
                run_time: None,
                duration: None,
                created_time: at,
                modified_time: at,
                lease: None,
                attempts: 0,
                last_error: None,
                result: None,
                progress: None,
                labels: created.labels,
                tags: created.tags,
                retry: created.retry,
                schedule: created.schedule,
                revision: recorded.revision,
                position: recorded.position,
                created_position: recorded.position,
            });
            return;
        }
        if let Some(task) = view.as_mut() {
            task.change(recorded, event);
        }
    }

    /// Folds an event other than `TaskCreated` into the view, in place.
    pub fn change(&mut self, recorded: &RecordedEvent, event: TaskEvent) {
        let at = recorded.recorded_at;
        let task = self;
        match event {
            TaskEvent::Created(_) => {}
            TaskEvent::Started(started) => {
                task.state = TaskState::Running;
                task.run_time = Some(at);
                task.duration = None;
                task.error = None;
                task.attempts = started.attempt;
                task.progress = None;
                task.lease = Some(Lease {
                    worker: started.worker,
                    expires_at: started.lease_expires_at,
                    holder: recorded.metadata.actor.clone(),
                });
            }
            TaskEvent::LeaseRenewed(renewed) => {
                let holder = task.lease.take().and_then(|lease| lease.holder);
                task.lease = Some(Lease {
                    worker: renewed.worker,
                    expires_at: renewed.lease_expires_at,
                    holder,
                });
                if renewed.progress.is_some() {
                    task.progress = renewed.progress;
                }
            }
            TaskEvent::Completed(completed) => {
                task.finish_run(at);
                task.state = TaskState::Completed;
                task.result = completed.result;
            }
            TaskEvent::Failed(failed) => {
                task.finish_run(at);
                task.state = TaskState::Failed;
                task.error = Some(failed.error);
                task.last_error = task.error.clone();
            }
            TaskEvent::Expired(expired) => {
                task.state = TaskState::Failed;
                task.error = Some(expired.error);
                task.last_error = task.error.clone();
            }
            TaskEvent::Cancelled(cancelled) => {
                if task.state == TaskState::Running {
                    task.finish_run(at);
                }
                task.state = TaskState::Failed;
                task.lease = None;
                task.error = Some(match &cancelled.reason {
                    Some(reason) => format!("cancelled: {reason}"),
                    None => "cancelled".to_owned(),
                });
                task.last_error = task.error.clone();
            }
            TaskEvent::Requeued(requeued) => {
                task.state = TaskState::Pending;
                task.lease = None;
                task.error = Some(requeued.reason);
                task.last_error = task.error.clone();
            }
            TaskEvent::Retried(retried) => {
                // `error` keeps the failure until the next run starts.
                task.state = TaskState::Pending;
                task.available_time = retried.available_time;
                task.expiration_time = retried.expiration_time;
            }
        }
        task.modified_time = at;
        task.revision = recorded.revision;
        task.position = recorded.position;
    }

    fn finish_run(&mut self, at: DateTime<Utc>) {
        self.lease = None;
        if let Some(run_time) = self.run_time {
            self.duration = Some((at - run_time).num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }

    /// Folds a whole stream: the task as of its last event.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Option<TaskView> {
        let mut view = None;
        for recorded in events {
            if let Ok(event) = TaskEvent::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.payload,
            ) {
                TaskView::apply(&mut view, recorded, event);
            }
        }
        view
    }
}
