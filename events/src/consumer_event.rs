//! Durable consumers keep their place in the log as events of their own
//! stream, `consumer-<name>`: the log is the one record of everything.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{truncate_to_micros, Metadata, NewEvent};

/// Consumer streams are named `consumer-<name>`.
pub const CONSUMER_STREAM_PREFIX: &str = "consumer-";

/// A named consumer has processed the log up to and including `position`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerAcknowledged {
    pub position: u64,
}

impl ConsumerAcknowledged {
    pub const TYPE: &'static str = "ConsumerAcknowledged";
    pub const VERSION: u32 = 1;

    pub fn to_new_event(&self, recorded_at: DateTime<Utc>, metadata: Metadata) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            event_type: Self::TYPE.to_owned(),
            schema_version: Self::VERSION,
            recorded_at: truncate_to_micros(recorded_at),
            payload: serde_json::to_string(self).expect("serialises"),
            metadata,
        }
    }

    /// Reads a stored acknowledgement; `None` if the event is something else.
    pub fn decode(event_type: &str, schema_version: u32, payload: &str) -> Option<Self> {
        (event_type == Self::TYPE && schema_version == Self::VERSION)
            .then(|| serde_json::from_str(payload).ok())
            .flatten()
    }
}

/// The stream of consumer `name`.
pub fn consumer_stream(name: &str) -> String {
    format!("{CONSUMER_STREAM_PREFIX}{name}")
}

/// The consumer whose stream this is, if it is a consumer stream.
pub fn consumer_of(stream: &str) -> Option<&str> {
    stream.strip_prefix(CONSUMER_STREAM_PREFIX)
}

/// Consumer names: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub fn is_valid_consumer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
