//! Given the events of a task, when a command arrives, then these events (or this rejection).

use chrono::{DateTime, Duration, Utc};
use tasklog_events::envelope::recorded;
use tasklog_events::task_event::*;
use tasklog_events::{Metadata, TaskEvent, TaskId};
use tasklog_projections::{TaskState, TaskView};

use super::{decide, Command, Rejection};

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn created() -> TaskEvent {
    TaskEvent::Created(TaskCreated {
        name: "send".into(),
        task_type: "email".into(),
        priority: 1,
        data: Default::default(),
        available_time: t(10),
        expiration_time: t(100),
        ..Default::default()
    })
}

fn started(worker: &str, lease_until: i64) -> TaskEvent {
    TaskEvent::Started(TaskStarted {
        worker: worker.into(),
        lease_expires_at: t(lease_until),
        attempt: 1,
    })
}

/// The task after `events`, each recorded a second after the one before.
fn given(events: &[TaskEvent]) -> Option<TaskView> {
    let new_events = (11..)
        .zip(events)
        .map(|(at, event)| event.to_new_event(t(at), Metadata::default()))
        .collect();
    TaskView::fold(&recorded(&TaskId::new().stream(), 1, new_events))
}

fn when(task: Option<TaskView>, command: Command, now: i64) -> Result<Vec<TaskEvent>, Rejection> {
    decide(task.as_ref(), &command, t(now))
}

