//! What goes over the wire: request and response bodies, in the contract's
//! camelCase, with their validation.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use tasklog_events::task_event::{RetryPolicy, TaskCreated};
use tasklog_projections::TaskView;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::rules::labels::{check_labels, check_tags};

/// Longest `name`, `type`, `worker`, `error` and `reason` accepted, in characters.
pub const MAX_TEXT: usize = 1024;

/// Every time on the wire: UTC, RFC 3339, microseconds.
pub fn wire_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `POST /v1/tasks`: every field is required.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documents the body; `parse_create` reads it field by field.
#[schema(as = CreateTask)]
pub struct CreateTaskSchema {
    name: String,
    #[schema(rename = "type")]
    task_type: String,
    /// Higher runs first.
    priority: i64,
    data: Map<String, Value>,
    /// RFC 3339 with a zone offset; the task cannot be claimed before it.
    #[schema(rename = "availableTime")]
    available_time: DateTime<Utc>,
    /// RFC 3339 with a zone offset, after `availableTime`; a task still pending then fails.
    #[schema(rename = "expirationTime")]
    expiration_time: DateTime<Utc>,
    /// Optional: key-value pairs that list and claim select on.
    #[schema(required = false)]
    labels: BTreeMap<String, String>,
    /// Optional: at most 10 tags of at most 50 characters.
    #[schema(required = false)]
    tags: Vec<String>,
    /// Optional: how a failed run is retried; without it a failure is final.
    #[schema(required = false)]
    retry: RetryBody,
}

/// How a failed run is retried: after `initialBackoffSeconds`, multiplied by
/// `backoffFactor` for each further run, at most `maxBackoffSeconds`; with
/// `jitter` each wait is drawn between half of that and all of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBody {
    /// Runs in all, the first included (1 to 100).
    pub max_attempts: u32,
    /// Default 10.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_seconds: u32,
    /// Default 3600.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: u32,
    /// 1 to 10, default 2.
    #[serde(default = "default_backoff_factor")]
    pub backoff_factor: f64,
    /// Default true.
    #[serde(default = "default_jitter")]
    pub jitter: bool,
}

fn default_initial_backoff() -> u32 {
    10
}
fn default_max_backoff() -> u32 {
    3600
}
fn default_backoff_factor() -> f64 {
    2.0
}
fn default_jitter() -> bool {
    true
}

impl From<&RetryPolicy> for RetryBody {
    fn from(policy: &RetryPolicy) -> Self {
        RetryBody {
            max_attempts: policy.max_attempts,
            initial_backoff_seconds: policy.initial_backoff_seconds,
            max_backoff_seconds: policy.max_backoff_seconds,
            backoff_factor: policy.backoff_factor,
            jitter: policy.jitter,
        }
    }
}

/// The optional fields a task and a schedule's task template share.
#[derive(Debug, Default)]
pub struct TaskExtras {
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub retry: Option<RetryPolicy>,
}

/// Takes `labels`, `tags` and `retry` out of `fields`, noting what is wrong.
pub fn parse_extras(
    fields: &mut Map<String, Value>,
    problems: &mut Map<String, Value>,
) -> TaskExtras {
    let labels = optional(
        fields,
        "labels",
        "must be an object of string values",
        check_labels,
        problems,
    );
    let tags = optional(
        fields,
        "tags",
        "must be an array of strings",
        |tags: &Vec<String>| check_tags(tags),
        problems,
    );
    let retry = optional(
        fields,
        "retry",
        "must be a retry policy object",
        check_retry,
        problems,
    );
    TaskExtras {
        labels: labels.unwrap_or_default(),
        tags: tags.unwrap_or_default(),
        retry: retry.map(|body| RetryPolicy {
            max_attempts: body.max_attempts,
            initial_backoff_seconds: body.initial_backoff_seconds,
            max_backoff_seconds: body.max_backoff_seconds,
            backoff_factor: body.backoff_factor,
            jitter: body.jitter,
        }),
    }
}

/// Takes the optional field `name` out of `fields` as a `T` that `check`
/// accepts, or notes why not (`shape` when it is not a `T` at all).
fn optional<T: serde::de::DeserializeOwned>(
    fields: &mut Map<String, Value>,
    name: &str,
    shape: &str,
    check: impl Fn(&T) -> Result<(), String>,
    problems: &mut Map<String, Value>,
) -> Option<T> {
    let value = fields.remove(name).filter(|v| !v.is_null())?;
    let why = match serde_json::from_value::<T>(value) {
        Ok(parsed) => match check(&parsed) {
            Ok(()) => return Some(parsed),
            Err(why) => why,
        },
        Err(error) if error.is_data() && !error.to_string().starts_with("invalid type") => {
            format!("{shape}: {error}")
        }
        Err(_) => shape.to_owned(),
    };
    problems.insert(name.into(), why.into());
    None
}

