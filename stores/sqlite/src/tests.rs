use std::sync::Arc;

use rusqlite::Connection;
use tempfile::TempDir;

use super::SqliteStore;
use tasklog_events::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use tasklog_events::hash_chain::chain_hash;
use tasklog_events::store::{EventStore, ExpectedRevision};
use tasklog_events::{verify, VerifyError};

async fn fresh_store() -> Option<(Arc<dyn EventStore>, TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("log.sqlite")).unwrap();
    Some((Arc::new(store), dir))
}

tasklog_store_testkit::conformance_tests!(fresh_store());

/// A store with 30 events in 3 streams, and a connection to its file that
/// goes behind the store's back.
async fn store_and_file() -> (SqliteStore, Connection, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..30u64 {
        let event = tasklog_store_testkit::event(i);
        let stream = format!("task-{}", i % 3);
        store
            .append(&stream, ExpectedRevision::Any, vec![event])
            .await
            .unwrap();
    }
    verify(&store).await.expect("the untouched log verifies");
    (store, Connection::open(&path).unwrap(), dir)
}

async fn first_bad_position(store: &SqliteStore) -> Position {
    match verify(store).await {
        Ok(report) => panic!("verify passed a tampered log: {report:?}"),
        Err(error) => error.position().unwrap_or_else(|| panic!("{error}")),
    }
}

#[tokio::test]
async fn verify_names_an_edited_event() {
    let (store, file, _dir) = store_and_file().await;
    file.execute(
        "UPDATE events SET payload = '{\"n\":999}' WHERE position = 12",
        [],
    )
    .unwrap();
    assert_eq!(first_bad_position(&store).await, Position(12));
}

#[tokio::test]
async fn verify_names_an_edit_whose_hash_was_recomputed_at_the_next_event() {
    let (store, file, _dir) = store_and_file().await;
    file.execute("UPDATE events SET actor = 'mallory' WHERE position = 7", [])
        .unwrap();
    // The forger fixes event 7's own hash, but cannot fix 8's without rewriting the rest.
    let events = store.read_all(Position(5), 2).await.unwrap();
    let forged = chain_hash(&events[0].hash, &(&events[1]).into());
    file.execute(
        "UPDATE events SET hash = ?1 WHERE position = 7",
        [&forged[..]],
    )
    .unwrap();
    assert_eq!(first_bad_position(&store).await, Position(8));
}

#[tokio::test]
async fn verify_names_the_event_after_a_deleted_one() {
    let (store, file, _dir) = store_and_file().await;
    file.execute("DELETE FROM events WHERE position = 20", [])
        .unwrap();
    assert_eq!(first_bad_position(&store).await, Position(21));
}

#[tokio::test]
async fn verify_names_reordered_events() {
    let (store, file, _dir) = store_and_file().await;
    file.execute_batch(
        "UPDATE events SET position = -1 WHERE position = 15;
         UPDATE events SET position = 15 WHERE position = 16;
         UPDATE events SET position = 16 WHERE position = -1;",
    )
    .unwrap();
    assert_eq!(first_bad_position(&store).await, Position(15));
}

