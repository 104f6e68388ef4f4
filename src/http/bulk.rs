//! `POST /v1/tasks/retry` and `POST /v1/tasks/cancel`: an operator's action
//! on many tasks at once, chosen by type, labels, tags or ids.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde_json::Map;
use tasklog_events::TaskId;
use tasklog_projections::TaskState;

use super::body::{Json, Ranged};
use super::error::ApiError;
use super::wire::{BulkCancelRequest, BulkOutcome, BulkRetryRequest, TaskSelection, MAX_BATCH};
use super::{Actor, AppState, PositionHeader};
use crate::app::bulk::{self, Selection};
use crate::http::auth::Scope;
use crate::rules::labels::TaskFilter;
use crate::rules::task::Command;

/// Tasks a bulk request changes unless it says how many.
const DEFAULT_LIMIT: u32 = 100;

pub fn routes(state: &AppState) -> Router<AppState> {
    let write = Router::new()
        .route("/v1/tasks/retry", post(retry))
        .route("/v1/tasks/cancel", post(cancel));
    super::scoped(write, state, Scope::TasksWrite)
}

/// Run the failed tasks a selection takes again, now, each as
/// `POST /v1/tasks/{id}/retry` would: up to `limit` of them, oldest first.
/// Every event carries the request's id; sent again, the request goes on with
/// the failed tasks that are left.
#[utoipa::path(post, path = "/v1/tasks/retry", tag = "tasks", operation_id = "retryTasks", request_body = BulkRetryRequest,
    responses((status = 200, description = "how many tasks are pending again", body = BulkOutcome)))]
pub async fn retry(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Json(body): Json<BulkRetryRequest>,
) -> Result<Response, ApiError> {
    let selection = selection(body.select)?;
    let expiration_time = body.expiration_time.map(|t| t.0);
    let now = state.service.clock.now();
    // Without a new expiration time, a task past its own cannot run again.
    let eligible = |task: &tasklog_projections::TaskView| {
        expiration_time.is_some() || task.expiration_time > now
    };
    let command = Command::Retry { expiration_time };
    let limit = limit(body.limit);
    run(
        &state,
        &actor,
        TaskState::Failed,
        selection,
        eligible,
        limit,
        command,
    )
    .await
}

/// Cancel the pending tasks a selection takes, each as
/// `POST /v1/tasks/{id}/cancel` would: up to `limit` of them, oldest first.
/// Every event carries the request's id; sent again, the request goes on with
/// the pending tasks that are left.
#[utoipa::path(post, path = "/v1/tasks/cancel", tag = "tasks", operation_id = "cancelTasks", request_body = BulkCancelRequest,
    responses((status = 200, description = "how many tasks were cancelled", body = BulkOutcome)))]
pub async fn cancel(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Json(body): Json<BulkCancelRequest>,
) -> Result<Response, ApiError> {
    let selection = selection(body.select)?;
    let command = Command::Cancel {
        reason: body.reason.map(|r| r.0),
    };
    let limit = limit(body.limit);
    run(
        &state,
        &actor,
        TaskState::Pending,
        selection,
        |_| true,
        limit,
        command,
    )
    .await
}

async fn run(
    state: &AppState,
    actor: &Actor,
    in_state: TaskState,
    selection: Selection,
    eligible: impl Fn(&tasklog_projections::TaskView) -> bool,
    limit: usize,
    command: Command,
) -> Result<Response, ApiError> {
    let metadata = actor.metadata();
    let bulk::BulkOutcome {
        changed,
        skipped,
        more,
        position,
    } = state
        .service
        .bulk(in_state, &selection, eligible, limit, command, &metadata)
        .await?;
    let body = BulkOutcome {
        changed,
        skipped,
        more,
        request_id: metadata.request_id,
    };
    Ok((PositionHeader(position), axum::Json(body)).into_response())
}

fn limit(asked: Option<Ranged<1, { MAX_BATCH as u64 }>>) -> usize {
    asked.map_or(DEFAULT_LIMIT, Ranged::get) as usize
}

/// The selection a body names; ids that are not task ids are named by index.
fn selection(select: TaskSelection) -> Result<Selection, ApiError> {
    let mut problems = Map::new();
    if select.ids.len() > MAX_BATCH {
        problems.insert(
            "select.ids".into(),
            format!("must hold at most {MAX_BATCH} ids").into(),
        );
    }
    let mut ids = Vec::with_capacity(select.ids.len());
    for (i, id) in select.ids.iter().enumerate() {
        match id.parse::<TaskId>() {
            Ok(id) => ids.push(id),
            Err(_) => {
                problems.insert(format!("select.ids[{i}]"), "is not a task id".into());
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidFields(problems));
    }
    Ok(Selection {
        task_type: select.task_type.map(|t| t.0),
        filter: TaskFilter {
            selector: select.label_selector.map(|s| s.0),
            tags: select.tags,
            ..TaskFilter::default()
        },
        ids,
    })
}
