//! The views' runner stores the rows of what it folded on its own, soon
//! after, with no reader asking; a finished task then leaves memory. A store
//! the tables refuse loses nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use tasklog::app::store_url::StoreUrl;
use tasklog_events::task_event::{TaskCompleted, TaskCreated, TaskStarted};
use tasklog_events::{ExpectedRevision, Metadata, TaskEvent, TaskId};
use tasklog_projections::{
    Changes, ProjectionRunner, Projections, ReadModelError, ReadModelTables, Snapshot, TaskQuery,
    TaskState, TaskView,
};

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

/// Tables that refuse the next commit, slowly, once `refuse` is set.
struct RefuseOnce {
    tables: Arc<dyn ReadModelTables>,
    refuse: AtomicBool,
}

#[async_trait::async_trait]
impl ReadModelTables for RefuseOnce {
    async fn load(&self) -> Result<Snapshot, ReadModelError> {
        self.tables.load().await
    }
    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskView>, ReadModelError> {
        self.tables.tasks(ids).await
    }
    async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError> {
        self.tables.list(query).await
    }
    async fn commit(&self, changes: Arc<Changes>) -> Result<(), ReadModelError> {
        if self.refuse.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(ReadModelError("refused for the test".into()));
        }
        self.tables.commit(changes).await
    }
    async fn clear(&self) -> Result<(), ReadModelError> {
        self.tables.clear().await
    }
    async fn drop_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, ReadModelError> {
        self.tables.drop_finished(before, limit).await
    }
    async fn begin_rebuild(&self) -> Result<(), ReadModelError> {
        self.tables.begin_rebuild().await
    }
    async fn finish_rebuild(&self) -> Result<(), ReadModelError> {
        self.tables.finish_rebuild().await
    }
}

/// The runner folds on while a store is written; when the tables refuse that
/// store, what was folded meanwhile must not be stored past it: the rows
/// would then skip the refused batch's tasks for good.
#[tokio::test]
async fn a_refused_store_loses_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::default_in(dir.path());
    let (store, tables) = (url.open().await.unwrap(), url.open_views().await.unwrap());
    let refusing = Arc::new(RefuseOnce {
        tables: tables.clone(),
        refuse: AtomicBool::new(true),
    });
    let runner = ProjectionRunner::spawn(store.clone(), refusing, Projections::default());
    let now = chrono::Utc::now();
    let append = |id: TaskId, name: &'static str| {
        let event = TaskEvent::Created(TaskCreated {
            name: name.into(),
            task_type: "email".into(),
            available_time: now,
            expiration_time: now + chrono::Duration::days(1),
            ..TaskCreated::default()
        })
        .to_new_event(now, Metadata::default());
        let store = store.clone();
        async move {
            let stream = id.stream();
            let appended = store.append(&stream, ExpectedRevision::NoStream, vec![event]);
            appended.await.unwrap().last_position
        }
    };
    // The first task's store is refused after 300 ms; the second is folded meanwhile.
    let (first, second) = (TaskId::new(), TaskId::new());
    let at = append(first, "a").await;
    assert!(runner.wait_for(at, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let last = append(second, "b").await;
    assert!(runner.wait_for(last, Duration::from_secs(5)).await);
    // The runner reloads from the rows and folds both again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = tables.load().await.unwrap().position;
        let rows = tables.tasks(&[first, second]).await.unwrap();
        if stored >= last {
            assert_eq!(rows.len(), 2, "the rows skipped a task: {rows:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the rows stayed at {stored}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.stop().await;
}
