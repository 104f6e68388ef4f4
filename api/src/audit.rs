//! The log on the wire, as auditors and consumers see it: each event a
//! CloudEvents 1.0 JSON object, with tasklog's position, revision, metadata
//! and hash as extension attributes. History, the global log, the stream
//! and exports all use this one shape.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tasklog_events::{RecordedEvent, TaskId};
use utoipa::{IntoParams, ToSchema};

use crate::tasks::wire_time;

/// One event of the log.
// The server writes it borrowed from the stored event; a client reads it
// owned, as `CloudEvent<'static>`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CloudEvent<'a> {
    /// The event id (a UUID).
    pub id: String,
    pub specversion: Cow<'a, str>,
    /// Always `tasklog`.
    pub source: Cow<'a, str>,
    /// The event type, e.g. `TaskCreated`.
    #[serde(rename = "type")]
    pub event_type: Cow<'a, str>,
    /// When the event was recorded.
    pub time: String,
    /// The task id; for other events, their stream (`schedule-<id>`, `queue-<type>`).
    pub subject: String,
    pub datacontenttype: Cow<'a, str>,
    /// The event's payload, as stored.
    #[schema(value_type = Object)]
    pub data: Cow<'a, RawValue>,
    /// The event's global log position.
    pub tasklogposition: u64,
    /// The event's revision in its task's stream, from 0.
    pub tasklogrevision: u64,
    /// The schema version of the payload.
    pub tasklogschemaversion: u32,
    /// The event's link in the log's hash chain, in hex: SHA-256 over the
    /// previous event's hash and this event (`/v1/admin/verify` checks them).
    pub taskloghash: String,
    /// The name of the token that caused the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasklogactor: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasklogrequestid: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasklogcausationid: Option<String>,
    /// The W3C trace context of the request that appended the event
    /// (CloudEvents' distributed tracing extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<Cow<'a, str>>,
}

impl<'a> CloudEvent<'a> {
    pub fn of(event: &'a RecordedEvent) -> Self {
        let subject = TaskId::from_stream(&event.stream)
            .map_or_else(|| event.stream.clone(), |id| id.to_string());
        CloudEvent {
            id: event.id.to_string(),
            specversion: Cow::Borrowed("1.0"),
            source: Cow::Borrowed("tasklog"),
            event_type: Cow::Borrowed(&event.event_type),
            time: wire_time(event.recorded_at),
            subject,
            datacontenttype: Cow::Borrowed("application/json"),
            data: Cow::Borrowed(serde_json::from_str(&event.payload).unwrap_or_else(|_| {
                // The store only holds JSON; a payload that is not is shown as null, not hidden.
                serde_json::from_str("null").expect("null is JSON")
            })),
            tasklogposition: event.position.0,
            tasklogrevision: event.revision,
            tasklogschemaversion: event.schema_version,
            taskloghash: hex::encode(event.hash),
            tasklogactor: event.metadata.actor.as_deref().map(Cow::Borrowed),
            tasklogrequestid: event.metadata.request_id.as_deref().map(Cow::Borrowed),
            tasklogcausationid: event.metadata.causation_id.map(|id| id.to_string()),
            traceparent: event.metadata.traceparent.as_deref().map(Cow::Borrowed),
        }
    }
}

/// Events, in log order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage<'a> {
    pub events: Vec<CloudEvent<'a>>,
    /// Pass as `after` for the next page; absent when the log had no more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Events after this position (default 0: from the start).
    pub after: Option<u64>,
    /// At most this many events (1 to 10000, default 1000).
    pub limit: Option<usize>,
    /// Only events of tasks of this type.
    pub task_type: Option<String>,
    /// Only events of this type, e.g. `TaskCompleted`.
    pub event_type: Option<String>,
}

/// What `GET /v1/admin/verify` found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub ok: bool,
    /// On a healthy log: how many events it holds.
    pub events: Option<u64>,
    /// On a healthy log: its head position and hash, to keep elsewhere. No
    /// hash on a store that keeps no chain (EventStoreDB), where only
    /// positions and revisions are checked.
    pub head: Option<u64>,
    pub head_hash: Option<String>,
    /// On a damaged log: the first bad position, and what is wrong there.
    pub first_bad_position: Option<u64>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasklog_events::{Metadata, Position};

    /// A client reads an event, owned, as the server wrote it borrowed.
    #[test]
    fn an_event_reads_back_owned() {
        let stored = RecordedEvent {
            position: Position(7),
            stream: "task-01a24eab5d0a77a086343104bfc4925e".into(),
            revision: 2,
            id: uuid::Uuid::nil(),
            event_type: "TaskCompleted".into(),
            schema_version: 2,
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            payload: r#"{"worker":"w1","result":{"sent":1}}"#.into(),
            metadata: Metadata {
                actor: Some("worker".into()),
                request_id: Some("r1".into()),
                ..Metadata::default()
            },
            hash: [7; 32],
        };
        let written = serde_json::to_string(&CloudEvent::of(&stored)).unwrap();
        let read: CloudEvent<'static> = serde_json::from_str(&written).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), written);
        assert_eq!(read.data.get(), r#"{"worker":"w1","result":{"sent":1}}"#);
        assert_eq!(read.tasklogactor.as_deref(), Some("worker"));
    }
}
