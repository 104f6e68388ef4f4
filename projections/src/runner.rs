//! The runner: follows the log from the stored position, folds each batch of
//! events into the hot set in memory, publishes how far it got, and then
//! stores the rows the batches changed (one transaction, with the position),
//! at most every [`STORE_EVERY`] unless a reader waits for them, folding on
//! while a store is written (one store at a time, in order). Writers
//! answer once their events are in memory (read-your-writes), without
//! waiting for the rows: a task stays in memory until the rows that hold it
//! are stored, so a read by id always finds it, and a list, which reads the
//! rows, first has the runner store what it folded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tasklog_events::schedule_event::ScheduleId;
use tasklog_events::subscription::next_ready;
use tasklog_events::{EventStore, Position, RecordedEvent, StreamName, TaskId};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::read_model::{Changes, ReadModelError, ReadModelTables, TaskQuery};
use crate::{Projections, TaskView};

pub type SharedProjections = Arc<RwLock<Projections>>;

/// A store of rows in flight; its changes once they are in the tables.
type Storing = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Arc<Changes>, ReadModelError>> + Send>,
>;

/// The tables a runner stores into: one set at a time, swapped for another
/// by a rebuild beside the serving node.
#[derive(Clone)]
pub(crate) struct LiveTables(Arc<RwLock<Arc<dyn ReadModelTables>>>);

impl LiveTables {
    pub(crate) fn new(tables: Arc<dyn ReadModelTables>) -> Self {
        LiveTables(Arc::new(RwLock::new(tables)))
    }

    pub(crate) fn get(&self) -> Arc<dyn ReadModelTables> {
        self.0.read().expect("tables lock").clone()
    }

    fn replace(&self, tables: Arc<dyn ReadModelTables>) -> Arc<dyn ReadModelTables> {
        std::mem::replace(&mut *self.0.write().expect("tables lock"), tables)
    }
}

/// At most this many events are folded at once, so the first writers of a
/// burst hear back before the whole burst is folded; the rows of several
/// folds are stored together anyway.
const FOLD_CHUNK: usize = 256;

/// Rows of at most about this many tasks wait to be stored; more are stored
/// at once, whatever the time.
const STORE_MOST: usize = 4096;

/// The rows are stored at most this often while events keep coming, so a
/// task created, claimed and completed within it is written once, and
/// commits are shared; sooner when a reader waits for them. (A crash loses
/// nothing: the stored position says where folding starts again.)
const STORE_EVERY: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct ProjectionRunner {
    pub projections: SharedProjections,
    tables: LiveTables,
    /// The position folded into memory.
    applied: watch::Receiver<Position>,
    /// The position the stored rows hold (behind `applied` by the store in
    /// flight and what was folded since it started).
    stored: watch::Receiver<Position>,
    /// Asks the runner to store what it folded now (a reader waits for it).
    store_now: Arc<Notify>,
    follower: Arc<Mutex<Option<JoinHandle<()>>>>,
    requests: mpsc::Sender<Request>,
}

/// What the runner is asked to do between two batches.
enum Request {
    /// Drop the rows of tasks finished before `before`.
    DropFinished {
        before: DateTime<Utc>,
        done: oneshot::Sender<Result<usize, ReadModelError>>,
    },
    /// Bring `tables` and `views` (built beside, a little behind) up to the
    /// runner's position, then store into them and serve from them.
    Swap {
        tables: Arc<dyn ReadModelTables>,
        views: Box<Projections>,
        done: oneshot::Sender<Result<Arc<dyn ReadModelTables>, ReadModelError>>,
    },
}

/// How long a list waits for the batch being stored.
const STORED_WITHIN: Duration = Duration::from_secs(5);

/// Rows dropped per transaction, so a large drop does not hold up the batches.
const DROP_CHUNK: usize = 1000;

