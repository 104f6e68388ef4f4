//! The task events: every create and every state change of a task, past tense.
//!
//! Each event type has a schema version. A payload, once written, is read back by
//! every later version of tasklog: changing a payload means a new version and a
//! decode arm that upcasts the old one (see [`TaskEvent::decode`]). The schemas in
//! `schemas/events/` and the fixture in `tests/fixtures/` hold us to that.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{truncate_to_micros, Metadata, NewEvent};

/// A task's id: 32 lowercase hex characters, made by the server.
///
/// Ids are UUIDv7, so new tasks sort after old ones and the store's stream
/// index grows at its end instead of everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub Uuid);

impl TaskId {
    pub fn new() -> Self {
        TaskId(Uuid::now_v7())
    }

    /// The stream that holds this task's events.
    pub fn stream(&self) -> String {
        format!("{STREAM_PREFIX}{self}")
    }

    /// The task whose events a stream holds, if it is a task stream.
    pub fn from_stream(stream: &str) -> Option<Self> {
        stream.strip_prefix(STREAM_PREFIX)?.parse().ok()
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

/// Task streams are named `task-<id>`.
pub const STREAM_PREFIX: &str = "task-";

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for TaskId {
    type Err = InvalidTaskId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let is_canonical = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_canonical {
            return Err(InvalidTaskId);
        }
        Uuid::parse_str(text).map(TaskId).map_err(|_| InvalidTaskId)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a task id is 32 lowercase hex characters")]
pub struct InvalidTaskId;

/// A task was created, pending until `available_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCreated {
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    /// Higher runs first.
    pub priority: i64,
    pub data: serde_json::Map<String, serde_json::Value>,
    pub available_time: DateTime<Utc>,
    pub expiration_time: DateTime<Utc>,
}

/// A worker claimed the task and holds it until `lease_expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskStarted {
    pub worker: String,
    pub lease_expires_at: DateTime<Utc>,
    /// 1 for the first run, one more for each run after a lapsed lease.
    pub attempt: u32,
}

/// The worker holding the task extended its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskLeaseRenewed {
    pub worker: String,
    pub lease_expires_at: DateTime<Utc>,
}

/// The worker finished the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCompleted {
    pub worker: String,
}

/// The worker gave up on the task, saying why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskFailed {
    pub worker: String,
    pub error: String,
}

/// The task was still pending at its expiration time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskExpired {
    /// The error the task view shows, saying it expired.
    pub error: String,
}

/// A client cancelled the task while it was pending or running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskCancelled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The worker's lease lapsed; the task is pending again for another run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRequeued {
    /// The worker that lost the task.
    pub worker: String,
    pub reason: String,
}

/// Declares the events once, with their wire names and versions, so the enum,
/// the type names, encoding, decoding and the schema list cannot disagree.
macro_rules! task_events {
    ($($variant:ident($payload:ident) = $name:literal v $version:literal),* $(,)?) => {
        /// Every task event, in its current schema version.
        #[derive(Clone, Debug, PartialEq)]
        pub enum TaskEvent {
            $($variant($payload)),*
        }

        impl TaskEvent {
            /// The type name stored with the event.
            pub fn event_type(&self) -> &'static str {
                match self { $(TaskEvent::$variant(_) => $name),* }
            }

            /// The schema version this build writes.
            pub fn schema_version(&self) -> u32 {
                match self { $(TaskEvent::$variant(_) => $version),* }
            }

            fn payload_json(&self) -> String {
                let json = match self { $(TaskEvent::$variant(p) => serde_json::to_string(p)),* };
                json.expect("task events serialise to JSON")
            }

            /// Reads a stored payload. Upcasts of older versions go here, as arms
            /// before the current ones.
            pub fn decode(event_type: &str, schema_version: u32, payload: &str) -> Result<Self, DecodeError> {
                match (event_type, schema_version) {
                    $(($name, $version) => serde_json::from_str(payload)
                        .map(TaskEvent::$variant)
                        .map_err(|e| DecodeError::Payload { event_type: event_type.to_owned(), reason: e.to_string() }),)*
                    _ => Err(DecodeError::UnknownType { event_type: event_type.to_owned(), schema_version }),
                }
            }

            /// `(type, version, JSON Schema)` of every event this build can read.
            pub fn schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
                vec![$(($name, $version, schemars::schema_for!($payload))),*]
            }
        }
    };
}

task_events! {
    Created(TaskCreated) = "TaskCreated" v 1,
    Started(TaskStarted) = "TaskStarted" v 1,
    LeaseRenewed(TaskLeaseRenewed) = "TaskLeaseRenewed" v 1,
    Completed(TaskCompleted) = "TaskCompleted" v 1,
    Failed(TaskFailed) = "TaskFailed" v 1,
    Expired(TaskExpired) = "TaskExpired" v 1,
    Cancelled(TaskCancelled) = "TaskCancelled" v 1,
    Requeued(TaskRequeued) = "TaskRequeued" v 1,
}

impl TaskEvent {
    /// Wraps the event for appending, with a fresh event id.
    pub fn to_new_event(&self, recorded_at: DateTime<Utc>, metadata: Metadata) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            event_type: self.event_type().to_owned(),
            schema_version: self.schema_version(),
            recorded_at: truncate_to_micros(recorded_at),
            payload: self.payload_json(),
            metadata,
        }
    }
}

/// A stored event this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type} v{schema_version}")]
    UnknownType {
        event_type: String,
        schema_version: u32,
    },
    #[error("bad {event_type} payload: {reason}")]
    Payload { event_type: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_32_lowercase_hex_and_round_trip() {
        let id = TaskId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
        assert_eq!(TaskId::from_stream(&id.stream()), Some(id));
        assert!(text.to_uppercase().parse::<TaskId>().is_err());
        assert!(id.0.hyphenated().to_string().parse::<TaskId>().is_err());
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let now = truncate_to_micros(Utc::now());
        let event = TaskEvent::Started(TaskStarted {
            worker: "w1".into(),
            lease_expires_at: now,
            attempt: 1,
        });
        let stored = event.to_new_event(now, Metadata::default());
        assert_eq!(stored.event_type, "TaskStarted");
        let back = TaskEvent::decode(&stored.event_type, stored.schema_version, &stored.payload);
        assert_eq!(back.unwrap(), event);
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_panics() {
        assert!(matches!(
            TaskEvent::decode("TaskCreated", 99, "{}"),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            TaskEvent::decode("TaskCompleted", 1, "{\"worker\": 3}"),
            Err(DecodeError::Payload { .. })
        ));
    }
}