#[tokio::test]
async fn verify_names_a_revision_gap_even_with_a_consistent_chain() {
    let (store, file, _dir) = store_and_file().await;
    // Rewrite one revision and every hash from there on: the chain holds, the stream does not.
    file.execute("UPDATE events SET revision = 40 WHERE position = 28", [])
        .unwrap();
    let mut events = store.read_all(Position::START, 100).await.unwrap();
    for i in 27..events.len() {
        events[i].hash = chain_hash(&events[i - 1].hash, &(&events[i]).into());
        let position = events[i].position.0 as i64;
        file.execute(
            "UPDATE events SET hash = ?1 WHERE position = ?2",
            rusqlite::params![&events[i].hash[..], position],
        )
        .unwrap();
    }
    match verify(&store).await {
        Err(VerifyError::RevisionGap {
            position,
            revision: 40,
            expected: 9,
            ..
        }) => assert_eq!(position, Position(28)),
        other => panic!("expected a revision gap, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reopened_store_continues_the_log_and_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let event = |n: u64| NewEvent {
        id: uuid::Uuid::new_v4(),
        event_type: "TestEvent".into(),
        schema_version: 1,
        recorded_at: chrono::DateTime::from_timestamp_micros(n as i64).unwrap(),
        payload: "{}".into(),
        metadata: Metadata::default(),
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append(
                "task-a",
                ExpectedRevision::NoStream,
                vec![event(1), event(2)],
            )
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.head().await.unwrap(), Position(2));
    let result = store
        .append("task-a", ExpectedRevision::Exact(1), vec![event(3)])
        .await
        .unwrap();
    assert_eq!(result.last_position, Position(3));
    assert_eq!(verify(&store).await.unwrap().events, 3);
}

/// A subscription reads the newest events from memory: they must be the
/// events the file holds, to the last field (the time to the microsecond,
/// the metadata, the hash), for appends in one batch and in several.
#[tokio::test]
async fn subscribers_get_the_newest_events_exactly_as_the_file_holds_them() {
    use futures::StreamExt;
    let (store, _file, _dir) = store_and_file().await;
    let mut subscription = store.subscribe_all(Position(20));
    let mut appended = Vec::new();
    for i in 0..3u64 {
        let mut event = tasklog_store_testkit::event(100 + i);
        event.recorded_at = chrono::DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        event.metadata = Metadata {
            actor: Some("ops".into()),
            request_id: Some(format!("request-{i}")),
            causation_id: Some(uuid::Uuid::new_v4()),
            traceparent: Some(format!("00-{:032x}-{:016x}-01", i + 1, i + 1)),
        };
        let two = vec![event, tasklog_store_testkit::event(200 + i)];
        appended.push(store.append("task-new", ExpectedRevision::Any, two));
    }
    futures::future::try_join_all(appended).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 16 {
        got.push(subscription.next().await.unwrap().unwrap());
    }
    let from_file = store.read_all(Position(20), 100).await.unwrap();
    assert_eq!(got, from_file);
}

/// A lone event goes straight in, the unique indexes checking it: one the
/// log holds, retried with whatever expectation, gets its first answer and
/// writes nothing, and a taken revision is a conflict.
#[tokio::test]
async fn a_lone_event_retried_gets_its_first_answer() {
    let (store, _file, _dir) = store_and_file().await;
    let lone = vec![tasklog_store_testkit::event(100)];
    let first = store
        .append("task-0", ExpectedRevision::Exact(9), lone.clone())
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    for expected in [
        ExpectedRevision::Exact(9),
        ExpectedRevision::Exact(10),
        ExpectedRevision::Any,
        ExpectedRevision::NoStream,
    ] {
        let again = store.append("task-0", expected, lone.clone()).await;
        assert_eq!(again.unwrap(), first, "retried with {expected}");
    }
    assert_eq!(store.head().await.unwrap(), head, "a retry wrote something");
    let other = vec![tasklog_store_testkit::event(101)];
    match store
        .append("task-0", ExpectedRevision::Exact(9), other)
        .await
    {
        Err(tasklog_events::AppendError::Conflict { actual, .. }) => assert_eq!(actual, Some(10)),
        outcome => panic!("expected a conflict, got {outcome:?}"),
    }
    verify(&store).await.expect("the log verifies");
}

/// A store holding `events` events, 1,000 to a stream, and its file's path.
async fn long_log(events: u64) -> (SqliteStore, std::path::PathBuf, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let all = tasklog_store_testkit::events(0..events);
    for (n, chunk) in all.chunks(1000).enumerate() {
        store
            .append(
                &format!("task-{n}"),
                ExpectedRevision::NoStream,
                chunk.to_vec(),
            )
            .await
            .unwrap();
    }
    (store, path, dir)
}

/// A long page is read as ranges at once, and gives what one read gives:
/// the log in order, also when rows were removed behind the store's back.
#[tokio::test]
async fn a_long_page_read_in_ranges_is_the_log_in_order() {
    let (store, path, _dir) = long_log(10_000).await;
    // Pages of 1,000 are read in one piece.
    let in_pieces = |after: Position| {
        let store = store.clone();
        async move {
            let mut events: Vec<RecordedEvent> = Vec::new();
            loop {
                let from = events.last().map_or(after, |e| e.position);
                let page = store.read_all(from, 1000).await.unwrap();
                if page.is_empty() || events.len() >= 8192 {
                    break;
                }
                events.extend(page);
            }
            events.truncate(8192);
            events
        }
    };
    for after in [Position::START, Position(1000), Position(1808)] {
        let page = store.read_all(after, 8192).await.unwrap();
        assert_eq!(page.len(), 8192);
        assert!(page == in_pieces(after).await, "a page after {after}");
    }

    Connection::open(&path)
        .unwrap()
        .execute(
            "DELETE FROM events WHERE position = 300 OR position BETWEEN 4000 AND 4200",
            [],
        )
        .unwrap();
    let page = store.read_all(Position::START, 8192).await.unwrap();
    assert_eq!(page.len(), 8192);
    assert!(
        page == in_pieces(Position::START).await,
        "a page across the gaps"
    );
}

/// In a long log, verify names the first of two edits deep in a page.
#[tokio::test]
async fn verify_names_the_first_bad_event_of_a_long_log() {
    let (store, path, _dir) = long_log(3000).await;
    let report = verify(&store).await.expect("the untouched log verifies");
    assert_eq!(report.events, 3000);
    let last = store.read_all(Position(2999), 1).await.unwrap();
    assert_eq!(report.head_hash, last[0].hash);

    let file = Connection::open(&path).unwrap();
    file.execute(
        "UPDATE events SET payload = '{\"n\":-1}' WHERE position IN (2500, 2900)",
        [],
    )
    .unwrap();
    assert_eq!(first_bad_position(&store).await, Position(2500));
}
