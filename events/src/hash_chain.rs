//! The hash chain that makes the log tamper-evident.
//!
//! Each event's hash is SHA-256 over the hash of the event before it in the
//! global log (32 zero bytes for the first) and the event's own content: stream,
//! revision, id, type, schema version, recorded time, payload and metadata. The
//! position is left out, so the chain survives a copy into a store that numbers
//! positions its own way; the order is in the chain itself. Editing an event
//! breaks its hash; removing or moving one breaks the hash of the event after it.
//! Only a rewrite of the whole suffix of the log goes unseen, which is why
//! [`verify`] reports the head hash: keep it somewhere else to anchor the log.
//!
//! The exact byte layout is in `docs/store.md`, for auditors with other tools.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use crate::paging::read_all_pages;
use crate::store::{EventStore, ReadError};

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
    h.finalize().into()
}

pub fn to_hex(hash: &Hash) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut hash = [0; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

/// What a healthy log looks like after [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether the hash chain was checked (see [`EventStore::keeps_hash_chain`]);
    /// if not, `head_hash` means nothing.
    pub chained: bool,
    pub events: u64,
    pub streams: u64,
    pub head: Position,
    pub head_hash: Hash,
}

/// The first thing wrong with a log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("position {position}: the hash does not match; this event was edited, or one before it was removed or moved")]
    BrokenChain { position: Position },
    #[error("position {position} follows position {previous}: the log is out of order")]
    OutOfOrder {
        position: Position,
        previous: Position,
    },
    #[error("position {position}: {stream} has revision {revision} where {expected} was due")]
    RevisionGap {
        position: Position,
        stream: String,
        revision: u64,
        expected: u64,
    },
    #[error("reading the log: {0}")]
    Read(#[from] ReadError),
}

impl VerifyError {
    /// The first bad position, if the log itself is at fault.
    pub fn position(&self) -> Option<Position> {
        match self {
            VerifyError::BrokenChain { position }
            | VerifyError::OutOfOrder { position, .. }
            | VerifyError::RevisionGap { position, .. } => Some(*position),
            VerifyError::Read(_) => None,
        }
    }
}

/// Walks the whole log: positions rise, each stream's revisions run 0, 1, 2, ..
/// and every hash follows from the one before. The next page is read while
/// the current one is checked.
pub async fn verify(store: &dyn EventStore) -> Result<VerifyReport, VerifyError> {
    const PAGE: usize = 8192;
    let mut checker = Checker {
        chained: store.keeps_hash_chain(),
        previous: Position::START,
        previous_hash: GENESIS,
        next_revision: HashMap::new(),
        events: 0,
    };
    let mut pages = read_all_pages(store, Position::START, PAGE);
    let mut page = pages.try_next().await?;
    while let Some(current) = page {
        // The read goes first so that it runs while this page is checked.
        let (next, checked) = futures::join!(pages.try_next(), async {
            current.iter().try_for_each(|event| checker.check(event))
        });
        checked?;
        page = next?;
    }
    Ok(VerifyReport {
        chained: checker.chained,
        events: checker.events,
        streams: checker.next_revision.len() as u64,
        head: checker.previous,
        head_hash: checker.previous_hash,
    })
}

/// What [`verify`] knows of the log so far.
struct Checker {
    chained: bool,
    previous: Position,
    previous_hash: Hash,
    next_revision: HashMap<String, u64>,
    events: u64,
}

impl Checker {
    fn check(&mut self, event: &RecordedEvent) -> Result<(), VerifyError> {
        if event.position <= self.previous {
            return Err(VerifyError::OutOfOrder {
                position: event.position,
                previous: self.previous,
            });
        }
        if self.chained && chain_hash(&self.previous_hash, &event.into()) != event.hash {
            return Err(VerifyError::BrokenChain {
                position: event.position,
            });
        }
        let expected = self
            .next_revision
            .get(event.stream.as_str())
            .copied()
            .unwrap_or(0);
        if event.revision != expected {
            return Err(VerifyError::RevisionGap {
                position: event.position,
                stream: event.stream.clone(),
                revision: event.revision,
                expected,
            });
        }
        match self.next_revision.get_mut(event.stream.as_str()) {
            Some(next) => *next += 1,
            None => {
                self.next_revision.insert(event.stream.clone(), 1);
            }
        }
        self.previous = event.position;
        self.previous_hash = event.hash;
        self.events += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let hash: Hash = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(from_hex("zz"), None);
    }

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
        ];
        for other in variants {
            assert_ne!(h, other);
        }
    }
}
