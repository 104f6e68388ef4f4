//! For auditors: a task's history, the global log, and verification. These
//! read the log through the store, which is the point: the views could be wrong,
//! the log is the record.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tasklog_api::audit::{CloudEvent, EventPage, LogQuery, Verification};
use tasklog_events::{verify, Position, TaskId};

use super::body::Path;
use super::body::Query;
use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::app::event_filter::EventFilter;
use crate::http::auth::Scope;
use crate::rules::Rejection;

pub fn routes(state: &AppState) -> Router<AppState> {
    let events = Router::new()
        .route("/v1/tasks/{id}/events", get(history))
        .route("/v1/events", get(log));
    let admin = Router::new().route("/v1/admin/verify", get(verify_log));
    super::scoped(events, state, Scope::EventsRead).merge(super::scoped(admin, state, Scope::Admin))
}

/// A task's whole history, oldest first.
#[utoipa::path(get, path = "/v1/tasks/{id}/events", tag = "audit", operation_id = "getTaskHistory",
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task's events, oldest first", body = EventPage),
        (status = 404, description = "`task_not_found`", body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::from(Rejection::TaskNotFound);
    let task: TaskId = id.parse().map_err(|_| not_found())?;
    let events = state
        .service
        .store
        .read_stream(&task.stream(), 0, usize::MAX)
        .await
        .map_err(ApiError::unavailable)?;
    if events.is_empty() {
        return Err(not_found());
    }
    let page = EventPage {
        events: events.iter().map(CloudEvent::of).collect(),
        next_after: None,
    };
    Ok(axum::Json(page).into_response())
}

/// How many events one request may read past its filters.
const SCAN_LIMIT: usize = 100_000;

/// The task events of the global log from a position, a page at a time,
/// filtered by task type and event type.
#[utoipa::path(get, path = "/v1/events", tag = "audit", operation_id = "listEvents", params(LogQuery),
    responses((status = 200, description = "a page of the log", body = EventPage)))]
pub async fn log(
    State(state): State<AppState>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be from 1 to 10000"));
    }
    let mut after = Position(query.after.unwrap_or(0));
    let mut kept = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    let mut filter = EventFilter::new(query.task_type.clone(), query.event_type.clone());
    while kept.len() < limit && scanned < SCAN_LIMIT {
        let page = state
            .service
            .store
            .read_all(after, limit)
            .await
            .map_err(ApiError::unavailable)?;
        if page.is_empty() {
            exhausted = true;
            break;
        }
        scanned += page.len();
        let full = page.len() == limit;
        for event in page {
            if kept.len() == limit {
                break;
            }
            after = event.position;
            if filter
                .admits(
                    &event,
                    &*state.service.store,
                    Some(&state.service.views.projections),
                )
                .await
            {
                kept.push(event);
            }
        }
        if !full {
            exhausted = true;
            break;
        }
    }
    let next_after = (!exhausted || kept.len() == limit).then_some(after.0);
    let page = EventPage {
        events: kept.iter().map(CloudEvent::of).collect(),
        next_after,
    };
    Ok(axum::Json(page).into_response())
}

/// Walks the whole log: positions, revisions and the hash chain.
#[utoipa::path(get, path = "/v1/admin/verify", tag = "audit", operation_id = "verifyLog",
    responses((status = 200, description = "what the walk found; `ok` false names the first bad position", body = Verification)))]
pub async fn verify_log(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = match verify(&*state.service.store).await {
        Ok(report) => Verification {
            ok: true,
            events: Some(report.events),
            head: Some(report.head.0),
            head_hash: report.chained.then(|| hex::encode(report.head_hash)),
            first_bad_position: None,
            message: None,
        },
        Err(tasklog_events::VerifyError::Read(error)) => return Err(ApiError::unavailable(error)),
        Err(error) => Verification {
            ok: false,
            events: None,
            head: None,
            head_hash: None,
            first_bad_position: error.position().map(|p| p.0),
            message: Some(error.to_string()),
        },
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
