//! `/v1/queues`: each task type's queue: how many tasks it holds in each
//! state, its running limit (at most N tasks of the type run at once), and
//! whether it is paused (claims hand out none of its tasks).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Router};
use tasklog_api::queues::{Queue, QueueList, QueueSettings};
use tasklog_projections::{Projections, QueueSettings as QueueSettingsView, TaskState};

use super::body::{text_problem, Json, Path, Ranged};
use super::error::ApiError;
use super::{Actor, AppState, PositionHeader};
use crate::app::write::QueueCommand;
use crate::http::auth::Scope;

pub fn routes(state: &AppState) -> Router<AppState> {
    let read = Router::new().route("/v1/queues", get(list));
    let admin = Router::new().route("/v1/queues/{type}", put(set_settings));
    super::scoped(read, state, Scope::TasksRead).merge(super::scoped(admin, state, Scope::Admin))
}

fn queue(views: &Projections, task_type: &str) -> Queue {
    let count = |state| {
        let key = (task_type.to_owned(), state);
        views.stats.counts.get(&key).copied().unwrap_or(0)
    };
    Queue {
        task_type: task_type.to_owned(),
        pending: count(TaskState::Pending),
        running: count(TaskState::Running),
        completed: count(TaskState::Completed),
        failed: count(TaskState::Failed),
        max_running: views.running_limit(task_type),
        paused: views.is_paused(task_type),
    }
}

/// Every task type with tasks, a limit or a pause, by name.
#[utoipa::path(get, path = "/v1/queues", tag = "queues", operation_id = "listQueues",
    responses((status = 200, description = "every queue", body = QueueList)))]
pub async fn list(State(state): State<AppState>) -> axum::Json<QueueList> {
    let views = state.service.views.read();
    let mut types: BTreeMap<&str, ()> = views
        .stats
        .counts
        .keys()
        .map(|(t, _)| (t.as_str(), ()))
        .collect();
    let configured = views
        .queues
        .iter()
        .filter(|(_, q)| q.max_running.is_some() || q.paused);
    types.extend(configured.map(|(t, _)| (t.as_str(), ())));
    axum::Json(QueueList {
        queues: types.into_keys().map(|t| queue(&views, t)).collect(),
    })
}

/// Set a task type's queue settings (admin): its running limit (claims hand
/// out no task of the type while that many run) and whether it is paused
/// (claims hand out none). Each setting that changes is an event of the
/// queue's stream; sent again, the same settings write nothing.
#[utoipa::path(put, path = "/v1/queues/{type}", tag = "queues", operation_id = "setQueueSettings", request_body = QueueSettings,
    params(("type" = String, Path, description = "the task type")),
    responses((status = 200, description = "the queue with its new settings", body = Queue)))]
pub async fn set_settings(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(task_type): Path<String>,
    Json(body): Json<QueueSettings>,
) -> Result<Response, ApiError> {
    if let Some(why) = text_problem(&task_type) {
        return Err(ApiError::invalid_field("type", why));
    }
    let service = &state.service;
    let command = QueueCommand {
        max_running: body.max_running.map(Ranged::get),
        paused: body.paused.unwrap_or(false),
    };
    let written = service
        .write::<QueueSettingsView>(task_type.clone(), &command, &actor.metadata())
        .await?;
    let views = service.views.read();
    Ok((
        PositionHeader(written.position),
        axum::Json(queue(&views, &task_type)),
    )
        .into_response())
}
