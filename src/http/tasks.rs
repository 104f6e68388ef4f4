//! `/v1/tasks`: create, read, list, and the worker's claim, heartbeat,
//! complete and fail, and cancel.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::Map;
use tasklog_events::{Position, TaskId};
use tasklog_projections::{TaskQuery, TaskState};

use super::body::{Json, Path, Query};
use super::error::{ApiError, ErrorBody};
use super::wire::*;
use super::{Actor, AppState, PositionHeader};
use crate::app::claims::ClaimAsk;
use crate::app::write::TaskWritten;
use crate::http::auth::Scope;
use crate::rules::labels::{Selector, TaskFilter};
use crate::rules::task::Command;
use crate::rules::Rejection;

/// The routes, each behind the scope it needs.
pub fn routes(state: &AppState) -> Router<AppState> {
    // A batch of 1,000 creates may be larger than one request's limit.
    let batch =
        post(create_batch).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES));
    let write = Router::new()
        .route("/v1/tasks", post(create))
        .route("/v1/tasks/batch", batch)
        .route("/v1/tasks/{id}/cancel", post(cancel))
        .route("/v1/tasks/{id}/retry", post(retry));
    let read = Router::new()
        .route("/v1/tasks", get(list))
        .route("/v1/tasks/{id}", get(show));
    let work = Router::new()
        .route("/v1/tasks/claim", post(claim))
        .route("/v1/tasks/{id}/heartbeat", post(heartbeat))
        .route("/v1/tasks/{id}/complete", post(complete))
        .route("/v1/tasks/{id}/fail", post(fail));
    super::scoped(write, state, Scope::TasksWrite)
        .merge(super::scoped(read, state, Scope::TasksRead))
        .merge(super::scoped(work, state, Scope::TasksWork))
}

fn answer(written: TaskWritten) -> Response {
    (
        PositionHeader(written.position),
        axum::Json(wire_task(&written.task)),
    )
        .into_response()
}

/// Runs `command` on the task `id` names, answering with the task.
async fn run(
    state: &AppState,
    actor: &Actor,
    id: &str,
    command: Command,
) -> Result<Response, ApiError> {
    let written = state
        .service
        .execute(task_id(id)?, command, &actor.metadata())
        .await?;
    Ok(answer(written))
}

fn task_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::from(Rejection::TaskNotFound))
}

/// Largest body of `POST /v1/tasks/batch`.
pub const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Create a task, pending until its `availableTime`. With an `Idempotency-Key`
/// header, a create sent again with the same key and body within 24 hours
/// answers the first task (with `Idempotent-Replayed: true`) instead of making
/// another; the same key with another body is a 422.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", operation_id = "createTask", request_body = CreateTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; kept 24 hours")),
    responses(
        (status = 200, description = "the task, pending", body = Task,
            headers(("Idempotent-Replayed" = String, description = "`true` when an earlier create with this `Idempotency-Key` made the task"))),
        (status = 409, description = "`contended`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: the key came with another body", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    headers: HeaderMap,
    Json(body): Json<CreateTask>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let created = body.into_event();
    let metadata = actor.metadata();
    let Some(key) = key else {
        let written = state.service.create(created, &metadata).await?;
        return Ok(answer(written));
    };
    let (written, replayed) = state.service.create_once(key, created, &metadata).await?;
    Ok(replayed_if(replayed, answer(written)))
}

/// Says on `response` that an earlier request with its `Idempotency-Key`
/// made what it shows, if one did.
fn replayed_if(replayed: bool, mut response: Response) -> Response {
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// The `Idempotency-Key` header, if sent, and if well formed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(ApiError::InvalidHeader {
            name: "Idempotency-Key",
            expected: "1 to 255 visible ASCII characters",
        })?;
    Ok(Some(key))
}

/// Create up to 1,000 tasks in one request, all or none: they are appended
/// together, and a bad task is a 400 naming it by index (`tasks[3].priority`)
/// with nothing made. The answer lists the tasks in the order given. An
/// `Idempotency-Key` covers the whole batch, as it does one create.
#[utoipa::path(post, path = "/v1/tasks/batch", tag = "tasks", operation_id = "createTasks", request_body = CreateTasks,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; kept 24 hours")),
    responses(
        (status = 200, description = "the tasks, pending, in the order given", body = TaskBatch,
            headers(("Idempotent-Replayed" = String, description = "`true` when an earlier batch with this `Idempotency-Key` made the tasks"))),
        (status = 409, description = "`contended`", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over 16 MiB", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: the key came with another body", body = ErrorBody)))]
