//! The views' runner stores the rows of what it folded on its own, soon
//! after, with no reader asking; a finished task then leaves memory.

use std::time::{Duration, Instant};

use tasklog::app::store_url::StoreUrl;
use tasklog_events::task_event::{TaskCompleted, TaskCreated, TaskStarted};
use tasklog_events::{ExpectedRevision, Metadata, TaskEvent, TaskId};
use tasklog_projections::{ProjectionRunner, Projections, TaskState};

#[tokio::test]
async fn the_runner_stores_what_it_folded_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::default_in(dir.path());
    let (store, tables) = (url.open().await.unwrap(), url.open_views().await.unwrap());
    let runner = ProjectionRunner::spawn(store.clone(), tables.clone(), Projections::default());
    let now = chrono::Utc::now();
    let id = TaskId::new();
    let lifecycle = [
        TaskEvent::Created(TaskCreated {
            name: "quick".into(),
            task_type: "email".into(),
            available_time: now,
            expiration_time: now + chrono::Duration::days(1),
            ..TaskCreated::default()
        }),
        TaskEvent::Started(TaskStarted {
            worker: "w".into(),
            attempt: 1,
            lease_expires_at: now + chrono::Duration::minutes(5),
        }),
        TaskEvent::Completed(TaskCompleted {
            worker: "w".into(),
            result: None,
        }),
    ];
    let (stream, mut last) = (id.stream(), None);
    for event in &lifecycle {
        let event = event.to_new_event(now, Metadata::default());
        let appended = store.append(&stream, ExpectedRevision::Any, vec![event]);
        last = Some(appended.await.unwrap().last_position);
    }
    let last = last.unwrap();
    // Folded (this wait does not ask for the rows)...
    assert!(runner.wait_for(last, Duration::from_secs(5)).await);
    // ...then stored by the runner's own clock.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tables.load().await.unwrap().position < last {
        assert!(Instant::now() < deadline, "the rows were not stored");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let row = tables.tasks(&[id]).await.unwrap().pop().expect("the row");
    assert_eq!((row.state, row.revision), (TaskState::Completed, 2));
    while runner.read().task(&id).is_some() {
        assert!(
            Instant::now() < deadline,
            "the finished task stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runner.stop().await;
}