impl ProjectionRunner {
    /// Starts folding the log into `projections` and `tables`, from the
    /// position they share. The runner stops when the last clone of the
    /// returned handle is gone.
    pub fn spawn(
        store: Arc<dyn EventStore>,
        tables: Arc<dyn ReadModelTables>,
        projections: Projections,
    ) -> Self {
        let start = projections.position;
        let projections = Arc::new(RwLock::new(projections));
        let (publish, applied) = watch::channel(start);
        let (store_done, stored) = watch::channel(start);
        let (requests, received) = mpsc::channel(1);
        let tables = LiveTables::new(tables);
        let store_now = Arc::new(Notify::new());
        let follower = Follower {
            store,
            views: projections.clone(),
            tables: tables.clone(),
            publish,
            stored: store_done,
        };
        let asked = store_now.clone();
        let follower = tokio::spawn(async move {
            let closed = follower.publish.clone();
            tokio::select! {
                _ = closed.closed() => {}
                _ = follower.follow(start, received, asked) => {}
            }
        });
        ProjectionRunner {
            projections,
            tables,
            applied,
            stored,
            store_now,
            follower: Arc::new(Mutex::new(Some(follower))),
            requests,
        }
    }

    /// Drops the stored rows of tasks that finished before `before`; their
    /// history stays in the log. How many were dropped.
    pub async fn drop_finished(&self, before: DateTime<Utc>) -> Result<usize, ReadModelError> {
        let (done, dropped) = oneshot::channel();
        let stopped = || ReadModelError("the projection runner stopped".into());
        let request = Request::DropFinished { before, done };
        self.requests.send(request).await.map_err(|_| stopped())?;
        dropped.await.map_err(|_| stopped())?
    }

    /// Makes `tables` and `views`, folded from the log beside the serving
    /// node (up to any position at or before the runner's), the live ones:
    /// between two batches, the runner folds into them what they lack, then
    /// stores into them and serves from them. Returns the tables it let go.
    pub async fn swap(
        &self,
        tables: Arc<dyn ReadModelTables>,
        views: Projections,
    ) -> Result<Arc<dyn ReadModelTables>, ReadModelError> {
        let (done, swapped) = oneshot::channel();
        let stopped = || ReadModelError("the projection runner stopped".into());
        let views = Box::new(views);
        let request = Request::Swap {
            tables,
            views,
            done,
        };
        self.requests.send(request).await.map_err(|_| stopped())?;
        swapped.await.map_err(|_| stopped())?
    }

    /// Stops following the log, and waits until the runner has let go of the
    /// tables (a batch being stored finishes first).
    pub async fn stop(&self) {
        let follower = self.follower.lock().expect("runner handle").take();
        if let Some(follower) = follower {
            follower.abort();
            let _ = follower.await;
        }
    }

    /// The stored read models this runner folds into.
    pub fn tables(&self) -> Arc<dyn ReadModelTables> {
        self.tables.get()
    }

