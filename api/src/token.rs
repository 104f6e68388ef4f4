//! Tokens: what a token may do, and who a request's token is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Read tasks.
    #[serde(rename = "tasks:read")]
    TasksRead,
    /// Create and cancel tasks.
    #[serde(rename = "tasks:write")]
    TasksWrite,
    /// Claim tasks and report on them, as a worker.
    #[serde(rename = "tasks:work")]
    TasksWork,
    /// Read the event log.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Move a durable consumer's position: a write, so reading the log is
    /// not enough for it.
    #[serde(rename = "consumers:write")]
    ConsumersWrite,
    /// Read schedules.
    #[serde(rename = "schedules:read")]
    SchedulesRead,
    /// Create, pause, resume and delete schedules.
    #[serde(rename = "schedules:write")]
    SchedulesWrite,
    /// Scrape `/metrics`.
    #[serde(rename = "metrics:read")]
    MetricsRead,
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::TasksWork,
        Scope::EventsRead,
        Scope::ConsumersWrite,
        Scope::SchedulesRead,
        Scope::SchedulesWrite,
        Scope::MetricsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::TasksWork => "tasks:work",
            Scope::EventsRead => "events:read",
            Scope::ConsumersWrite => "consumers:write",
            Scope::SchedulesRead => "schedules:read",
            Scope::SchedulesWrite => "schedules:write",
            Scope::MetricsRead => "metrics:read",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| {
                let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("{text:?} is not a scope: one of {}", all.join(", "))
            })
    }
}

/// The token a request was made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Its name: the actor of the events its requests cause.
    pub name: String,
    /// What it may do; `admin` is everything.
    #[schema(value_type = Vec<String>, example = json!(["tasks:read", "tasks:write"]))]
    pub scopes: Vec<Scope>,
}
