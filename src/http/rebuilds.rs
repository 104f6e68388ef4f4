//! `/v1/admin/rebuild`: the read models rebuilt beside the serving nodes and
//! swapped in when caught up.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tasklog_api::admin::Rebuild;

use super::error::{ApiError, ErrorBody};
use super::wire::wire_time;
use super::AppState;
use crate::app::rebuild::{RebuildRefused, RebuildStatus};
use crate::http::auth::Scope;

pub fn routes(state: &AppState) -> Router<AppState> {
    let admin = Router::new().route("/v1/admin/rebuild", get(show).post(start));
    super::scoped(admin, state, Scope::Admin)
}

impl From<RebuildStatus> for Rebuild {
    fn from(status: RebuildStatus) -> Self {
        Rebuild {
            state: status.state.as_str().into(),
            started_time: status.started.map(wire_time),
            finished_time: status.finished.map(wire_time),
            position: status.position.0,
            head: status.head.0,
            events: status.events,
            error: status.error,
        }
    }
}

/// Rebuild the read models beside the serving views: they are folded from the
/// whole log into new tables while this node serves from the old ones, then
/// swapped in between two of its batches, so no read sees a half-built view.
/// Where the nodes share the views (PostgreSQL), every node moves to the new
/// tables. Follow it with `GET /v1/admin/rebuild` on this node.
#[utoipa::path(post, path = "/v1/admin/rebuild", tag = "operations", operation_id = "startRebuild",
    responses((status = 202, description = "the rebuild, started", body = Rebuild),
        (status = 409, description = "`rebuild_running` (here or on another node sharing the store), or `rebuild_not_supported`: the node's views live in its memory (EventStoreDB without a data directory)", body = ErrorBody)))]
pub async fn start(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.rebuilds.start(state.service.clone()).await {
        Ok(status) => Ok((StatusCode::ACCEPTED, axum::Json(Rebuild::from(status))).into_response()),
        Err(RebuildRefused::Running) => Err(ApiError::RebuildRunning),
        Err(RebuildRefused::Elsewhere) => Err(ApiError::RebuildRunningElsewhere),
        Err(RebuildRefused::NotSupported) => Err(ApiError::RebuildNotSupported),
        Err(RebuildRefused::Failed(error)) => Err(ApiError::unavailable(error)),
    }
}

/// The last rebuild beside this node, as far as it got.
#[utoipa::path(get, path = "/v1/admin/rebuild", tag = "operations", operation_id = "getRebuild",
    responses((status = 200, description = "the last rebuild since the server started", body = Rebuild)))]
pub async fn show(State(state): State<AppState>) -> axum::Json<Rebuild> {
    axum::Json(Rebuild::from(state.rebuilds.status()))
}
