//! Runs commands: decides on the task as the views show it, appends with the
//! revision the decision was made on, and on a conflict decides again on the
//! task as the log holds it. Answers once the views include the write.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasklog_events::{AppendError, EventStore, ExpectedRevision, Metadata, Position, TaskId};
use tasklog_projections::{ProjectionRunner, Projections, TaskView};

use crate::clock::Clock;
use crate::commands::{decide, Command, Rejection};

/// How long a write waits for the views to include it before it reads its
/// answer from the log instead.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);
/// Enough retries for a busy task; each one re-reads the log.
const MAX_ATTEMPTS: usize = 8;
/// How many candidates a claim tries per look at the queue.
const CLAIM_CANDIDATES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The store failed or is down (HTTP 503).
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The task changed under us too often (HTTP 409).
    #[error("the task is changing too fast; try again")]
    Contended,
}

impl From<tasklog_events::ReadError> for ServiceError {
    fn from(error: tasklog_events::ReadError) -> Self {
        ServiceError::Unavailable(error.to_string())
    }
}

/// A task as a write left it, and the log position the views had reached.
pub struct Written {
    pub task: TaskView,
    pub position: Position,
}

#[derive(Clone)]
pub struct TaskService {
    pub store: Arc<dyn EventStore>,
    pub views: ProjectionRunner,
    pub clock: Arc<dyn Clock>,
    /// Tasks a claim in this process is trying, so concurrent claims here try others.
    claiming: Arc<Mutex<HashSet<TaskId>>>,
}

impl TaskService {
    /// Folds the whole log into fresh views and follows it from there.
    pub async fn start(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServiceError> {
        let mut projections = Projections::default();
        let mut after = Position::START;
        loop {
            let page = store.read_all(after, 8192).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for event in &page {
                projections.apply(event);
            }
        }
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
        self.views
            .projections
            .read()
            .expect("projections lock")
            .tasks
            .get(&id)
            .cloned()
    }

    /// The task as the log holds it now.
    async fn view_from_log(&self, id: TaskId) -> Result<Option<TaskView>, ServiceError> {
        let events = self.store.read_stream(&id.stream(), 0, usize::MAX).await?;
        Ok(TaskView::fold(&events))
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

    /// Runs `command` on task `id`, retrying on conflicts.
    pub async fn execute(
        &self,
        id: TaskId,
        command: Command,
        metadata: &Metadata,
    ) -> Result<Written, ServiceError> {
        let mut task = self.view(id);
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                task = self.view_from_log(id).await?;
            }
            match self.try_once(id, task.as_ref(), &command, metadata).await {
                Err(ServiceError::Contended) => continue,
                // The views may lag the log (another node wrote): check the log before saying no.
                Err(ServiceError::Rejected(_)) if attempt == 0 => continue,
                outcome => return outcome,
            }
        }
        Err(ServiceError::Contended)
    }

    /// One decision and one append; `Contended` if the task moved meanwhile.
    async fn try_once(
        &self,
        id: TaskId,
        task: Option<&TaskView>,
        command: &Command,
        metadata: &Metadata,
    ) -> Result<Written, ServiceError> {
        let now = self.clock.now();
        let events = decide(task, command, now)?;
        let expected = task.map_or(ExpectedRevision::NoStream, |t| {
            ExpectedRevision::Exact(t.revision)
        });
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(now, metadata.clone()))
            .collect();
        match self.store.append(&id.stream(), expected, new_events).await {
            Ok(appended) => self.visible(id, appended.last_position).await,
            Err(AppendError::Conflict { .. }) => Err(ServiceError::Contended),
            Err(error) => Err(ServiceError::Unavailable(error.to_string())),
        }
    }

    /// The task once the views include `position` (read-your-writes).
    async fn visible(&self, id: TaskId, position: Position) -> Result<Written, ServiceError> {
        if self.views.wait_for(position, VISIBLE_WITHIN).await {
            if let Some(task) = self.view(id) {
                return Ok(Written {
                    task,
                    position: self.views.position(),
                });
            }
        }
        tracing::warn!(%position, "the views lag the log; answering from the log");
        let task = self.view_from_log(id).await?.ok_or(Rejection::NotFound)?;
        Ok(Written { task, position })
    }

    /// Hands the best available task of `types` to `worker`, or `None` when
    /// there is none by `wait`. Each task goes to one worker only: the append
    /// expects the revision the task was pending at.
    pub async fn claim(
        &self,
        types: &[String],
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
                let views = self.views.projections.read().expect("projections lock");
                views.queue.candidates(types, now, CLAIM_CANDIDATES)
            };
            let mut others_trying = false;
            for id in candidates {
                if !self.claiming.lock().expect("claims").insert(id) {
                    others_trying = true;
                    continue;
                }
                let task = self.view(id);
                let outcome = self.try_once(id, task.as_ref(), &command, metadata).await;
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
