//! Durable consumers keep their place in the log as events of their own
//! stream, [`StreamName::Consumer`](crate::StreamName::Consumer): the log is
//! the one record of everything.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event_enum::event_enum;

/// A named consumer has processed the log up to and including `position`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerAcknowledged {
    pub position: u64,
}

event_enum! {
    /// Every durable consumer event, in its current schema version.
    ConsumerEvent {
        Acknowledged(ConsumerAcknowledged) = "ConsumerAcknowledged" v 1,
    }
}

/// Consumer names: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub fn is_valid_consumer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
