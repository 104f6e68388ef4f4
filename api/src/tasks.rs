//! Tasks on the wire: request and response bodies, in the contract's
//! camelCase. Each request body is one type that reads and checks itself
//! (see [`crate::body`]) and documents itself in the API document.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use deserr::{Deserr, ValuePointerRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tasklog_events::schedule_event::TaskTemplate;
use tasklog_events::task_event::{RetryPolicy, TaskCreated};
use tasklog_events::TaskData;
use utoipa::{IntoParams, ToSchema};

use crate::body::*;

/// Every time on the wire: UTC, RFC 3339, microseconds.
pub fn wire_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Declares a task body: the fields a create and a schedule's task template
/// share, written once, then `$when`: the fields that say when it runs.
macro_rules! task_body {
    ($(#[$attr:meta])* $name:ident, $noun:literal, { $($when:tt)* }) => {
        #[derive(Debug, Deserr, Serialize, ToSchema)]
        $(#[$attr])*
        #[deserr(error = BodyError, rename_all = camelCase, deny_unknown_fields = unknown_field::<$name>)]
        #[schema(rename_all = "camelCase")]
        // `deny_unknown_fields` is read by utoipa: `additionalProperties: false`.
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            #[schema(inline)]
            pub name: Text,
            #[deserr(rename = "type")]
            #[serde(rename = "type")]
            #[schema(rename = "type", inline)]
            pub task_type: Text,
            /// Higher runs first.
            pub priority: i64,
            #[schema(inline)]
            pub data: JsonObject,
            $($when)*
            /// Optional: key-value pairs that list and claim select on.
            #[deserr(default)]
            #[schema(inline)]
            pub labels: Option<Labels>,
            /// Optional: at most 10 tags of at most 50 characters.
            #[deserr(default)]
            #[schema(inline)]
            pub tags: Option<Tags>,
            /// Optional: how a failed run is retried; without it a failure is final.
            #[deserr(default)]
            pub retry: Option<RetryBody>,
        }

        impl Noun for $name {
            const NOUN: &'static str = $noun;
        }
    };
}

task_body!(
    /// `POST /v1/tasks`.
    #[deserr(validate = expiration_after_available -> BodyError)]
    CreateTask, "a task", {
        /// RFC 3339 with a zone offset; the task cannot be claimed before it.
        #[schema(inline)]
        pub available_time: Time,
        /// RFC 3339 with a zone offset, after `availableTime`; a task still pending then fails.
        #[schema(inline)]
        pub expiration_time: Time,
    }
);

task_body!(
    /// The task each run of a schedule creates: a create body with
    /// `expiresAfterSeconds` instead of the two times (the run's time is its
    /// `availableTime`).
    #[schema(as = TaskTemplate)]
    TaskTemplateBody, "a task template", {
        /// Each run's task expires this long after its run time.
        #[schema(inline)]
        pub expires_after_seconds: Ranged<1, 31_536_000>,
    }
);

fn expiration_after_available(
    body: CreateTask,
    location: ValuePointerRef,
) -> Result<CreateTask, BodyError> {
    if body.expiration_time.0 <= body.available_time.0 {
        let field = location.push_key("expirationTime");
        return Err(BodyError::at(field, "must be after availableTime"));
    }
    Ok(body)
}

impl CreateTask {
    pub fn into_event(self) -> TaskCreated {
        TaskCreated {
            name: self.name.0,
            task_type: self.task_type.0,
            priority: self.priority,
            data: TaskData::from(&self.data.0),
            available_time: self.available_time.0,
            expiration_time: self.expiration_time.0,
            labels: self.labels.unwrap_or_default().0,
            tags: self.tags.unwrap_or_default().0,
            retry: self.retry.map(RetryBody::into_policy),
            schedule: None,
        }
    }
}

impl TaskTemplateBody {
    pub fn into_template(self) -> TaskTemplate {
        TaskTemplate {
            name: self.name.0,
            task_type: self.task_type.0,
            priority: self.priority,
            data: self.data.0,
            expires_after_seconds: self.expires_after_seconds.get(),
            labels: self.labels.unwrap_or_default().0,
            tags: self.tags.unwrap_or_default().0,
            retry: self.retry.map(RetryBody::into_policy),
        }
    }
}

/// How a failed run is retried: after `initialBackoffSeconds`, multiplied by
/// `backoffFactor` for each further run, at most `maxBackoffSeconds`; with
/// `jitter` each wait is drawn between half of that and all of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Deserr, ToSchema)]
#[deserr(error = BodyError, rename_all = camelCase, deny_unknown_fields = unknown_field::<RetryBody>)]
#[deserr(validate = check_retry -> BodyError)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBody {
    /// Runs in all, the first included (1 to 100).
    pub max_attempts: u32,
    /// Default 10.
    #[deserr(default = 10)]
    pub initial_backoff_seconds: u32,
    /// Default 3600, at most 2592000 (30 days).
    #[deserr(default = 3600)]
    pub max_backoff_seconds: u32,
    /// 1 to 10, default 2.
    #[deserr(default = 2.0)]
    pub backoff_factor: f64,
    /// Default true.
    #[deserr(default = true)]
    pub jitter: bool,
}

