//! The service behind the API: the store, the views that follow it and the
//! clock. Commands go through the one write path ([`super::write`]); this
//! module adds what is particular to tasks: claims, which try candidates from
//! the queue index, and creates made once per idempotency key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, TryStreamExt};
use tasklog_events::idempotency_event::{
    idempotency_stream, request_hash, IdempotencyEvent, IdempotencyKeyReserved,
};
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{EventStore, ExpectedRevision, Metadata, Position, TaskId};
use tasklog_projections::{ProjectionRunner, Projections, TaskState, TaskView};

use super::write;
use crate::app::clock::Clock;
use crate::rules::labels::TaskFilter;
use crate::rules::task::{Command, Rejection};

/// How long a write waits for the views to include it before it reads its
/// answer from the log instead.
pub(super) const VISIBLE_WITHIN: Duration = Duration::from_secs(10);
/// Enough retries for a key that several requests reserve at once.
const MAX_ATTEMPTS: usize = 8;
/// How many candidates a claim tries per look at the queue.
const CLAIM_CANDIDATES: usize = 16;

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
    #[error("the Idempotency-Key was used with a different request body within the last {} hours", IDEMPOTENCY_KEY_LIFETIME.num_hours())]
    KeyReused,
}

/// How long an idempotency key stands for the task it created: long enough
/// for any client's retries.
pub const IDEMPOTENCY_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

impl From<tasklog_events::ReadError> for ServiceError {
    fn from(error: tasklog_events::ReadError) -> Self {
        ServiceError::Unavailable(error.into())
    }
}

/// Why a claim skips a candidate.
enum ClaimBlocked {
    /// Another claim in this process is trying the task.
    TriedElsewhere,
    /// The task's type runs as many tasks as its limit allows.
    AtLimit,
}
use ClaimBlocked::*;

/// A task as a write left it, and the log position the answer reflects.
pub struct Written {
    pub task: TaskView,
    pub position: Position,
}

impl Written {
    /// A task is never deleted, so a write leaves one (unless it was not found).
    fn task(written: write::Written<TaskView>) -> Result<Self, ServiceError> {
        let task = written.state.ok_or(Rejection::TaskNotFound)?;
        Ok(Written {
            task,
            position: written.position,
        })
    }
}

#[derive(Clone)]
pub struct TaskService {
    pub store: Arc<dyn EventStore>,
    pub views: ProjectionRunner,
    pub clock: Arc<dyn Clock>,
    /// Tasks a claim in this process is trying, with their types, so
    /// concurrent claims here try others and running limits count them.
    claiming: Arc<Mutex<HashMap<TaskId, String>>>,
}

impl TaskService {
    /// Folds the whole log into fresh views and follows it from there.
    pub async fn start(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let mut projections = Projections::default();
        tasklog_events::read_all_pages(&*store, Position::START, 8192)
            .try_for_each(|page| {
                page.iter().for_each(|event| projections.apply(event));
                future::ok(())
            })
            .await?;
        let views = ProjectionRunner::spawn(store.clone(), projections);
        Ok(TaskService {
            store,
            views,
            clock,
            claiming: Arc::default(),
        })
    }

