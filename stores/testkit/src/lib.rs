//! The suite every [`EventStore`] backend passes, written once.
//!
//! A backend's tests call [`conformance_tests!`](crate::conformance_tests) with
//! an async expression that makes a fresh, empty store and a guard that keeps
//! it alive (a temporary directory, a database schema), or `None` when the
//! backend cannot be reached and the tests are skipped (saying so):
//!
//! ```ignore
//! tasklog_store_testkit::conformance_tests!(fresh_store());
//! ```
//!
//! # Layout
//! - [`conformance_tests!`](crate::conformance_tests): one test function per case.
//! - the cases, one `pub async fn` each, and `matches_a_vec_model`: a random
//!   workload checked against a plain `Vec`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use uuid::Uuid;

use tasklog_events::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use tasklog_events::paging::read_all_pages;
use tasklog_events::store::{
    AppendError, AppendResult, EventStore, ExpectedRevision, StreamAppend,
};
use tasklog_events::verify;
use tasklog_events::{Fanout, SharedEventStream};

/// One test function per case, each on a fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!(@cases $fresh;
            appends_and_reads_streams_in_order,
            events_come_back_exactly_as_appended,
            expected_revision_is_enforced,
            concurrent_appenders_to_one_stream_each_win_once,
            appends_are_idempotent_by_event_id,
            invalid_appends_are_rejected,
            appends_to_several_streams_are_all_or_none,
            rejected_appends_to_several_streams_leave_their_batch_intact,
            subscription_catches_up_then_goes_live,
            subscription_starts_after_the_given_position,
            slow_subscriber_loses_nothing,
            fanout_subscribers_each_get_the_log_once_in_order,
            hash_chain_verifies,
        );
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn matches_a_vec_model() {
            $crate::matches_a_vec_model(|| $fresh).await;
        }
    };
    (@cases $fresh:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, _guard)) = $fresh.await else { return };
                $crate::$case(store).await;
            }
        )*
    };
}

/// The time every test event carries; microsecond precision, like the log.
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_700_000_000_000_000 + micros).unwrap()
}

/// Test event `n`: a fresh id, and `n` in its payload and time.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "TestEvent".into(),
        schema_version: 1,
        recorded_at: at(n as i64),
        payload: format!("{{\"n\":{n}}}"),
        metadata: Metadata::default(),
    }
}

/// Test events `range`, as [`event`] makes them.
pub fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

fn payloads(events: &[RecordedEvent]) -> Vec<String> {
    events.iter().map(|e| e.payload.clone()).collect()
}

async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    read_all_pages(store, Position::START, 1000)
        .try_concat()
        .await
        .unwrap()
}

fn assert_strictly_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

