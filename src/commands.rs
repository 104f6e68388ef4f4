//! The write side's rules: given a task as it stands and a command, the events
//! that happen, or why not. Pure: no store, no clock of its own.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tasklog_events::task_event::*;
use tasklog_events::TaskEvent;
use tasklog_projections::{TaskState, TaskView};

/// What a client or a background job asks of a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Create(TaskCreated),
    Claim {
        worker: String,
        lease: Duration,
    },
    Heartbeat {
        worker: String,
        lease: Duration,
    },
    Complete {
        worker: String,
    },
    Fail {
        worker: String,
        error: String,
    },
    Cancel {
        reason: Option<String>,
    },
    /// The expiry job: a pending task whose expiration time has come.
    Expire,
    /// The lease job: a running task whose lease has lapsed.
    RequeueLapsed,
}

/// Why a command does not apply.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// HTTP 404.
    #[error("no such task")]
    NotFound,
    /// HTTP 409: the task exists but is not in a state the command applies to.
    #[error("{0}")]
    Conflict(String),
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The events `command` leads to for `task` (None: the task does not exist) at `now`.
pub fn decide(
    task: Option<&TaskView>,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Vec<TaskEvent>, Rejection> {
    let Some(task) = task else {
        return match command {
            Command::Create(created) => Ok(vec![TaskEvent::Created(created.clone())]),
            _ => Err(Rejection::NotFound),
        };
    };
    let state = task.state;
    let in_state = |wanted: &[TaskState], action: &str| {
        if wanted.contains(&state) {
            Ok(())
        } else {
            let wanted: Vec<_> = wanted.iter().map(|s| s.as_str()).collect();
            Err(Rejection::Conflict(format!(
                "the task is {}; only a {} task can be {action}",
                state.as_str(),
                wanted.join(" or ")
            )))
        }
    };
    // Only the worker holding a live lease may act on a running task.
    let holder = |worker: &str| {
        in_state(&[TaskState::Running], "worked on")?;
        match &task.lease {
            Some(lease) if lease.worker != worker => Err(Rejection::Conflict(format!(
                "the task is running and held by another worker, not by {worker:?}"
            ))),
            Some(lease) if lease.expires_at <= now => Err(Rejection::Conflict(format!(
                "the task is running but its lease expired at {}",
                rfc3339(lease.expires_at)
            ))),
            _ => Ok(()),
        }
    };
    let event = match command {
        Command::Create(_) => return Err(Rejection::Conflict("the task exists already".into())),
        Command::Claim { worker, lease } => {
            in_state(&[TaskState::Pending], "claimed")?;
            if now < task.available_time {
                return Err(Rejection::Conflict(format!(
                    "the task is pending until {}",
                    rfc3339(task.available_time)
                )));
            }
            if now >= task.expiration_time {
                return Err(Rejection::Conflict(
                    "the task is pending but has expired".into(),
                ));
            }
            TaskEvent::Started(TaskStarted {
                worker: worker.clone(),
                lease_expires_at: now + *lease,
                attempt: task.attempts + 1,
            })
        }
        Command::Heartbeat { worker, lease } => {
            holder(worker)?;
            TaskEvent::LeaseRenewed(TaskLeaseRenewed {
                worker: worker.clone(),
                lease_expires_at: now + *lease,
            })
        }
        Command::Complete { worker } => {
            holder(worker)?;
            TaskEvent::Completed(TaskCompleted {
                worker: worker.clone(),
            })
        }
        Command::Fail { worker, error } => {
            holder(worker)?;
            TaskEvent::Failed(TaskFailed {
                worker: worker.clone(),
                error: error.clone(),
            })
        }
        Command::Cancel { reason } => {
            in_state(&[TaskState::Pending, TaskState::Running], "cancelled")?;
            TaskEvent::Cancelled(TaskCancelled {
                reason: reason.clone(),
            })
        }
        Command::Expire => {
            in_state(&[TaskState::Pending], "expired")?;
            if now < task.expiration_time {
                return Err(Rejection::Conflict("the task has not expired yet".into()));
            }
            TaskEvent::Expired(TaskExpired {
                error: format!(
                    "expired: still pending at its expiration time {}",
                    rfc3339(task.expiration_time)
                ),
            })
        }
        Command::RequeueLapsed => {
            in_state(&[TaskState::Running], "requeued")?;
            let lease = task
                .lease
                .as_ref()
                .ok_or_else(|| Rejection::Conflict("the task has no lease".into()))?;
            if now < lease.expires_at {
                return Err(Rejection::Conflict("the lease has not lapsed yet".into()));
            }
            TaskEvent::Requeued(TaskRequeued {
                worker: lease.worker.clone(),
                reason: format!(
                    "the lease of worker {:?} lapsed at {}",
                    lease.worker,
                    rfc3339(lease.expires_at)
                ),
            })
        }
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests;
