//! Claims: the best available task of the types a worker asks for, to one
//! worker only, within the running limits.

use std::time::Duration;

use tasklog_events::{Metadata, Position, TaskId};
use tasklog_projections::{Projections, TaskState};

use super::service::{Service, ServiceError};
use super::write::{self, TaskWritten};
use crate::rules::labels::TaskFilter;
use crate::rules::task::Command;

/// How many candidates a claim tries per look at the queue.
const CLAIM_CANDIDATES: usize = 16;

/// What a worker asks for: a task of one of `types` that `filter` admits,
/// leased to `worker` for `lease`, waiting up to `wait` for one.
pub struct ClaimAsk<'a> {
    pub types: &'a [String],
    pub filter: &'a TaskFilter,
    pub worker: &'a str,
    pub lease: chrono::Duration,
    pub wait: Duration,
}

/// Why a claim skips a candidate.
enum ClaimBlocked {
    /// Another claim in this process is trying the task.
    TriedElsewhere,
    /// The task's type runs as many tasks as its limit allows, or its queue is paused.
    AtLimit,
}
use ClaimBlocked::*;

/// A claim of a task in flight on this node. The task leaves the claims in
/// flight when this goes, however the claim ends: with an answer, an error,
/// or its request dropped because the client hung up. A task left marked
/// would be skipped by every later claim here.
struct Claiming<'a> {
    service: &'a Service,
    id: TaskId,
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        let mut claiming = self.service.claiming.lock().expect("claims");
        claiming.remove(&self.id);
    }
}

impl Service {
    /// Marks `id` as being claimed here, unless another claim here is trying
    /// it or its type is at its running limit (counting the claims in flight).
    fn start_claiming(&self, id: TaskId) -> Result<Claiming<'_>, ClaimBlocked> {
        let mut claiming = self.claiming.lock().expect("claims");
        if claiming.contains_key(&id) {
            return Err(TriedElsewhere);
        }
        let views = self.views.read();
        let Some(task) = views.task(&id) else {
            return Err(AtLimit);
        };
        let in_flight = claiming.values().filter(|t| **t == task.task_type).count();
        if closed_to_claims(&views, &task.task_type, in_flight as u64) {
            return Err(AtLimit);
        }
        claiming.insert(id, task.task_type.clone());
        Ok(Claiming { service: self, id })
    }

    /// Hands the best available task the worker asks for, or `None` when
    /// there is none by its wait. Each task goes to one worker only: the
    /// append expects the revision the task was pending at. A type at its
    /// running limit hands out nothing until a run ends, a paused one nothing
    /// until it is resumed.
    pub async fn claim(
        &self,
        ask: &ClaimAsk<'_>,
        metadata: &Metadata,
    ) -> Result<Option<TaskWritten>, ServiceError> {
        let ClaimAsk {
            types,
            filter,
            worker,
            lease,
            wait,
        } = *ask;
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
                    .filter(|t| !closed_to_claims(&views, t, 0))
                    .cloned()
                    .collect();
                let types = &open;
                let wanted = |id| views.task(&id).is_some_and(|t| filter.admits(t));
                views.queue.candidates(types, now, CLAIM_CANDIDATES, wanted)
            };
            let mut others_trying = false;
            for id in candidates {
                let claiming = match self.start_claiming(id) {
                    Ok(claiming) => claiming,
                    Err(AtLimit) => continue,
                    Err(TriedElsewhere) => {
                        others_trying = true;
                        continue;
                    }
                };
                let loaded = write::Loaded::from_views(self, id).await?;
                let outcome = self.write_once(id, loaded, &command, metadata).await;
                let outcome = outcome.and_then(TaskWritten::of);
                drop(claiming);
                match outcome {
                    Ok(written) => return Ok(Some(written)),
                    // Taken, cancelled or expired meanwhile: try the next one.
                    Err(ServiceError::Contended | ServiceError::Rejected(_)) => continue,
                    Err(error) => return Err(error),
                }
            }
            let now_instant = tokio::time::Instant::now();
            if now_instant >= deadline {
                return Ok(None);
            }
            // Claims here are trying the rest; some may lose, so look again.
            if others_trying {
                tokio::task::yield_now().await;
                continue;
            }
            // Nothing to claim now: wait for the log to move, or for time to.
            let pause = (deadline - now_instant).min(Duration::from_millis(250));
            let _ = self.views.wait_for(Position(seen.0 + 1), pause).await;
        }
    }

    /// Up to `max` tasks for `worker`, each handed out as [`claim`](Self::claim)
    /// hands out one: waits up to `wait` for the first, then takes what else
    /// is available now, several claims at a time so their appends share a
    /// commit. Stops at the first error once it holds a task (the worker
    /// gets those; the error shows on its next claim).
    pub async fn claim_many(
        &self,
        max: usize,
        ask: &ClaimAsk<'_>,
        metadata: &Metadata,
    ) -> Result<Vec<TaskWritten>, ServiceError> {
        let Some(first) = self.claim(ask, metadata).await? else {
            return Ok(Vec::new());
        };
        let now = ClaimAsk {
            wait: Duration::ZERO,
            ..*ask
        };
        let mut claimed = vec![first];
        while claimed.len() < max {
            let round = (max - claimed.len()).min(CLAIM_CANDIDATES);
            let claims = (0..round).map(|_| self.claim(&now, metadata));
            let mut exhausted = false;
            for outcome in futures::future::join_all(claims).await {
                match outcome {
                    Ok(Some(written)) => claimed.push(written),
                    Ok(None) => exhausted = true,
                    Err(error) => {
                        tracing::warn!(%error, claimed = claimed.len(),
                            "a claim of a batch failed; answering with the tasks claimed so far");
                        exhausted = true;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(claimed)
    }
}

/// Whether `task_type` hands out no more tasks: its queue is paused, or it
/// runs as many tasks as its limit allows, counting `claiming` claims in
/// flight as running.
fn closed_to_claims(views: &Projections, task_type: &str, claiming: u64) -> bool {
    let Some(queue) = views.queues.get(task_type) else {
        return false;
    };
    queue.paused
        || queue.max_running.is_some_and(|limit| {
            let key = (task_type.to_owned(), TaskState::Running);
            let running = views.stats.counts.get(&key).copied().unwrap_or(0);
            running + claiming >= u64::from(limit)
        })
}
