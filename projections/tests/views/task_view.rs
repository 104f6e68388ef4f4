//! The task view: one task as the contract shows it.

use std::collections::BTreeMap;

use tasklog_events::envelope::recorded;
use tasklog_events::task_event::*;
use tasklog_events::{Position, TaskEvent, TaskId};
use tasklog_projections::{Lease, TaskState, TaskView};

use crate::*;

/// The task after `events`, each recorded at its time, from position 7 on
/// (so that positions and revisions differ).
fn given(events: &[(f64, TaskEvent)]) -> TaskView {
    let new_events = events.iter().map(|(s, e)| e.at(*s)).collect();
    let log = recorded(&TaskId::new().stream(), 7, new_events);
    TaskView::fold(&log).expect("a task")
}

fn lease(worker: &str, until: f64) -> Option<Lease> {
    Some(Lease {
        worker: worker.into(),
        expires_at: at(until),
        // The test events carry no actor.
        holder: None,
    })
}

#[test]
fn a_created_task_is_pending_with_what_the_create_said() {
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff_seconds: 1,
        max_backoff_seconds: 10,
        backoff_factor: 2.0,
        jitter: false,
    };
    let schedule = ScheduledRun {
        schedule_id: "ab".repeat(16).parse().unwrap(),
        run_time: at(2.0),
    };
    let create = TaskEvent::Created(TaskCreated {
        name: "charge".into(),
        task_type: "billing".into(),
        priority: -4,
        data: serde_json::from_value(serde_json::json!({"order": 1042})).unwrap(),
        available_time: at(2.0),
        expiration_time: at(90.0),
        labels: BTreeMap::from([("env".into(), "prod".into())]),
        tags: vec!["finance".into()],
        retry: Some(retry.clone()),
        schedule: Some(schedule.clone()),
    });
    let view = given(&[(1.5, create)]);
    assert_eq!(
        (view.name.as_str(), view.task_type.as_str(), view.priority),
        ("charge", "billing", -4)
    );
    assert_eq!(view.data.json(), r#"{"order":1042}"#);
    assert_eq!(
        (view.available_time, view.expiration_time),
        (at(2.0), at(90.0))
    );
    assert_eq!(view.labels["env"], "prod");
    assert_eq!(view.tags, ["finance"]);
    assert_eq!((view.retry, view.schedule), (Some(retry), Some(schedule)));
    assert_eq!(view.state, TaskState::Pending);
    assert_eq!((view.created_time, view.modified_time), (at(1.5), at(1.5)));
    assert_eq!(
        (view.run_time, view.duration, view.lease),
        (None, None, None)
    );
    assert_eq!(
        (view.error, view.last_error, view.attempts),
        (None, None, 0)
    );
    assert_eq!((view.revision, view.position), (0, Position(7)));
    assert_eq!(view.created_position, Position(7));
}

#[test]
fn a_started_task_runs_under_the_workers_lease_and_a_heartbeat_extends_it() {
    let view = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
    ]);
    assert_eq!(view.state, TaskState::Running);
    assert_eq!((view.run_time, view.duration), (Some(at(3.0)), None));
    assert_eq!((view.lease, view.attempts), (lease("w1", 33.0), 1));
    assert_eq!((view.created_time, view.modified_time), (at(0.0), at(3.0)));
    assert_eq!((view.revision, view.position), (1, Position(8)));
    assert_eq!(view.created_position, Position(7));

    let renewed = TaskEvent::LeaseRenewed(TaskLeaseRenewed {
        worker: "w1".into(),
        lease_expires_at: at(70.0),
        progress: None,
    });
    let view = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (20.0, renewed),
    ]);
    assert_eq!(view.state, TaskState::Running);
    assert_eq!(
        (view.lease, view.run_time),
        (lease("w1", 70.0), Some(at(3.0)))
    );
    assert_eq!((view.modified_time, view.revision), (at(20.0), 2));
}

#[test]
fn a_completed_task_has_a_duration_in_seconds_from_its_run_time() {
    let view = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (5.250001, completed("w1")),
    ]);
    assert_eq!(view.state, TaskState::Completed);
    assert_eq!(view.duration, Some(2.250001));
    assert_eq!((view.lease, view.error), (None, None));
    assert_eq!(
        (view.created_time, view.modified_time),
        (at(0.0), at(5.250001))
    );
}

