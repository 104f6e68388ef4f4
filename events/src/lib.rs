//! tasklog's source of truth: the task events, the envelope that records them in
//! the log, the [`EventStore`] contract and its backends. No HTTP lives here.
//!
//! # Layout
//! - [`task_event`]: the task events, past tense and versioned, and their decoding
//!   (each family of events is declared once, by `event_enum!`).
//! - [`stream_id`]: the ids of tasks and schedules, and their streams.
//! - [`schedule_event`]: recurring schedules and the runs they create.
//! - [`queue_event`]: per-type queue settings (the running limit).
//! - [`idempotency_event`]: idempotency keys of creates, reserved for the task they made.
//! - [`consumer_event`]: durable consumers' acknowledged positions, kept as events.
//! - [`envelope`]: [`NewEvent`] (what a writer appends) and [`RecordedEvent`] (what
//!   the log holds: stream, revision, global position, time, metadata, hash).
//! - [`append_checks`]: what every backend checks before it appends.
//! - [`store`]: the [`EventStore`] trait, expected revisions, the error enums.
//! - [`hash_chain`]: the hash that chains each event to the one before it in the
//!   global log, and [`verify`](hash_chain::verify), which walks the log and names
//!   the first bad position.
//! - [`subscription`]: catch-up-then-live subscriptions built on `read_all`, so a
//!   slow subscriber re-reads the log instead of losing events.
//! - [`sqlite`]: the embedded default backend (WAL, `synchronous=FULL`, group commit).
//! - [`eventstoredb`]: EventStoreDB / KurrentDB, a stream per task, `$all` as the log.
//! - [`postgres`]: the shared backend for several nodes (a head row lock orders
//!   appends; LISTEN/NOTIFY wakes subscribers).
//! - [`schemas`]: the JSON Schema of every event type and version.
//! - `conformance` (feature `conformance`): the suite every backend passes.
//!
//! The file format and commit protocol of the SQLite store are described in
//! `docs/store.md` at the top of the repository.

pub mod append_checks;
mod append_queue;
pub mod consumer_event;
pub mod envelope;
mod event_enum;
pub mod eventstoredb;
pub mod hash_chain;
pub mod idempotency_event;
pub mod postgres;
pub mod queue_event;
pub mod schedule_event;
pub mod schemas;
pub mod sqlite;
pub mod store;
pub mod stream_id;
pub mod subscription;
pub mod task_event;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod test_eventstoredb;
#[cfg(any(test, feature = "conformance"))]
pub mod test_postgres;

pub use envelope::{Metadata, NewEvent, Position, RecordedEvent};
pub use eventstoredb::EventStoreDbStore;
pub use hash_chain::{verify, VerifyError, VerifyReport};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
};
pub use task_event::{TaskEvent, TaskId};

/// The prefixes of every stream tasklog writes: a shared event store may hold
/// other streams, which tasklog leaves alone.
pub const STREAM_PREFIXES: [&str; 5] = [
    task_event::STREAM_PREFIX,
    schedule_event::SCHEDULE_STREAM_PREFIX,
    queue_event::QUEUE_STREAM_PREFIX,
    idempotency_event::IDEMPOTENCY_STREAM_PREFIX,
    consumer_event::CONSUMER_STREAM_PREFIX,
];
