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

/// Claims hand out no task of the type until it is resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePaused {}

/// Claims hand out the type's tasks again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueResumed {}

event_enum! {
    /// Every queue event, in its current schema version.
    QueueEvent {
        LimitSet(QueueLimitSet) = "QueueLimitSet" v 1,
        Paused(QueuePaused) = "QueuePaused" v 1,
        Resumed(QueueResumed) = "QueueResumed" v 1,
    }
}