pub async fn appends_and_reads_streams_in_order(store: Arc<dyn EventStore>) {
    let a = store
        .append("task-a", ExpectedRevision::NoStream, events(0..3))
        .await
        .unwrap();
    assert_eq!(a.revision, 2);
    assert_eq!(a.last_position.0 - a.first_position.0, 2);
    let b = store
        .append("task-b", ExpectedRevision::NoStream, events(3..5))
        .await
        .unwrap();
    assert_eq!(b.revision, 1);
    assert!(b.first_position > a.last_position);
    let a2 = store
        .append("task-a", ExpectedRevision::Exact(2), events(5..7))
        .await
        .unwrap();
    assert_eq!(a2.revision, 4);

    let stream_a = store.read_stream("task-a", 0, 100).await.unwrap();
    assert_eq!(
        stream_a.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(payloads(&stream_a), payloads_of(&[0, 1, 2, 5, 6]));
    assert!(stream_a.iter().all(|e| e.stream == "task-a"));
    let middle = store.read_stream("task-a", 2, 2).await.unwrap();
    assert_eq!(
        middle.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(store
        .read_stream("task-none", 0, 10)
        .await
        .unwrap()
        .is_empty());

    let all = read_everything(&*store).await;
    assert_eq!(payloads(&all), payloads_of(&[0, 1, 2, 3, 4, 5, 6]));
    assert_strictly_increasing(&all);
    assert_eq!(all.first().unwrap().position, a.first_position);
    assert_eq!(all.last().unwrap().position, a2.last_position);
    assert_eq!(store.head().await.unwrap(), a2.last_position);

    let page = store.read_all(all[2].position, 2).await.unwrap();
    assert_eq!(payloads(&page), payloads_of(&[3, 4]));
    assert!(store
        .read_all(a2.last_position, 10)
        .await
        .unwrap()
        .is_empty());
}

fn payloads_of(ns: &[u64]) -> Vec<String> {
    ns.iter().map(|n| format!("{{\"n\":{n}}}")).collect()
}

pub async fn events_come_back_exactly_as_appended(store: Arc<dyn EventStore>) {
    let sent = NewEvent {
        id: Uuid::new_v4(),
        event_type: "TaskCreated".into(),
        schema_version: 3,
        recorded_at: at(123_456),
        payload: r#"{"name":"Grüße ☃","data":{"nested":[1,2.5,null,"\"q\""]}}"#.into(),
        metadata: Metadata {
            actor: Some("ops-token".into()),
            request_id: Some("req-1".into()),
            causation_id: Some(Uuid::new_v4()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        },
    };
    let result = store
        .append(
            "task-x",
            ExpectedRevision::Any,
            vec![sent.clone(), event(1)],
        )
        .await
        .unwrap();
    let read = store.read_stream("task-x", 0, 10).await.unwrap();
    let got = &read[0];
    assert_eq!(got.id, sent.id);
    assert_eq!(got.position, result.first_position);
    assert_eq!(got.stream, "task-x");
    assert_eq!(got.revision, 0);
    assert_eq!(got.event_type, sent.event_type);
    assert_eq!(got.schema_version, sent.schema_version);
    assert_eq!(got.recorded_at, sent.recorded_at);
    let payload: serde_json::Value = serde_json::from_str(&got.payload).unwrap();
    assert_eq!(
        payload,
        serde_json::from_str::<serde_json::Value>(&sent.payload).unwrap()
    );
    assert_eq!(got.metadata, sent.metadata);
    assert_eq!(read[1].metadata, Metadata::default());
    assert_ne!(got.hash, read[1].hash);
    assert_eq!(read_everything(&*store).await, read);
}

pub async fn expected_revision_is_enforced(store: Arc<dyn EventStore>) {
    store
        .append("task-a", ExpectedRevision::NoStream, events(0..1))
        .await
        .unwrap();
    let head = store.head().await.unwrap();

    let conflict = |expected, actual| {
        move |result: Result<_, AppendError>| match result {
            Err(AppendError::Conflict {
                stream,
                expected: e,
                actual: a,
            }) => {
                assert_eq!((stream.as_str(), e, a), ("task-a", expected, actual))
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    };
    let result = store
        .append("task-a", ExpectedRevision::NoStream, events(1..2))
        .await;
    conflict(ExpectedRevision::NoStream, Some(0))(result);
    let result = store
        .append("task-a", ExpectedRevision::Exact(5), events(1..2))
        .await;
    conflict(ExpectedRevision::Exact(5), Some(0))(result);
    match store
        .append("task-b", ExpectedRevision::Exact(0), events(1..2))
        .await
    {
        Err(AppendError::Conflict { actual: None, .. }) => {}
        other => panic!("expected a conflict on a missing stream, got {other:?}"),
    }
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a rejected append wrote something"
    );

    let ok = store
        .append("task-a", ExpectedRevision::Exact(0), events(1..2))
        .await
        .unwrap();
    assert_eq!(ok.revision, 1);
    let any = store
        .append("task-a", ExpectedRevision::Any, events(2..3))
        .await
        .unwrap();
    assert_eq!(any.revision, 2);
}

pub async fn concurrent_appenders_to_one_stream_each_win_once(store: Arc<dyn EventStore>) {
    const WRITERS: u64 = 16;
    const EACH: u64 = 20;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                let event = event(writer * 1000 + i);
                loop {
                    let last = store.read_stream("task-hot", 0, usize::MAX).await.unwrap();
                    let expected = last.last().map_or(ExpectedRevision::NoStream, |e| {
                        ExpectedRevision::Exact(e.revision)
                    });
                    match store
                        .append("task-hot", expected, vec![event.clone()])
                        .await
                    {
                        Ok(_) => break,
                        Err(AppendError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("{other}"),
                    }
                }
            }
            conflicts
        }));
    }
    // Appenders to their own streams run alongside and never conflict.
    let mut solo = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        solo.push(tokio::spawn(async move {
            let stream = format!("task-solo-{writer}");
            for i in 0..EACH {
                let expected = if i == 0 {
                    ExpectedRevision::NoStream
                } else {
                    ExpectedRevision::Exact(i - 1)
                };
                store
                    .append(&stream, expected, vec![event(i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in solo {
        task.await.unwrap();
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hot = store.read_stream("task-hot", 0, usize::MAX).await.unwrap();
    assert_eq!(hot.len() as u64, WRITERS * EACH);
    assert!(hot.iter().enumerate().all(|(i, e)| e.revision == i as u64));
    let mut seen: Vec<_> = hot.iter().map(|e| e.payload.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len() as u64,
        WRITERS * EACH,
        "an event was appended twice"
    );
    assert_eq!(
        read_everything(&*store).await.len() as u64,
        2 * WRITERS * EACH
    );
    verify(&*store).await.unwrap();
}

pub async fn appends_are_idempotent_by_event_id(store: Arc<dyn EventStore>) {
    let batch = events(0..2);
    let first = store
        .append("task-a", ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    let lone = events(2..3);
    let single = store
        .append("task-b", ExpectedRevision::NoStream, lone.clone())
        .await
        .unwrap();
    let head = store.head().await.unwrap();

    // A single event appended again, to its stream or to a new one.
    for expected in [ExpectedRevision::NoStream, ExpectedRevision::Any] {
        let again = store.append("task-b", expected, lone.clone()).await;
        assert_eq!(again.unwrap(), single, "retried with {expected}");
    }
    match store
        .append("task-d", ExpectedRevision::NoStream, lone.clone())
        .await
    {
        Err(AppendError::IdempotencyMismatch { event_id }) => assert_eq!(event_id, lone[0].id),
        other => panic!("expected a mismatch for a new stream, got {other:?}"),
    }

    // The same append again, even with an expectation that no longer holds.
    let again = store
        .append("task-a", ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    let again = store
        .append("task-a", ExpectedRevision::Any, batch.clone())
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a retried append wrote something"
    );

    let mixed = vec![batch[0].clone(), event(9)];
    match store.append("task-a", ExpectedRevision::Any, mixed).await {
        Err(AppendError::IdempotencyMismatch { event_id }) => assert_eq!(event_id, batch[0].id),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    match store
        .append("task-c", ExpectedRevision::Any, batch.clone())
        .await
    {
        Err(AppendError::IdempotencyMismatch { .. }) => {}
        other => panic!("expected a mismatch for another stream, got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(read_everything(&*store).await.len(), 3);
}

pub async fn invalid_appends_are_rejected(store: Arc<dyn EventStore>) {
    assert!(matches!(
        store.append("task-a", ExpectedRevision::Any, vec![]).await,
        Err(AppendError::Invalid(_))
    ));
    let twice = event(1);
    assert!(matches!(
        store
            .append("task-a", ExpectedRevision::Any, vec![twice.clone(), twice])
            .await,
        Err(AppendError::Invalid(_))
    ));
    assert!(matches!(
        store
            .append("task-a\0b", ExpectedRevision::Any, events(2..3))
            .await,
        Err(AppendError::Invalid(_))
    ));
    let mut bad_actor = event(3);
    bad_actor.metadata.actor = Some("ci\0".into());
    assert!(matches!(
        store
            .append("task-a", ExpectedRevision::Any, vec![bad_actor])
            .await,
        Err(AppendError::Invalid(_))
    ));
    assert_eq!(store.head().await.unwrap(), Position::START);
}

fn part(stream: &str, expected: ExpectedRevision, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend {
        stream: stream.into(),
        expected,
        events,
    }
}

async fn stream_len(store: &dyn EventStore, stream: &str) -> usize {
    store.read_stream(stream, 0, 100).await.unwrap().len()
}

pub async fn appends_to_several_streams_are_all_or_none(store: Arc<dyn EventStore>) {
    let x = store
        .append("task-x", ExpectedRevision::NoStream, events(0..1))
        .await
        .unwrap();
    let parts = vec![
        part("task-a", ExpectedRevision::NoStream, events(1..3)),
        part("task-x", ExpectedRevision::Exact(x.revision), events(3..4)),
        part("task-b", ExpectedRevision::Any, events(4..5)),
    ];
    let results = store.append_many(parts.clone()).await.unwrap();
    let revisions: Vec<u64> = results.iter().map(|r| r.revision).collect();
    assert_eq!(
        revisions,
        [1, 1, 0],
        "each part's revision, in the order given"
    );
    for pair in results.windows(2) {
        assert!(
            pair[0].last_position < pair[1].first_position,
            "{results:?}"
        );
    }
    let head = store.head().await.unwrap();
    assert_eq!(head, results[2].last_position);
    assert_eq!(
        payloads(&store.read_stream("task-a", 0, 10).await.unwrap()),
        payloads_of(&[1, 2])
    );

    // The same append again: the first results, nothing written.
    assert_eq!(store.append_many(parts).await.unwrap(), results);
    assert_eq!(store.head().await.unwrap(), head);

    // One part at a stale revision: a conflict naming it.
    let stale = vec![
        part("task-c", ExpectedRevision::NoStream, events(5..6)),
        part("task-x", ExpectedRevision::Exact(x.revision), events(6..7)),
        part("task-d", ExpectedRevision::NoStream, events(7..8)),
    ];
    match store.append_many(stale).await {
        Err(AppendError::Conflict { stream, actual, .. }) => {
            assert_eq!((stream.as_str(), actual), ("task-x", Some(1)));
        }
        other => panic!("expected a conflict on task-x, got {other:?}"),
    }
    if store.appends_many_atomically() {
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "a part of a rejected append was written"
        );
        assert_eq!(stream_len(&*store, "task-c").await, 0);
    }
    assert_eq!(stream_len(&*store, "task-d").await, 0);

    // Malformed: no parts, or one event id in two parts.
    assert!(matches!(
        store.append_many(vec![]).await,
        Err(AppendError::Invalid(_))
    ));
    let twice = event(8);
    let doubled = vec![
        part("task-e", ExpectedRevision::Any, vec![twice.clone()]),
        part("task-f", ExpectedRevision::Any, vec![twice]),
    ];
    assert!(matches!(
        store.append_many(doubled).await,
        Err(AppendError::Invalid(_))
    ));
    assert_eq!(stream_len(&*store, "task-e").await, 0);
    verify(&*store).await.unwrap();
}

pub async fn rejected_appends_to_several_streams_leave_their_batch_intact(
    store: Arc<dyn EventStore>,
) {
    if !store.appends_many_atomically() {
        eprintln!("skipped: this store appends to several streams one after another");
        return;
    }
    store
        .append("task-taken", ExpectedRevision::NoStream, events(0..1))
        .await
        .unwrap();
    // Appends that land in the writer's batches together: single ones, ones
    // to several streams that succeed, and ones rejected by their last part.
    let appends = (0..60u64).map(|i| {
        let store = store.clone();
        let n = 100 + i * 10;
        tokio::spawn(async move {
            let outcome = match i % 3 {
                0 => store
                    .append(
                        &format!("task-one-{i}"),
                        ExpectedRevision::NoStream,
                        events(n..n + 1),
                    )
                    .await
                    .map(|result| vec![result]),
                1 => {
                    let parts = vec![
                        part(
                            &format!("task-many-{i}-a"),
                            ExpectedRevision::NoStream,
                            events(n..n + 2),
                        ),
                        part(
                            &format!("task-many-{i}-b"),
                            ExpectedRevision::NoStream,
                            events(n + 2..n + 3),
                        ),
                    ];
                    store.append_many(parts).await
                }
                _ => {
                    let parts = vec![
                        part(
                            &format!("task-lost-{i}"),
                            ExpectedRevision::NoStream,
                            events(n..n + 2),
                        ),
                        part(
                            "task-taken",
                            ExpectedRevision::NoStream,
                            events(n + 2..n + 3),
                        ),
                    ];
                    store.append_many(parts).await
                }
            };
            (i, outcome)
        })
    });
    let outcomes: Vec<(u64, Result<Vec<AppendResult>, AppendError>)> =
        futures::future::try_join_all(appends).await.unwrap();
    for (i, outcome) in outcomes {
        match (i % 3, outcome) {
            (0 | 1, Ok(_)) => {}
            (2, Err(AppendError::Conflict { stream, .. })) => assert_eq!(stream, "task-taken"),
            (_, other) => panic!("append {i}: {other:?}"),
        }
    }
    let all = read_everything(&*store).await;
    assert_eq!(
        all.len(),
        1 + 20 + 20 * 3,
        "the rejected appends' parts were written"
    );
    assert!(all.iter().all(|e| !e.stream.starts_with("task-lost-")));
    let report = verify(&*store).await.unwrap();
    assert_eq!(report.events, all.len() as u64);
}

async fn take(
    subscription: &mut tasklog_events::store::EventStream,
    count: usize,
) -> Vec<RecordedEvent> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .unwrap_or_else(|_| panic!("the subscription stalled after {} events", got.len()));
        got.push(next.expect("the subscription ended").unwrap());
    }
    got
}

pub async fn subscription_catches_up_then_goes_live(store: Arc<dyn EventStore>) {
    for i in 0..100 {
        store
            .append(
                &format!("task-{i}"),
                ExpectedRevision::NoStream,
                vec![event(i)],
            )
            .await
            .unwrap();
    }
    let mut subscription = store.subscribe_all(Position::START);
    let mut writers = Vec::new();
    for writer in 0..4u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..125 {
                let n = 1000 + writer * 1000 + i;
                store
                    .append(
                        &format!("task-{n}"),
                        ExpectedRevision::NoStream,
                        vec![event(n)],
                    )
                    .await
                    .unwrap();
                if i % 25 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let received = take(&mut subscription, 600).await;
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(received, read_everything(&*store).await);
    // Nothing more, and nothing twice.
    let extra = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(
        extra.is_err(),
        "the subscription delivered an event beyond the log: {extra:?}"
    );
}

pub async fn subscription_starts_after_the_given_position(store: Arc<dyn EventStore>) {
    store
        .append("task-a", ExpectedRevision::Any, events(0..10))
        .await
        .unwrap();
    let all = read_everything(&*store).await;
    let mut subscription = store.subscribe_all(all[3].position);
    let got = take(&mut subscription, 6).await;
    assert_eq!(got, all[4..]);
    let live = store
        .append("task-a", ExpectedRevision::Any, events(10..11))
        .await
        .unwrap();
    let next = take(&mut subscription, 1).await;
    assert_eq!(next[0].position, live.first_position);
}

/// Many subscribers share one reader: fast ones live, one so slow it falls far
/// behind the ring, one that starts mid-log and one at the head; each gets
/// exactly the log.
pub async fn fanout_subscribers_each_get_the_log_once_in_order(store: Arc<dyn EventStore>) {
    store
        .append("task-before", ExpectedRevision::Any, events(0..50))
        .await
        .unwrap();
    let fanout = Fanout::start(store.clone(), 8).await.unwrap();
    let mut readers = Vec::new();
    for pause_every in [0u64, 0, 0, 7] {
        let mut subscription = fanout.subscribe(Position::START);
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 450 {
                let event = subscription.next().await.expect("ended").unwrap();
                got.push((*event).clone());
                if pause_every > 0 && (got.len() as u64).is_multiple_of(pause_every) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            got
        }));
    }
    let mut writers = Vec::new();
    for writer in 0..4u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..100 {
                let n = 1000 + writer * 1000 + i;
                let stream = format!("task-{n}");
                let appended = store.append(&stream, ExpectedRevision::NoStream, vec![event(n)]);
                appended.await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let all = read_everything(&*store).await;
    assert_eq!(all.len(), 450);
    let from_middle = fanout.subscribe(all[199].position);
    let middle = take_shared(from_middle, 250).await;
    assert_eq!(middle, all[200..]);
    for reader in readers {
        let got = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("a subscriber fell silent")
            .unwrap();
        assert_eq!(got, all);
    }
    // One that starts at the head goes live without reading the log, and
    // gets the next event (and nothing before it).
    let at_head = fanout.subscribe(all[449].position);
    let next = store.append("task-next", ExpectedRevision::NoStream, vec![event(9999)]);
    let next = next.await.unwrap();
    let got = take_shared(at_head, 1).await;
    assert_eq!(got[0].position, next.first_position);
}

async fn take_shared(mut subscription: SharedEventStream, count: usize) -> Vec<RecordedEvent> {
    let mut got = Vec::new();
    while got.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await;
        let event = next.expect("the subscription stalled").expect("ended");
        got.push((*event.unwrap()).clone());
    }
    got
}

pub async fn slow_subscriber_loses_nothing(store: Arc<dyn EventStore>) {
    let mut subscription = store.subscribe_all(Position::START);
    store
        .append("task-first", ExpectedRevision::Any, events(0..1))
        .await
        .unwrap();
    take(&mut subscription, 1).await;
    // The subscriber now reads nothing while the log grows far past any buffer.
    let mut appends = Vec::new();
    for chunk in 0..50u64 {
        let store = store.clone();
        appends.push(tokio::spawn(async move {
            store
                .append(
                    &format!("task-{chunk}"),
                    ExpectedRevision::Any,
                    events(chunk * 100..chunk * 100 + 100),
                )
                .await
                .unwrap()
        }));
    }
    for append in appends {
        append.await.unwrap();
    }
    let got = take(&mut subscription, 5000).await;
    assert_eq!(got, read_everything(&*store).await[1..]);
}

pub async fn hash_chain_verifies(store: Arc<dyn EventStore>) {
    let empty = verify(&*store).await.unwrap();
    assert_eq!(empty.events, 0);
    for i in 0..20 {
        store
            .append(
                &format!("task-{}", i % 3),
                ExpectedRevision::Any,
                events(i..i + 2),
            )
            .await
            .unwrap();
    }
    let report = verify(&*store).await.unwrap();
    assert_eq!(report.events, 40);
    assert_eq!(report.streams, 3);
    assert_eq!(report.head, store.head().await.unwrap());
    assert_eq!(report.chained, store.keeps_hash_chain());
    if report.chained {
        assert_eq!(
            report.head_hash,
            read_everything(&*store).await.last().unwrap().hash
        );
    }
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Append {
        stream: u8,
        expected: ExpectedRevision,
        count: u8,
    },
    RetryLastAppend,
    ReadStream {
        stream: u8,
        from: u8,
    },
    ReadAll {
        after: u8,
        limit: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let expected = prop_oneof![
        Just(ExpectedRevision::Any),
        Just(ExpectedRevision::NoStream),
        (0u64..6).prop_map(ExpectedRevision::Exact),
    ];
    prop_oneof![
        6 => (0u8..4, expected, 1u8..4).prop_map(|(stream, expected, count)| Op::Append { stream, expected, count }),
        1 => Just(Op::RetryLastAppend),
        1 => (0u8..4, 0u8..6).prop_map(|(stream, from)| Op::ReadStream { stream, from }),
        1 => (0u8..30, 1u8..10).prop_map(|(after, limit)| Op::ReadAll { after, limit }),
    ]
}

/// The log as a plain `Vec`: (stream, payload), in order.
#[derive(Default)]
struct Model {
    log: Vec<(String, String)>,
}

impl Model {
    fn last_revision(&self, stream: &str) -> Option<u64> {
        let count = self.log.iter().filter(|(s, _)| s == stream).count() as u64;
        count.checked_sub(1)
    }
}

/// Random appends, retries and reads against a fresh store and a `Vec`; every
/// answer and the final log must agree.
pub async fn matches_a_vec_model<F, Fut, G>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(Arc<dyn EventStore>, G)>>,
{
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let Some((store, _guard)) = fresh().await else {
                    return Ok(());
                };
                run_model(&*store, ops).await
            })
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

async fn run_model(store: &dyn EventStore, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let mut positions: Vec<Position> = Vec::new();
    let mut last_append: Option<(
        String,
        ExpectedRevision,
        Vec<NewEvent>,
        Option<tasklog_events::AppendResult>,
    )> = None;
    let mut n = 0;
    for op in ops {
        match op {
            Op::Append {
                stream,
                expected,
                count,
            } => {
                let stream = format!("task-{stream}");
                let batch: Vec<_> = (0..count)
                    .map(|_| {
                        n += 1;
                        event(n)
                    })
                    .collect();
                let actual = model.last_revision(&stream);
                let result = store.append(&stream, expected, batch.clone()).await;
                let accepted = if expected.admits(actual) {
                    let result =
                        result.map_err(|e| TestCaseError::fail(format!("append failed: {e}")))?;
                    let first = actual.map_or(0, |r| r + 1);
                    prop_assert_eq!(result.revision, first + count as u64 - 1);
                    for event in &batch {
                        model.log.push((stream.clone(), event.payload.clone()));
                    }
                    let new_positions = read_everything(store)
                        .await
                        .iter()
                        .skip(positions.len())
                        .map(|e| e.position)
                        .collect::<Vec<_>>();
                    prop_assert_eq!(new_positions.first().copied(), Some(result.first_position));
                    prop_assert_eq!(new_positions.last().copied(), Some(result.last_position));
                    positions.extend(new_positions);
                    Some(result)
                } else {
                    match result {
                        Err(AppendError::Conflict { actual: a, .. }) => prop_assert_eq!(a, actual),
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "expected a conflict, got {other:?}"
                            )))
                        }
                    }
                    None
                };
                last_append = Some((stream, expected, batch, accepted));
            }
            Op::RetryLastAppend => {
                let Some((stream, expected, batch, accepted)) = last_append.clone() else {
                    continue;
                };
                let result = store.append(&stream, expected, batch).await;
                match (accepted, result) {
                    (Some(first), Ok(again)) => prop_assert_eq!(first, again),
                    (None, Err(AppendError::Conflict { .. })) => {}
                    (accepted, result) => {
                        return Err(TestCaseError::fail(format!(
                            "retry of {accepted:?} gave {result:?}"
                        )))
                    }
                }
            }
            Op::ReadStream { stream, from } => {
                let stream = format!("task-{stream}");
                let got = store.read_stream(&stream, from as u64, 100).await.unwrap();
                let want: Vec<_> = model
                    .log
                    .iter()
                    .filter(|(s, _)| *s == stream)
                    .skip(from as usize)
                    .map(|(_, p)| p.clone())
                    .collect();
                prop_assert_eq!(payloads(&got), want);
                let revisions: Vec<u64> = got.iter().map(|e| e.revision).collect();
                let due: Vec<u64> = (from as u64..from as u64 + got.len() as u64).collect();
                prop_assert_eq!(revisions, due);
            }
            Op::ReadAll { after, limit } => {
                let after_index = (after as usize).min(positions.len());
                let after_position = if after_index == 0 {
                    Position::START
                } else {
                    positions[after_index - 1]
                };
                let got = store
                    .read_all(after_position, limit as usize)
                    .await
                    .unwrap();
                let want: Vec<_> = model
                    .log
                    .iter()
                    .skip(after_index)
                    .take(limit as usize)
                    .map(|(_, p)| p.clone())
                    .collect();
                prop_assert_eq!(payloads(&got), want);
            }
        }
    }
    let all = read_everything(store).await;
    let want: Vec<_> = model.log.iter().map(|(_, p)| p.clone()).collect();
    prop_assert_eq!(payloads(&all), want);
    prop_assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    let streams: HashMap<&str, usize> = model.log.iter().fold(HashMap::new(), |mut m, (s, _)| {
        *m.entry(s.as_str()).or_default() += 1;
        m
    });
    let report = verify(store)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(report.events as usize, model.log.len());
    prop_assert_eq!(report.streams as usize, streams.len());
    Ok(())
}
