//! The stats: tasks per type and state, and finished runs per type.

use std::collections::BTreeMap;

use tasklog_events::TaskId;
use tasklog_projections::stats::RunTotals;
use tasklog_projections::TaskState::{self, *};

use crate::*;

fn counts(entries: &[(&str, TaskState, u64)]) -> BTreeMap<(String, TaskState), u64> {
    entries
        .iter()
        .map(|(task_type, state, n)| ((task_type.to_string(), *state), *n))
        .collect()
}

#[test]
fn counts_follow_each_task_from_state_to_state() {
    let create = |task_type| (0.0, created(task_type, 1, 0.0));
    let start = (1.0, started("w1", 1, 31.0));
    let views = Log::default()
        .task(TaskId::new(), &[create("email")])
        .task(TaskId::new(), &[create("email"), start.clone()])
        .task(
            TaskId::new(),
            &[create("email"), start.clone(), (2.0, completed("w1"))],
        )
        .task(
            TaskId::new(),
            &[create("email"), start, (31.0, requeued("w1", "lapsed"))],
        )
        .task(TaskId::new(), &[create("sms"), (2.0, cancelled(None))])
        .fold();
    assert_eq!(
        views.stats.counts,
        counts(&[
            ("email", Pending, 2),
            ("email", Running, 1),
            ("email", Completed, 1),
            ("sms", Failed, 1),
        ])
    );
    assert_eq!(
        TaskState::ALL.map(|state| views.stats.total(state)),
        [2, 1, 1, 1]
    );
}

#[test]
fn a_state_nobody_is_in_any_more_is_not_counted() {
    let views = Log::default()
        .task(
            TaskId::new(),
            &[
                (0.0, created("email", 1, 0.0)),
                (1.0, started("w1", 1, 31.0)),
                (2.0, completed("w1")),
            ],
        )
        .fold();
    assert_eq!(views.stats.counts, counts(&[("email", Completed, 1)]));
}

#[test]
fn every_ended_run_adds_its_duration_and_requeues_and_pending_ends_do_not() {
    let create = (0.0, created("email", 1, 0.0));
    let start = (1.0, started("w1", 1, 31.0));
    let views = Log::default()
        .task(
            TaskId::new(),
            &[create.clone(), start.clone(), (3.5, completed("w1"))],
        )
        .task(
            TaskId::new(),
            &[create.clone(), start.clone(), (1.25, failed("w1", "boom"))],
        )
        .task(
            TaskId::new(),
            &[create.clone(), start.clone(), (2.0, cancelled(None))],
        )
        .task(
            TaskId::new(),
            &[
                create.clone(),
                start,
                (31.0, requeued("w1", "lapsed")),
                (40.0, cancelled(None)),
            ],
        )
        .task(TaskId::new(), &[create.clone(), (1000.0, expired())])
        .task(TaskId::new(), &[(0.0, created("sms", 1, 0.0))])
        .fold();
    assert_eq!(
        views.stats.runs,
        BTreeMap::from([(
            "email".to_string(),
            RunTotals {
                count: 3,
                seconds: 2.5 + 0.25 + 1.0
            }
        )])
    );
}

#[test]
fn a_retried_task_counts_each_run_once() {
    let views = Log::default()
        .task(
            TaskId::new(),
            &[
                (0.0, created("email", 1, 0.0)),
                (1.0, started("w1", 1, 31.0)),
                (2.0, failed("w1", "boom")),
                (2.0, retried(5.0, 1000.0)),
                (6.0, started("w1", 2, 36.0)),
                (10.0, completed("w1")),
            ],
        )
        .fold();
    assert_eq!(
        views.stats.runs["email"],
        RunTotals {
            count: 2,
            seconds: 5.0
        }
    );
    assert_eq!(views.stats.counts, counts(&[("email", Completed, 1)]));
}