pub async fn create_batch(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    headers: HeaderMap,
    Json(body): Json<CreateTasks>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let created = body.tasks.into_iter().map(CreateTask::into_event).collect();
    let metadata = actor.metadata();
    let (written, replayed) = match key {
        None => (state.service.create_many(created, &metadata).await?, false),
        Some(key) => {
            state
                .service
                .create_many_once(key, created, &metadata)
                .await?
        }
    };
    let tasks = written.tasks.iter().map(wire_task).collect();
    let response = (
        PositionHeader(written.position),
        axum::Json(TaskBatch { tasks }),
    );
    Ok(replayed_if(replayed, response.into_response()))
}

/// One task; with `asOf` or `revision`, as it stood then, folded from the log.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", operation_id = "getTask",
    params(("id" = String, Path, description = "the task id"), TimeTravel),
    responses((status = 200, description = "the task", body = Task),
        (status = 404, description = "`task_not_found`, or `task_not_retained`: it finished before `--retain-finished` and left the views; `details.events` is its history", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(when): Query<TimeTravel>,
) -> Result<Response, ApiError> {
    let task_id = task_id(&id)?;
    let task = match (when.as_of, when.revision) {
        (None, None) => state.service.view(task_id).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "asOf",
                "give asOf or revision, not both",
            ));
        }
        (Some(as_of), None) => {
            let as_of = super::body::parse_time(&as_of)
                .map_err(|why| ApiError::invalid_field("asOf", why))?;
            state
                .service
                .view_as_of(task_id, |event| event.recorded_at <= as_of)
                .await?
        }
        (None, Some(revision)) => {
            state
                .service
                .view_as_of(task_id, |event| event.revision <= revision)
                .await?
        }
    };
    match task {
        Some(task) => Ok(axum::Json(wire_task(&task)).into_response()),
        // Not in the views: never made, or dropped by the retention.
        None if state.service.in_log(task_id).await? => Err(ApiError::NotRetained {
            id: task_id.to_string(),
        }),
        None => Err(ApiError::Rejected(Rejection::TaskNotFound)),
    }
}

/// The most stored tasks one list page reads: a filter that few tasks pass
/// (text in the name, a selector or tags past the first the indexes take)
/// answers a shorter page with a cursor instead of reading the whole store.
const LIST_READS_MOST: usize = 5_000;

/// Tasks in the order they were created, filtered by state, type, labels,
/// tags and text in the name, a page at a time. A page may hold fewer than
/// `limit` tasks, even none, and still have a `nextCursor`: each reads at
/// most 5,000 stored tasks.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", operation_id = "listTasks", params(ListQuery),
    responses((status = 200, description = "a page of tasks", body = TaskList)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let mut problems = Map::new();
    let wanted_state = match query.state.as_deref() {
        None => None,
        Some(text) => {
            let found = TaskState::ALL.into_iter().find(|s| s.as_str() == text);
            if found.is_none() {
                problems.insert(
                    "state".into(),
                    "must be pending, running, failed or completed".into(),
                );
            }
            found
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        problems.insert("limit".into(), "must be from 1 to 1000".into());
    }
    let after = match query.cursor.as_deref() {
        None => Position::START,
        Some(cursor) => decode_cursor(cursor).unwrap_or_else(|| {
            problems.insert(
                "cursor".into(),
                "is not a cursor this server gave out".into(),
            );
            Position::START
        }),
    };
    let selector = query.label_selector.as_deref().and_then(|text| {
        text.parse::<Selector>()
            .map_err(|why| problems.insert("labelSelector".into(), why.into()))
            .ok()
    });
    let tags = query
        .tags
        .as_deref()
        .map(|tags| tags.split(',').map(|t| t.trim().to_owned()).collect())
        .unwrap_or_default();
    let name_contains = query.name_contains.as_deref().map(str::to_lowercase);
    let filter = TaskFilter {
        selector,
        tags,
        name_contains,
    };
    if !problems.is_empty() {
        return Err(ApiError::InvalidFields(problems));
    }
    let rows = TaskQuery {
        after,
        state: wanted_state,
        task_type: query.task_type.clone(),
        label: filter.selector.as_ref().and_then(Selector::first_equality),
        tag: filter.tags.first().cloned(),
        ..TaskQuery::default()
    };
    let matching = state
        .service
        .list_matching(rows, limit, Some(LIST_READS_MOST), |t| filter.admits(t))
        .await?;
    let body = TaskList {
        tasks: matching.tasks.iter().map(wire_task).collect(),
        next_cursor: matching.next_after.map(encode_cursor),
    };
    Ok(axum::Json(body).into_response())
}

/// Cursors are opaque to clients; inside, the creation position of the last task shown.
fn encode_cursor(position: Position) -> String {
    format!("c{:x}", position.0)
}

fn decode_cursor(cursor: &str) -> Option<Position> {
    u64::from_str_radix(cursor.strip_prefix('c')?, 16)
        .ok()
        .map(Position)
}

/// Claim the best available task of the given types: highest priority, then
/// earliest available time, then oldest. 204 when none is available within
/// `waitSeconds`. With `max`, up to that many tasks: the wait is for the
/// first, and the others are what is available then.
#[utoipa::path(post, path = "/v1/tasks/claim", tag = "workers", operation_id = "claimTask", request_body = ClaimRequest,
    responses((status = 200, description = "the task, now running for this worker; with `max`, `{\"tasks\": [..]}`", body = Claimed),
        (status = 204, description = "no task available within `waitSeconds`")))]
