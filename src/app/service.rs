//! The service behind the API and the jobs: the store, the views that follow
//! it, and the one clock. Commands go through the one write path
//! ([`super::write`]), which claims ([`super::claims`]) and creates made once
//! per idempotency key ([`super::idempotency`]) build on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasklog_events::schedule_event::ScheduleId;
use tasklog_events::{EventStore, Fanout, Position, TaskId};
use tasklog_projections::rebuild::catch_up;
use tasklog_projections::{ProjectionRunner, ReadModelError, ReadModelTables, TaskQuery, TaskView};

use crate::app::clock::Clock;
use crate::rules::Rejection;

/// How long a write waits for the views to include it before it reads its
/// answer from the log instead.
pub(super) const VISIBLE_WITHIN: Duration = Duration::from_secs(10);
/// How many recent events live subscribers share from memory; one further
/// behind reads the log until it catches up.
const SUBSCRIBER_RING: usize = 4096;
/// A start further behind the log than this catches up in large batches.
const CATCH_UP_IN_BULK: u64 = 50_000;
/// How often a long catch-up at start says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The store failed or is down, or the views stopped following it (HTTP 503).
    #[error("the event store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The task changed under us too often (HTTP 409).
    #[error("the task is changing too fast; try again")]
    Contended,
    /// An idempotency key came back with a different request (HTTP 422).
    #[error("the Idempotency-Key was used with a different request body")]
    KeyReused,
}

impl From<ReadModelError> for ServiceError {
    fn from(error: ReadModelError) -> Self {
        ServiceError::Unavailable(error.into())
    }
}

impl From<tasklog_events::ReadError> for ServiceError {
    fn from(error: tasklog_events::ReadError) -> Self {
        ServiceError::Unavailable(error.into())
    }
}

#[derive(Clone)]
pub struct Service {
    pub store: Arc<dyn EventStore>,
    pub views: ProjectionRunner,
    /// The one reader of the log that live event streams share.
    pub subscriptions: Fanout,
    pub clock: Arc<dyn Clock>,
    /// Tasks a claim in this process is trying, with their types, so
    /// concurrent claims here try others and running limits count them.
    pub(super) claiming: Arc<Mutex<HashMap<TaskId, String>>>,
    /// Schedules an API command is changing here; their runs wait meanwhile.
    pub(super) schedule_commands: Commanded,
}

impl Service {
    /// Loads the stored views (the hot set, the small models and their
    /// position), follows the log from there, and returns once they have
    /// caught up with the head the start saw.
    pub async fn start(
        store: Arc<dyn EventStore>,
        tables: Arc<dyn ReadModelTables>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let started = std::time::Instant::now();
        let head = store.head().await?;
        let mut snapshot = tables.load().await?;
        if snapshot.position > head {
            tracing::warn!(views = %snapshot.position, %head,
                "the stored views are ahead of the log (another store's?); building them again");
            tables.clear().await?;
            snapshot = tables.load().await?;
        }
        tracing::info!(
            position = %snapshot.position,
            hot_tasks = snapshot.hot.len(),
            seconds = started.elapsed().as_secs_f64(),
            "loaded the stored views"
        );
        let mut projections = snapshot.into_projections();
        if head.0 - projections.position.0 > CATCH_UP_IN_BULK {
            // Far behind (a first start on a long log, new views, a long stop):
            // large batches, each folded while the one before is stored.
            tracing::info!(from = %projections.position, %head, "catching up with the log in bulk");
            let mut next_report = std::time::Instant::now() + PROGRESS_EVERY;
            let report = |at: Position, head: Position| {
                if std::time::Instant::now() >= next_report {
                    next_report += PROGRESS_EVERY;
                    tracing::info!(%at, %head, "catching up with the log in bulk");
                }
            };
            let caught_up = catch_up(store.clone(), tables.clone(), projections, head, report);
            projections = caught_up.await.map_err(ServiceError::Unavailable)?.0;
        }
        let views = ProjectionRunner::spawn(store.clone(), tables, projections);
        let behind = head.0 - views.position().0;
        if behind > 0 {
            tracing::info!(from = %views.position(), %head, events = behind, "catching up with the log");
        }
        while !views.wait_for(head, PROGRESS_EVERY).await {
            let at = views.position();
            let done = (at.0 - (head.0 - behind)) as f64;
            tracing::info!(%at, %head, events_per_s = (done / started.elapsed().as_secs_f64()) as u64,
                "catching up with the log");
        }
        tracing::info!(
            position = %views.position(),
            hot_tasks = views.read().tasks.len(),
            seconds = started.elapsed().as_secs_f64(),
            "the views are caught up"
        );
        let subscriptions = Fanout::start(store.clone(), SUBSCRIBER_RING).await?;
        Ok(Service {
            store,
            views,
            subscriptions,
            clock,
            claiming: Arc::default(),
            schedule_commands: Default::default(),
        })
    }

