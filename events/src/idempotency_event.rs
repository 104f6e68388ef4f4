//! Idempotency keys: a create sent with a key reserves the key, in its own
//! stream (`idempotency-<hash of token and key>`), for the task it creates (or
//! the tasks a batch creates), so a retried create finds the first task
//! instead of making a second one.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event_enum::event_enum;
use crate::stream_name::StreamName;
use crate::task_event::TaskId;

/// The stream of `key` as presented by `actor`: keys of different tokens never meet.
pub fn idempotency_stream(actor: &str, key: &str) -> StreamName {
    let hash = Sha256::new()
        .chain_update(actor.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    StreamName::Idempotency(hex::encode(&hash[..16]))
}

/// The SHA-256 of a request body, to tell a retry from a different request.
pub fn request_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The key stands for task `task_id`, made from a request with `request_hash`,
/// until `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdempotencyKeyReserved {
    pub task_id: TaskId,
    pub request_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// The key stands for the tasks `task_ids`, made in one batch (in this
/// order) from a request with `request_hash`, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdempotencyKeyReservedForBatch {
    pub task_ids: Vec<TaskId>,
    pub request_hash: String,
    pub expires_at: DateTime<Utc>,
}

event_enum! {
    /// Every idempotency key event, in its current schema version.
    IdempotencyEvent {
        Reserved(IdempotencyKeyReserved) = "IdempotencyKeyReserved" v 1,
        ReservedForBatch(IdempotencyKeyReservedForBatch) = "IdempotencyKeyReservedForBatch" v 1,
    }
}
