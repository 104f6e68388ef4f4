//! Schedules on the wire: a create, with its recurrence and start mode, and
//! the schedule as every schedule endpoint answers it.

use deserr::{Deserr, ValuePointerRef};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use tasklog_events::schedule_event::*;
use utoipa::ToSchema;

use crate::body::*;
use crate::body::{inline_schema, parsed_from_json};
use crate::tasks::request_body;
use crate::tasks::TaskTemplateBody;

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
    /// The event a create records.
    pub fn into_event(self) -> ScheduleCreated {
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// `GET /v1/schedules`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<Schedule>,
}

impl Serialize for RecurrenceBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Serialize for StartModeBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
