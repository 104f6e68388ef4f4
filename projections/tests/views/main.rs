//! Given the events of the log, when the views fold them in, then the views show this.

mod projections;
mod queue_index;
mod schedule_view;
mod stats;
mod task_view;

use chrono::{DateTime, Utc};
use tasklog_events::envelope::recorded;
use tasklog_events::task_event::*;
use tasklog_events::{DomainEvent, Metadata, NewEvent, RecordedEvent, TaskEvent, TaskId};
use tasklog_projections::Projections;

/// `seconds` after the tests' epoch (2027-01-15T08:00:00Z, on the hour).
pub fn at(seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_800_000_000_000_000 + (seconds * 1e6).round() as i64).unwrap()
}

/// Any family of events, recorded at a time.
pub trait Event {
    fn at(&self, seconds: f64) -> NewEvent;
}

impl<E: DomainEvent> Event for E {
    fn at(&self, seconds: f64) -> NewEvent {
        self.to_new_event(at(seconds), Metadata::default())
    }
}

/// A log written a whole stream at a time, positions from 1.
#[derive(Default)]
pub struct Log(pub Vec<RecordedEvent>);

impl Log {
    /// `events` of `stream`, each recorded at its time, after everything before.
    pub fn stream<E: Event>(mut self, stream: &str, events: &[(f64, E)]) -> Self {
        assert!(
            self.0.iter().all(|e| e.stream != stream),
            "one call per stream"
        );
        let new_events = events.iter().map(|(s, e)| e.at(*s)).collect();
        let first = self.0.len() as u64 + 1;
        self.0.extend(recorded(stream, first, new_events));
        self
    }

    pub fn task(self, id: TaskId, events: &[(f64, TaskEvent)]) -> Self {
        self.stream(&id.stream(), events)
    }

    /// Every view, rebuilt from this log.
    pub fn fold(&self) -> Projections {
        Projections::rebuild(&self.0)
    }
}

/// A task of `task_type` and `priority`, available from `available` seconds and
/// expiring at 1000.
pub fn created(task_type: &str, priority: i64, available: f64) -> TaskEvent {
    TaskEvent::Created(TaskCreated {
        name: "send".into(),
        task_type: task_type.into(),
        priority,
        available_time: at(available),
        expiration_time: at(1000.0),
        ..Default::default()
    })
}

pub fn started(worker: &str, attempt: u32, lease_until: f64) -> TaskEvent {
    TaskEvent::Started(TaskStarted {
        worker: worker.into(),
        lease_expires_at: at(lease_until),
        attempt,
    })
}

pub fn completed(worker: &str) -> TaskEvent {
    TaskEvent::Completed(TaskCompleted {
        worker: worker.into(),
        result: None,
    })
}

pub fn failed(worker: &str, error: &str) -> TaskEvent {
    TaskEvent::Failed(TaskFailed {
        worker: worker.into(),
        error: error.into(),
    })
}

pub fn cancelled(reason: Option<&str>) -> TaskEvent {
    TaskEvent::Cancelled(TaskCancelled {
        reason: reason.map(Into::into),
    })
}

pub fn requeued(worker: &str, reason: &str) -> TaskEvent {
    TaskEvent::Requeued(TaskRequeued {
        worker: worker.into(),
        reason: reason.into(),
    })
}

pub fn retried(available: f64, expires: f64) -> TaskEvent {
    TaskEvent::Retried(TaskRetried {
        available_time: at(available),
        expiration_time: at(expires),
        automatic: true,
    })
}

pub fn expired() -> TaskEvent {
    TaskEvent::Expired(TaskExpired {
        error: "expired before it ran".into(),
    })
}
