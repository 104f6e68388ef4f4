//! The contract every backend keeps.

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::envelope::{NewEvent, Position, RecordedEvent};

/// What the writer believes the stream's last revision to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (a create).
    NoStream,
    /// The stream's last event must have this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(revision) => write!(f, "revision {revision}"),
        }
    }
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `actual` (None: no stream) meets this.
    pub fn admits(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => actual.is_none(),
            ExpectedRevision::Exact(expected) => actual == Some(expected),
        }
    }
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The global position of the append's first event.
    pub first_position: Position,
    /// The global position of its last event: a read at least this new sees it.
    pub last_position: Position,
    /// The stream's revision after the append: the next `ExpectedRevision::Exact`.
    pub revision: u64,
}

/// One stream's share of an append to several streams.
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
}

/// The store could not do its work (I/O, connection, corruption).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    pub fn new(message: impl Into<String>) -> Self {
        StorageError {
            message: message.into(),
            source: None,
        }
    }

    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let message = format!("{}: {source}", message.into());
        StorageError {
            message,
            source: Some(Box::new(source)),
        }
    }
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream was not at the expected revision (HTTP 409; the write side
    /// re-reads and decides again).
    #[error("{stream} is at {}, not at {expected}", actual.map_or("no stream".to_owned(), |r| format!("revision {r}")))]
    Conflict {
        stream: String,
        expected: ExpectedRevision,
        actual: Option<u64>,
    },
    /// Some of the event ids were appended before, but not as this same append
    /// (HTTP 409).
    #[error("event {event_id} was already appended, but not as part of this same append")]
    IdempotencyMismatch { event_id: uuid::Uuid },
    /// The append had no events or a malformed one (HTTP 400; a bug in the caller).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The store is down or failing (HTTP 503 with `Retry-After`); nothing is
    /// known to be durable.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store is down or failing (HTTP 503 with `Retry-After`).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Events in log order, catch-up then live.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, ReadError>>;

/// An append-only log of streams of events, in one total order.
///
/// Every backend passes the suite in `tasklog-store-testkit`.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream`, all or none, if the stream is at `expected`.
    /// Returns only once the events are durable. Idempotent by event id: a
    /// retried append with the same ids returns the first result, writing nothing.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError>;

    /// Appends to several streams at once, in the order given, all or none:
    /// if one part is not at its expected revision, nothing is written and
    /// the conflict names that part's stream. The results are in the order
    /// of `appends`. Idempotent by event id, as [`append`](Self::append).
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError>;

    /// Up to `limit` events of one stream, from revision `from` on.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Up to `limit` events of the global log with positions after `after`.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Every event after `after`: the log first, then new events as they are
    /// appended, never skipping one. A subscriber that reads slowly is served
    /// from the log, so it costs the writers nothing and loses nothing.
    fn subscribe_all(&self, after: Position) -> EventStream;

    /// The position of the newest durable event.
    async fn head(&self) -> Result<Position, ReadError>;

    /// Follows the head as appends become durable: the wake-up for subscribers.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// Whether each event carries the [hash chain](crate::hash_chain). Only a
    /// store that orders every append itself can chain them; one whose
    /// streams are written independently (EventStoreDB) cannot, and
    /// [`verify`](crate::verify) then checks positions and revisions only.
    fn keeps_hash_chain(&self) -> bool {
        true
    }

    /// Whether [`append_many`](Self::append_many) writes all parts or none
    /// even when the store fails part way. A store whose client cannot
    /// append to several streams at once (EventStoreDB) writes them one
    /// after another.
    fn appends_many_atomically(&self) -> bool {
        true
    }
}
