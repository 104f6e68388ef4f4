//! tasklog's source of truth: the task events, the envelope that records them in
//! the log, the [`EventStore`] contract, the hash chain and verify. No database
//! client and no HTTP live here: each backend is a crate of its own under
//! `stores/`, and `stores/testkit` holds the suite every backend passes.
//!
//! # Layout
//! - [`task_event`]: the task events, past tense and versioned, and their decoding
//!   (each family of events is declared once, by `event_enum!`).
//! - [`task_data`]: a task's data, kept as the JSON text it came as.
//! - [`stream_name`]: every stream tasklog writes ([`StreamName`]), named and
//!   parsed in one place.
//! - [`stream_id`]: the ids of tasks and schedules.
//! - [`schedule_event`]: recurring schedules and the runs they create.
//! - [`queue_event`]: per-type queue settings (the running limit).
//! - [`idempotency_event`]: idempotency keys of creates, reserved for the task they made.
//! - [`consumer_event`]: durable consumers' acknowledged positions, kept as events.
//! - [`envelope`]: [`NewEvent`] (what a writer appends) and [`RecordedEvent`] (what
//!   the log holds: stream, revision, global position, time, metadata, hash).
//! - [`append_checks`]: what every backend checks before it appends.
//! - [`append_rules`]: what a single-writer backend decides of each append of a
//!   batch (idempotency, expected revision, positions, hash chain), without I/O.
//! - [`store`]: the [`EventStore`] trait, expected revisions, the error enums.
//! - [`hash_chain`]: the hash that chains each event to the one before it in the
//!   global log.
//! - [`verify`](mod@verify): walks the log and names the first bad position.
//! - [`append_queue`]: the hand-over from appenders to a backend's single writer
//!   (group commit).
//! - [`paging`]: [`read_all_pages`], the log a page at a time, for every reader
//!   that walks it.
//! - [`subscription`]: catch-up-then-live subscriptions built on `read_all`, so a
//!   slow subscriber re-reads the log instead of losing events.
//! - [`fanout`]: one reader of the log for every live subscriber in a process,
//!   with a bounded ring; a subscriber that falls behind it reads the log.
//! - [`schemas`]: the JSON Schema of every event type and version.
//!
//! The file format and commit protocol of the SQLite store are described in
//! `docs/store.md` at the top of the repository.

pub mod append_checks;
pub mod append_queue;
pub mod append_rules;
pub mod consumer_event;
pub mod envelope;
mod event_enum;
pub mod fanout;
pub mod hash_chain;
pub mod idempotency_event;
pub mod paging;
pub mod queue_event;
pub mod schedule_event;
pub mod schemas;
pub mod store;
pub mod stream_id;
pub mod stream_name;
pub mod subscription;
pub mod task_data;
pub mod task_event;
pub mod verify;

pub use envelope::{Metadata, NewEvent, Position, RecordedEvent};
pub use event_enum::{DecodeError, DomainEvent};
pub use fanout::{Fanout, SharedEventStream};
pub use paging::read_all_pages;
pub use store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
    StreamAppend,
};
pub use stream_name::StreamName;
pub use task_data::TaskData;
pub use task_event::{TaskEvent, TaskId};
pub use verify::{verify, verify_with_progress, VerifyError, VerifyReport};
