//! Every view at once: each stream's events land in their own model.

use std::collections::{BTreeMap, HashMap};

use tasklog_events::consumer_event::{ConsumerAcknowledged, ConsumerEvent};
use tasklog_events::envelope::recorded;
use tasklog_events::idempotency_event::{
    idempotency_stream, IdempotencyEvent, IdempotencyKeyReserved,
};
use tasklog_events::queue_event::{QueueEvent, QueueLimitSet, QueuePaused, QueueResumed};
use tasklog_events::schedule_event::{ScheduleEvent, ScheduleId, SchedulePaused, StartMode};
use tasklog_events::{Position, StreamName, TaskId};
use tasklog_projections::{ConsumerView, Projections, QueueSettings, TaskState};

use crate::*;

fn limit(max_running: Option<u32>) -> QueueEvent {
    QueueEvent::LimitSet(QueueLimitSet { max_running })
}

fn acknowledged(position: u64) -> ConsumerEvent {
    ConsumerEvent::Acknowledged(ConsumerAcknowledged { position })
}

fn queue(task_type: &str) -> String {
    StreamName::Queue(task_type.into()).to_string()
}

fn consumer(name: &str) -> String {
    StreamName::Consumer(name.into()).to_string()
}

/// Queue settings as the views keep them.
fn settings(max_running: Option<u32>, revision: u64) -> QueueSettings {
    QueueSettings {
        max_running,
        paused: false,
        revision,
    }
}

#[test]
fn each_stream_lands_in_its_own_model_and_the_task_models_see_only_tasks() {
    let (task, schedule) = (TaskId::new(), ScheduleId::new());
    let reserved = IdempotencyEvent::Reserved(IdempotencyKeyReserved {
        task_id: task,
        request_hash: "00".repeat(32),
        expires_at: at(86_400.0),
    });
    let log = Log::default()
        .stream(
            &idempotency_stream("ci", "order-1").to_string(),
            &[(0.0, reserved)],
        )
        .task(task, &[(1.0, created("email", 1, 0.0))])
        .stream(&queue("email"), &[(2.0, limit(Some(3)))])
        .stream(
            &schedule.stream(),
            &[
                (3.0, crate::schedule_view::hourly(StartMode::Normal, None)),
                (4.0, ScheduleEvent::Paused(SchedulePaused {})),
            ],
        )
        .stream(&consumer("audit"), &[(5.0, acknowledged(4))]);
    let views = log.fold();
    assert_eq!(views.tasks.keys().collect::<Vec<_>>(), [&task]);
    assert_eq!(views.by_creation, BTreeMap::from([(Position(2), task)]));
    assert_eq!(views.tasks[&task].created_position, Position(2));
    assert_eq!(views.stats.total(TaskState::Pending), 1);
    assert_eq!(views.stats.counts.len(), 1);
    assert_eq!(
        views
            .queue
            .candidates(&["email".into()], at(10.0), 10, |_| true),
        [task]
    );
    assert_eq!(views.schedules.keys().collect::<Vec<_>>(), [&schedule]);
    assert!(views.schedules[&schedule].paused);
    assert_eq!(views.schedules[&schedule].revision, 1);
    assert_eq!(
        views.queues,
        HashMap::from([("email".into(), settings(Some(3), 0))])
    );
    assert_eq!(
        views.consumers,
        BTreeMap::from([(
            "audit".into(),
            ConsumerView {
                position: Position(4),
                acknowledged_time: at(5.0),
                revision: 0,
            }
        )])
    );
    assert_eq!(views.position, Position(6));
}

#[test]
fn a_running_limit_is_set_replaced_and_lifted_per_task_type() {
    let views = Log::default()
        .stream(
            &queue("email"),
            &[(0.0, limit(Some(3))), (1.0, limit(Some(5)))],
        )
        .stream(&queue("sms"), &[(2.0, limit(Some(2))), (3.0, limit(None))])
        .fold();
    assert_eq!(views.running_limit("email"), Some(5));
    assert_eq!(views.running_limit("sms"), None);
    assert_eq!(
        views.queues,
        HashMap::from([
            ("email".into(), settings(Some(5), 1)),
            ("sms".into(), settings(None, 1)),
        ])
    );
}

#[test]
fn a_queue_is_paused_and_resumed_with_its_limit_kept() {
    let views = Log::default()
        .stream(
            &queue("email"),
            &[
                (0.0, limit(Some(3))),
                (1.0, QueueEvent::Paused(QueuePaused {})),
            ],
        )
        .stream(
            &queue("sms"),
            &[
                (2.0, QueueEvent::Paused(QueuePaused {})),
                (3.0, QueueEvent::Resumed(QueueResumed {})),
            ],
        )
        .fold();
    assert!(views.is_paused("email"));
    assert!(!views.is_paused("sms"));
    assert!(!views.is_paused("other"));
    assert_eq!(views.running_limit("email"), Some(3));
    assert_eq!(views.queues["sms"].revision, 1);
}

#[test]
fn the_latest_acknowledgement_is_where_a_consumer_is() {
    let views = Log::default()
        .stream(
            &consumer("audit"),
            &[(0.0, acknowledged(10)), (1.0, acknowledged(25))],
        )
        .fold();
    assert_eq!(views.consumers["audit"].position, Position(25));
    assert_eq!(views.consumers["audit"].acknowledged_time, at(1.0));
    assert_eq!(views.consumers["audit"].revision, 1);
}

#[test]
fn events_this_build_cannot_read_and_foreign_streams_change_nothing_but_the_position() {
    let task = TaskId::new();
    let mut unknown = completed("w1").at(1.0);
    unknown.event_type = "TaskTeleported".into();
    let mut log = recorded(
        &task.stream(),
        1,
        vec![created("email", 1, 0.0).at(0.0), unknown],
    );
    log.extend(recorded("orders-7", 3, vec![completed("w1").at(2.0)]));
    let views = Projections::rebuild(&log);
    let view = &views.tasks[&task];
    assert_eq!(
        (view.state, view.revision, view.position),
        (TaskState::Pending, 0, Position(1))
    );
    assert_eq!(views.tasks.len(), 1);
    assert_eq!(views.position, Position(3));
}
