//! Schedules at work: commands on them through the one write path, and the
//! job that turns each due run into a task exactly once.
//!
//! A run's task id is derived from the schedule and the run's time, so every
//! node and every retry after a crash names the same task; the store's
//! expected revision lets only one create it. `ScheduleFired` then moves the
//! schedule on, again once, by the revision it was decided on.

use chrono::{DateTime, Utc};
use tasklog_events::schedule_event::ScheduleId;
use tasklog_events::{Metadata, Position};
use tasklog_projections::ScheduleView;

use super::service::{Service, ServiceError};
use crate::rules::schedules::{task_for_run, ScheduleCommand};
use crate::rules::task::{Command, Rejection};

/// Most runs one schedule creates per look at the clock, so a schedule
/// catching up on a long past does not hold up the others.
const RUNS_PER_TICK: usize = 100;

/// The schedule as the views show it now.
pub fn view(service: &Service, id: ScheduleId) -> Option<ScheduleView> {
    let views = service.views.read();
    views.schedules.get(&id).cloned()
}

/// Runs `command` on schedule `id`; the schedule afterwards (None once
/// deleted) and the log position that includes the change.
pub async fn execute(
    service: &Service,
    id: ScheduleId,
    command: ScheduleCommand,
    metadata: &Metadata,
) -> Result<(Option<ScheduleView>, Position), ServiceError> {
    let written = service
        .write::<ScheduleView>(id, &command, metadata)
        .await?;
    Ok((written.state, written.position))
}

/// Creates the task of every run due by `now`, each once.
pub async fn run_due(service: &Service, now: DateTime<Utc>) -> Result<(), ServiceError> {
    let due: Vec<ScheduleId> = {
        let views = service.views.read();
        views
            .schedules
            .values()
            .filter(|s| s.next_run_time.is_some_and(|t| t <= now))
            .map(|s| s.id)
            .collect()
    };
    let metadata = Metadata {
        actor: Some("tasklog".into()),
        ..Metadata::default()
    };
    for id in due {
        for _ in 0..RUNS_PER_TICK {
            let Some(schedule) = view(service, id) else {
                break;
            };
            let Some(run_time) = schedule.next_run_time.filter(|t| *t <= now) else {
                break;
            };
            if schedule
                .last_run
                .as_ref()
                .is_some_and(|last| last.run_time >= run_time)
            {
                tracing::error!(schedule = %id, %run_time, "the schedule's next run is not after its last; skipping it");
                break;
            }
            let task_id = id.task_for_run(run_time);
            let created = task_for_run(&schedule, run_time);
            match service
                .execute(task_id, Command::Create(created), &metadata)
                .await
            {
                // Made already: by another node, or before a crash.
                Ok(_) | Err(ServiceError::Rejected(Rejection::TaskExists)) => {}
                Err(error) => return Err(error),
            }
            let fire = ScheduleCommand::Fire { run_time, task_id };
            match service.write::<ScheduleView>(id, &fire, &metadata).await {
                Ok(_) => {}
                // Another node moved it on, or it was paused or deleted: look again next tick.
                Err(ServiceError::Contended | ServiceError::Rejected(_)) => break,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}
