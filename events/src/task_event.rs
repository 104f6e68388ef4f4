//! The task events: every create and every state change of a task, past tense.
//!
//! Each event type has a schema version. A payload, once written, is read back by
//! every later version of tasklog: changing a payload means a new version and a
//! decode arm that upcasts the old one (see [`TaskEvent::decode`]). The schemas in
//! `schemas/events/` and the fixture in `tests/fixtures/` hold us to that.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event_enum::event_enum;
pub use crate::event_enum::DecodeError;
pub use crate::stream_id::TaskId;
use crate::task_data::TaskData;

/// A task was created, pending until `available_time`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreated {
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    /// Higher runs first.
    pub priority: i64,
    pub data: TaskData,
    pub available_time: DateTime<Utc>,
    pub expiration_time: DateTime<Utc>,
    /// Key-value metadata that list and claim select on (`env=prod`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How a failed run is retried; without one a failure is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The schedule run that created the task, if a schedule did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduledRun>,
}

// `TaskCreated` as version 1 wrote it, without labels, tags, retries or
// schedules. Its doc comments are its checked-in schema's: leave them be.
/// A task was created, pending until `available_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "TaskCreated")]
pub struct TaskCreatedV1 {
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    /// Higher runs first.
    pub priority: i64,
    pub data: TaskData,
    pub available_time: DateTime<Utc>,
    pub expiration_time: DateTime<Utc>,
}

impl From<TaskCreatedV1> for TaskCreated {
    fn from(v1: TaskCreatedV1) -> Self {
        TaskCreated {
            name: v1.name,
            task_type: v1.task_type,
            priority: v1.priority,
            data: v1.data,
            available_time: v1.available_time,
            expiration_time: v1.expiration_time,
            labels: BTreeMap::new(),
            tags: Vec::new(),
            retry: None,
            schedule: None,
        }
    }
}

/// How often a task runs before a failure is final, and how long it waits
/// between runs: `initial_backoff_seconds * backoff_factor^(run - 1)`, at most
/// `max_backoff_seconds`; with `jitter`, a spread between half that and all of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Runs in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff_seconds: u32,
    pub max_backoff_seconds: u32,
    pub backoff_factor: f64,
    pub jitter: bool,
}

/// Which run of which schedule a task is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledRun {
    /// The schedule's id.
    pub schedule_id: crate::stream_id::ScheduleId,
    /// When the run was due.
    pub run_time: DateTime<Utc>,
}

/// A worker claimed the task and holds it until `lease_expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskStarted {
    pub worker: String,
    pub lease_expires_at: DateTime<Utc>,
    /// 1 for the first run, one more for each run after a lapsed lease.
    pub attempt: u32,
}

/// The worker holding the task extended its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskLeaseRenewed {
    pub worker: String,
    pub lease_expires_at: DateTime<Utc>,
    /// How far the run got, as the worker reports it (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
}

// `TaskLeaseRenewed` as version 1 wrote it, without progress. Its doc
// comments are its checked-in schema's: leave them be.
/// The worker holding the task extended its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "TaskLeaseRenewed")]
pub struct TaskLeaseRenewedV1 {
    pub worker: String,
    pub lease_expires_at: DateTime<Utc>,
}

impl From<TaskLeaseRenewedV1> for TaskLeaseRenewed {
    fn from(v1: TaskLeaseRenewedV1) -> Self {
        TaskLeaseRenewed {
            worker: v1.worker,
            lease_expires_at: v1.lease_expires_at,
            progress: None,
        }
    }
}

/// The worker finished the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCompleted {
    pub worker: String,
    /// What the run made, as the worker reports it (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

// `TaskCompleted` as version 1 wrote it, without a result. Its doc comments
// are its checked-in schema's: leave them be.
/// The worker finished the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "TaskCompleted")]
pub struct TaskCompletedV1 {
    pub worker: String,
}

impl From<TaskCompletedV1> for TaskCompleted {
    fn from(v1: TaskCompletedV1) -> Self {
        TaskCompleted {
            worker: v1.worker,
            result: None,
        }
    }
}

/// The worker gave up on the task, saying why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskFailed {
    pub worker: String,
    pub error: String,
}

/// The task was still pending at its expiration time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskExpired {
    /// The error the task view shows, saying it expired.
    pub error: String,
}

/// A client cancelled the task while it was pending or running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCancelled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The worker's lease lapsed; the task is pending again for another run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRequeued {
    /// The worker that lost the task.
    pub worker: String,
    pub reason: String,
}

/// A failed task was put back in the queue for another run: by its retry
/// policy (`automatic`) or on request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRetried {
    /// When the next run may start.
    pub available_time: DateTime<Utc>,
    /// The expiration time from now on.
    pub expiration_time: DateTime<Utc>,
    pub automatic: bool,
}

event_enum! {
    /// Every task event, in its current schema version.
    TaskEvent {
        Created(TaskCreated) = "TaskCreated" v 2,
        Started(TaskStarted) = "TaskStarted" v 1,
        LeaseRenewed(TaskLeaseRenewed) = "TaskLeaseRenewed" v 2,
        Completed(TaskCompleted) = "TaskCompleted" v 2,
        Failed(TaskFailed) = "TaskFailed" v 1,
        Expired(TaskExpired) = "TaskExpired" v 1,
        Cancelled(TaskCancelled) = "TaskCancelled" v 1,
        Requeued(TaskRequeued) = "TaskRequeued" v 1,
        Retried(TaskRetried) = "TaskRetried" v 1,
    }
    older {
        "TaskCreated" v 1 as TaskCreatedV1 => Created,
        "TaskLeaseRenewed" v 1 as TaskLeaseRenewedV1 => LeaseRenewed,
        "TaskCompleted" v 1 as TaskCompletedV1 => Completed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{truncate_to_micros, Metadata};

    #[test]
    fn task_ids_are_32_lowercase_hex_and_round_trip() {
        let id = TaskId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
        assert_eq!(TaskId::from_stream(&id.stream()), Some(id));
        assert!(text.to_uppercase().parse::<TaskId>().is_err());
        assert!(id.0.hyphenated().to_string().parse::<TaskId>().is_err());
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let now = truncate_to_micros(Utc::now());
        let event = TaskEvent::Started(TaskStarted {
            worker: "w1".into(),
            lease_expires_at: now,
            attempt: 1,
        });
        let stored = event.to_new_event(now, Metadata::default());
        assert_eq!(stored.event_type, "TaskStarted");
        let back = TaskEvent::decode(&stored.event_type, stored.schema_version, &stored.payload);
        assert_eq!(back.unwrap(), event);
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_panics() {
        assert!(matches!(
            TaskEvent::decode("TaskCreated", 99, "{}"),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            TaskEvent::decode("TaskCompleted", 1, "{\"worker\": 3}"),
            Err(DecodeError::Payload { .. })
        ));
    }
}