#[test]
fn a_failed_task_keeps_its_error_and_its_runs_duration() {
    let view = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (3.5, failed("w1", "smtp down")),
    ]);
    assert_eq!(view.state, TaskState::Failed);
    assert_eq!(view.duration, Some(0.5));
    assert_eq!(view.error.as_deref(), Some("smtp down"));
    assert_eq!(view.last_error.as_deref(), Some("smtp down"));
    assert_eq!(view.lease, None);
}

#[test]
fn a_lapsed_lease_puts_the_task_back_and_the_next_run_is_the_next_attempt() {
    let requeue = [
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (33.0, requeued("w1", "the lease of w1 lapsed")),
    ];
    let view = given(&requeue);
    assert_eq!(view.state, TaskState::Pending);
    assert_eq!((view.lease, view.attempts), (None, 1));
    assert_eq!(view.error.as_deref(), Some("the lease of w1 lapsed"));
    assert_eq!(view.last_error.as_deref(), Some("the lease of w1 lapsed"));
    assert_eq!((view.run_time, view.duration), (Some(at(3.0)), None));

    let mut again = requeue.to_vec();
    again.push((40.0, started("w2", 2, 70.0)));
    let view = given(&again);
    assert_eq!((view.state, view.attempts), (TaskState::Running, 2));
    assert_eq!(
        (view.run_time, view.lease),
        (Some(at(40.0)), lease("w2", 70.0))
    );
    assert_eq!(view.error, None);
    assert_eq!(view.last_error.as_deref(), Some("the lease of w1 lapsed"));
}

#[test]
fn a_retried_task_is_pending_at_its_new_times_and_shows_the_last_failure() {
    let view = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (4.0, failed("w1", "smtp down")),
        (4.0, retried(8.0, 2000.0)),
    ]);
    assert_eq!(view.state, TaskState::Pending);
    assert_eq!(
        (view.available_time, view.expiration_time),
        (at(8.0), at(2000.0))
    );
    assert_eq!(view.attempts, 1);
    assert_eq!(view.error.as_deref(), Some("smtp down"));
    assert_eq!(view.last_error.as_deref(), Some("smtp down"));
    assert_eq!(view.revision, 3);
}

#[test]
fn a_cancelled_task_fails_saying_so_and_a_running_one_ends_its_run() {
    let pending = given(&[
        (0.0, created("email", 1, 0.0)),
        (2.0, cancelled(Some("dup"))),
    ]);
    assert_eq!(pending.state, TaskState::Failed);
    assert_eq!(pending.error.as_deref(), Some("cancelled: dup"));
    assert_eq!(pending.last_error.as_deref(), Some("cancelled: dup"));
    assert_eq!((pending.duration, pending.modified_time), (None, at(2.0)));

    let running = given(&[
        (0.0, created("email", 1, 0.0)),
        (3.0, started("w1", 1, 33.0)),
        (4.5, cancelled(None)),
    ]);
    assert_eq!(running.state, TaskState::Failed);
    assert_eq!(running.error.as_deref(), Some("cancelled"));
    assert_eq!((running.duration, running.lease), (Some(1.5), None));
}

#[test]
fn an_expired_task_fails_with_the_expiry_message() {
    let view = given(&[(0.0, created("email", 1, 0.0)), (1000.0, expired())]);
    assert_eq!(view.state, TaskState::Failed);
    assert_eq!(view.error.as_deref(), Some("expired before it ran"));
    assert_eq!(view.last_error.as_deref(), Some("expired before it ran"));
    assert_eq!((view.run_time, view.duration), (None, None));
    assert_eq!((view.modified_time, view.revision), (at(1000.0), 1));
}

#[test]
fn a_stream_without_its_create_is_no_task() {
    let new_events = vec![started("w1", 1, 33.0).at(3.0)];
    let log = recorded(&TaskId::new().stream(), 1, new_events);
    assert_eq!(TaskView::fold(&log), None);
}

#[test]
fn a_version_1_create_is_read_as_the_current_version() {
    let v1 = TaskCreatedV1 {
        name: "send".into(),
        task_type: "email".into(),
        priority: 2,
        data: Default::default(),
        available_time: at(0.0),
        expiration_time: at(100.0),
    };
    let mut create = created("email", 2, 0.0).at(0.0);
    create.schema_version = 1;
    create.payload = serde_json::to_string(&v1).unwrap();
    let view = TaskView::fold(&recorded(&TaskId::new().stream(), 1, vec![create])).unwrap();
    assert_eq!((view.task_type.as_str(), view.priority), ("email", 2));
    assert_eq!(view.expiration_time, at(100.0));
    assert!(view.labels.is_empty() && view.tags.is_empty());
    assert_eq!((view.retry, view.schedule), (None, None));
}