    /// The task as the views show it now.
    pub fn view(&self, id: TaskId) -> Option<TaskView> {
        self.views.read().tasks.get(&id).cloned()
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

    /// Runs `command` on task `id` through the one write path.
    pub async fn execute(
        &self,
        id: TaskId,
        command: Command,
        metadata: &Metadata,
    ) -> Result<Written, ServiceError> {
        Written::task(self.write::<TaskView>(id, &command, metadata).await?)
    }

    /// Marks `id` as being claimed here, unless another claim here is trying
    /// it or its type is at its running limit (counting the claims in flight).
    fn start_claiming(&self, id: TaskId) -> Result<(), ClaimBlocked> {
        let mut claiming = self.claiming.lock().expect("claims");
        if claiming.contains_key(&id) {
            return Err(TriedElsewhere);
        }
        let views = self.views.read();
        let Some(task) = views.tasks.get(&id) else {
            return Err(AtLimit);
        };
        let in_flight = claiming.values().filter(|t| **t == task.task_type).count();
        if at_running_limit(&views, &task.task_type, in_flight as u64) {
            return Err(AtLimit);
        }
        claiming.insert(id, task.task_type.clone());
        Ok(())
    }

    /// Creates a task once per idempotency `key` of `actor`: a create that
    /// comes again with the key and the same request gets the first task
    /// (`true`: replayed). The key is reserved in its own stream before the
    /// task is made, under the id the reservation names, so a retry after a
    /// crash in between makes that same task, and two nodes never make two.
    pub async fn create_once(
        &self,
        key: &str,
        created: TaskCreated,
        metadata: &Metadata,
    ) -> Result<(Written, bool), ServiceError> {
        let actor = metadata.actor.as_deref().unwrap_or_default();
        let stream = idempotency_stream(actor, key).to_string();
        let request = serde_json::to_vec(&created).expect("task events serialise");
        let request_hash = request_hash(&request);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let events = self.store.read_stream(&stream, 0, usize::MAX).await?;
            let reserved = events.last().and_then(|event| {
                let decoded = IdempotencyEvent::decode(
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                );
                match decoded {
                    Ok(IdempotencyEvent::Reserved(reserved)) => Some((event.revision, reserved)),
                    Err(_) => None,
                }
            });
            let (task_id, replayed) = match reserved {
                Some((_, reserved)) if reserved.expires_at > now => {
                    if reserved.request_hash != request_hash {
                        return Err(ServiceError::KeyReused);
                    }
                    let id = reserved.task_id;
                    if let Some(task) = self.view(id) {
                        let position = self.views.position();
                        return Ok((Written { task, position }, true));
                    }
                    (id, true)
                }
                stale => {
                    let id = TaskId::new();
                    let reservation = IdempotencyEvent::Reserved(IdempotencyKeyReserved {
                        task_id: id,
                        request_hash: request_hash.clone(),
                        expires_at: now + IDEMPOTENCY_KEY_LIFETIME,
                    });
                    let expected = stale.map_or(ExpectedRevision::NoStream, |(revision, _)| {
                        ExpectedRevision::Exact(revision)
                    });
                    let new_event = reservation.to_new_event(now, metadata.clone());
                    match self.append(&stream, expected, vec![new_event]).await {
                        Ok(_) => (id, false),
                        // Another request reserved the key meanwhile: read it again.
                        Err(ServiceError::Contended) => continue,
                        Err(error) => return Err(error),
                    }
                }
            };
            let written = match self
                .execute(task_id, Command::Create(created.clone()), metadata)
                .await
            {
                // Made by the first request, or by a concurrent retry.
                Err(ServiceError::Rejected(Rejection::TaskExists)) => {
                    let position = self.views.position();
                    let loaded = write::Loaded::<TaskView>::from_log(self, task_id).await?;
                    let task = loaded.state.ok_or(Rejection::TaskNotFound)?;
                    Written { task, position }
                }
                outcome => outcome?,
            };
            return Ok((written, replayed));
        }
        Err(ServiceError::Contended)
    }

    /// Hands the best available task of `types` that `filter` admits to
    /// `worker`, or `None` when there is none by `wait`. Each task goes to one
    /// worker only: the append expects the revision the task was pending at.
    /// A type at its running limit hands out nothing until a run ends.
    pub async fn claim(
        &self,
        types: &[String],
        filter: &TaskFilter,
        worker: &str,
        lease: chrono::Duration,
        wait: Duration,
        metadata: &Metadata,
    ) -> Result<Option<Written>, ServiceError> {
        let deadline = tokio::time::Instant::now() + wait;
        let command = Command::Claim {
            worker: worker.to_owned(),
            lease,
        };
        loop {
            let seen = self.views.position();
            let now = self.clock.now();
            let candidates = {
                let views = self.views.read();
                let open: Vec<String> = types
                    .iter()
                    .filter(|t| !at_running_limit(&views, t, 0))
                    .cloned()
                    .collect();
                let types = &open;
                let wanted = |id| views.tasks.get(&id).is_some_and(|t| filter.admits(t));
                views.queue.candidates(types, now, CLAIM_CANDIDATES, wanted)
            };
            let mut others_trying = false;
            for id in candidates {
                match self.start_claiming(id) {
                    Ok(()) => {}
                    Err(AtLimit) => continue,
                    Err(TriedElsewhere) => {
                        others_trying = true;
                        continue;
                    }
                }
                let loaded = write::Loaded::from_views(self, id);
                let outcome = self.write_once(id, loaded, &command, metadata).await;
                let outcome = outcome.and_then(Written::task);
                self.claiming.lock().expect("claims").remove(&id);
                match outcome {
                    Ok(written) => return Ok(Some(written)),
                    // Taken, cancelled or expired meanwhile: try the next one.
                    Err(ServiceError::Contended | ServiceError::Rejected(_)) => continue,
                    Err(error) => return Err(error),
                }
            }
            // Claims here are trying the rest; some may lose, so look again.
            if others_trying {
                tokio::task::yield_now().await;
                continue;
            }
            // Nothing to claim now: wait for the log to move, or for time to.
            let now_instant = tokio::time::Instant::now();
            if now_instant >= deadline {
                return Ok(None);
            }
            let pause = (deadline - now_instant).min(Duration::from_millis(250));
            let _ = self.views.wait_for(Position(seen.0 + 1), pause).await;
        }
    }
}

/// Whether `task_type` runs as many tasks as its limit allows, counting
/// `claiming` claims in flight as running.
fn at_running_limit(views: &Projections, task_type: &str, claiming: u64) -> bool {
    views.running_limit(task_type).is_some_and(|limit| {
        let key = (task_type.to_owned(), TaskState::Running);
        let running = views.stats.counts.get(&key).copied().unwrap_or(0);
        running + claiming >= u64::from(limit)
    })
}
