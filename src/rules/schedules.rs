//! Recurring schedules: their rules, and the job that turns each due run into
//! a task exactly once.
//!
//! A run's task id is derived from the schedule and the run's time, so every
//! node and every retry after a crash names the same task; the store's
//! expected revision lets only one create it. `ScheduleFired` then moves the
//! schedule on, again once, by the revision it was decided on.

use chrono::{DateTime, Duration, Utc};
use tasklog_events::schedule_event::*;
use tasklog_events::task_event::{ScheduledRun, TaskCreated};
use tasklog_events::{ExpectedRevision, Metadata, Position};
use tasklog_projections::ScheduleView;

use crate::app::task_service::{ServiceError, TaskService};
use crate::rules::task::{Command, Rejection};

/// Most runs one schedule creates per look at the clock, so a schedule
/// catching up on a long past does not hold up the others.
const RUNS_PER_TICK: usize = 100;
/// Enough retries for a schedule that several nodes change at once.
const MAX_ATTEMPTS: usize = 8;

/// What a client asks of a schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleCommand {
    Create(Box<ScheduleCreated>),
    Pause,
    Resume,
    Delete,
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
    };
    Ok(vec![event])
}

/// The schedule as the views show it now.
pub fn view(service: &TaskService, id: ScheduleId) -> Option<ScheduleView> {
    let views = service.views.read();
    views.schedules.get(&id).cloned()
}

/// Runs `command` on schedule `id`; the schedule afterwards (None once
/// deleted) and the log position that includes the change.
pub async fn execute(
    service: &TaskService,
    id: ScheduleId,
    command: ScheduleCommand,
    metadata: &Metadata,
) -> Result<(Option<ScheduleView>, Position), ServiceError> {
    let stream = id.stream();
    for attempt in 0..MAX_ATTEMPTS {
        // The views may lag the log (another node wrote): retries read the log.
        let (schedule, revision) = if attempt == 0 {
            let schedule = view(service, id);
            let revision = schedule.as_ref().map(|s| s.revision);
            (schedule, revision)
        } else {
            let events = service.store.read_stream(&stream, 0, usize::MAX).await?;
            (
                ScheduleView::fold(&events),
                events.last().map(|e| e.revision),
            )
        };
        let events = match decide(schedule.as_ref(), &command) {
            Ok(events) => events,
            Err(_) if attempt == 0 => continue,
            Err(rejection) => return Err(rejection.into()),
        };
        let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let now = service.clock.now();
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(now, metadata.clone()))
            .collect();
        match service.append_visible(&stream, expected, new_events).await {
            Ok(position) => return Ok((view(service, id), position)),
            Err(ServiceError::Contended) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(ServiceError::Contended)
}

/// The task the run of `schedule` due at `run_time` creates.
pub fn task_for_run(schedule: &ScheduleView, run_time: DateTime<Utc>) -> TaskCreated {
    let template = &schedule.definition.task;
    TaskCreated {
        name: template.name.clone(),
        task_type: template.task_type.clone(),
        priority: template.priority,
        data: template.data.clone(),
        available_time: run_time,
        expiration_time: run_time + Duration::seconds(template.expires_after_seconds.into()),
        labels: template.labels.clone(),
        tags: template.tags.clone(),
        retry: template.retry.clone(),
        schedule: Some(ScheduledRun {
            schedule_id: schedule.id.to_string(),
            run_time,
        }),
    }
}

/// Creates the task of every run due by `now`, each once.
pub async fn run_due(service: &TaskService, now: DateTime<Utc>) -> Result<(), ServiceError> {
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
            let fired = ScheduleEvent::Fired(ScheduleFired {
                run_time,
                task_id: task_id.to_string(),
            });
            let event = fired.to_new_event(service.clock.now(), metadata.clone());
            let expected = ExpectedRevision::Exact(schedule.revision);
            match service
                .append_visible(&id.stream(), expected, vec![event])
                .await
            {
                Ok(_) => {}
                // Another node moved it on, or it was paused or deleted: look again next tick.
                Err(ServiceError::Contended) => break,
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}