    /// The hot views, for reading; hold the guard briefly, the runner waits on it.
    pub fn read(&self) -> RwLockReadGuard<'_, Projections> {
        self.projections.read().expect("projections lock")
    }

    /// The hot views, for the jobs that move the queue index on with time.
    pub fn write(&self) -> RwLockWriteGuard<'_, Projections> {
        self.projections.write().expect("projections lock")
    }

    /// The task as the views show it: from the hot set, else its stored row
    /// (which is at least as new as [`position`](Self::position)).
    pub async fn task(&self, id: TaskId) -> Result<Option<TaskView>, ReadModelError> {
        let hot = self.read().task(&id).cloned();
        if hot.is_some() {
            return Ok(hot);
        }
        Ok(self.tables.get().tasks(&[id]).await?.pop())
    }

    /// A page of stored rows in creation order, at least as new as
    /// [`position`](Self::position) was when asked.
    pub async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError> {
        let wanted = self.position();
        if !self.wait_stored(wanted, STORED_WITHIN).await {
            return Err(ReadModelError(format!(
                "the stored views did not reach position {wanted} within {STORED_WITHIN:?}"
            )));
        }
        self.tables.get().list(query).await
    }

    /// The last position folded in.
    pub fn position(&self) -> Position {
        *self.applied.borrow()
    }

    /// Waits until the stored rows include `position`; false if `timeout`
    /// passed first.
    pub async fn wait_stored(&self, position: Position, timeout: Duration) -> bool {
        let mut stored = self.stored.clone();
        if *stored.borrow() < position {
            self.store_now.notify_one();
        }
        tokio::time::timeout(timeout, stored.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the views include `position`; false if `timeout` passed first.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, applied.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

pub(crate) struct Follower {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) views: SharedProjections,
    pub(crate) tables: LiveTables,
    pub(crate) publish: watch::Sender<Position>,
    pub(crate) stored: watch::Sender<Position>,
}

impl Follower {
    async fn follow(
        &self,
        mut after: Position,
        mut requests: mpsc::Receiver<Request>,
        store_now: Arc<Notify>,
    ) {
        loop {
            let mut events = self.store.subscribe_all(after).fuse();
            // Kept across folds: fresh buffers per fold showed in profiles (docs/performance.md).
            let (mut ready, mut batch) = (Vec::new(), Vec::new());
            let mut unstored: Option<Unstored> = None;
            let mut storing: Option<Storing> = None;
            let mut last_stored = Instant::now();
            let stored = loop {
                // Time to store, or a reader asks for the rows.
                let store_due = async {
                    tokio::select! {
                        _ = tokio::time::sleep_until(last_stored + STORE_EVERY) => {}
                        _ = store_now.notified() => {}
                    }
                };
                // Requests run with every row stored, so they never meet a batch halfway.
                let more = tokio::select! {
                    more = next_ready(&mut events, &mut ready, FOLD_CHUNK) => more,
                    finished = async { storing.as_mut().expect("a store in flight").await },
                        if storing.is_some() => {
                        storing = None;
                        match self.finish_store(finished) {
                            Ok(()) => continue,
                            Err(()) => break false,
                        }
                    }
                    _ = store_due, if unstored.is_some() && storing.is_none() => {
                        storing = self.start_store(&mut unstored, &mut last_stored);
                        continue;
                    }
                    Some(request) = requests.recv() => {
                        if self.store_all(&mut storing, &mut unstored, &mut last_stored).await.is_err() {
                            break false;
                        }
                        self.serve(request, after).await;
                        continue;
                    }
                };
                if !more {
                    break true;
                }
                // The events up to the first error, if any.
                batch.clear();
                let mut failed = None;
                for event in ready.drain(..) {
                    match event {
                        Ok(event) => batch.push(event),
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
                if let Some(last) = batch.last() {
                    match self.fold_and_publish(&batch).await {
                        Ok(folded) => match unstored.as_mut() {
                            Some(waiting) => waiting.touched.add(folded.touched),
                            None => unstored = Some(folded),
                        },
                        Err(error) => {
                            tracing::warn!(%error, "the views could not fold a batch; reloading them");
                            break false;
                        }
                    }
                    after = last.position;
                    let many = unstored
                        .as_ref()
                        .is_some_and(|u| u.touched.tasks.len() >= STORE_MOST);
                    if storing.is_none() && (many || last_stored.elapsed() >= STORE_EVERY) {
                        storing = self.start_store(&mut unstored, &mut last_stored);
                    }
                }
                if let Some(error) = failed {
                    tracing::warn!(%error, "the projection runner lost the log; resubscribing");
                    break true;
                }
            };
            // What was folded is stored before following again. After a
            // failure nothing more is stored (rows past a failed store would
            // skip its events); the store in flight ends before the reload.
            let stored_all = if stored {
                self.store_all(&mut storing, &mut unstored, &mut last_stored)
                    .await
            } else {
                if let Some(in_flight) = storing.take() {
                    let _ = self.finish_store(in_flight.await);
                }
                Err(())
            };
            if stored_all.is_err() {
                // Memory (and the published position, until the next batch)
                // may be ahead of the rows: start again from them.
                after = self.reload().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts storing the rows of what was folded and not yet stored, if
    /// anything. The runner goes on folding (and writers hear back) while
    /// the rows are written; the next store waits for this one.
    fn start_store(
        &self,
        unstored: &mut Option<Unstored>,
        last_stored: &mut Instant,
    ) -> Option<Storing> {
        let Unstored { from, touched } = unstored.take()?;
        *last_stored = Instant::now();
        let changes = {
            let views = self.views.read().expect("projections lock");
            Arc::new(touched.changes(&views, from))
        };
        let tables = self.tables.get();
        Some(Box::pin(async move {
            tables.commit(changes.clone()).await?;
            Ok(changes)
        }))
    }

    /// Once a store is done: the tasks it finished may leave memory, and
    /// readers waiting for the rows hear of them. `Err` (logged) if the
    /// tables refused.
    fn finish_store(&self, finished: Result<Arc<Changes>, ReadModelError>) -> Result<(), ()> {
        match finished {
            Ok(changes) => {
                self.stored(&changes);
                self.stored.send_replace(changes.position);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "the views could not store a batch; reloading them");
                Err(())
            }
        }
    }

    /// Waits for the store in flight, if any, then stores whatever else was
    /// folded: afterwards the rows hold everything in memory.
    async fn store_all(
        &self,
        storing: &mut Option<Storing>,
        unstored: &mut Option<Unstored>,
        last_stored: &mut Instant,
    ) -> Result<(), ()> {
        if let Some(in_flight) = storing.take() {
            self.finish_store(in_flight.await)?;
        }
        match self.start_store(unstored, last_stored) {
            Some(store) => self.finish_store(store.await),
            None => Ok(()),
        }
    }

    /// Does what it was asked between batches; `after`: the last position folded.
    async fn serve(&self, request: Request, after: Position) {
        match request {
            Request::DropFinished { before, done } => {
                let _ = done.send(self.drop_finished(before).await);
            }
            Request::Swap {
                tables,
                views,
                done,
            } => {
                let _ = done.send(self.swap(tables, *views, after).await);
            }
        }
    }

    /// Folds into `tables` and `views` what they lack up to `after` (the
    /// runner's position), then makes them the live ones.
    async fn swap(
        &self,
        tables: Arc<dyn ReadModelTables>,
        views: Projections,
        after: Position,
    ) -> Result<Arc<dyn ReadModelTables>, ReadModelError> {
        if views.position > after {
            return Err(ReadModelError(format!(
                "the new views are at position {}, past the live ones at {after}",
                views.position
            )));
        }
        let caught_up =
            crate::rebuild::catch_up(self.store.clone(), tables.clone(), views, after, |_, _| {});
        let (views, _) = caught_up
            .await
            .map_err(|error| ReadModelError(error.to_string()))?;
        if views.position != after {
            return Err(ReadModelError(format!(
                "the new views reached position {}, not {after}",
                views.position
            )));
        }
        *self.views.write().expect("projections lock") = views;
        Ok(self.tables.replace(tables))
    }

    /// Drops the rows of tasks finished before `before`, a chunk per transaction.
    async fn drop_finished(&self, before: DateTime<Utc>) -> Result<usize, ReadModelError> {
        let mut dropped = 0;
        loop {
            let chunk = self.tables.get().drop_finished(before, DROP_CHUNK).await?;
            dropped += chunk;
            if chunk < DROP_CHUNK {
                return Ok(dropped);
            }
        }
    }

    /// Folds `batch` into memory and publishes its last position; what it
    /// touched is stored later.
    async fn fold_and_publish(&self, batch: &[RecordedEvent]) -> Result<Unstored, ReadModelError> {
        let folded = self.fold_touched(batch).await?;
        let position = self.views.read().expect("projections lock").position;
        self.publish.send_replace(position);
        Ok(folded)
    }

    /// Folds `batch` into memory (reading back the rows of tasks that left it)
    /// and says what changed.
    pub(crate) async fn fold(&self, batch: &[RecordedEvent]) -> Result<Changes, ReadModelError> {
        let Unstored { from, touched } = self.fold_touched(batch).await?;
        let views = self.views.read().expect("projections lock");
        Ok(touched.changes(&views, from))
    }

    /// Folds `batch` into memory; what it touched, from which position.
    async fn fold_touched(&self, batch: &[RecordedEvent]) -> Result<Unstored, ReadModelError> {
        let touched = Touched::by(batch);
        let cold = self.cold_tasks(&touched);
        let mut priors = if cold.is_empty() {
            Vec::new()
        } else {
            self.tables.get().tasks(&cold).await?
        };
        // A row newer than this node's views (another node sharing the
        // tables stored it) already holds events of this batch: such a task
        // is folded from its stream instead, like a dropped one.
        let until = self.views.read().expect("projections lock").position;
        priors.retain(|task| task.position <= until);
        if priors.len() < cold.len() {
            priors.extend(self.unstored_tasks(&cold, &priors, until).await?);
        }
        let mut views = self.views.write().expect("projections lock");
        priors.into_iter().for_each(|task| views.insert_task(task));
        let from = views.position;
        batch.iter().for_each(|event| views.apply(event));
        Ok(Unstored { from, touched })
    }

    /// Once `changes` are stored, the tasks they finished leave memory, unless
    /// a later batch changed them again (then they leave after that one).
    pub(crate) fn stored(&self, changes: &Changes) {
        let mut views = self.views.write().expect("projections lock");
        for task in changes.tasks.iter().filter(|t| t.state.is_finished()) {
            if views
                .tasks
                .get(&task.id)
                .is_some_and(|t| t.position <= changes.position)
            {
                views.evict(task.id);
            }
        }
    }

    /// Tasks that a batch changes but that already left memory: their prior
    /// rows are read back before the batch is folded. A task whose first
    /// event is in the batch has none.
    fn cold_tasks(&self, touched: &Touched) -> Vec<TaskId> {
        let views = self.views.read().expect("projections lock");
        touched
            .tasks
            .iter()
            .filter(|(id, first)| **first > 0 && !views.tasks.contains_key(id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Tasks without a usable row: dropped (`--retain-finished`) and
    /// changed again (a retry), or stored by another node ahead of this one.
    /// Folded from their streams up to the views' position `until`.
    async fn unstored_tasks(
        &self,
        cold: &[TaskId],
        found: &[TaskView],
        until: Position,
    ) -> Result<Vec<TaskView>, ReadModelError> {
        let mut folded = Vec::new();
        for id in cold.iter().filter(|id| found.iter().all(|t| t.id != **id)) {
            let events = self
                .store
                .read_stream(&id.stream(), 0, usize::MAX)
                .await
                .map_err(|error| ReadModelError(error.to_string()))?;
            let before = events.iter().take_while(|e| e.position <= until);
            folded.extend(TaskView::fold(before));
        }
        Ok(folded)
    }

    /// Memory as the tables hold it, after a failed commit left memory ahead.
    async fn reload(&self) -> Position {
        loop {
            match self.tables.get().load().await {
                Ok(snapshot) => {
                    let projections = snapshot.into_projections();
                    let position = projections.position;
                    *self.views.write().expect("projections lock") = projections;
                    return position;
                }
                Err(error) => {
                    tracing::warn!(%error, "the views cannot be loaded; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Batches folded into memory whose rows are not stored yet: what they
/// touched, and the position before the first of them.
struct Unstored {
    from: Position,
    touched: Touched,
}

/// What a batch of events touches: tasks (with the first revision the batch
/// holds of each), schedules, queues and consumers.
#[derive(Default)]
struct Touched {
    tasks: BTreeMap<TaskId, u64>,
    schedules: BTreeSet<ScheduleId>,
    queues: BTreeSet<String>,
    consumers: BTreeSet<String>,
}

impl Touched {
    fn by(batch: &[RecordedEvent]) -> Self {
        let mut touched = Touched::default();
        for event in batch {
            match StreamName::parse(&event.stream) {
                Some(StreamName::Task(id)) => {
                    let first = touched.tasks.entry(id).or_insert(event.revision);
                    *first = (*first).min(event.revision);
                }
                Some(StreamName::Schedule(id)) => _ = touched.schedules.insert(id),
                Some(StreamName::Queue(name)) => _ = touched.queues.insert(name),
                Some(StreamName::Consumer(name)) => _ = touched.consumers.insert(name),
                Some(StreamName::Idempotency(_)) | None => {}
            }
        }
        touched
    }

    /// Adds what a later batch touched.
    fn add(&mut self, later: Touched) {
        for (id, first) in later.tasks {
            self.tasks.entry(id).or_insert(first);
        }
        self.schedules.extend(later.schedules);
        self.queues.extend(later.queues);
        self.consumers.extend(later.consumers);
    }

    /// The rows to store, as `views` hold them after the batch.
    fn changes(self, views: &Projections, from: Position) -> Changes {
        Changes {
            from,
            position: views.position,
            stats: (!self.tasks.is_empty()).then(|| views.stats.clone()),
            tasks: self
                .tasks
                .into_keys()
                .filter_map(|id| views.tasks.get(&id).cloned())
                .collect(),
            schedules: self
                .schedules
                .into_iter()
                .map(|id| (id, views.schedules.get(&id).cloned()))
                .collect(),
            queues: self
                .queues
                .into_iter()
                .filter_map(|name| Some((name.clone(), views.queues.get(&name)?.clone())))
                .collect(),
            consumers: self
                .consumers
                .into_iter()
                .filter_map(|name| Some((name.clone(), views.consumers.get(&name)?.clone())))
                .collect(),
        }
    }
}
