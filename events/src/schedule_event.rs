//! Recurring schedules: each one a stream, `schedule-<id>`, holding its
//! creation, pauses, resumes, deletion and every run it created.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event_enum::event_enum;
pub use crate::stream_id::ScheduleId;
use crate::task_event::{RetryPolicy, TaskId};

/// What each run creates: a task like `POST /v1/tasks` would, available at the
/// run's time and expiring `expires_after_seconds` later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskTemplate {
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub priority: i64,
    pub data: serde_json::Map<String, serde_json::Value>,
    pub expires_after_seconds: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// When runs are due: every `every` `unit`s from the start time, or at the
/// times a five-field cron expression names (UTC).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Recurrence {
    Every(Interval),
    Cron(CronRecurrence),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    pub every: u32,
    pub unit: IntervalUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IntervalUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronRecurrence {
    pub cron: String,
}

/// Whether runs due before the schedule was created are created too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StartMode {
    /// Runs from when the schedule was created on.
    #[default]
    Normal,
    /// Every run from the start time on, those already past included.
    StartInThePast,
}

/// A schedule was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleCreated {
    pub name: String,
    pub task: TaskTemplate,
    pub recurrence: Recurrence,
    pub start_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    pub start_mode: StartMode,
}

/// The schedule stopped creating runs; runs due while paused are skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePaused {}

/// The schedule creates runs again, from the first one due after now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleResumed {}

/// The schedule is gone; the tasks it created stay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeleted {}

/// The run due at `run_time` created task `task_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleFired {
    pub run_time: DateTime<Utc>,
    pub task_id: TaskId,
}

/// The runs due before `until` were missed for too long and are not made:
/// the schedule goes on from there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleRunsSkipped {
    /// The first run time not skipped.
    pub until: DateTime<Utc>,
    /// The first skipped run.
    pub from: DateTime<Utc>,
}

event_enum! {
    /// Every schedule event, in its current schema version.
    ScheduleEvent {
        Created(ScheduleCreated) = "ScheduleCreated" v 1,
        Paused(SchedulePaused) = "SchedulePaused" v 1,
        Resumed(ScheduleResumed) = "ScheduleResumed" v 1,
        Deleted(ScheduleDeleted) = "ScheduleDeleted" v 1,
        Fired(ScheduleFired) = "ScheduleFired" v 1,
        RunsSkipped(ScheduleRunsSkipped) = "ScheduleRunsSkipped" v 1,
    }
}
