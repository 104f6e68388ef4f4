//! The envelope: what a writer hands to the store, and what the log gives back.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event's place in the global log. Positions only grow; the first event of a
/// log is at position 1, so `Position::START` (0) means "before everything" and
/// `read_all(Position::START, ..)` reads the whole log.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who caused an event and why; kept with the event for auditors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The name of the token that made the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The request that appended the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The event that led to this one (a lease lapse caused by a start, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The W3C trace context of the request that appended the event
    /// (`00-<trace id>-<span id>-<flags>`), so an auditor can go from the
    /// event to its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event on its way into the log.
///
/// The payload is already JSON text: the writer serialises it on its own task,
/// so the store's single writer only stores bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Chosen by the writer; a retried append with the same ids writes nothing.
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The writer's clock (the one clock tests control), not the store's.
    pub recorded_at: DateTime<Utc>,
    pub payload: String,
    pub metadata: Metadata,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub position: Position,
    pub stream: String,
    /// The event's place in its stream, from 0.
    pub revision: u64,
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(with = "micros")]
    pub recorded_at: DateTime<Utc>,
    /// JSON text; [`TaskEvent::decode`](crate::TaskEvent::decode) reads it.
    #[serde(with = "raw_json")]
    pub payload: String,
    pub metadata: Metadata,
    /// SHA-256 over the previous event's hash and this event (see [`crate::hash_chain`]).
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
}

/// `events` as the log would hold them at the start of `stream`: revisions
/// 0, 1, 2, .. at positions `first_position`, `first_position + 1`, ..
///
/// For folds and tests, which do not read hashes: the hash is left zero, so
/// these events are not a log that [`verify`](crate::verify) accepts.
pub fn recorded(stream: &str, first_position: u64, events: Vec<NewEvent>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .zip(0..)
        .map(|(event, revision)| RecordedEvent {
            position: Position(first_position + revision),
            stream: stream.to_owned(),
            revision,
            id: event.id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            payload: event.payload,
            metadata: event.metadata,
            hash: [0; 32],
        })
        .collect()
}

/// Times in the log have microsecond precision: what SQLite and PostgreSQL keep.
pub fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).expect("a time in range")
}

mod micros {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// The payload is stored as JSON text but shown as JSON, not as a quoted string.
mod raw_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(json: &str, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(json).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Box::<RawValue>::deserialize(d)?.get().to_owned())
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut hash = [0; 32];
        hex::decode_to_slice(text, &mut hash)
            .map_err(|_| serde::de::Error::custom("a hash is 64 hex characters"))?;
        Ok(hash)
    }
}
