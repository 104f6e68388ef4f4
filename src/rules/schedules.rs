//! Recurring schedules' rules: what a command does to a schedule, and the
//! task each run creates.

use chrono::{DateTime, Duration, Utc};
use tasklog_events::schedule_event::*;
use tasklog_events::task_event::{ScheduledRun, TaskCreated};
use tasklog_events::{TaskData, TaskId};
use tasklog_projections::ScheduleView;

use crate::rules::Rejection;

/// What a client asks of a schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleCommand {
    Create(Box<ScheduleCreated>),
    Pause,
    Resume,
    Delete,
    /// The run due at `run_time` made its task: move on to the next run.
    Fire {
        run_time: DateTime<Utc>,
        task_id: TaskId,
    },
    /// The runs due before `until` are missed for too long: skip them.
    SkipRuns {
        until: DateTime<Utc>,
    },
}

/// The events `command` leads to for `schedule` (None: it does not exist).
pub fn decide(
    schedule: Option<&ScheduleView>,
    command: &ScheduleCommand,
) -> Result<Vec<ScheduleEvent>, Rejection> {
    let event = match (schedule, command) {
        (None, ScheduleCommand::Create(created)) => ScheduleEvent::Created((**created).clone()),
        (None, _) => return Err(Rejection::ScheduleNotFound),
        (Some(_), ScheduleCommand::Create(_)) => return Err(Rejection::ScheduleExists),
        (Some(s), ScheduleCommand::Pause) if s.paused => return Err(Rejection::SchedulePaused),
        (Some(_), ScheduleCommand::Pause) => ScheduleEvent::Paused(SchedulePaused {}),
        (Some(s), ScheduleCommand::Resume) if !s.paused => {
            return Err(Rejection::ScheduleNotPaused)
        }
        (Some(_), ScheduleCommand::Resume) => ScheduleEvent::Resumed(ScheduleResumed {}),
        (Some(_), ScheduleCommand::Delete) => ScheduleEvent::Deleted(ScheduleDeleted {}),
        (Some(s), ScheduleCommand::SkipRuns { until }) => match s.next_run_time {
            Some(from) if from < *until => ScheduleEvent::RunsSkipped(ScheduleRunsSkipped {
                until: *until,
                from,
            }),
            _ => return Err(Rejection::NotNextRun { run_time: *until }),
        },
        (Some(s), ScheduleCommand::Fire { run_time, task_id }) => {
            if s.next_run_time != Some(*run_time) {
                return Err(Rejection::NotNextRun {
                    run_time: *run_time,
                });
            }
            ScheduleEvent::Fired(ScheduleFired {
                run_time: *run_time,
                task_id: *task_id,
            })
        }
    };
    Ok(vec![event])
}

/// The task the run of `schedule` due at `run_time` creates.
pub fn task_for_run(schedule: &ScheduleView, run_time: DateTime<Utc>) -> TaskCreated {
    let template = &schedule.definition.task;
    TaskCreated {
        name: template.name.clone(),
        task_type: template.task_type.clone(),
        priority: template.priority,
        data: TaskData::from(&template.data),
        available_time: run_time,
        expiration_time: run_time + Duration::seconds(template.expires_after_seconds.into()),
        labels: template.labels.clone(),
        tags: template.tags.clone(),
        retry: template.retry.clone(),
        schedule: Some(ScheduledRun {
            schedule_id: schedule.id,
            run_time,
        }),
    }
}

#[cfg(test)]
mod tests;
