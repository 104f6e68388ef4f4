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
use tasklog_projections::schedule_view::kth_run_back;
use tasklog_projections::ScheduleView;
use tracing::Instrument;

use super::jobs::job_metadata;
use super::service::{Service, ServiceError};
use crate::rules::schedules::{task_for_run, ScheduleCommand};
use crate::rules::task::{Command, Rejection};

/// Most runs one schedule creates per look at the clock, so a schedule
/// catching up on a long past does not hold up the others.
const RUNS_PER_TICK: usize = 100;

/// At most this many missed runs of a schedule are made late; older ones are
/// skipped (one `ScheduleRunsSkipped` event), so a schedule that owes runs
/// from long ago makes a bounded number of them, not every one since its start.
pub const MAX_MISSED_RUNS: u32 = 100;

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
    let _commanding = service.schedule_commands.enter(id);
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
    for id in due {
        let span = tracing::info_span!("job", job = "scheduled runs", schedule = %id);
        run_schedule(service, id, now, job_metadata(&span))
            .instrument(span)
            .await?;
    }
    Ok(())
}

/// Makes the due runs of schedule `id`, at most [`RUNS_PER_TICK`] of them.
async fn run_schedule(
    service: &Service,
    id: ScheduleId,
    now: DateTime<Utc>,
    metadata: Metadata,
) -> Result<(), ServiceError> {
    skip_long_missed_runs(service, id, now, &metadata).await?;
    for _ in 0..RUNS_PER_TICK {
        if service.schedule_commands.contains(id) {
            break;
        }
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
            Ok(_) => {
                tracing::info!(schedule = %id, task = %task_id, %run_time, "a scheduled run's task is made")
            }
            // Another node moved it on, or it was paused or deleted: look again next tick.
            Err(ServiceError::Contended | ServiceError::Rejected(_)) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Skips the runs of schedule `id` older than its [`MAX_MISSED_RUNS`] newest
/// due by `now`, if it owes any.
async fn skip_long_missed_runs(
    service: &Service,
    id: ScheduleId,
    now: DateTime<Utc>,
    metadata: &Metadata,
) -> Result<(), ServiceError> {
    let Some(schedule) = view(service, id) else {
        return Ok(());
    };
    let definition = &schedule.definition;
    let oldest_made = kth_run_back(
        &definition.recurrence,
        definition.start_time,
        now,
        MAX_MISSED_RUNS,
    );
    let (Some(next), Some(until)) = (schedule.next_run_time, oldest_made) else {
        return Ok(());
    };
    if next >= until || service.schedule_commands.contains(id) {
        return Ok(());
    }
    let skip = ScheduleCommand::SkipRuns { until };
    match service.write::<ScheduleView>(id, &skip, metadata).await {
        Ok(_) => {
            tracing::info!(schedule = %id, from = %next, %until, "skipped the runs missed beyond the newest {MAX_MISSED_RUNS}");
            Ok(())
        }
        // Moved on, paused or deleted meanwhile: look again next tick.
        Err(ServiceError::Contended | ServiceError::Rejected(_)) => Ok(()),
        Err(error) => Err(error),
    }
}
