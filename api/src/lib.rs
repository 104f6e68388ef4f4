//! The contract of tasklog's HTTP API: what goes over the wire, one type per
//! body, shared by the server (which reads and checks requests and writes
//! answers with them) and its clients.
//!
//! - [`body`]: the field types of request bodies, which check themselves,
//!   and the error that reading a body gathers.
//! - [`labels`]: the rules of labels and tags, and label selectors.
//! - [`tasks`]: tasks: creates, claims and reports, lists, and the task.
//! - [`token`]: scopes, and who a request's token is.

pub mod body;
pub mod labels;
pub mod tasks;
pub mod token;