pub async fn claim(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Json(body): Json<ClaimRequest>,
) -> Result<Response, ApiError> {
    let filter = TaskFilter {
        selector: body.label_selector.map(|s| s.0),
        tags: body.tags.iter().map(|t| t.trim().to_owned()).collect(),
        ..TaskFilter::default()
    };
    let lease = chrono::Duration::seconds(body.lease_seconds.0 as i64);
    let wait = Duration::from_secs(body.wait_seconds.0);
    let metadata = actor.metadata();
    let (types, worker) = (body.types.0, body.worker.0);
    let ask = ClaimAsk {
        types: &types,
        filter: &filter,
        worker: &worker,
        lease,
        wait,
    };
    let nothing = || {
        let position = PositionHeader(state.service.views.position());
        Ok((position, StatusCode::NO_CONTENT).into_response())
    };
    let Some(max) = body.max else {
        return match state.service.claim(&ask, &metadata).await? {
            Some(written) => Ok(answer(written)),
            None => nothing(),
        };
    };
    let claimed = state
        .service
        .claim_many(max.0 as usize, &ask, &metadata)
        .await?;
    let Some(position) = claimed.iter().map(|c| c.position).max() else {
        return nothing();
    };
    let tasks = claimed.iter().map(|c| wire_task(&c.task)).collect();
    let body = Claimed::Many(TaskBatch { tasks });
    Ok((PositionHeader(position), axum::Json(body)).into_response())
}

/// Extend the lease of a running task; only its worker may.
#[utoipa::path(post, path = "/v1/tasks/{id}/heartbeat", tag = "workers", operation_id = "heartbeatTask", request_body = HeartbeatRequest,
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task, its lease extended", body = Task),
        (status = 404, description = "`task_not_found`", body = ErrorBody),
        (status = 409, description = "`wrong_state`, `not_lease_holder`, `lease_expired` or `contended`", body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<HeartbeatRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Heartbeat {
        worker: body.worker.0,
        lease: chrono::Duration::seconds(body.lease_seconds.0 as i64),
        token: Some(actor.name.clone()),
        progress: body.progress.map(|p| p.0),
    };
    run(&state, &actor, &id, command).await
}

/// Finish a running task; only its worker may.
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", tag = "workers", operation_id = "completeTask", request_body = CompleteRequest,
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task, completed", body = Task),
        (status = 404, description = "`task_not_found`", body = ErrorBody),
        (status = 409, description = "`wrong_state`, `not_lease_holder`, `lease_expired` or `contended`", body = ErrorBody)))]
pub async fn complete(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<CompleteRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Complete {
        worker: body.worker.0,
        token: Some(actor.name.clone()),
        result: body.result.map(|r| r.0),
    };
    run(&state, &actor, &id, command).await
}

/// Give up on a running task, saying why; only its worker may.
#[utoipa::path(post, path = "/v1/tasks/{id}/fail", tag = "workers", operation_id = "failTask", request_body = FailRequest,
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task, failed or waiting for its retry", body = Task),
        (status = 404, description = "`task_not_found`", body = ErrorBody),
        (status = 409, description = "`wrong_state`, `not_lease_holder`, `lease_expired` or `contended`", body = ErrorBody)))]
pub async fn fail(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<FailRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Fail {
        worker: body.worker.0,
        error: body.error.0,
        token: Some(actor.name.clone()),
    };
    run(&state, &actor, &id, command).await
}

/// Cancel a pending or running task: it fails with the reason as its error.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", operation_id = "cancelTask", request_body = CancelRequest,
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task, failed with the reason", body = Task),
        (status = 404, description = "`task_not_found`", body = ErrorBody),
        (status = 409, description = "`wrong_state` or `contended`", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<CancelRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Cancel {
        reason: body.reason.map(|r| r.0),
    };
    run(&state, &actor, &id, command).await
}

/// Run a failed task again, now: the dead letter's way back. It gets one more
/// run; a run that fails again with no attempts left stays failed.
#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "tasks", operation_id = "retryTask", request_body = RetryRequest,
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task, pending again", body = Task),
        (status = 404, description = "`task_not_found`", body = ErrorBody),
        (status = 409, description = "`wrong_state`, `expiration_passed` or `contended`", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<RetryRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Retry {
        expiration_time: body.expiration_time.map(|t| t.0),
    };
    run(&state, &actor, &id, command).await
}
