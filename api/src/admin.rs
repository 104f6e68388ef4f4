//! Administration on the wire: a rebuild of the read models.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The last rebuild beside this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rebuild {
    /// `idle` (none since the server started), `running`, `finished` (the
    /// rebuilt views are the live ones) or `failed` (the old ones stay).
    pub state: Cow<'static, str>,
    pub started_time: Option<String>,
    pub finished_time: Option<String>,
    /// The log position the rebuilt views reached.
    pub position: u64,
    /// The head of the log they are catching up with.
    pub head: u64,
    /// Events folded so far.
    pub events: u64,
    /// Why it failed.
    pub error: Option<String>,
}