/// The message of a rejection other than not-found.
fn conflict(result: Result<Vec<TaskEvent>, Rejection>) -> String {
    match result {
        Err(rejection) if rejection != Rejection::TaskNotFound => rejection.to_string(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_new_task_is_created() {
    assert_eq!(
        when(
            None,
            Command::Create(match created() {
                TaskEvent::Created(c) => c,
                _ => unreachable!(),
            }),
            0
        ),
        Ok(vec![created()])
    );
}

#[test]
fn commands_on_a_missing_task_are_not_found() {
    assert_eq!(
        when(
            None,
            Command::Complete {
                worker: "w".into(),
                token: None,
                result: None,
            },
            0
        ),
        Err(Rejection::TaskNotFound)
    );
}

#[test]
fn a_pending_task_is_claimed_with_a_lease_from_now() {
    let events = when(
        given(&[created()]),
        Command::Claim {
            worker: "w".into(),
            lease: Duration::seconds(30),
        },
        20,
    )
    .unwrap();
    assert_eq!(
        events,
        vec![TaskEvent::Started(TaskStarted {
            worker: "w".into(),
            lease_expires_at: t(50),
            attempt: 1
        })]
    );
}

#[test]
fn a_task_is_not_claimed_before_its_available_time_or_after_it_expired() {
    let claim = || Command::Claim {
        worker: "w".into(),
        lease: Duration::seconds(30),
    };
    assert!(conflict(when(given(&[created()]), claim(), 5)).contains("pending until"));
    assert!(conflict(when(given(&[created()]), claim(), 100)).contains("expired"));
}

#[test]
fn a_running_task_cannot_be_claimed_again_and_the_conflict_names_its_state() {
    let message = conflict(when(
        given(&[created(), started("w", 50)]),
        Command::Claim {
            worker: "v".into(),
            lease: Duration::seconds(5),
        },
        20,
    ));
    assert!(message.contains("running"), "{message}");
    assert!(matches!(
        when(
            given(&[created(), started("w", 50)]),
            Command::Complete {
                worker: "v".into(),
                token: None,
                result: None,
            },
            20
        ),
        Err(Rejection::NotLeaseHolder { worker }) if worker == "v"
    ));
    assert_eq!(
        when(
            given(&[created()]),
            Command::Complete {
                worker: "w".into(),
                token: None,
                result: None,
            },
            20
        ),
        Err(Rejection::WrongState {
            state: TaskState::Pending,
            wanted: &[TaskState::Running],
            action: "worked on"
        })
    );
}

#[test]
fn only_the_lease_holder_completes_fails_or_heartbeats() {
    let task = || given(&[created(), started("w", 50)]);
    assert_eq!(
        when(
            task(),
            Command::Complete {
                worker: "w".into(),
                token: None,
                result: None,
            },
            20
        ),
        Ok(vec![TaskEvent::Completed(TaskCompleted {
            worker: "w".into(),
            result: None,
        })])
    );
    assert!(conflict(when(
        task(),
        Command::Complete {
            worker: "v".into(),
            token: None,
            result: None,
        },
        20
    ))
    .contains("another worker"));
    assert!(conflict(when(
        task(),
        Command::Fail {
            worker: "v".into(),
            error: "x".into(),
            token: None,
        },
        20
    ))
    .contains("another worker"));
    let renewed = when(
        task(),
        Command::Heartbeat {
            worker: "w".into(),
            lease: Duration::seconds(60),
            token: None,
            progress: None,
        },
        20,
    )
    .unwrap();
    assert_eq!(
        renewed,
        vec![TaskEvent::LeaseRenewed(TaskLeaseRenewed {
            worker: "w".into(),
            lease_expires_at: t(80),
            progress: None,
        })]
    );
}

#[test]
fn a_lapsed_lease_ends_the_workers_say() {
    let task = given(&[created(), started("w", 50)]);
    assert!(conflict(when(
        task,
        Command::Complete {
            worker: "w".into(),
            token: None,
            result: None,
        },
        50
    ))
    .contains("lease expired"));
}

#[test]
fn a_lapsed_lease_requeues_the_task_and_only_then() {
    let task = || given(&[created(), started("w", 50)]);
    assert!(conflict(when(task(), Command::RequeueLapsed, 49)).contains("not lapsed"));
    let events = when(task(), Command::RequeueLapsed, 50).unwrap();
    assert!(matches!(&events[..], [TaskEvent::Requeued(r)] if r.worker == "w"));
    // Requeued, it is pending again and a new run is the second attempt.
    let mut history = vec![created(), started("w", 50)];
    history.extend(events);
    let again = when(
        given(&history),
        Command::Claim {
            worker: "v".into(),
            lease: Duration::seconds(10),
        },
        60,
    )
    .unwrap();
    assert!(matches!(&again[..], [TaskEvent::Started(s)] if s.attempt == 2));
}

#[test]
fn a_pending_task_expires_at_its_expiration_time_and_not_before() {
    assert!(conflict(when(given(&[created()]), Command::Expire, 99)).contains("not expired"));
    let events = when(given(&[created()]), Command::Expire, 100).unwrap();
    assert!(matches!(&events[..], [TaskEvent::Expired(e)] if e.error.contains("expired")));
    assert!(conflict(when(
        given(&[created(), started("w", 500)]),
        Command::Expire,
        200
    ))
    .contains("running"));
}

#[test]
fn pending_and_running_tasks_cancel_finished_ones_do_not() {
    let cancel = || Command::Cancel {
        reason: Some("dup".into()),
    };
    assert!(when(given(&[created()]), cancel(), 20).is_ok());
    assert!(when(given(&[created(), started("w", 50)]), cancel(), 20).is_ok());
    let done = given(&[
        created(),
        started("w", 50),
        TaskEvent::Completed(TaskCompleted {
            worker: "w".into(),
            result: None,
        }),
    ]);
    assert!(conflict(when(done, cancel(), 20)).contains("completed"));
}

#[test]
fn the_view_sets_run_time_and_duration_from_event_times() {
    let view = given(&[
        created(),
        started("w", 50),
        TaskEvent::Failed(TaskFailed {
            worker: "w".into(),
            error: "boom".into(),
        }),
    ])
    .unwrap();
    assert_eq!(view.run_time, Some(t(12)));
    assert_eq!(view.duration, Some(1.0));
    assert_eq!(view.error.as_deref(), Some("boom"));
    assert_eq!((view.created_time, view.modified_time), (t(11), t(13)));
}

fn with_retries(max_attempts: u32, jitter: bool) -> TaskEvent {
    let TaskEvent::Created(mut created) = created() else {
        unreachable!()
    };
    created.retry = Some(RetryPolicy {
        max_attempts,
        initial_backoff_seconds: 4,
        max_backoff_seconds: 10,
        backoff_factor: 2.0,
        jitter,
    });
    TaskEvent::Created(created)
}

fn failed(worker: &str) -> TaskEvent {
    TaskEvent::Failed(TaskFailed {
        worker: worker.into(),
        error: "boom".into(),
    })
}

fn fail(worker: &str) -> Command {
    Command::Fail {
        worker: worker.into(),
        error: "boom".into(),
        token: None,
    }
}

fn started_attempt(attempt: u32, lease_until: i64) -> TaskEvent {
    TaskEvent::Started(TaskStarted {
        worker: "w".into(),
        lease_expires_at: t(lease_until),
        attempt,
    })
}

#[test]
fn a_failed_run_with_attempts_left_is_retried_after_a_growing_capped_backoff() {
    let retried_at = |history: &[TaskEvent], now: i64| match &when(given(history), fail("w"), now)
        .unwrap()[..]
    {
        [TaskEvent::Failed(_), TaskEvent::Retried(r)] => {
            assert!(r.automatic);
            assert_eq!(r.expiration_time, t(100));
            Some(r.available_time)
        }
        [TaskEvent::Failed(_)] => None,
        other => panic!("{other:?}"),
    };
    let policy = with_retries(4, false);
    assert_eq!(
        retried_at(&[policy.clone(), started_attempt(1, 50)], 20),
        Some(t(24))
    );
    assert_eq!(
        retried_at(&[policy.clone(), started_attempt(2, 50)], 20),
        Some(t(28))
    );
    assert_eq!(
        retried_at(&[policy.clone(), started_attempt(3, 50)], 20),
        Some(t(30))
    );
    // The fourth run was the last: the failure stays, the dead letter.
    assert_eq!(
        retried_at(&[policy.clone(), started_attempt(4, 50)], 20),
        None
    );
    // A retry that could only start after the task expires is not made.
    assert_eq!(retried_at(&[policy, started_attempt(1, 99)], 97), None);
    // Without a policy a failure is final.
    assert_eq!(retried_at(&[created(), started("w", 50)], 20), None);
}

#[test]
fn jitter_spreads_the_backoff_between_half_and_all_of_it_and_replays_the_same() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let task = given(&[with_retries(4, true), started_attempt(3, 50)]);
        let events = when(task.clone(), fail("w"), 20).unwrap();
        let TaskEvent::Retried(retried) = &events[1] else {
            panic!("{events:?}")
        };
        let wait = retried.available_time - t(20);
        assert!(
            wait >= Duration::seconds(5) && wait <= Duration::seconds(10),
            "{wait}"
        );
        assert_eq!(
            when(task, fail("w"), 20).unwrap(),
            events,
            "the same on replay"
        );
        seen.insert(wait);
    }
    assert!(
        seen.len() > 40,
        "tasks spread out: {} distinct waits",
        seen.len()
    );
}

#[test]
fn a_retried_task_is_pending_again_shows_its_last_error_and_runs_as_the_next_attempt() {
    let history = [
        with_retries(3, false),
        started_attempt(1, 50),
        failed("w"),
        TaskEvent::Retried(TaskRetried {
            available_time: t(30),
            expiration_time: t(100),
            automatic: true,
        }),
    ];
    let view = given(&history).unwrap();
    assert_eq!(view.state, tasklog_projections::TaskState::Pending);
    assert_eq!((view.attempts, view.available_time), (1, t(30)));
    assert_eq!(view.last_error.as_deref(), Some("boom"));
    let claim = Command::Claim {
        worker: "v".into(),
        lease: Duration::seconds(10),
    };
    assert!(conflict(when(given(&history), claim.clone(), 29)).contains("pending until"));
    let events = when(given(&history), claim, 30).unwrap();
    assert!(matches!(&events[..], [TaskEvent::Started(s)] if s.attempt == 2));
}

#[test]
fn only_a_failed_task_is_retried_on_request_and_not_past_its_expiration() {
    let retry = |expiration_time| Command::Retry { expiration_time };
    let dead = || given(&[created(), started("w", 50), failed("w")]);
    assert_eq!(
        when(dead(), retry(None), 20),
        Ok(vec![TaskEvent::Retried(TaskRetried {
            available_time: t(20),
            expiration_time: t(100),
            automatic: false,
        })])
    );
    assert!(conflict(when(dead(), retry(None), 100)).contains("later expirationTime"));
    assert!(when(dead(), retry(Some(t(300))), 200).is_ok());
    assert!(conflict(when(given(&[created()]), retry(None), 20)).contains("pending"));
}