impl Noun for RetryBody {
    const NOUN: &'static str = "a retry policy";
}

impl RetryBody {
    fn into_policy(self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff_seconds: self.initial_backoff_seconds,
            max_backoff_seconds: self.max_backoff_seconds,
            backoff_factor: self.backoff_factor,
            jitter: self.jitter,
        }
    }
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

/// The policy's rules, named on the `retry` field as a whole.
fn check_retry(body: RetryBody, location: ValuePointerRef) -> Result<RetryBody, BodyError> {
    let why = if !(1..=100).contains(&body.max_attempts) {
        "maxAttempts must be from 1 to 100"
    } else if body.max_backoff_seconds > 30 * 86_400
        || body.initial_backoff_seconds > body.max_backoff_seconds
    {
        "initialBackoffSeconds must not exceed maxBackoffSeconds, which is at most 2592000 (30 days)"
    } else if !(1.0..=10.0).contains(&body.backoff_factor) {
        "backoffFactor must be from 1 to 10"
    } else {
        return Ok(body);
    };
    Err(BodyError::at(location, why))
}

/// A task, as every endpoint answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// 32 lowercase hex characters.
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub priority: i64,
    #[schema(value_type = Map<String, Value>)]
    pub data: TaskData,
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
    /// What the run that completed the task made, as its worker reported it.
    pub result: Option<Value>,
    /// How far the current or last run got, from its worker's last heartbeat that said.
    pub progress: Option<Value>,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub retry: Option<RetryBody>,
    /// The schedule that created the task, if one did.
    pub schedule_id: Option<String>,
}

/// Tasks in the order of a batch: `POST /v1/tasks/batch`, and a claim with `max`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskBatch {
    pub tasks: Vec<Task>,
}

/// What a claim answers: the task, or with `max`, a batch of them.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Claimed {
    One(Box<Task>),
    Many(TaskBatch),
}

/// A batch has `tasks`; a task does not. Read by hand through a `Value`:
/// serde's untagged enums buffer the body in a form that cannot give a
/// task's `data` its raw text, and a `Value` can.
impl<'de> Deserialize<'de> for Claimed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let body = Value::deserialize(deserializer)?;
        let claimed = match body.get("tasks") {
            Some(_) => serde_json::from_value(body).map(Claimed::Many),
            None => serde_json::from_value(body).map(Claimed::One),
        };
        claimed.map_err(serde::de::Error::custom)
    }
}

/// `GET /v1/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
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
    /// Only tasks whose name holds this text, in any case.
    pub name_contains: Option<String>,
    /// At most this many tasks (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// From the `nextCursor` of the page before.
    pub cursor: Option<String>,
}

/// `GET /v1/tasks/{id}`: a task as it stood at a time or a revision.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TimeTravel {
    /// The task as it stood at this time (RFC 3339 with a zone offset).
    pub as_of: Option<String>,
    /// The task as it stood after the event with this revision (from 0).
    pub revision: Option<u64>,
}

