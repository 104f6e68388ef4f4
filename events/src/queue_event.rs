//! Settings of a task type's queue, kept as events of its stream `queue-<type>`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event_enum::event_enum;

/// Queue streams are named `queue-<task type>`.
pub const QUEUE_STREAM_PREFIX: &str = "queue-";

pub fn queue_stream(task_type: &str) -> String {
    format!("{QUEUE_STREAM_PREFIX}{task_type}")
}

/// The task type whose queue this stream is, if it is a queue stream.
pub fn queue_of(stream: &str) -> Option<&str> {
    stream.strip_prefix(QUEUE_STREAM_PREFIX)
}

/// At most `max_running` tasks of the type run at once; `None` lifts the limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueLimitSet {
    pub max_running: Option<u32>,
}

event_enum! {
    /// Every queue event, in its current schema version.
    QueueEvent {
        LimitSet(QueueLimitSet) = "QueueLimitSet" v 1,
    }
}
