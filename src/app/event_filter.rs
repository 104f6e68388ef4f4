//! Which task events a reader wants: by task type and by event type. Shared by
//! the global log, the event stream and `tasklog tail`.

use std::collections::HashMap;

use tasklog_events::{EventStore, RecordedEvent, StreamName, TaskEvent};
use tasklog_projections::{SharedProjections, TaskView};

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub task_type: Option<String>,
    pub event_type: Option<String>,
    /// Task types by stream, learned as events pass by.
    known: HashMap<String, String>,
}

impl EventFilter {
    pub fn new(task_type: Option<String>, event_type: Option<String>) -> Self {
        EventFilter {
            task_type,
            event_type,
            known: HashMap::new(),
        }
    }

    /// Whether `event` passes the filter. Readers see the events of tasks,
    /// schedules and queue settings; the bookkeeping streams (consumer
    /// positions, idempotency keys) stay out. A task's type comes from its
    /// create if it passed by, else the views, else the log; schedule and
    /// queue events have no task type, so a task type filter leaves them out.
    pub async fn admits(
        &mut self,
        event: &RecordedEvent,
        store: &dyn EventStore,
        views: Option<&SharedProjections>,
    ) -> bool {
        if self
            .event_type
            .as_deref()
            .is_some_and(|wanted| wanted != event.event_type)
        {
            return false;
        }
        let task = match StreamName::parse(&event.stream) {
            Some(StreamName::Task(task)) => task,
            Some(StreamName::Schedule(_) | StreamName::Queue(_)) => {
                return self.task_type.is_none()
            }
            Some(StreamName::Idempotency(_) | StreamName::Consumer(_)) | None => return false,
        };
        let Some(wanted) = &self.task_type else {
            return true;
        };
        if let Some(known) = self.known.get(&event.stream) {
            return known == wanted;
        }
        let task_type =
            match TaskEvent::decode(&event.event_type, event.schema_version, &event.payload) {
                Ok(TaskEvent::Created(created)) => Some(created.task_type),
                _ => match views.and_then(|v| {
                    v.read()
                        .expect("projections lock")
                        .tasks
                        .get(&task)
                        .map(|t| t.task_type.clone())
                }) {
                    Some(task_type) => Some(task_type),
                    None => store
                        .read_stream(&event.stream, 0, 1)
                        .await
                        .ok()
                        .and_then(|first| TaskView::fold(&first))
                        .map(|t| t.task_type),
                },
            };
        let Some(task_type) = task_type else {
            return false;
        };
        let admitted = task_type == *wanted;
        self.known.insert(event.stream.clone(), task_type);
        admitted
    }
}

#[cfg(test)]
mod tests;