/// Declares a worker or client request body: camelCase, no unknown field.
/// Where it is used, `Deserr`, `ToSchema`, `BodyError`, `Noun` and
/// `unknown_field` are in scope.
macro_rules! request_body {
    ($(#[$attr:meta])* $name:ident, $noun:literal, { $($fields:tt)* }) => {
        #[derive(Debug, Deserr, ::serde::Serialize, ToSchema)]
        $(#[$attr])*
        #[deserr(error = BodyError, rename_all = camelCase, deny_unknown_fields = unknown_field::<$name>)]
        #[schema(rename_all = "camelCase")]
        // `deny_unknown_fields` is read by utoipa: `additionalProperties: false`.
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name { $($fields)* }

        impl Noun for $name {
            const NOUN: &'static str = $noun;
        }
    };
}
pub(crate) use request_body;

/// Most tasks a batch creates or a claim hands out.
pub const MAX_BATCH: usize = 1000;

request_body!(
    /// `POST /v1/tasks/batch`.
    #[deserr(validate = batch_size -> BodyError)]
    CreateTasks, "a batch", {
        /// 1 to 1,000 create bodies, made in this order.
        pub tasks: Vec<CreateTask>,
    }
);

fn batch_size(body: CreateTasks, location: ValuePointerRef) -> Result<CreateTasks, BodyError> {
    if !(1..=MAX_BATCH).contains(&body.tasks.len()) {
        let field = location.push_key("tasks");
        return Err(BodyError::at(field, "must hold 1 to 1000 tasks"));
    }
    Ok(body)
}

/// Longest lease a worker may ask for, in seconds.
pub const MAX_LEASE_SECONDS: u64 = 86_400;
/// Longest a claim may wait for a task, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;

request_body!(
    /// `POST /v1/tasks/claim`.
    ClaimRequest, "a claim", {
        /// The task types this worker can run.
        #[schema(inline)]
        pub types: TaskTypes,
        #[schema(inline)]
        pub worker: Text,
        /// How long the worker holds the task without a heartbeat.
        #[schema(inline)]
        pub lease_seconds: Ranged<1, { MAX_LEASE_SECONDS }>,
        /// How long to wait for a task when none is available (default 0).
        #[deserr(default = Ranged(0))]
        #[schema(inline, required = false)]
        pub wait_seconds: Ranged<0, { MAX_WAIT_SECONDS }>,
        /// Only tasks whose labels match, like `env=prod,tier!=batch`.
        #[deserr(default)]
        #[schema(inline)]
        pub label_selector: Option<LabelSelector>,
        /// Only tasks with every one of these tags.
        #[deserr(default)]
        #[schema(required = false)]
        pub tags: Vec<String>,
        /// Claim up to this many tasks at once (1 to 1000); the answer is then
        /// `{"tasks": [..]}`, in the order they were claimed.
        #[deserr(default)]
        #[schema(inline)]
        pub max: Option<Ranged<1, { MAX_BATCH as u64 }>>,
    }
);

request_body!(
    /// `POST /v1/tasks/{id}/retry`: run a failed task again, now.
    RetryRequest, "a retry", {
        /// A new expiration time (RFC 3339 with a zone offset); needed when the old one has passed.
        #[deserr(default)]
        #[schema(inline)]
        pub expiration_time: Option<Time>,
    }
);

request_body!(
    /// `POST /v1/tasks/{id}/heartbeat`.
    HeartbeatRequest, "a heartbeat", {
        #[schema(inline)]
        pub worker: Text,
        /// The new lease, from now.
        #[schema(inline)]
        pub lease_seconds: Ranged<1, { MAX_LEASE_SECONDS }>,
        /// Optional: how far the run got, any JSON up to 64 KiB (the task's
        /// `progress` until a later heartbeat says otherwise or a new run starts).
        #[deserr(default)]
        #[schema(inline)]
        pub progress: Option<Report>,
    }
);

request_body!(
    /// `POST /v1/tasks/{id}/complete`.
    CompleteRequest, "a completion", {
        #[schema(inline)]
        pub worker: Text,
        /// Optional: what the run made, any JSON up to 64 KiB (the task's `result`).
        #[deserr(default)]
        #[schema(inline)]
        pub result: Option<Report>,
    }
);

request_body!(
    /// `POST /v1/tasks/{id}/fail`.
    FailRequest, "a failure", {
        #[schema(inline)]
        pub worker: Text,
        #[schema(inline)]
        pub error: Text,
    }
);

request_body!(
    /// `POST /v1/tasks/{id}/cancel`.
    CancelRequest, "a cancel", {
        /// Becomes the cancelled task's error.
        #[deserr(default)]
        #[schema(inline)]
        pub reason: Option<Text>,
    }
);

request_body!(
    /// Which tasks a bulk action takes: every term given holds (`{}`: all
    /// the tasks in the state the action applies to).
    TaskSelection, "a task selection", {
        /// Only tasks of this type.
        #[deserr(default, rename = "type")]
        #[serde(rename = "type")]
        #[schema(rename = "type", inline)]
        pub task_type: Option<Text>,
        /// Only tasks whose labels match, like `env=prod,tier!=batch`.
        #[deserr(default)]
        #[schema(inline)]
        pub label_selector: Option<LabelSelector>,
        /// Only tasks with every one of these tags.
        #[deserr(default)]
        #[schema(required = false)]
        pub tags: Vec<String>,
        /// Only these tasks (at most 1,000 ids).
        #[deserr(default)]
        #[schema(required = false)]
        pub ids: Vec<String>,
    }
);

request_body!(
    /// `POST /v1/tasks/retry`: run the failed tasks a selection takes again, now.
    BulkRetryRequest, "a retry of many tasks", {
        pub select: TaskSelection,
        /// At most this many tasks change (1 to 1000, default 100); send the
        /// request again for the rest.
        #[deserr(default)]
        #[schema(inline)]
        pub limit: Option<Ranged<1, { MAX_BATCH as u64 }>>,
        /// A new expiration time for each (RFC 3339 with a zone offset).
        /// Without it, failed tasks whose expiration time has passed are left out.
        #[deserr(default)]
        #[schema(inline)]
        pub expiration_time: Option<Time>,
    }
);

request_body!(
    /// `POST /v1/tasks/cancel`: cancel the pending tasks a selection takes.
    BulkCancelRequest, "a cancel of many tasks", {
        pub select: TaskSelection,
        /// At most this many tasks change (1 to 1000, default 100); send the
        /// request again for the rest.
        #[deserr(default)]
        #[schema(inline)]
        pub limit: Option<Ranged<1, { MAX_BATCH as u64 }>>,
        /// Becomes each cancelled task's error.
        #[deserr(default)]
        #[schema(inline)]
        pub reason: Option<Text>,
    }
);

/// What a bulk action did. Every event it wrote carries `requestId`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkOutcome {
    /// Tasks the action changed.
    pub changed: usize,
    /// Tasks it selected that changed meanwhile, so the action no longer applied.
    pub skipped: usize,
    /// The selection may take more tasks: send the request again.
    pub more: bool,
    /// The request's id, recorded in every event the action wrote.
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a client reads is what the server wrote.
    #[test]
    fn answers_read_back_as_they_were_written() {
        let written = json!({
            "id": "01a24eab5d0a77a086343104bfc4925e", "name": "send", "type": "email",
            "priority": 3, "data": {"to": "ada@example.com"},
            "availableTime": "2030-01-01T00:00:00.000000Z",
            "expirationTime": "2030-01-01T01:00:00.000000Z", "state": "completed",
            "error": null, "runTime": "2030-01-01T00:00:01.000000Z", "duration": 0.25,
            "createdTime": "2030-01-01T00:00:00.000000Z",
            "modifiedTime": "2030-01-01T00:00:01.250000Z", "worker": null,
            "leaseExpirationTime": null, "attempts": 1, "maxAttempts": 3, "lastError": null,
            "result": {"sent": 1}, "progress": null, "labels": {"env": "prod"}, "tags": ["a"],
            "retry": {"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 60,
                      "backoffFactor": 2.0, "jitter": false},
            "scheduleId": null,
        });
        let task: Task = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(serde_json::to_value(&task).unwrap(), written);
        let list: TaskList =
            serde_json::from_value(json!({"tasks": [written.clone()], "nextCursor": "c1"}))
                .unwrap();
        assert_eq!(list.tasks, std::slice::from_ref(&task));
        let one: Claimed = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(one, Claimed::One(Box::new(task.clone())));
        let many: Claimed = serde_json::from_value(json!({"tasks": [written]})).unwrap();
        assert_eq!(many, Claimed::Many(TaskBatch { tasks: vec![task] }));
    }

    fn read<T: Deserr<BodyError>>(body: Value) -> T {
        deserr::deserialize::<T, Value, BodyError>(body).unwrap()
    }

    /// What a client writes is what the server reads: each body written,
    /// read and written again is the same.
    #[test]
    fn requests_write_what_they_read() {
        let create = json!({
            "name": "send", "type": "email", "priority": 3, "data": {"to": "ada@example.com"},
            "availableTime": "2030-01-01T00:00:00+02:00",
            "expirationTime": "2030-01-01T01:00:00Z", "labels": {"env": "prod"},
            "tags": ["a"], "retry": null,
        });
        let written = serde_json::to_value(read::<CreateTask>(create)).unwrap();
        assert_eq!(written["type"], "email");
        assert_eq!(written["availableTime"], "2029-12-31T22:00:00.000000Z");
        let again = serde_json::to_value(read::<CreateTask>(written.clone())).unwrap();
        assert_eq!(again, written);

        let claim = json!({"types": ["email"], "worker": "w1", "leaseSeconds": 30,
            "labelSelector": "env in (prod,dev),!canary", "max": 10});
        let written = serde_json::to_value(read::<ClaimRequest>(claim)).unwrap();
        assert_eq!(written["labelSelector"], "env in (prod,dev),!canary");
        assert_eq!(written["waitSeconds"], 0);
        let again = serde_json::to_value(read::<ClaimRequest>(written.clone())).unwrap();
        assert_eq!(again, written);

        let select = json!({"select": {"type": "email", "ids": ["x"]}, "limit": 5});
        let written = serde_json::to_value(read::<BulkRetryRequest>(select)).unwrap();
        assert_eq!(written["select"]["type"], "email");
        let again = serde_json::to_value(read::<BulkRetryRequest>(written.clone())).unwrap();
        assert_eq!(again, written);
    }
}
