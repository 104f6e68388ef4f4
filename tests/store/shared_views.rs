//! Nodes sharing one PostgreSQL schema share its stored views; a node behind
//! another reads rows the other stored after its own position.

use std::sync::Arc;
use std::time::Duration;

use tasklog_events::task_event::{TaskCreated, TaskFailed, TaskRetried, TaskStarted};
use tasklog_events::{EventStore, ExpectedRevision, Metadata, TaskEvent, TaskId};
use tasklog_projections::{ProjectionRunner, ReadModelTables, TaskState};
use tasklog_store_postgres::testing::TestSchema;
use tasklog_store_postgres::{PostgresReadModels, PostgresStore};

/// A failed task left the memory of both nodes; one node, ahead, stores its
/// retry and next run. The node behind, folding the retry, finds a row that
/// already holds it: it folds the task from the log instead, and both nodes
/// end with the same view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_folds_a_newer_row_from_the_log() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    let store: Arc<dyn EventStore> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let tables: Arc<dyn ReadModelTables> =
        Arc::new(PostgresReadModels::connect(&url).await.unwrap());
    let now = chrono::Utc::now();
    let id = TaskId::new();
    let append = |events: Vec<TaskEvent>| {
        let store = store.clone();
        async move {
            let events = events
                .iter()
                .map(|e| e.to_new_event(now, Metadata::default()))
                .collect();
            let stream = id.stream();
            store
                .append(&stream, ExpectedRevision::Any, events)
                .await
                .unwrap()
                .last_position
        }
    };
    let started = TaskEvent::Started(TaskStarted {
        worker: "w".into(),
        attempt: 1,
        lease_expires_at: now + chrono::Duration::minutes(5),
    });
    let failed = append(vec![
        TaskEvent::Created(TaskCreated {
            name: "flaky".into(),
            task_type: "email".into(),
            available_time: now,
            expiration_time: now + chrono::Duration::days(1),
            ..TaskCreated::default()
        }),
        started,
        TaskEvent::Failed(TaskFailed {
            worker: "w".into(),
            error: "boom".into(),
        }),
    ])
    .await;
    let ahead = ProjectionRunner::spawn(store.clone(), tables.clone(), Default::default());
    assert!(ahead.wait_stored(failed, Duration::from_secs(5)).await);
    let behind_at_failure = tables.load().await.unwrap();
    assert_eq!(behind_at_failure.position, failed);
    assert!(behind_at_failure.hot.is_empty(), "a failed task is not hot");

    let again = append(vec![
        TaskEvent::Retried(TaskRetried {
            available_time: now,
            expiration_time: now + chrono::Duration::days(1),
            automatic: false,
        }),
        TaskEvent::Started(TaskStarted {
            worker: "w".into(),
            attempt: 2,
            lease_expires_at: now + chrono::Duration::minutes(5),
        }),
    ])
    .await;
    assert!(ahead.wait_stored(again, Duration::from_secs(5)).await);
    let row = tables.tasks(&[id]).await.unwrap().pop().unwrap();
    assert_eq!((row.state, row.attempts), (TaskState::Running, 2));

    let behind = ProjectionRunner::spawn(
        store.clone(),
        tables.clone(),
        behind_at_failure.into_projections(),
    );
    assert!(behind.wait_for(again, Duration::from_secs(5)).await);
    assert_eq!(behind.read().task(&id), Some(&row));
    assert_eq!(behind.read().stats, ahead.read().stats);
}
