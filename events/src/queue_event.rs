//! Settings of a task type's queue, kept as events of its stream
//! [`StreamName::Queue`](crate::StreamName::Queue).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event_enum::event_enum;

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
