//! `/v1/schedules`: recurring schedules that create a task at each due run,
//! with their request and response bodies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use deserr::{Deserr, ValuePointerRef};
use serde::Serialize;
use serde_json::Value;
use tasklog_api::{inline_schema, parsed_from_json, request_body};
use tasklog_events::schedule_event::*;
use tasklog_projections::ScheduleView;
use utoipa::ToSchema;

use super::body::*;
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

request_body!(
    /// `POST /v1/schedules`.
    #[deserr(validate = end_after_start -> BodyError)]
    CreateSchedule, "a schedule", {
        #[schema(inline)]
        pub name: Text,
        pub task: TaskTemplateBody,
        /// `{"every": 15, "unit": "minutes"}` (minutes, hours, days, weeks, months,
        /// counted from `startTime`) or `{"cron": "30 3 * * 1"}` (UTC).
        #[schema(inline)]
        pub recurrence: RecurrenceBody,
        /// RFC 3339 with a zone offset: the first run, or the earliest for cron.
        #[schema(inline)]
        pub start_time: Time,
        /// Optional: no run after this time.
        #[deserr(default)]
        #[schema(inline)]
        pub end_time: Option<Time>,
        /// Optional. `normal` (default): runs due before the schedule was
        /// created are skipped. `startInThePast`: they are created too.
        #[deserr(default)]
        #[schema(inline)]
        pub start_mode: Option<StartModeBody>,
    }
);

fn end_after_start(
    body: CreateSchedule,
    location: ValuePointerRef,
) -> Result<CreateSchedule, BodyError> {
    match body.end_time {
        Some(end) if end.0 <= body.start_time.0 => Err(BodyError::at(
            location.push_key("endTime"),
            "must be after startTime",
        )),
        _ => Ok(body),
    }
}

impl CreateSchedule {
    fn into_event(self) -> ScheduleCreated {
        ScheduleCreated {
            name: self.name.0,
            task: self.task.into_template(),
            recurrence: self.recurrence.0,
            start_time: self.start_time.0,
            end_time: self.end_time.map(|t| t.0),
            start_mode: self.start_mode.map_or(StartMode::Normal, |m| m.0),
        }
    }
}

/// When a schedule's runs are due.
#[derive(Debug)]
pub struct RecurrenceBody(Recurrence);

impl RecurrenceBody {
    fn parse(value: Value) -> Result<Self, String> {
        let why = "must be {\"every\": <1 to 1000>, \"unit\": \"minutes|hours|days|weeks|months\"} or {\"cron\": \"<minute> <hour> <day> <month> <weekday>\"}";
        let recurrence: Recurrence = serde_json::from_value(value).map_err(|_| why.to_owned())?;
        match &recurrence {
            Recurrence::Every(interval) if !(1..=1000).contains(&interval.every) => {
                Err("every must be from 1 to 1000".into())
            }
            // Five fields, as documented: croner would also take a seconds
            // field (a schedule that fires every second) and `@daily` names.
            Recurrence::Cron(cron) if cron.cron.split_whitespace().count() != 5 => {
                Err("a cron expression has five fields: minute hour day month weekday".into())
            }
            Recurrence::Cron(cron) if cron.cron.contains('@') => {
                Err("a cron expression has five fields, not an @name".into())
            }
            Recurrence::Cron(cron) => match cron.cron.parse::<croner::Cron>() {
                Ok(_) => Ok(RecurrenceBody(recurrence)),
                Err(error) => Err(format!("bad cron expression: {error}")),
            },
            _ => Ok(RecurrenceBody(recurrence)),
        }
    }
}

inline_schema!(RecurrenceBody, {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let every = ObjectBuilder::new()
        .property(
            "every",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1.0))
                .maximum(Some(1000.0)),
        )
        .property(
            "unit",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["minutes", "hours", "days", "weeks", "months"])),
        )
        .required("every")
        .required("unit");
    let cron = ObjectBuilder::new()
        .property(
            "cron",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("five fields: minute hour day month weekday (UTC)")),
        )
        .required("cron");
    OneOfBuilder::new().item(every).item(cron)
});

/// Whether runs due before the schedule was created are created too.
#[derive(Debug)]
pub struct StartModeBody(StartMode);

impl StartModeBody {
    fn parse(value: Value) -> Result<Self, String> {
        serde_json::from_value(value)
            .map(StartModeBody)
            .map_err(|_| "must be normal or startInThePast".into())
    }
}

inline_schema!(
    StartModeBody,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["normal", "startInThePast"]))
);

parsed_from_json!(RecurrenceBody, StartModeBody);

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
            last_task_id: view.last_run.as_ref().map(|r| r.task_id.to_string()),
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
        schedules: views.schedules.values().map(Schedule::from).collect(),
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
    Ok(axum::Json(Schedule::from(&view)).into_response())
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
