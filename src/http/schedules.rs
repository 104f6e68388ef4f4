//! `/v1/schedules`: recurring schedules that create a task at each due run,
//! with their request and response bodies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;
use serde_json::{Map, Value};
use tasklog_events::schedule_event::*;
use tasklog_projections::ScheduleView;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json};
use super::wire::*;
use super::{Actor, AppState, PositionHeader};
use crate::http::auth::Scope;
use crate::rules::schedules::{self, ScheduleCommand};
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

/// `POST /v1/schedules`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documents the body; `parse_schedule` reads it field by field.
#[schema(as = CreateSchedule)]
pub struct CreateScheduleSchema {
    name: String,
    /// The task each run creates: a create body with `expiresAfterSeconds`
    /// instead of the two times (the run's time is its `availableTime`).
    task: TaskTemplateSchema,
    /// `{"every": 15, "unit": "minutes"}` (minutes, hours, days, weeks, months,
    /// counted from `startTime`) or `{"cron": "30 3 * * 1"}` (UTC).
    recurrence: Value,
    /// RFC 3339 with a zone offset: the first run, or the earliest for cron.
    #[schema(rename = "startTime")]
    start_time: String,
    /// Optional: no run after this time.
    #[schema(rename = "endTime", required = false)]
    end_time: String,
    /// `normal` (default): runs due before the schedule was created are
    /// skipped. `startInThePast`: they are created too.
    #[schema(rename = "startMode", required = false)]
    start_mode: String,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(as = TaskTemplate)]
pub struct TaskTemplateSchema {
    name: String,
    #[schema(rename = "type")]
    task_type: String,
    priority: i64,
    data: Map<String, Value>,
    /// Each run's task expires this long after its run time (1 to 31536000).
    #[schema(rename = "expiresAfterSeconds")]
    expires_after_seconds: u32,
    #[schema(required = false)]
    labels: std::collections::BTreeMap<String, String>,
    #[schema(required = false)]
    tags: Vec<String>,
    #[schema(required = false)]
    retry: RetryBody,
}

/// A schedule, as every schedule endpoint answers it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub task: Value,
    #[schema(value_type = Object)]
    pub recurrence: Value,
    pub start_time: String,
    pub end_time: Option<String>,
    /// `normal` or `startInThePast`.
    pub start_mode: String,
    /// `active`, `paused`, or `ended` (no run left before `endTime`).
    pub state: String,
    pub next_run_time: Option<String>,
    pub last_run_time: Option<String>,
    /// The task the latest run created.
    pub last_task_id: Option<String>,
    /// How many runs have created their task.
    pub runs: u64,
    pub created_time: String,
    pub modified_time: String,
}

impl From<&ScheduleView> for Schedule {
    fn from(view: &ScheduleView) -> Self {
        let definition = &view.definition;
        let state = match (view.paused, view.next_run_time) {
            (true, _) => "paused",
            (false, Some(_)) => "active",
            (false, None) => "ended",
        };
        let json = |v| serde_json::to_value(v).expect("schedules serialise");
        Schedule {
            id: view.id.to_string(),
            name: definition.name.clone(),
            task: json(&definition.task),
            recurrence: serde_json::to_value(&definition.recurrence).expect("serialises"),
            start_time: wire_time(definition.start_time),
            end_time: definition.end_time.map(wire_time),
            start_mode: json_text(&definition.start_mode),
            state: state.into(),
            next_run_time: view.next_run_time.map(wire_time),
            last_run_time: view.last_run.as_ref().map(|r| wire_time(r.run_time)),
            last_task_id: view.last_run.as_ref().map(|r| r.task_id.clone()),
            runs: view.runs,
            created_time: wire_time(view.created_time),
            modified_time: wire_time(view.modified_time),
        }
    }
}

fn json_text(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(text)) => text,
        _ => String::new(),
    }
}

/// `GET /v1/schedules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

/// Longest a run's task may wait before it expires.
const MAX_EXPIRES_AFTER_SECONDS: u64 = 365 * 86_400;

/// Reads a schedule body field by field, so every wrong field is named.
pub fn parse_schedule(body: Value) -> Result<ScheduleCreated, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::NotAnObject);
    };
    let mut problems = Map::new();
    let name = text(fields.remove("name"), "name", &mut problems);
    let task = match fields.remove("task") {
        None => missing("task", &mut problems),
        Some(Value::Object(task)) => parse_template(task, &mut problems),
        Some(_) => wrong("task", "must be a JSON object", &mut problems),
    };
    let recurrence = match fields.remove("recurrence") {
        None => missing("recurrence", &mut problems),
        Some(value) => parse_recurrence(value, &mut problems),
    };
    let start_time = time(fields.remove("startTime"), "startTime", &mut problems);
    let end_time = match fields.remove("endTime") {
        None | Some(Value::Null) => None,
        value => time(value, "endTime", &mut problems),
    };
    let start_mode = match fields.remove("startMode") {
        None | Some(Value::Null) => Some(StartMode::Normal),
        Some(value) => serde_json::from_value(value).ok().or_else(|| {
            wrong(
                "startMode",
                "must be normal or startInThePast",
                &mut problems,
            )
        }),
    };
    for unknown in fields.keys() {
        problems.insert(unknown.clone(), "is not a field of a schedule".into());
    }
    if let (Some(start), Some(end)) = (start_time, end_time) {
        if end <= start {
            problems.insert("endTime".into(), "must be after startTime".into());
        }
    }
    match (name, task, recurrence, start_time, start_mode) {
        (Some(name), Some(task), Some(recurrence), Some(start_time), Some(start_mode))
            if problems.is_empty() =>
        {
            Ok(ScheduleCreated {
                name,
                task,
                recurrence,
                start_time,
                end_time,
                start_mode,
            })
        }
        _ => Err(ApiError::InvalidFields(problems)),
    }
}

