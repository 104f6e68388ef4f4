//! tasklog's read models: pure folds of the event log.
//!
//! [`Projections::apply`] folds one recorded event into every view; the live
//! runner and a rebuild from position 0 run the same code, so they agree.
//! No HTTP and no SQL live here.
//!
//! # Layout
//! - [`task_view`]: one task as the contract shows it, and its state.
//! - [`schedule_view`]: one recurring schedule and when its next run is due.
//! - [`queue_index`]: pending tasks in claim order, leases and expirations by time.
//! - [`stats`]: counts per state and type, run durations; and the queues' running limits.
//! - [`read_model`]: what is stored on disk after each batch, and read back.
//! - [`rebuild`]: the stored read models folded again from the log, and checked.
//! - [`runner`]: follows the log into [`Projections`] and the stored rows, and
//!   tells how far it got.

pub mod queue_index;
pub mod read_model;
pub mod rebuild;
pub mod runner;
pub mod schedule_view;
pub mod stats;
pub mod task_view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tasklog_events::consumer_event::ConsumerEvent;
use tasklog_events::queue_event::QueueEvent;
use tasklog_events::schedule_event::{ScheduleEvent, ScheduleId};
use tasklog_events::{Position, RecordedEvent, StreamName, TaskEvent, TaskId};

pub use queue_index::QueueIndex;
pub use read_model::{
    Changes, ReadModelError, ReadModelTables, Snapshot, TaskQuery, ViewGenerations,
    READ_MODEL_VERSION,
};
pub use runner::{ProjectionRunner, SharedProjections};
pub use schedule_view::ScheduleView;
pub use stats::Stats;
pub use task_view::{Lease, TaskState, TaskView};

/// Every read model, as of `position`. The live service keeps only the hot
/// tasks here (pending and running); `Projections::rebuild` keeps them all.
#[derive(Debug, Default)]
pub struct Projections {
    /// Behind pointers: growing the map moves 24 bytes a task instead of the
    /// whole view (with 300,000 tasks pending, rehashing inline views was a
    /// fifth of a batch of creates' CPU). Shared: a store of rows takes the
    /// views it writes without copying them; a task that changes while its
    /// row is being written is copied then.
    pub tasks: HashMap<TaskId, Arc<TaskView>>,
    /// Tasks by the position of their first event: the stable listing order.
    pub by_creation: BTreeMap<Position, TaskId>,
    pub queue: QueueIndex,
    pub stats: Stats,
    /// Schedules by id (deleted ones are gone).
    pub schedules: BTreeMap<ScheduleId, ScheduleView>,
    /// Each task type's queue settings, if any were ever set.
    pub queues: HashMap<String, QueueSettings>,
    /// Durable consumers by name.
    pub consumers: BTreeMap<String, ConsumerView>,
    /// The last position folded in.
    pub position: Position,
}

/// Where a durable consumer is in the log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConsumerView {
    pub position: Position,
    pub acknowledged_time: chrono::DateTime<chrono::Utc>,
    /// The revision of the consumer's stream.
    pub revision: u64,
}

/// A task type's queue settings.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueueSettings {
    /// At most this many tasks of the type run at once.
    pub max_running: Option<u32>,
    /// Claims hand out none of the type's tasks.
    #[serde(default)]
    pub paused: bool,
    /// The revision of the queue's stream.
    pub revision: u64,
}

impl Projections {
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        self.position = self.position.max(recorded.position);
        match StreamName::parse(&recorded.stream) {
            Some(StreamName::Task(id)) => self.apply_task(id, recorded),
            Some(StreamName::Schedule(id)) => self.apply_schedule(id, recorded),
            Some(StreamName::Queue(task_type)) => {
                if let Some(event) = decoded(recorded, QueueEvent::decode) {
                    let settings = self.queues.entry(task_type).or_default();
                    match event {
                        QueueEvent::LimitSet(set) => settings.max_running = set.max_running,
                        QueueEvent::Paused(_) => settings.paused = true,
                        QueueEvent::Resumed(_) => settings.paused = false,
                    }
                    settings.revision = recorded.revision;
                }
            }
            Some(StreamName::Consumer(name)) => {
                if let Some(ConsumerEvent::Acknowledged(acknowledged)) =
                    decoded(recorded, ConsumerEvent::decode)
                {
                    let consumer = ConsumerView {
                        position: Position(acknowledged.position),
                        acknowledged_time: recorded.recorded_at,
                        revision: recorded.revision,
                    };
                    self.consumers.insert(name, consumer);
                }
            }
            // Idempotency keys are read from their streams; other streams are not tasklog's.
            Some(StreamName::Idempotency(_)) | None => {}
        }
    }

    /// At most this many tasks of `task_type` run at once, if a limit is set.
    pub fn running_limit(&self, task_type: &str) -> Option<u32> {
        self.queues.get(task_type).and_then(|q| q.max_running)
    }

    /// Whether claims hand out none of `task_type`'s tasks.
    pub fn is_paused(&self, task_type: &str) -> bool {
        self.queues.get(task_type).is_some_and(|q| q.paused)
    }

    fn apply_schedule(&mut self, id: ScheduleId, recorded: &RecordedEvent) {
        let Some(event) = decoded(recorded, ScheduleEvent::decode) else {
            return;
        };
        let mut view = self.schedules.remove(&id);
        ScheduleView::apply(&mut view, recorded, &event);
        if let Some(view) = view {
            self.schedules.insert(id, view);
        }
    }

    fn apply_task(&mut self, id: TaskId, recorded: &RecordedEvent) {
        let Some(event) = decoded(recorded, TaskEvent::decode) else {
            return;
        };
        if !matches!(event, TaskEvent::Created(_)) {
            // A change to a task in memory is folded where it is.
            let Some(view) = self.tasks.get_mut(&id).map(Arc::make_mut) else {
                return;
            };
            let before = stats::Before::of(view);
            view.change(recorded, event);
            self.stats.update(Some(before), view);
            self.queue.update(view);
            return;
        }
        let mut view = self.tasks.remove(&id).map(Arc::unwrap_or_clone);
        let before = view.as_ref().map(stats::Before::of);
        TaskView::apply(&mut view, recorded, event);
        let Some(view) = view else { return };
        self.stats.update(before, &view);
        self.insert_task(view);
    }

    /// Files a task in the task map, the listing order and the queue index.
    pub fn insert_task(&mut self, view: TaskView) {
        self.by_creation.insert(view.created_position, view.id);
        self.queue.update(&view);
        self.tasks.insert(view.id, Arc::new(view));
    }

    /// A task in memory, if it is there.
    pub fn task(&self, id: &TaskId) -> Option<&TaskView> {
        self.tasks.get(id).map(|view| &**view)
    }

    /// Takes a finished task out of memory once its row is stored.
    pub fn evict(&mut self, id: TaskId) {
        if let Some(view) = self.tasks.remove(&id) {
            self.by_creation.remove(&view.created_position);
        }
    }

    /// Every view folded from `events` on an empty start: a rebuild.
    pub fn rebuild<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Self {
        let mut projections = Projections::default();
        for event in events {
            projections.apply(event);
        }
        projections
    }
}

/// The event of `recorded`, or `None` (logged) if this build cannot read it.
fn decoded<E>(
    recorded: &RecordedEvent,
    decode: fn(&str, u32, &str) -> Result<E, tasklog_events::task_event::DecodeError>,
) -> Option<E> {
    match decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    ) {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::error!(position = %recorded.position, %error, "skipping an event this build cannot read");
            None
        }
    }
}
