//! Given the log, when a reader filters it, then these events pass.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tasklog_events::consumer_event::{ConsumerAcknowledged, ConsumerEvent};
use tasklog_events::envelope::recorded;
use tasklog_events::idempotency_event::{
    idempotency_stream, IdempotencyEvent, IdempotencyKeyReserved,
};
use tasklog_events::queue_event::{QueueEvent, QueueLimitSet};
use tasklog_events::schedule_event::{ScheduleEvent, ScheduleId, SchedulePaused};
use tasklog_events::task_event::{TaskCreated, TaskStarted};
use tasklog_events::{
    EventStore, ExpectedRevision, Metadata, NewEvent, RecordedEvent, StreamName, TaskEvent, TaskId,
};
use tasklog_projections::Projections;
use tasklog_store_sqlite::SqliteStore;

use super::EventFilter;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn new(events: &[TaskEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| e.to_new_event(t(0), Metadata::default()))
        .collect()
}

fn task_of(task_type: &str) -> Vec<TaskEvent> {
    vec![
        TaskEvent::Created(TaskCreated {
            name: "send".into(),
            task_type: task_type.into(),
            available_time: t(0),
            expiration_time: t(100),
            ..Default::default()
        }),
        TaskEvent::Started(TaskStarted {
            worker: "w1".into(),
            lease_expires_at: t(30),
            attempt: 1,
        }),
    ]
}

/// An empty store in a directory of its own.
fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("log.db")).unwrap();
    (dir, store)
}

/// One stream of each kind, in this order: an email task (created, started),
/// an sms task (created, started), a schedule (paused, as if created before),
/// a queue setting, an idempotency key, a consumer's position, and an event of
/// a stream that is not tasklog's.
fn log() -> Vec<RecordedEvent> {
    let reserved = IdempotencyEvent::Reserved(IdempotencyKeyReserved {
        task_id: TaskId::new(),
        request_hash: "00".repeat(32),
        expires_at: t(86_400),
    });
    let limit = QueueEvent::LimitSet(QueueLimitSet {
        max_running: Some(2),
    });
    let mut log = recorded(&TaskId::new().stream(), 1, new(&task_of("email")));
    log.extend(recorded(&TaskId::new().stream(), 3, new(&task_of("sms"))));
    let paused = ScheduleEvent::Paused(SchedulePaused {});
    let meta = Metadata::default;
    let rest = [
        (
            ScheduleId::new().stream(),
            paused.to_new_event(t(0), meta()),
        ),
        (
            StreamName::Queue("email".into()).to_string(),
            limit.to_new_event(t(0), meta()),
        ),
        (
            idempotency_stream("ci", "k").to_string(),
            reserved.to_new_event(t(0), meta()),
        ),
        (
            StreamName::Consumer("audit".into()).to_string(),
            ConsumerEvent::Acknowledged(ConsumerAcknowledged { position: 3 })
                .to_new_event(t(0), meta()),
        ),
        ("orders-7".to_string(), limit.to_new_event(t(0), meta())),
    ];
    for (position, (stream, event)) in (5..).zip(rest) {
        log.extend(recorded(&stream, position, vec![event]));
    }
    log
}

/// The positions of the events of `log` that `filter` admits, in order.
async fn shown(
    mut filter: EventFilter,
    log: &[RecordedEvent],
    store: &dyn EventStore,
    views: Option<&tasklog_projections::SharedProjections>,
) -> Vec<u64> {
    let mut shown = Vec::new();
    for event in log {
        if filter.admits(event, store, views).await {
            shown.push(event.position.0);
        }
    }
    shown
}

fn filter(task_type: Option<&str>, event_type: Option<&str>) -> EventFilter {
    EventFilter::new(task_type.map(Into::into), event_type.map(Into::into))
}

#[tokio::test]
async fn without_a_filter_tasks_schedules_and_queues_show_and_bookkeeping_does_not() {
    let (_dir, store) = store();
    assert_eq!(
        shown(filter(None, None), &log(), &store, None).await,
        [1, 2, 3, 4, 5, 6]
    );
}

#[tokio::test]
async fn an_event_type_filter_shows_that_type_only() {
    let (_dir, store) = store();
    let log = log();
    let only = |event_type| shown(filter(None, Some(event_type)), &log, &store, None);
    assert_eq!(only("TaskStarted").await, [2, 4]);
    assert_eq!(only("SchedulePaused").await, [5]);
    assert_eq!(only("QueueLimitSet").await, [6]);
    assert_eq!(only("IdempotencyKeyReserved").await, [] as [u64; 0]);
    assert_eq!(only("ConsumerAcknowledged").await, [] as [u64; 0]);
}

#[tokio::test]
async fn a_task_type_filter_shows_that_types_tasks_and_nothing_else() {
    let (_dir, store) = store();
    let log = log();
    assert_eq!(
        shown(filter(Some("email"), None), &log, &store, None).await,
        [1, 2]
    );
    assert_eq!(
        shown(filter(Some("sms"), None), &log, &store, None).await,
        [3, 4]
    );
    assert_eq!(
        shown(filter(Some("push"), None), &log, &store, None).await,
        [] as [u64; 0]
    );
}

#[tokio::test]
async fn a_task_whose_create_did_not_pass_by_is_typed_by_the_views() {
    let (_dir, empty) = store();
    let log = log();
    let views = Arc::new(RwLock::new(Projections::rebuild(&log)));
    let started = [log[1].clone(), log[3].clone()];
    assert_eq!(
        shown(filter(Some("sms"), None), &started, &empty, Some(&views)).await,
        [4]
    );
    // Neither in the views nor in the log: not shown.
    assert_eq!(
        shown(filter(Some("sms"), None), &started, &empty, None).await,
        [] as [u64; 0]
    );
}

#[tokio::test]
async fn a_task_whose_create_did_not_pass_by_is_typed_by_the_log() {
    let (_dir, store) = store();
    for task_type in ["email", "sms"] {
        let stream = TaskId::new().stream();
        store
            .append(
                &stream,
                ExpectedRevision::NoStream,
                new(&task_of(task_type)),
            )
            .await
            .unwrap();
    }
    let log = store
        .read_all(tasklog_events::Position::START, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 4);
    // The event type filter keeps the creates out, so the filter never sees them.
    assert_eq!(
        shown(filter(Some("sms"), Some("TaskStarted")), &log, &store, None).await,
        [4]
    );
}