    /// The head of the log: the newest durable event's position.
    pub async fn head(&self) -> Result<Position, ServiceError> {
        Ok(self.store.head().await?)
    }

    /// The task as the views show it now.
    pub async fn view(&self, id: TaskId) -> Result<Option<TaskView>, ServiceError> {
        Ok(self.views.task(id).await?)
    }

    /// Whether the log holds the task's stream.
    pub async fn in_log(&self, id: TaskId) -> Result<bool, ServiceError> {
        Ok(!self.store.read_stream(&id.stream(), 0, 1).await?.is_empty())
    }

    /// A page of tasks in creation order, as the views show them now.
    pub async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ServiceError> {
        Ok(self.views.list(query).await?)
    }

    /// Up to `limit` tasks that `rows` reads and `admits` takes, in creation
    /// order. `rows` narrows the read by the stores' indexes; `admits` checks
    /// the whole filter on each row, and when few pass, the rows are read
    /// further in larger pages, up to `read_most` rows if given: a page of a
    /// filter few tasks pass then ends early, saying where to go on.
    pub async fn list_matching(
        &self,
        mut rows: TaskQuery,
        limit: usize,
        read_most: Option<usize>,
        admits: impl Fn(&TaskView) -> bool,
    ) -> Result<Matching, ServiceError> {
        rows.limit = limit + 1;
        let mut tasks = Vec::new();
        let mut read = 0;
        loop {
            let page = self.list(&rows).await?;
            let exhausted = page.len() < rows.limit;
            read += page.len();
            if let Some(last) = page.last() {
                rows.after = last.created_position;
            }
            tasks.extend(page.into_iter().filter(|t| admits(t)));
            if tasks.len() > limit {
                tasks.truncate(limit);
                let after = tasks.last().map(|t| t.created_position);
                return Ok(Matching {
                    tasks,
                    next_after: after,
                });
            }
            if exhausted {
                return Ok(Matching {
                    tasks,
                    next_after: None,
                });
            }
            if read_most.is_some_and(|most| read >= most) {
                return Ok(Matching {
                    tasks,
                    next_after: Some(rows.after),
                });
            }
            let left = read_most.map_or(usize::MAX, |most| most - read);
            rows.limit = (rows.limit * 4).min(4096).min(left);
        }
    }

    /// The task folded from the first events of its stream that `until` admits:
    /// the task as it stood then, by the same code as the live views.
    pub async fn view_as_of(
        &self,
        id: TaskId,
        until: impl Fn(&tasklog_events::RecordedEvent) -> bool,
    ) -> Result<Option<TaskView>, ServiceError> {
        let events = self.store.read_stream(&id.stream(), 0, usize::MAX).await?;
        Ok(TaskView::fold(
            events.iter().take_while(|event| until(event)),
        ))
    }
}

/// A page of [`Service::list_matching`].
pub struct Matching {
    pub tasks: Vec<TaskView>,
    /// Where the next page starts, if there may be more: after the last task
    /// given, or after the last row read when the page ended early.
    pub next_after: Option<Position>,
}

/// Schedules an API command is changing on this node, with how many commands:
/// the schedule job leaves them be meanwhile, so a pause or a delete wins
/// over a schedule catching up instead of losing every race to it.
#[derive(Clone, Default)]
pub struct Commanded(Arc<Mutex<HashMap<ScheduleId, usize>>>);

impl Commanded {
    pub(super) fn enter(&self, id: ScheduleId) -> CommandGuard {
        *self.0.lock().expect("commanded").entry(id).or_default() += 1;
        CommandGuard(self.clone(), id)
    }

    pub(super) fn contains(&self, id: ScheduleId) -> bool {
        self.0.lock().expect("commanded").contains_key(&id)
    }
}

pub(super) struct CommandGuard(Commanded, ScheduleId);

impl Drop for CommandGuard {
    fn drop(&mut self) {
        let mut commanded = self.0 .0.lock().expect("commanded");
        if let Some(count) = commanded.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                commanded.remove(&self.1);
            }
        }
    }
}
