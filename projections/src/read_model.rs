//! Read models on disk: what the applier stores after each batch of events,
//! and what readers ask of the stored rows. The stores implement
//! [`ReadModelTables`] in SQL; this crate only says what goes in and out.
//!
//! Every task ever created has a row; memory keeps only the hot set (pending
//! and running tasks) and the small models (stats, schedules, queue settings,
//! consumers), which are stored whole beside the rows. Rows and the position
//! they were folded to are committed in one transaction, so after a crash they
//! agree and a start resumes from there.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tasklog_events::schedule_event::ScheduleId;
use tasklog_events::{Position, TaskId};

use crate::{ConsumerView, Projections, QueueSettings, ScheduleView, Stats, TaskState, TaskView};

/// The shape of the stored rows. Any change to a fold or to a row's shape
/// bumps it; a store holding another version is rebuilt from the log at start.
pub const READ_MODEL_VERSION: u32 = 1;

/// What one batch of events changed, committed with the position it reaches.
#[derive(Debug, Default)]
pub struct Changes {
    /// The position applied before the batch: tasks created after it are new rows.
    pub from: Position,
    /// The last position of the batch.
    pub position: Position,
    /// Every task the batch touched, as it now stands.
    pub tasks: Vec<Arc<TaskView>>,
    /// Touched schedules; `None`: deleted.
    pub schedules: Vec<(ScheduleId, Option<ScheduleView>)>,
    pub queues: Vec<(String, QueueSettings)>,
    pub consumers: Vec<(String, ConsumerView)>,
    /// The counts, when a task changed.
    pub stats: Option<Stats>,
}

/// What a start loads instead of folding the log: the stored position, the
/// tasks in flight, and the small models.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub position: Position,
    pub hot: Vec<TaskView>,
    pub schedules: Vec<ScheduleView>,
    pub queues: Vec<(String, QueueSettings)>,
    pub consumers: Vec<(String, ConsumerView)>,
    pub stats: Stats,
}

impl Snapshot {
    /// The in-memory views as of the snapshot's position.
    pub fn into_projections(self) -> Projections {
        let mut projections = Projections {
            position: self.position,
            stats: self.stats,
            queues: self.queues.into_iter().collect(),
            consumers: self.consumers.into_iter().collect(),
            schedules: self.schedules.into_iter().map(|s| (s.id, s)).collect(),
            ..Projections::default()
        };
        for task in self.hot {
            projections.insert_task(task);
        }
        projections
    }
}

/// A page of tasks in creation order. `label` and `tag` narrow what the store
/// reads through their indexes; the caller checks the whole filter on the rows.
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    /// Tasks created after this position.
    pub after: Position,
    pub state: Option<TaskState>,
    pub task_type: Option<String>,
    pub label: Option<(String, String)>,
    pub tag: Option<String>,
    pub limit: usize,
}

/// The stored read models, in a file of the node's own (SQLite) or in the
/// database that nodes share (PostgreSQL).
#[async_trait]
pub trait ReadModelTables: Send + Sync {
    /// The stored position, hot set and small models, as of one moment;
    /// position 0 when empty.
    async fn load(&self) -> Result<Snapshot, ReadModelError>;
    /// The stored rows of these tasks (absent ones are left out). Where
    /// nodes share the tables, a row may be newer than this node's position.
    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskView>, ReadModelError>;
    /// Up to `limit` rows in creation order.
    async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError>;
    /// Stores a batch's rows and moves the position, in one transaction.
    /// Where nodes share the tables, a batch another node already stored is
    /// left as it is (every node folds the same log into the same rows); a
    /// batch that starts past the stored position is an error.
    async fn commit(&self, changes: Arc<Changes>) -> Result<(), ReadModelError>;
    /// Drops every row: the next load starts from position 0.
    async fn clear(&self) -> Result<(), ReadModelError>;
    /// Drops up to `limit` rows of tasks that finished before `before` (with
    /// their list entries); their history stays in the log. How many went.
    async fn drop_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, ReadModelError>;
    /// Empties the tables for a rebuild and makes them quick to fill (the list
    /// indexes go, nothing is flushed until the end); a rebuild killed
    /// midway leaves a consistent prefix, which the next start goes on from.
    async fn begin_rebuild(&self) -> Result<(), ReadModelError>;
    /// Puts the list indexes back and flushes the rows.
    async fn finish_rebuild(&self) -> Result<(), ReadModelError>;
}

/// Where a store keeps generations of its read models, for a rebuild beside
/// serving nodes: new tables are filled beside the live ones, swapped in,
/// and then named as the ones every node and every later open uses.
#[async_trait]
pub trait ViewGenerations: Send + Sync {
    /// Empty tables for the next generation, or `None` when another node's
    /// rebuild holds the store.
    async fn next(&self) -> Result<Option<Arc<dyn ReadModelTables>>, ReadModelError>;
    /// Makes the tables `next` gave the ones every node and every later
    /// open uses, and removes those they replaced.
    async fn promote(&self) -> Result<(), ReadModelError>;
    /// Removes the tables `next` gave, which will not be promoted.
    async fn discard(&self);
}

/// The tables could not be read or written.
#[derive(Debug)]
pub struct ReadModelError(pub String);

impl fmt::Display for ReadModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "read models: {}", self.0)
    }
}

impl std::error::Error for ReadModelError {}