/// Reads the task template; its problems are named `task.<field>`.
fn parse_template(
    mut fields: Map<String, Value>,
    problems: &mut Map<String, Value>,
) -> Option<TaskTemplate> {
    let mut own = Map::new();
    let name = text(fields.remove("name"), "name", &mut own);
    let task_type = text(fields.remove("type"), "type", &mut own);
    let priority = match fields.remove("priority") {
        None => missing("priority", &mut own),
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(_) => wrong("priority", "must be an integer", &mut own),
    };
    let data = match fields.remove("data") {
        None => missing("data", &mut own),
        Some(Value::Object(data)) => Some(data),
        Some(_) => wrong("data", "must be a JSON object", &mut own),
    };
    let expires_after_seconds = match fields.remove("expiresAfterSeconds") {
        None => missing("expiresAfterSeconds", &mut own),
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|s| (1..=MAX_EXPIRES_AFTER_SECONDS).contains(&s)) =>
        {
            n.as_u64().map(|s| s as u32)
        }
        Some(_) => wrong(
            "expiresAfterSeconds",
            &format!("must be a whole number from 1 to {MAX_EXPIRES_AFTER_SECONDS}"),
            &mut own,
        ),
    };
    let extras = parse_extras(&mut fields, &mut own);
    for unknown in fields.keys() {
        own.insert(unknown.clone(), "is not a field of a task template".into());
    }
    let complete = own.is_empty();
    problems.extend(
        own.into_iter()
            .map(|(field, why)| (format!("task.{field}"), why)),
    );
    if !complete {
        return None;
    }
    Some(TaskTemplate {
        name: name?,
        task_type: task_type?,
        priority: priority?,
        data: data?,
        expires_after_seconds: expires_after_seconds?,
        labels: extras.labels,
        tags: extras.tags,
        retry: extras.retry,
    })
}

fn parse_recurrence(value: Value, problems: &mut Map<String, Value>) -> Option<Recurrence> {
    let why = "must be {\"every\": <1 to 1000>, \"unit\": \"minutes|hours|days|weeks|months\"} or {\"cron\": \"<minute> <hour> <day> <month> <weekday>\"}";
    let Ok(recurrence) = serde_json::from_value::<Recurrence>(value) else {
        return wrong("recurrence", why, problems);
    };
    match &recurrence {
        Recurrence::Every(interval) if !(1..=1000).contains(&interval.every) => {
            wrong("recurrence", "every must be from 1 to 1000", problems)
        }
        Recurrence::Cron(cron) => match cron.cron.parse::<croner::Cron>() {
            Ok(_) => Some(recurrence),
            Err(error) => wrong(
                "recurrence",
                &format!("bad cron expression: {error}"),
                problems,
            ),
        },
        _ => Some(recurrence),
    }
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
            Ok((PositionHeader(position), axum::Json(Schedule::from(&view))).into_response())
        }
        Ok((None, position)) => {
            Ok((PositionHeader(position), StatusCode::NO_CONTENT).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// Create a schedule: from `startTime` on, each due run creates a task, once.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = CreateScheduleSchema,
    responses((status = 200, body = Schedule), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let created = parse_schedule(body)?;
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
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", responses((status = 200, body = ScheduleList)))]
pub async fn list(State(state): State<AppState>) -> axum::Json<ScheduleList> {
    let views = state.service.views.read();
    axum::Json(ScheduleList {
        schedules: views.schedules.values().map(Schedule::from).collect(),
    })
}

/// One schedule.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view =
        schedules::view(&state.service, schedule_id(&id)?).ok_or(Rejection::ScheduleNotFound)?;
    Ok(axum::Json(Schedule::from(&view)).into_response())
}

/// Stop creating runs; runs due while paused are skipped.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Pause, &actor).await
}

/// Create runs again, from the first one due from now on.
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(("id" = String, Path, description = "the schedule id")),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Resume, &actor).await
}

/// Delete the schedule; the tasks it created stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "the schedule id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run(&state, &id, ScheduleCommand::Delete, &actor).await
}
