//! The write side's rules: given a task as it stands and a command, the events
//! that happen, or why not. Pure: no store, no clock of its own.

use chrono::{DateTime, Duration, Utc};
use tasklog_events::task_event::*;
use tasklog_events::TaskEvent;
use tasklog_projections::{Lease, TaskState, TaskView};

use super::rfc3339;
pub use super::Rejection;

/// What a client or a background job asks of a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Create(TaskCreated),
    Claim {
        worker: String,
        lease: Duration,
    },
    /// A lease is held by the worker's name and the token that claimed the
    /// task: `token` is the one a request comes with (None from tasklog itself).
    Heartbeat {
        worker: String,
        lease: Duration,
        token: Option<String>,
        /// How far the run got, if the worker says.
        progress: Option<serde_json::Value>,
    },
    Complete {
        worker: String,
        token: Option<String>,
        /// What the run made, if anything.
        result: Option<serde_json::Value>,
    },
    Fail {
        worker: String,
        error: String,
        token: Option<String>,
    },
    Cancel {
        reason: Option<String>,
    },
    /// Run a failed task again, now; optionally with a new expiration time.
    Retry {
        expiration_time: Option<DateTime<Utc>>,
    },
    /// The expiry job: a pending task whose expiration time has come.
    Expire,
    /// The lease job: a running task whose lease has lapsed.
    RequeueLapsed,
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
            _ => Err(Rejection::TaskNotFound),
        };
    };
    let state = task.state;
    let in_state = |wanted: &'static [TaskState], action: &'static str| {
        if wanted.contains(&state) {
            Ok(())
        } else {
            Err(Rejection::WrongState {
                state,
                wanted,
                action,
            })
        }
    };
    // Only the worker holding a live lease may act on a running task.
    let holder = |worker: &str, token: &Option<String>| {
        in_state(&[TaskState::Running], "worked on")?;
        let other_token =
            |lease: &Lease| lease.holder.is_some() && token.is_some() && lease.holder != *token;
        match &task.lease {
            Some(lease) if lease.worker != worker || other_token(lease) => {
                Err(Rejection::NotLeaseHolder {
                    worker: worker.to_owned(),
                })
            }
            Some(lease) if lease.expires_at <= now => Err(Rejection::LeaseExpired {
                at: lease.expires_at,
            }),
            _ => Ok(()),
        }
    };
    let event = match command {
        Command::Create(_) => return Err(Rejection::TaskExists),
        Command::Claim { worker, lease } => {
            in_state(&[TaskState::Pending], "claimed")?;
            if now < task.available_time {
                return Err(Rejection::NotAvailableYet {
                    until: task.available_time,
                });
            }
            if now >= task.expiration_time {
                return Err(Rejection::Expired);
            }
            TaskEvent::Started(TaskStarted {
                worker: worker.clone(),
                lease_expires_at: now + *lease,
                attempt: task.attempts + 1,
            })
        }
        Command::Heartbeat {
            worker,
            lease,
            token,
            progress,
        } => {
            holder(worker, token)?;
            TaskEvent::LeaseRenewed(TaskLeaseRenewed {
                worker: worker.clone(),
                lease_expires_at: now + *lease,
                progress: progress.clone(),
            })
        }
        Command::Complete {
            worker,
            token,
            result,
        } => {
            holder(worker, token)?;
            TaskEvent::Completed(TaskCompleted {
                worker: worker.clone(),
                result: result.clone(),
            })
        }
        Command::Fail {
            worker,
            error,
            token,
        } => {
            holder(worker, token)?;
            let failed = TaskEvent::Failed(TaskFailed {
                worker: worker.clone(),
                error: error.clone(),
            });
            let retry = task.retry.as_ref().and_then(|policy| {
                let available_time = now + backoff(policy, task, task.attempts)?;
                (available_time < task.expiration_time).then_some(TaskEvent::Retried(TaskRetried {
                    available_time,
                    expiration_time: task.expiration_time,
                    automatic: true,
                }))
            });
            return Ok([Some(failed), retry].into_iter().flatten().collect());
        }
        Command::Retry { expiration_time } => {
            in_state(&[TaskState::Failed], "retried")?;
            let expiration_time = expiration_time.unwrap_or(task.expiration_time);
            if expiration_time <= now {
                return Err(Rejection::ExpirationPassed {
                    at: expiration_time,
                });
            }
            TaskEvent::Retried(TaskRetried {
                available_time: now,
                expiration_time,
                automatic: false,
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
                return Err(Rejection::NotExpiredYet);
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
            let lease = task.lease.as_ref().ok_or(Rejection::NoLease)?;
            if now < lease.expires_at {
                return Err(Rejection::LeaseNotLapsed);
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

/// How long a task waits after its run `attempt` failed, or `None` when the
/// policy allows no more runs. The jitter is drawn from the task id and the
/// attempt: spread across tasks, yet the same on every replay.
fn backoff(policy: &RetryPolicy, task: &TaskView, attempt: u32) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let full = f64::from(policy.initial_backoff_seconds) * policy.backoff_factor.powi(exponent);
    let full = full.min(f64::from(policy.max_backoff_seconds));
    let seconds = if policy.jitter {
        let seed =
            task.id.0.as_u128() as u64 ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let unit = (seed.wrapping_mul(0xD1B5_4A32_D192_ED03) >> 11) as f64 / (1u64 << 53) as f64;
        full * (0.5 + unit / 2.0)
    } else {
        full
    };
    Some(Duration::microseconds((seconds * 1e6) as i64))
}

#[cfg(test)]
mod tests;
