//! The event stream and durable consumers on the wire.

use deserr::Deserr;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::{unknown_field, BodyError, Noun};
use crate::tasks::request_body;

/// `GET /v1/events/stream`: where the stream starts, and its filters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    /// Start after this position; `Last-Event-ID` takes precedence.
    pub from: Option<u64>,
    /// Start after this durable consumer's acknowledged position.
    pub consumer: Option<String>,
    /// Only events of tasks of this type.
    pub task_type: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
}

/// One Server-Sent Event of the stream, as an SSE client reads it (documents
/// the stream; the server writes the frames).
#[derive(Debug, Serialize, ToSchema)]
pub struct SseEvent {
    /// The event's log position: send it back as `Last-Event-ID` to resume.
    pub id: String,
    /// `message`.
    pub event: Option<String>,
    /// The event as a CloudEvents JSON object (`CloudEvent`), as text.
    pub data: String,
}

/// Where a durable consumer is, and how far behind the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    pub name: String,
    /// The last position the consumer acknowledged.
    pub position: u64,
    pub acknowledged_time: String,
    /// The head of the log as this node sees it.
    pub head: u64,
    /// How many positions the consumer is behind the head.
    pub lag: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerList {
    pub consumers: Vec<Consumer>,
}

request_body!(
    /// `PUT /v1/consumers/{name}`.
    Acknowledge, "an acknowledgement", {
        /// The last position the consumer has processed (no further than the head).
        pub position: u64,
    }
);