fn check_retry(body: &RetryBody) -> Result<(), String> {
    if !(1..=100).contains(&body.max_attempts) {
        return Err("maxAttempts must be from 1 to 100".into());
    }
    if body.max_backoff_seconds > 30 * 86_400
        || body.initial_backoff_seconds > body.max_backoff_seconds
    {
        return Err("initialBackoffSeconds must not exceed maxBackoffSeconds, which is at most 2592000 (30 days)".into());
    }
    if !(1.0..=10.0).contains(&body.backoff_factor) {
        return Err("backoffFactor must be from 1 to 10".into());
    }
    Ok(())
}

/// Reads a create body field by field, so every wrong field is named.
pub fn parse_create(body: Value) -> Result<TaskCreated, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::NotAnObject);
    };
    let mut problems = Map::new();
    let mut take = |name: &str| fields.remove(name);
    let name = text(take("name"), "name", &mut problems);
    let task_type = text(take("type"), "type", &mut problems);
    let priority = match take("priority") {
        None => missing("priority", &mut problems),
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(_) => wrong("priority", "must be an integer", &mut problems),
    };
    let data = match take("data") {
        None => missing("data", &mut problems),
        Some(Value::Object(data)) => Some(data),
        Some(_) => wrong("data", "must be a JSON object", &mut problems),
    };
    let available_time = time(take("availableTime"), "availableTime", &mut problems);
    let expiration_time = time(take("expirationTime"), "expirationTime", &mut problems);
    let extras = parse_extras(&mut fields, &mut problems);
    for unknown in fields.keys() {
        problems.insert(unknown.clone(), "is not a field of a task".into());
    }
    if let (Some(available), Some(expiration)) = (available_time, expiration_time) {
        if expiration <= available {
            problems.insert(
                "expirationTime".into(),
                "must be after availableTime".into(),
            );
        }
    }
    match (
        name,
        task_type,
        priority,
        data,
        available_time,
        expiration_time,
    ) {
        (
            Some(name),
            Some(task_type),
            Some(priority),
            Some(data),
            Some(available_time),
            Some(expiration_time),
        ) if problems.is_empty() => Ok(TaskCreated {
            name,
            task_type,
            priority,
            data,
            available_time,
            expiration_time,
            labels: extras.labels,
            tags: extras.tags,
            retry: extras.retry,
            schedule: None,
        }),
        _ => Err(ApiError::InvalidFields(problems)),
    }
}

pub fn missing<T>(field: &str, problems: &mut Map<String, Value>) -> Option<T> {
    problems.insert(field.into(), "is required".into());
    None
}

pub fn wrong<T>(field: &str, why: &str, problems: &mut Map<String, Value>) -> Option<T> {
    problems.insert(field.into(), why.into());
    None
}

pub fn text(
    value: Option<Value>,
    field: &str,
    problems: &mut Map<String, Value>,
) -> Option<String> {
    match value {
        None => missing(field, problems),
        Some(Value::String(s)) if s.trim().is_empty() => {
            wrong(field, "must not be empty", problems)
        }
        Some(Value::String(s)) if s.chars().count() > MAX_TEXT => wrong(
            field,
            &format!("must be at most {MAX_TEXT} characters"),
            problems,
        ),
        Some(Value::String(s)) => Some(s),
        Some(_) => wrong(field, "must be a string", problems),
    }
}

pub fn time(
    value: Option<Value>,
    field: &str,
    problems: &mut Map<String, Value>,
) -> Option<DateTime<Utc>> {
    match value {
        None => missing(field, problems),
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(tasklog_events::envelope::truncate_to_micros(
                t.with_timezone(&Utc),
            )),
            Err(_) => wrong(
                field,
                "must be an RFC 3339 time with a zone offset, like 2017-02-06T02:37:46Z",
                problems,
            ),
        },
        Some(_) => wrong(field, "must be an RFC 3339 time string", problems),
    }
}

/// Checks a free-text field of a worker request.
pub fn check_text(field: &str, value: &str, problems: &mut Map<String, Value>) {
    if value.trim().is_empty() {
        problems.insert(field.into(), "must not be empty".into());
    } else if value.chars().count() > MAX_TEXT {
        problems.insert(
            field.into(),
            format!("must be at most {MAX_TEXT} characters").into(),
        );
    }
}

