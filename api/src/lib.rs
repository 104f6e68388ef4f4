//! The contract of tasklog's HTTP API: what goes over the wire, one type per
//! body, shared by the server (which reads and checks requests and writes
//! answers with them) and its clients.
//!
//! - [`admin`]: a rebuild of the read models.
//! - [`audit`]: events as auditors and consumers see them, pages of the
//!   log, and what a verification found.
//! - [`body`]: the field types of request bodies, which check themselves,
//!   and the error that reading a body gathers.
//! - [`consumers`]: the event stream's query, and durable consumers.
//! - [`errors`]: the error body of every 4xx and 5xx.
//! - [`labels`]: the rules of labels and tags, and label selectors.
//! - [`queues`]: each task type's queue, and its settings.
//! - [`schedules`]: a schedule's create, and the schedule.
//! - [`tasks`]: tasks: creates, claims and reports, lists, and the task.
//! - [`token`]: scopes, and who a request's token is.

pub mod admin;
pub mod audit;
pub mod body;
pub mod consumers;
pub mod errors;
pub mod labels;
pub mod queues;
pub mod schedules;
pub mod tasks;
pub mod token;

/// A task's `data`, as the JSON text it came as: `to_map()` parses it.
pub use tasklog_events::TaskData;
