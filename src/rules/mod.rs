//! The pure rules: no I/O, no clock but the time they are given.
//!
//! # Layout
//! - [`task`]: a task and a command in, events out (or a rejection).
//! - [`labels`]: label and tag rules, and the label selectors list and claim filter by.
//! - [`schedules`]: recurring schedules' rules, and the task each run creates.
//! - [`Rejection`]: why the task and schedule rules say no, one variant per reason.

pub mod labels;
pub mod schedules;
pub mod task;

use chrono::{DateTime, SecondsFormat, Utc};
use tasklog_projections::TaskState;

/// Why a command does not apply: one variant per reason, so the HTTP layer can
/// give each its own status and `reason` (its table is `http/error.rs`). The
/// message is the variant's `Display`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// HTTP 404: no task has this id.
    #[error("no such task")]
    TaskNotFound,
    /// HTTP 409: a create for a task id that is taken.
    #[error("the task exists already")]
    TaskExists,
    /// HTTP 409: the task is in a state the command does not apply to.
    #[error("the task is {}; only a {} task can be {action}", state.as_str(), states(wanted))]
    WrongState {
        state: TaskState,
        wanted: &'static [TaskState],
        action: &'static str,
    },
    /// HTTP 409: another worker holds the running task's lease.
    #[error("the task is running and held by another worker, not by {worker:?}")]
    NotLeaseHolder { worker: String },
    /// HTTP 409: the worker's lease on the running task has lapsed.
    #[error("the task is running but its lease expired at {}", rfc3339(*at))]
    LeaseExpired { at: DateTime<Utc> },
    /// HTTP 409: a claim before the task's `availableTime`.
    #[error("the task is pending until {}", rfc3339(*until))]
    NotAvailableYet { until: DateTime<Utc> },
    /// HTTP 409: a claim of a pending task past its `expirationTime`.
    #[error("the task is pending but has expired")]
    Expired,
    /// HTTP 409: a retry whose expiration time has passed.
    #[error("the task's expiration time {} has passed; give a later expirationTime to retry it", rfc3339(*at))]
    ExpirationPassed { at: DateTime<Utc> },
    /// HTTP 409 (only the expiry job sends it): the task has not expired.
    #[error("the task has not expired yet")]
    NotExpiredYet,
    /// HTTP 409 (only the lease job sends it): the lease has not lapsed.
    #[error("the lease has not lapsed yet")]
    LeaseNotLapsed,
    /// HTTP 409 (only the lease job sends it): a running task without a lease.
    #[error("the task has no lease")]
    NoLease,
    /// HTTP 404: no schedule has this id.
    #[error("no such schedule")]
    ScheduleNotFound,
    /// HTTP 409: a create for a schedule id that is taken.
    #[error("the schedule exists already")]
    ScheduleExists,
    /// HTTP 409: a pause of a paused schedule.
    #[error("the schedule is paused already")]
    SchedulePaused,
    /// HTTP 409: a resume of a schedule that is not paused.
    #[error("the schedule is not paused")]
    ScheduleNotPaused,
    /// HTTP 409 (only the schedule job sends it): the run is not the schedule's
    /// next one (another node fired it, or the schedule was paused).
    #[error("the run at {} is not the schedule's next one", rfc3339(*run_time))]
    NotNextRun { run_time: DateTime<Utc> },
}

fn states(states: &[TaskState]) -> String {
    let names: Vec<_> = states.iter().map(|s| s.as_str()).collect();
    names.join(" or ")
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