/// A task, as every endpoint answers it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// 32 lowercase hex characters.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub priority: i64,
    pub data: Map<String, Value>,
    pub available_time: String,
    pub expiration_time: String,
    /// `pending`, `running`, `failed` or `completed`.
    pub state: String,
    /// Why the task failed or went back to the queue.
    pub error: Option<String>,
    /// When the task last entered `running`.
    pub run_time: Option<String>,
    /// Seconds from `runTime` to the end of the run.
    pub duration: Option<f64>,
    pub created_time: String,
    pub modified_time: String,
    /// The worker holding a running task.
    pub worker: Option<String>,
    /// When a running task's lease lapses.
    pub lease_expiration_time: Option<String>,
    /// How many runs the task has started: the number of the current or last run.
    pub attempts: u32,
    /// The retry policy's `maxAttempts`; absent without a policy.
    pub max_attempts: Option<u32>,
    /// Why the last run failed or ended; kept while the task waits to be retried.
    pub last_error: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub retry: Option<RetryBody>,
    /// The schedule that created the task, if one did.
    pub schedule_id: Option<String>,
}

impl From<&TaskView> for Task {
    fn from(view: &TaskView) -> Self {
        Task {
            id: view.id.to_string(),
            name: view.name.clone(),
            task_type: view.task_type.clone(),
            priority: view.priority,
            data: view.data.clone(),
            available_time: wire_time(view.available_time),
            expiration_time: wire_time(view.expiration_time),
            state: view.state.as_str().into(),
            error: view.error.clone(),
            run_time: view.run_time.map(wire_time),
            duration: view.duration,
            created_time: wire_time(view.created_time),
            modified_time: wire_time(view.modified_time),
            worker: view.lease.as_ref().map(|l| l.worker.clone()),
            lease_expiration_time: view.lease.as_ref().map(|l| wire_time(l.expires_at)),
            attempts: view.attempts,
            max_attempts: view.retry.as_ref().map(|r| r.max_attempts),
            last_error: view.last_error.clone(),
            labels: view.labels.clone(),
            tags: view.tags.clone(),
            retry: view.retry.as_ref().map(RetryBody::from),
            schedule_id: view.schedule.as_ref().map(|s| s.schedule_id.clone()),
        }
    }
}

/// `GET /v1/tasks`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only tasks in this state.
    pub state: Option<String>,
    /// Only tasks of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub task_type: Option<String>,
    /// Only tasks whose labels match, like `env=prod,tier!=batch`.
    pub label_selector: Option<String>,
    /// Only tasks with every one of these comma-separated tags.
    pub tags: Option<String>,
    /// At most this many tasks (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// From the `nextCursor` of the page before.
    pub cursor: Option<String>,
}

/// `GET /v1/tasks/{id}`: a task as it stood at a time or a revision.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TimeTravel {
    /// The task as it stood at this time (RFC 3339 with a zone offset).
    pub as_of: Option<String>,
    /// The task as it stood after the event with this revision (from 0).
    pub revision: Option<u64>,
}

/// `POST /v1/tasks/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// The task types this worker can run.
    pub types: Vec<String>,
    pub worker: String,
    /// How long the worker holds the task without a heartbeat (1 to 86400).
    pub lease_seconds: u32,
    /// How long to wait for a task when none is available (0 to 60, default 0).
    #[serde(default)]
    pub wait_seconds: u32,
    /// Only tasks whose labels match, like `env=prod,tier!=batch`.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only tasks with every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /v1/tasks/{id}/retry`: run a failed task again, now.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryRequest {
    /// A new expiration time (RFC 3339); needed when the old one has passed.
    #[serde(default)]
    pub expiration_time: Option<String>,
}

/// `POST /v1/tasks/{id}/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub worker: String,
    /// The new lease, from now (1 to 86400).
    pub lease_seconds: u32,
}

/// `POST /v1/tasks/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    pub worker: String,
}

/// `POST /v1/tasks/{id}/fail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailRequest {
    pub worker: String,
    pub error: String,
}

/// `POST /v1/tasks/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Longest lease a worker may ask for.
pub const MAX_LEASE_SECONDS: u32 = 86_400;
/// Longest a claim may wait for a task.
pub const MAX_WAIT_SECONDS: u32 = 60;

pub fn check_lease(seconds: u32, problems: &mut Map<String, Value>) {
    if !(1..=MAX_LEASE_SECONDS).contains(&seconds) {
        problems.insert(
            "leaseSeconds".into(),
            format!("must be from 1 to {MAX_LEASE_SECONDS}").into(),
        );
    }
}
