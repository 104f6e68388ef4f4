//! The schedule view: one recurring schedule and when its next run is due.

use tasklog_events::envelope::recorded;
use tasklog_events::schedule_event::*;
use tasklog_projections::ScheduleView;

use crate::*;

const HOUR: f64 = 3600.0;

/// Every hour from the epoch, until `end` hours if given.
fn hourly_definition(start_mode: StartMode, end: Option<f64>) -> ScheduleCreated {
    ScheduleCreated {
        name: "report".into(),
        task: TaskTemplate {
            name: "report".into(),
            task_type: "report".into(),
            priority: 1,
            data: Default::default(),
            expires_after_seconds: 600,
            labels: Default::default(),
            tags: Vec::new(),
            retry: None,
        },
        recurrence: Recurrence::Every(Interval {
            every: 1,
            unit: IntervalUnit::Hours,
        }),
        start_time: at(0.0),
        end_time: end.map(|hours| at(hours * HOUR)),
        start_mode,
    }
}

pub fn hourly(start_mode: StartMode, end: Option<f64>) -> ScheduleEvent {
    ScheduleEvent::Created(hourly_definition(start_mode, end))
}

/// The run of schedule `id` due `hours` after the epoch.
fn run(id: ScheduleId, hours: f64) -> ScheduleFired {
    let run_time = at(hours * HOUR);
    ScheduleFired {
        run_time,
        task_id: id.task_for_run(run_time),
    }
}

fn fired(id: ScheduleId, hours: f64) -> ScheduleEvent {
    ScheduleEvent::Fired(run(id, hours))
}

/// The schedule `id` after `events`, each recorded at its time in seconds.
fn given(id: ScheduleId, events: &[(f64, ScheduleEvent)]) -> Option<ScheduleView> {
    let new_events = events.iter().map(|(s, e)| e.at(*s)).collect();
    ScheduleView::fold(&recorded(&id.stream(), 1, new_events))
}

#[test]
fn a_new_schedule_runs_next_at_its_first_run_after_it_was_created() {
    let id = ScheduleId::new();
    let view = given(id, &[(0.5 * HOUR, hourly(StartMode::Normal, None))]).unwrap();
    assert_eq!(view.id, id);
    assert_eq!(view.definition, hourly_definition(StartMode::Normal, None));
    assert!(!view.paused);
    assert_eq!(view.next_run_time, Some(at(HOUR)));
    assert_eq!((view.runs, view.last_run), (0, None));
    assert_eq!(
        (view.created_time, view.modified_time),
        (at(0.5 * HOUR), at(0.5 * HOUR))
    );
    assert_eq!(view.revision, 0);
}

#[test]
fn a_schedule_started_in_the_past_runs_next_at_its_start() {
    let view = given(
        ScheduleId::new(),
        &[(2.5 * HOUR, hourly(StartMode::StartInThePast, None))],
    )
    .unwrap();
    assert_eq!(view.next_run_time, Some(at(0.0)));
}

#[test]
fn a_fired_run_moves_the_next_run_on() {
    let id = ScheduleId::new();
    let view = given(
        id,
        &[
            (0.5 * HOUR, hourly(StartMode::Normal, None)),
            (HOUR + 1.0, fired(id, 1.0)),
        ],
    )
    .unwrap();
    assert_eq!(view.next_run_time, Some(at(2.0 * HOUR)));
    assert_eq!((view.runs, view.last_run), (1, Some(run(id, 1.0))));
    assert_eq!((view.modified_time, view.revision), (at(HOUR + 1.0), 1));
}

#[test]
fn a_paused_schedule_has_no_next_run_and_a_resumed_one_skips_what_it_missed() {
    let id = ScheduleId::new();
    let paused = [
        (0.5 * HOUR, hourly(StartMode::Normal, None)),
        (HOUR + 1.0, fired(id, 1.0)),
        (1.5 * HOUR, ScheduleEvent::Paused(SchedulePaused {})),
    ];
    let view = given(id, &paused).unwrap();
    assert!(view.paused);
    assert_eq!((view.next_run_time, view.revision), (None, 2));

    let mut resumed = paused.to_vec();
    resumed.push((4.25 * HOUR, ScheduleEvent::Resumed(ScheduleResumed {})));
    let view = given(id, &resumed).unwrap();
    assert!(!view.paused);
    assert_eq!(view.next_run_time, Some(at(5.0 * HOUR)));
    assert_eq!((view.runs, view.modified_time), (1, at(4.25 * HOUR)));
}

#[test]
fn a_schedule_past_its_end_time_has_no_next_run() {
    let id = ScheduleId::new();
    let view = given(
        id,
        &[
            (0.5 * HOUR, hourly(StartMode::Normal, Some(2.0))),
            (HOUR, fired(id, 1.0)),
            (2.0 * HOUR, fired(id, 2.0)),
        ],
    )
    .unwrap();
    assert_eq!((view.runs, view.next_run_time), (2, None));
}

#[test]
fn a_deleted_schedule_is_gone() {
    let id = ScheduleId::new();
    let deleted = given(
        id,
        &[
            (0.0, hourly(StartMode::Normal, None)),
            (10.0, ScheduleEvent::Deleted(ScheduleDeleted {})),
        ],
    );
    assert_eq!(deleted, None);
}
