//! `schemas/openapi.json`, generated from the handlers and wire types; served
//! at `/openapi.json`. A test fails when the checked-in file drifts;
//! `TASKLOG_UPDATE_SCHEMAS=1 cargo test` rewrites it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::wire::*;
use super::{audit, queues, schedules, stream, tasks};
use crate::http::cloud_event::CloudEvent;

#[derive(OpenApi)]
#[openapi(
    info(title = "tasklog", description = "An event-sourced task backend."),
    paths(tasks::create, tasks::show, tasks::list, tasks::claim, tasks::heartbeat, tasks::complete, tasks::fail, tasks::cancel, tasks::retry, schedules::create, schedules::list, schedules::show, schedules::pause, schedules::resume, schedules::delete, queues::list, queues::set_limit, audit::history, audit::log, audit::verify_log, stream::stream, stream::list_consumers, stream::show_consumer, stream::acknowledge),
    components(schemas(Task, TaskList, CreateTask, ClaimRequest, HeartbeatRequest, CompleteRequest, FailRequest, CancelRequest, RetryRequest, RetryBody, ErrorBody, schedules::Schedule, schedules::ScheduleList, schedules::CreateSchedule, TaskTemplateBody, queues::Queue, queues::QueueList, queues::QueueSettings, CloudEvent, audit::EventPage, audit::Verification, stream::Consumer, stream::ConsumerList, stream::Acknowledge)),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_openapi_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
        let generated = super::document().to_pretty_json().unwrap() + "\n";
        if std::env::var_os("TASKLOG_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == generated, "schemas/openapi.json is out of date; run TASKLOG_UPDATE_SCHEMAS=1 cargo test and commit it");
    }
}
