//! `/v1/schedules`: recurring schedules that create a task at each due run.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tasklog_api::schedules::{CreateSchedule, Schedule, ScheduleList};
use tasklog_events::schedule_event::*;

use super::body::{Json, Path};
use super::error::{ApiError, ErrorBody};
use super::wire::*;
use super::{Actor, AppState, PositionHeader};
use crate::app::schedules;
use crate::http::auth::Scope;
use crate::rules::schedules::ScheduleCommand;
use crate::rules::Rejection;

pub fn routes(state: &AppState) -> Router<AppState> {
    let write = Router::new()
        .route("/v1/schedules", post(create))
        .route("/v1/schedules/{id}", axum::routing::delete(delete))
        .route("/v1/schedules/{id}/pause", post(pause))
        .route("/v1/schedules/{id}/resume", post(resume));
    let read = Router::new()
        .route("/v1/schedules", get(list))
        .route("/v1/schedules/{id}", get(show));
    super::scoped(write, state, Scope::SchedulesWrite).merge(super::scoped(
        read,
        state,
        Scope::SchedulesRead,
    ))
}

fn schedule_id(id: &str) -> Result<ScheduleId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::from(Rejection::ScheduleNotFound))
}

async fn run(
    state: &AppState,
    id: &str,
    command: ScheduleCommand,
    actor: &Actor,
) -> Result<Response, ApiError> {
    let schedule_id = schedule_id(id)?;
    match schedules::execute(&state.service, schedule_id, command, &actor.metadata()).await {
        Ok((Some(view), position)) => {
            Ok((PositionHeader(position), axum::Json(wire_schedule(&view))).into_response())
        }
        Ok((None, position)) => {
            Ok((PositionHeader(position), StatusCode::NO_CONTENT).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// Create a schedule: from `startTime` on, each due run creates a task, once.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", operation_id = "createSchedule", request_body = CreateSchedule,
    responses((status = 200, description = "the schedule", body = Schedule),
        (status = 409, description = "`schedule_exists` or `contended`", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Json(body): Json<CreateSchedule>,
) -> Result<Response, ApiError> {
    let created = body.into_event();
    let id = ScheduleId::new().to_string();
    run(
        &state,
        &id,
        ScheduleCommand::Create(Box::new(created)),
        &actor,
    )
    .await
}

/// Every schedule, oldest first.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", operation_id = "listSchedules",
    responses((status = 200, description = "every schedule", body = ScheduleList)))]
pub async fn list(State(state): State<AppState>) -> axum::Json<ScheduleList> {
    let views = state.service.views.read();
    axum::Json(ScheduleList {
        schedules: views.schedules.values().map(wire_schedule).collect(),
    })
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", operation_id = "getSchedule",
    params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, description = "the schedule", body = Schedule),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view =
        schedules::view(&state.service, schedule_id(&id)?).ok_or(Rejection::ScheduleNotFound)?;
    Ok(axum::Json(wire_schedule(&view)).into_response())
}

/// Stop creating runs; runs due while paused are skipped.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", operation_id = "pauseSchedule",
    params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, description = "the schedule, paused", body = Schedule),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 409, description = "`schedule_paused` or `contended`", body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Pause, &actor).await
}

/// Create runs again, from the first one due from now on.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", operation_id = "resumeSchedule",
    params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, description = "the schedule, active again", body = Schedule),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 409, description = "`schedule_not_paused` or `contended`", body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Resume, &actor).await
}

/// Delete the schedule; the tasks it created stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", operation_id = "deleteSchedule",
    params(("id" = String, Path, description = "the schedule id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "`schedule_not_found`", body = ErrorBody),
        (status = 409, description = "`contended`", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Delete, &actor).await
}
