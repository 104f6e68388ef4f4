//! Batches: many tasks created in one append, all or none, and answered
//! together once the views include them.

use tasklog_events::task_event::TaskCreated;
use tasklog_events::{ExpectedRevision, Metadata, Position, StreamAppend, TaskId};
use tasklog_projections::TaskView;

use super::service::{Service, ServiceError};
use super::write::{Aggregate, TaskWritten};
use crate::rules::task::Command;

/// Enough rounds for a batch that an earlier request with its key made in part.
const MAX_ATTEMPTS: usize = 8;

/// A batch's tasks as the write left them, in the order given, and the log
/// position the answer reflects.
pub struct BatchWritten {
    pub tasks: Vec<TaskView>,
    pub position: Position,
}

impl Service {
    /// Creates a task of each of `created`, in one append: all are made or
    /// none. Answers once the views include them.
    pub async fn create_many(
        &self,
        created: Vec<TaskCreated>,
        metadata: &Metadata,
    ) -> Result<BatchWritten, ServiceError> {
        let ids = created.iter().map(|_| TaskId::new()).collect();
        self.create_many_as(ids, created, metadata).await
    }

    /// Creates task `ids[i]` from `created[i]` for each `i`, all or none.
    /// Tasks the log holds already (an earlier request with the same
    /// idempotency key made them) are answered as they are, not made again.
    pub(super) async fn create_many_as(
        &self,
        ids: Vec<TaskId>,
        created: Vec<TaskCreated>,
        metadata: &Metadata,
    ) -> Result<BatchWritten, ServiceError> {
        let now = self.clock.now();
        let events = created
            .into_iter()
            .map(|created| TaskView::decide(None, &Command::Create(created), now))
            .collect::<Result<Vec<_>, _>>()?;
        let mut missing: Vec<usize> = (0..ids.len()).collect();
        let mut position = Position::START;
        for _ in 0..MAX_ATTEMPTS {
            let appends = missing
                .iter()
                .map(|&i| StreamAppend {
                    stream: ids[i].stream(),
                    expected: ExpectedRevision::NoStream,
                    events: events[i]
                        .iter()
                        .map(|event| event.to_new_event(now, metadata.clone()))
                        .collect(),
                })
                .collect();
            match self.append_many(appends).await {
                Ok(appended) => {
                    for &i in &missing {
                        TaskView::written(&ids[i], None, &events[i], now);
                    }
                    position = position.max(appended);
                    missing.clear();
                    break;
                }
                // Some of the tasks are made: make only the others.
                Err(ServiceError::Contended) => {
                    position = position.max(self.head().await?);
                    let mut still_missing = Vec::new();
                    for i in missing {
                        if !self.in_log(ids[i]).await? {
                            still_missing.push(i);
                        }
                    }
                    missing = still_missing;
                    if missing.is_empty() {
                        break;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        if !missing.is_empty() {
            return Err(ServiceError::Contended);
        }
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            let written = TaskWritten::of(self.visible::<TaskView>(id, position).await?)?;
            position = position.max(written.position);
            tasks.push(written.task);
        }
        Ok(BatchWritten { tasks, position })
    }
}
