//! The hash chain that makes the log tamper-evident.
//!
//! Each event's hash is SHA-256 over the hash of the event before it in the
//! global log (32 zero bytes for the first) and the event's own content: stream,
//! revision, id, type, schema version, recorded time, payload and metadata. The
//! position is left out, so the chain survives a copy into a store that numbers
//! positions its own way; the order is in the chain itself. Editing an event
//! breaks its hash; removing or moving one breaks the hash of the event after it.
//! Only a rewrite of the whole suffix of the log goes unseen, which is why
//! [`verify`](crate::verify) reports the head hash: keep it somewhere else to
//! anchor the log.
//!
//! The exact byte layout is in `docs/store.md`, for auditors with other tools.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::envelope::{Metadata, NewEvent, RecordedEvent};

pub type Hash = [u8; 32];

/// The "previous hash" of the first event in a log.
pub const GENESIS: Hash = [0; 32];

/// The content of an event that its hash covers.
pub struct HashedFields<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub id: uuid::Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub payload: &'a str,
    pub metadata: &'a Metadata,
}

impl<'a> HashedFields<'a> {
    /// The fields of `event` once it is at `revision` of `stream`.
    pub fn of_new(stream: &'a str, revision: u64, event: &'a NewEvent) -> Self {
        HashedFields {
            stream,
            revision,
            id: event.id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            payload: &event.payload,
            metadata: &event.metadata,
        }
    }
}

impl<'a> From<&'a RecordedEvent> for HashedFields<'a> {
    fn from(event: &'a RecordedEvent) -> Self {
        HashedFields {
            stream: &event.stream,
            revision: event.revision,
            id: event.id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            payload: &event.payload,
            metadata: &event.metadata,
        }
    }
}

/// The hash of an event whose predecessor in the global log has hash `previous`.
pub fn chain_hash(previous: &Hash, event: &HashedFields<'_>) -> Hash {
    fn bytes(h: &mut Sha256, field: &[u8]) {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field);
    }
    fn optional(h: &mut Sha256, field: Option<&[u8]>) {
        match field {
            None => h.update([0]),
            Some(field) => {
                h.update([1]);
                bytes(h, field);
            }
        }
    }
    let mut h = Sha256::new();
    h.update(previous);
    bytes(&mut h, event.stream.as_bytes());
    h.update(event.revision.to_be_bytes());
    h.update(event.id.as_bytes());
    bytes(&mut h, event.event_type.as_bytes());
    h.update(event.schema_version.to_be_bytes());
    h.update(event.recorded_at.timestamp_micros().to_be_bytes());
    bytes(&mut h, event.payload.as_bytes());
    let meta = event.metadata;
    optional(&mut h, meta.actor.as_deref().map(str::as_bytes));
    optional(&mut h, meta.request_id.as_deref().map(str::as_bytes));
    optional(
        &mut h,
        meta.causation_id.as_ref().map(|id| &id.as_bytes()[..]),
    );
    // Later fields go in only when present, so events written before them
    // keep their hashes.
    if let Some(traceparent) = &meta.traceparent {
        h.update([2]);
        bytes(&mut h, traceparent.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hashed_field_changes_the_hash() {
        let meta = Metadata::default();
        let base = HashedFields {
            stream: "task-a",
            revision: 0,
            id: uuid::Uuid::nil(),
            event_type: "TaskCreated",
            schema_version: 1,
            recorded_at: DateTime::from_timestamp_micros(1).unwrap(),
            payload: "{}",
            metadata: &meta,
        };
        let h = chain_hash(&GENESIS, &base);
        let actor = Metadata {
            actor: Some("ops".into()),
            ..Metadata::default()
        };
        let traced = Metadata {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..Metadata::default()
        };
        let variants = [
            chain_hash(&[1; 32], &base),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    stream: "task-b",
                    ..base
                },
            ),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    revision: 1,
                    ..base
                },
            ),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    payload: "{ }",
                    ..base
                },
            ),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    schema_version: 2,
                    ..base
                },
            ),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    metadata: &actor,
                    ..base
                },
            ),
            chain_hash(
                &GENESIS,
                &HashedFields {
                    metadata: &traced,
                    ..base
                },
            ),
        ];
        for other in variants {
            assert_ne!(h, other);
        }
    }
}
