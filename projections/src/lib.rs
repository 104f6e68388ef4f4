//! tasklog's read models: pure folds of the event log.
//!
//! [`Projections::apply`] folds one recorded event into every view; the live
//! runner and a rebuild from position 0 run the same code, so they agree.
//! No HTTP and no SQL live here.
//!
//! # Layout
//! - [`task_view`]: one task as the contract shows it, and its state.
//! - [`queue_index`]: pending tasks in claim order, leases and expirations by time.
//! - [`stats`]: counts per state and type, run durations.
//! - [`runner`]: follows the log into [`Projections`] and tells how far it got.

pub mod queue_index;
pub mod runner;
pub mod stats;
pub mod task_view;

use std::collections::{BTreeMap, HashMap};

use tasklog_events::consumer_event::{consumer_of, ConsumerAcknowledged};
use tasklog_events::{Position, RecordedEvent, TaskEvent, TaskId};

pub use queue_index::QueueIndex;
pub use runner::{ProjectionRunner, SharedProjections};
pub use stats::Stats;
pub use task_view::{Lease, TaskState, TaskView};

/// Every read model, as of `position`.
#[derive(Debug, Default)]
pub struct Projections {
    pub tasks: HashMap<TaskId, TaskView>,
    /// Tasks by the position of their first event: the stable listing order.
    pub by_creation: BTreeMap<Position, TaskId>,
    pub queue: QueueIndex,
    pub stats: Stats,
    /// Durable consumers by name.
    pub consumers: BTreeMap<String, ConsumerView>,
    /// The last position folded in.
    pub position: Position,
}

/// Where a durable consumer is in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerView {
    pub position: Position,
    pub acknowledged_time: chrono::DateTime<chrono::Utc>,
}

impl Projections {
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        self.position = self.position.max(recorded.position);
        if let Some(name) = consumer_of(&recorded.stream) {
            let acknowledged = ConsumerAcknowledged::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.payload,
            );
            if let Some(acknowledged) = acknowledged {
                let consumer = ConsumerView {
                    position: Position(acknowledged.position),
                    acknowledged_time: recorded.recorded_at,
                };
                self.consumers.insert(name.to_owned(), consumer);
            }
            return;
        }
        let Some(id) = TaskId::from_stream(&recorded.stream) else {
            return;
        };
        let event = match TaskEvent::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.payload,
        ) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(position = %recorded.position, %error, "skipping an event this build cannot read");
                return;
            }
        };
        let mut view = self.tasks.remove(&id);
        let before = view.as_ref().map(stats::Before::of);
        TaskView::apply(&mut view, recorded, &event);
        let Some(view) = view else { return };
        if before.is_none() {
            self.by_creation.insert(view.created_position, id);
        }
        self.stats.update(before, &view);
        self.queue.update(&view);
        self.tasks.insert(id, view);
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
