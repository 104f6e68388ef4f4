//! Operator actions on many tasks in one request: retry the failed tasks a
//! selection takes, or cancel the pending ones. Each task changes by its own
//! command and events, as if asked one by one, and every event carries the
//! request's id, so the whole action can be found in the log. A request
//! changes at most `limit` tasks; sent again it goes on with what is left.

use futures::StreamExt;
use tasklog_events::{Metadata, Position, TaskId};
use tasklog_projections::{TaskQuery, TaskState, TaskView};

use super::service::{Service, ServiceError};
use crate::rules::labels::{Selector, TaskFilter};
use crate::rules::task::Command;

/// Commands in flight at once, so their appends share commits.
const CONCURRENT: usize = 16;

/// Which tasks a bulk action takes: every term holds.
#[derive(Debug, Default)]
pub struct Selection {
    pub task_type: Option<String>,
    pub filter: TaskFilter,
    /// Only these tasks, when not empty.
    pub ids: Vec<TaskId>,
}

/// What a bulk action did.
#[derive(Debug)]
pub struct BulkOutcome {
    /// Tasks the command changed.
    pub changed: usize,
    /// Tasks selected that changed meanwhile, so the command no longer applied.
    pub skipped: usize,
    /// The selection may take more tasks than this request changed.
    pub more: bool,
    /// The last position written (or the views' position, when none was).
    pub position: Position,
}

impl Service {
    /// Runs `command` on up to `limit` tasks in `state` that `selection` takes
    /// and `eligible` admits, in creation order.
    pub async fn bulk(
        &self,
        state: TaskState,
        selection: &Selection,
        eligible: impl Fn(&TaskView) -> bool,
        limit: usize,
        command: Command,
        metadata: &Metadata,
    ) -> Result<BulkOutcome, ServiceError> {
        let admits = |task: &TaskView| {
            task.state == state
                && selection
                    .task_type
                    .as_ref()
                    .is_none_or(|t| *t == task.task_type)
                && selection.filter.admits(task)
                && eligible(task)
        };
        let (chosen, more) = self.select(state, selection, admits, limit).await?;
        let outcomes: Vec<_> = futures::stream::iter(chosen)
            .map(|id| self.execute(id, command.clone(), metadata))
            .buffer_unordered(CONCURRENT)
            .collect()
            .await;
        let mut outcome = BulkOutcome {
            changed: 0,
            skipped: 0,
            more,
            position: self.views.position(),
        };
        for written in outcomes {
            match written {
                Ok(written) => {
                    outcome.changed += 1;
                    outcome.position = outcome.position.max(written.position);
                }
                Err(ServiceError::Rejected(_) | ServiceError::Contended) => outcome.skipped += 1,
                Err(error) => return Err(error),
            }
        }
        Ok(outcome)
    }

    /// Up to `limit` tasks `admits` takes, and whether there may be more.
    async fn select(
        &self,
        state: TaskState,
        selection: &Selection,
        admits: impl Fn(&TaskView) -> bool,
        limit: usize,
    ) -> Result<(Vec<TaskId>, bool), ServiceError> {
        if !selection.ids.is_empty() {
            let mut chosen = Vec::new();
            for &id in &selection.ids {
                if let Some(task) = self.view(id).await? {
                    if admits(&task) {
                        chosen.push(id);
                    }
                }
            }
            let more = chosen.len() > limit;
            chosen.truncate(limit);
            return Ok((chosen, more));
        }
        let rows = TaskQuery {
            state: Some(state),
            task_type: selection.task_type.clone(),
            label: selection
                .filter
                .selector
                .as_ref()
                .and_then(Selector::first_equality),
            tag: selection.filter.tags.first().cloned(),
            ..TaskQuery::default()
        };
        let matching = self.list_matching(rows, limit, None, admits).await?;
        let ids = matching.tasks.into_iter().map(|t| t.id).collect();
        Ok((ids, matching.next_after.is_some()))
    }
}
