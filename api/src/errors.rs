//! The error body every 4xx and 5xx answer carries.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The error body of every 4xx and 5xx.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub code: u16,
    /// What went wrong, for programs: stable, like `task_not_found`,
    /// `wrong_state` or `invalid_fields`.
    #[schema(example = "task_not_found")]
    pub reason: Cow<'static, str>,
    /// What went wrong, for people.
    pub message: String,
    /// For `invalid_fields`: what is wrong with each field, by its path
    /// (`task.tags` for a field of a nested object). For `task_not_retained`:
    /// `events`, the path of the task's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}
