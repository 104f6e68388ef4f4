//! Queues on the wire: each task type's queue, and its settings.

use deserr::Deserr;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::{unknown_field, BodyError, Noun, Ranged};
use crate::tasks::request_body;

/// One task type's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    #[serde(rename = "type")]
    pub task_type: String,
    pub pending: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    /// At most this many tasks of the type run at once; absent: no limit.
    pub max_running: Option<u32>,
    /// Claims hand out none of the type's tasks (those running go on).
    pub paused: bool,
}

/// `GET /v1/queues`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<Queue>,
}

request_body!(
    /// `PUT /v1/queues/{type}`: every setting of the queue; an absent one
    /// takes its default.
    QueueSettings, "queue settings", {
        /// At most this many tasks of the type run at once; null or absent lifts the limit.
        #[deserr(default)]
        #[schema(inline)]
        pub max_running: Option<Ranged<1, 100_000>>,
        /// True: claims hand out none of the type's tasks until it is false
        /// again (tasks running go on). Absent: false.
        #[deserr(default)]
        pub paused: Option<bool>,
    }
);
