//! Every stream tasklog writes, named and parsed in one place.
//!
//! A shared event store may hold other streams; tasklog reads only those
//! whose names [`StreamName::parse`] accepts.

use std::fmt;

use crate::stream_id::{ScheduleId, TaskId};

/// A stream of tasklog's, by what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StreamName {
    /// `task-<id>`: one task's life.
    Task(TaskId),
    /// `schedule-<id>`: a recurring schedule and the runs it made.
    Schedule(ScheduleId),
    /// `queue-<task type>`: the settings of a task type's queue.
    Queue(String),
    /// `idempotency-<hash>`: an idempotency key and the task it stands for.
    Idempotency(String),
    /// `consumer-<name>`: a durable consumer's acknowledged positions.
    Consumer(String),
}

impl StreamName {
    /// The prefix of every kind of stream, for stores that filter by prefix.
    pub const PREFIXES: [&'static str; 5] = [
        TASK_PREFIX,
        SCHEDULE_PREFIX,
        QUEUE_PREFIX,
        IDEMPOTENCY_PREFIX,
        CONSUMER_PREFIX,
    ];

    /// The stream `name` names, if it is one of tasklog's.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = |prefix: &str| name.strip_prefix(prefix).filter(|rest| !rest.is_empty());
        if let Some(id) = rest(TASK_PREFIX) {
            return id.parse().ok().map(StreamName::Task);
        }
        if let Some(id) = rest(SCHEDULE_PREFIX) {
            return id.parse().ok().map(StreamName::Schedule);
        }
        if let Some(task_type) = rest(QUEUE_PREFIX) {
            return Some(StreamName::Queue(task_type.to_owned()));
        }
        if let Some(hash) = rest(IDEMPOTENCY_PREFIX) {
            return Some(StreamName::Idempotency(hash.to_owned()));
        }
        rest(CONSUMER_PREFIX).map(|name| StreamName::Consumer(name.to_owned()))
    }
}

const TASK_PREFIX: &str = "task-";
const SCHEDULE_PREFIX: &str = "schedule-";
const QUEUE_PREFIX: &str = "queue-";
const IDEMPOTENCY_PREFIX: &str = "idempotency-";
const CONSUMER_PREFIX: &str = "consumer-";

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamName::Task(id) => write!(f, "{TASK_PREFIX}{id}"),
            StreamName::Schedule(id) => write!(f, "{SCHEDULE_PREFIX}{id}"),
            StreamName::Queue(task_type) => write!(f, "{QUEUE_PREFIX}{task_type}"),
            StreamName::Idempotency(hash) => write!(f, "{IDEMPOTENCY_PREFIX}{hash}"),
            StreamName::Consumer(name) => write!(f, "{CONSUMER_PREFIX}{name}"),
        }
    }
}

/// `stream()` and `from_stream()` for the id of a thing with a stream of its own.
macro_rules! owns_stream {
    ($id:ident, $variant:ident) => {
        impl $id {
            /// The stream that holds this one's events.
            pub fn stream(&self) -> String {
                StreamName::$variant(*self).to_string()
            }

            /// Whose events a stream holds, if it is one of these streams.
            pub fn from_stream(stream: &str) -> Option<Self> {
                match StreamName::parse(stream)? {
                    StreamName::$variant(id) => Some(id),
                    _ => None,
                }
            }
        }
    };
}

owns_stream!(TaskId, Task);
owns_stream!(ScheduleId, Schedule);
