//! Old data keeps loading: a store file and its events, written by tasklog's
//! first format version and never rewritten, must open, read back exactly,
//! decode into today's event types, verify, and take new appends.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tasklog_events::task_event::*;
use tasklog_events::{
    verify, EventStore, ExpectedRevision, Metadata, Position, RecordedEvent, TaskEvent, TaskId,
};
use tasklog_store_sqlite::SqliteStore;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn recorded_events() -> Vec<RecordedEvent> {
    let text = std::fs::read_to_string(fixture_dir().join("events.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn a_v1_store_still_opens_reads_decodes_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    std::fs::copy(fixture_dir().join("store.sqlite"), &path).unwrap();
    let store = SqliteStore::open(&path).unwrap();

    let expected = recorded_events();
    let read = store.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(read, expected);
    for event in &read {
        TaskEvent::decode(&event.event_type, event.schema_version, &event.payload)
            .unwrap_or_else(|e| panic!("position {}: {e}", event.position));
    }
    let types: std::collections::BTreeSet<_> = read.iter().map(|e| e.event_type.as_str()).collect();
    let v1_types = [
        "TaskCancelled",
        "TaskCompleted",
        "TaskCreated",
        "TaskExpired",
        "TaskFailed",
        "TaskLeaseRenewed",
        "TaskRequeued",
        "TaskStarted",
    ];
    assert_eq!(
        types,
        v1_types.into(),
        "the fixture has every event type of v1"
    );
    assert_eq!(verify(&store).await.unwrap().events, expected.len() as u64);

    let event = TaskEvent::Cancelled(TaskCancelled { reason: None });
    let stream = &expected[0].stream;
    let revision = read.iter().filter(|e| &e.stream == stream).count() as u64 - 1;
    store
        .append(
            stream,
            ExpectedRevision::Exact(revision),
            vec![event.to_new_event(Utc::now(), Metadata::default())],
        )
        .await
        .unwrap();
    assert_eq!(
        verify(&store).await.unwrap().events,
        expected.len() as u64 + 1
    );
}

/// Writes the fixture once; it is never to be rewritten. A new format version
/// gets a new fixture directory beside this one.
#[tokio::test]
#[ignore = "writes tests/fixtures/v1, once"]
async fn write_v1_fixture() {
    let dir = fixture_dir();
    assert!(
        !dir.exists(),
        "{} exists and must never be rewritten",
        dir.display()
    );
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let t = |seconds: i64| DateTime::<Utc>::from_timestamp(1_790_000_000 + seconds, 0).unwrap();
    let created = |name: &str| {
        TaskEvent::Created(TaskCreated {
            name: name.into(),
            task_type: "email".into(),
            priority: 5,
            data: serde_json::from_value(
                serde_json::json!({"to": "ada@example.com", "retries": [1, 2]}),
            )
            .unwrap(),
            available_time: t(0),
            expiration_time: t(3600),
            ..Default::default()
        })
    };
    let started = |attempt| {
        TaskEvent::Started(TaskStarted {
            worker: "worker-1".into(),
            lease_expires_at: t(60),
            attempt,
        })
    };
    let worker = || "worker-1".to_string();
    let histories = vec![
        vec![
            created("completed"),
            started(1),
            TaskEvent::LeaseRenewed(TaskLeaseRenewed {
                worker: worker(),
                lease_expires_at: t(120),
                progress: None,
            }),
            TaskEvent::Completed(TaskCompleted {
                worker: worker(),
                result: None,
            }),
        ],
        vec![
            created("failed"),
            started(1),
            TaskEvent::Failed(TaskFailed {
                worker: worker(),
                error: "mailbox full".into(),
            }),
        ],
        vec![
            created("expired"),
            TaskEvent::Expired(TaskExpired {
                error: "expired at 2026-09-21T13:33:20Z while pending".into(),
            }),
        ],
        vec![
            created("cancelled"),
            TaskEvent::Cancelled(TaskCancelled {
                reason: Some("duplicate".into()),
            }),
        ],
        vec![
            created("requeued"),
            started(1),
            TaskEvent::Requeued(TaskRequeued {
                worker: worker(),
                reason: "lease expired".into(),
            }),
            started(2),
        ],
    ];
    let metadata = Metadata {
        actor: Some("fixture".into()),
        request_id: Some("req-1".into()),
        causation_id: None,
        traceparent: None,
    };
    for (i, history) in histories.into_iter().enumerate() {
        let stream = TaskId::new().stream();
        for (revision, event) in history.into_iter().enumerate() {
            let expected = if revision == 0 {
                ExpectedRevision::NoStream
            } else {
                ExpectedRevision::Exact(revision as u64 - 1)
            };
            let new = event.to_new_event(t((i * 10 + revision) as i64), metadata.clone());
            store.append(&stream, expected, vec![new]).await.unwrap();
        }
    }
    let events = store.read_all(Position::START, 1000).await.unwrap();
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    std::fs::write(dir.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    drop(store);
    // Fold the WAL into the file so the fixture is one self-contained file.
    for _ in 0..100 {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let folded = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|busy| busy == 0)
            .unwrap_or(false);
        if folded && conn.pragma_update(None, "journal_mode", "DELETE").is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("could not fold the WAL into the fixture");
}
