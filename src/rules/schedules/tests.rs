//! Given the events of a schedule, when a command arrives, then these events (or this rejection).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tasklog_events::envelope::recorded;
use tasklog_events::schedule_event::*;
use tasklog_events::task_event::{RetryPolicy, ScheduledRun, TaskCreated};
use tasklog_events::Metadata;
use tasklog_projections::ScheduleView;

use super::{decide, task_for_run, ScheduleCommand};
use crate::rules::Rejection;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn definition() -> ScheduleCreated {
    ScheduleCreated {
        name: "nightly".into(),
        task: TaskTemplate {
            name: "report".into(),
            task_type: "report".into(),
            priority: 3,
            data: serde_json::json!({"format": "pdf"})
                .as_object()
                .unwrap()
                .clone(),
            expires_after_seconds: 600,
            labels: BTreeMap::from([("env".into(), "prod".into())]),
            tags: vec!["finance".into()],
            retry: Some(RetryPolicy {
                max_attempts: 2,
                initial_backoff_seconds: 10,
                max_backoff_seconds: 60,
                backoff_factor: 2.0,
                jitter: true,
            }),
        },
        recurrence: Recurrence::Cron(CronRecurrence {
            cron: "30 3 * * *".into(),
        }),
        start_time: t(0),
        end_time: None,
        start_mode: StartMode::Normal,
    }
}

fn created() -> ScheduleEvent {
    ScheduleEvent::Created(definition())
}

fn paused() -> ScheduleEvent {
    ScheduleEvent::Paused(SchedulePaused {})
}

fn resumed() -> ScheduleEvent {
    ScheduleEvent::Resumed(ScheduleResumed {})
}

fn deleted() -> ScheduleEvent {
    ScheduleEvent::Deleted(ScheduleDeleted {})
}

/// The schedule after `events`, each recorded a second after the one before.
fn given(id: ScheduleId, events: &[ScheduleEvent]) -> Option<ScheduleView> {
    let new_events = (1..)
        .zip(events)
        .map(|(at, event)| event.to_new_event(t(at), Metadata::default()))
        .collect();
    ScheduleView::fold(&recorded(&id.stream(), 1, new_events))
}

fn when(
    schedule: Option<ScheduleView>,
    command: ScheduleCommand,
) -> Result<Vec<ScheduleEvent>, Rejection> {
    decide(schedule.as_ref(), &command)
}

fn create() -> ScheduleCommand {
    ScheduleCommand::Create(Box::new(definition()))
}

#[test]
fn without_a_schedule_only_a_create_applies() {
    assert_eq!(when(None, create()), Ok(vec![created()]));
    for command in [
        ScheduleCommand::Pause,
        ScheduleCommand::Resume,
        ScheduleCommand::Delete,
    ] {
        assert_eq!(when(None, command), Err(Rejection::ScheduleNotFound));
    }
}

#[test]
fn an_active_schedule_pauses_and_deletes_but_is_not_resumed_or_made_again() {
    let active = || given(ScheduleId::new(), &[created()]);
    assert_eq!(when(active(), create()), Err(Rejection::ScheduleExists));
    assert_eq!(when(active(), ScheduleCommand::Pause), Ok(vec![paused()]));
    assert_eq!(
        when(active(), ScheduleCommand::Resume),
        Err(Rejection::ScheduleNotPaused)
    );
    assert_eq!(when(active(), ScheduleCommand::Delete), Ok(vec![deleted()]));
}

#[test]
fn a_paused_schedule_resumes_and_deletes_but_is_not_paused_or_made_again() {
    let paused_schedule = || given(ScheduleId::new(), &[created(), paused()]);
    assert_eq!(
        when(paused_schedule(), create()),
        Err(Rejection::ScheduleExists)
    );
    assert_eq!(
        when(paused_schedule(), ScheduleCommand::Pause),
        Err(Rejection::SchedulePaused)
    );
    assert_eq!(
        when(paused_schedule(), ScheduleCommand::Resume),
        Ok(vec![resumed()])
    );
    assert_eq!(
        when(paused_schedule(), ScheduleCommand::Delete),
        Ok(vec![deleted()])
    );
}

#[test]
fn a_resumed_schedule_is_active_again_and_a_deleted_one_is_not_found() {
    let resumed_schedule = given(ScheduleId::new(), &[created(), paused(), resumed()]);
    assert_eq!(
        when(resumed_schedule, ScheduleCommand::Pause),
        Ok(vec![paused()])
    );
    let gone = given(ScheduleId::new(), &[created(), deleted()]);
    assert_eq!(
        when(gone, ScheduleCommand::Delete),
        Err(Rejection::ScheduleNotFound)
    );
}

#[test]
fn a_run_makes_the_templates_task_available_at_the_run_time() {
    let id = ScheduleId::new();
    let schedule = given(id, &[created()]).unwrap();
    let run_time = t(3_600);
    let template = definition().task;
    assert_eq!(
        task_for_run(&schedule, run_time),
        TaskCreated {
            name: "report".into(),
            task_type: "report".into(),
            priority: 3,
            data: (&template.data).into(),
            available_time: run_time,
            expiration_time: t(4_200),
            labels: template.labels,
            tags: template.tags,
            retry: template.retry,
            schedule: Some(ScheduledRun {
                schedule_id: id,
                run_time,
            }),
        }
    );
}

#[test]
fn a_runs_task_id_follows_from_the_schedule_and_the_run_time() {
    let (id, other) = (ScheduleId::new(), ScheduleId::new());
    assert_eq!(id.task_for_run(t(60)), id.task_for_run(t(60)));
    assert_ne!(id.task_for_run(t(60)), id.task_for_run(t(120)));
    assert_ne!(id.task_for_run(t(60)), other.task_for_run(t(60)));
}

#[test]
fn only_the_schedules_next_run_fires_and_not_while_paused() {
    let id = ScheduleId::new();
    let schedule = given(id, &[created()]);
    let next = schedule.as_ref().unwrap().next_run_time.unwrap();
    let fire = |run_time| ScheduleCommand::Fire {
        run_time,
        task_id: id.task_for_run(run_time),
    };
    let fired = ScheduleEvent::Fired(ScheduleFired {
        run_time: next,
        task_id: id.task_for_run(next),
    });
    assert_eq!(when(schedule.clone(), fire(next)), Ok(vec![fired]));
    let later = next + chrono::Duration::days(1);
    assert_eq!(
        when(schedule, fire(later)),
        Err(Rejection::NotNextRun { run_time: later })
    );
    assert_eq!(
        when(given(id, &[created(), paused()]), fire(next)),
        Err(Rejection::NotNextRun { run_time: next })
    );
    assert_eq!(when(None, fire(next)), Err(Rejection::ScheduleNotFound));
}

#[test]
fn only_runs_owed_from_before_a_time_are_skipped() {
    let id = ScheduleId::new();
    let schedule = given(id, &[created()]);
    let next = schedule.as_ref().unwrap().next_run_time.unwrap();
    let later = next + chrono::Duration::days(3);
    assert_eq!(
        when(schedule.clone(), ScheduleCommand::SkipRuns { until: later }),
        Ok(vec![ScheduleEvent::RunsSkipped(ScheduleRunsSkipped {
            until: later,
            from: next,
        })])
    );
    assert_eq!(
        when(schedule, ScheduleCommand::SkipRuns { until: next }),
        Err(Rejection::NotNextRun { run_time: next })
    );
}
