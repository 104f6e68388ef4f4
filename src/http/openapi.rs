//! `schemas/openapi.json`, generated from the handlers and wire types; served
//! at `/openapi.json`. A test fails when the checked-in file drifts;
//! `TASKLOG_UPDATE_SCHEMAS=1 cargo test` rewrites it.

use tasklog_api::admin::Rebuild;
use tasklog_api::audit::{CloudEvent, EventPage, Verification};
use tasklog_api::consumers::{Acknowledge, Consumer, ConsumerList, SseEvent};
use tasklog_api::queues::{Queue, QueueList, QueueSettings};
use tasklog_api::schedules::{CreateSchedule, Schedule, ScheduleList};
use tasklog_api::token::TokenInfo;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::wire::*;
use super::{audit, bulk, observe, queues, rebuilds, schedules, stream, tasks, token};

#[derive(OpenApi)]
#[openapi(
    info(title = "tasklog", description = "An event-sourced task backend."),
    paths(tasks::create, tasks::create_batch, tasks::show, tasks::list, tasks::claim, tasks::heartbeat, tasks::complete, tasks::fail, tasks::cancel, tasks::retry, bulk::retry, bulk::cancel, schedules::create, schedules::list, schedules::show, schedules::pause, schedules::resume, schedules::delete, queues::list, queues::set_settings, audit::history, audit::log, audit::verify_log, rebuilds::start, rebuilds::show, stream::stream, stream::list_consumers, stream::show_consumer, stream::acknowledge, observe::scrape, token::show),
    components(schemas(Task, TaskList, TaskBatch, Claimed, CreateTask, CreateTasks, ClaimRequest, HeartbeatRequest, CompleteRequest, FailRequest, CancelRequest, RetryRequest, RetryBody, TaskSelection, BulkRetryRequest, BulkCancelRequest, BulkOutcome, ErrorBody, Schedule, ScheduleList, CreateSchedule, TaskTemplateBody, Queue, QueueList, QueueSettings, CloudEvent, EventPage, Verification, Rebuild, Consumer, ConsumerList, Acknowledge, SseEvent, TokenInfo)),
    modifiers(&Conventions),
    security(("bearer" = []))
)]
struct ApiDoc;

/// What every route has in common, said once here rather than on each
/// handler: the bearer token, the position headers, and the errors that the
/// middleware (token, scope, rate limit, `Tasklog-Min-Position`) and the body
/// extractor answer on every route they guard.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (name, response) in shared_responses() {
            components.responses.insert(name.into(), response.into());
        }
        for schema in components.schemas.values_mut() {
            free_form_objects(schema);
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_conventions(operation);
            }
        }
    }
}

/// Says of every object schema with neither properties nor
/// `additionalProperties` (a task's `data`, an event's payload) that it takes
/// any members: generators read an object with nothing said as one that takes
/// none (openapi-typescript makes it `Record<string, never>`).
fn free_form_objects(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            let is_object = matches!(object.schema_type, SchemaType::Type(Type::Object));
            if is_object && object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(true)));
            }
            object.properties.values_mut().for_each(free_form_objects);
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(free_form_objects),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(free_form_objects),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(free_form_objects),
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                free_form_objects(items);
            }
        }
        _ => {}
    }
}

fn add_conventions(operation: &mut Operation) {
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(min_position());
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .insert("Tasklog-Position".into(), position_header());
        }
    }
    let mut shared = vec![
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("429", "TooManyRequests"),
        ("503", "Unavailable"),
    ];
    if operation.request_body.is_some() {
        shared.extend([
            ("408", "BodyTimeout"),
            ("413", "BodyTooLarge"),
            ("415", "NotJson"),
        ]);
    }
    for (status, name) in shared {
        operation
            .responses
            .responses
            .entry(status.into())
            .or_insert_with(|| Ref::from_response_name(name).into());
    }
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0.0))
}

fn position_header() -> Header {
    HeaderBuilder::new()
        .schema(integer())
        .description(Some(
            "The log position this answer reflects; send it back as `Tasklog-Min-Position`.",
        ))
        .build()
}

fn min_position() -> Parameter {
    ParameterBuilder::new()
        .name("Tasklog-Min-Position")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .schema(Some(integer()))
        .description(Some(
            "Wait (up to 5 s, else 503 `not_caught_up`) until this node's views include this log position.",
        ))
        .build()
}

/// The error responses every route shares, by component name.
fn shared_responses() -> Vec<(&'static str, Response)> {
    let error = |description: &str| {
        let body = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        ResponseBuilder::new()
            .description(description)
            .content("application/json", body)
            .header("Tasklog-Position", position_header())
    };
    let retry_after = HeaderBuilder::new()
        .schema(integer())
        .description(Some("Seconds to wait before trying again."))
        .build();
    let challenge = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("`Bearer`"))
        .build();
    vec![
        ("BadRequest", error("`invalid_fields` (each named in `details`), `malformed_json`, `not_an_object`, `malformed_query`, `malformed_path` or `invalid_header`").build()),
        ("Unauthorized", error("`unauthorized`: no bearer token, or not a valid one").header("WWW-Authenticate", challenge).build()),
        ("Forbidden", error("`forbidden`: the token lacks the route's scope").build()),
        ("BodyTimeout", error("`body_timeout`: the body did not arrive within the body read timeout").build()),
        ("BodyTooLarge", error("`body_too_large`: the body is over 1 MiB").build()),
        ("NotJson", error("`unsupported_media_type`: the body is not sent as `application/json`").build()),
        ("TooManyRequests", error("`rate_limited`: the token spent its request budget").header("Retry-After", retry_after.clone()).build()),
        ("Unavailable", error("`unavailable`: the event store is down, nothing was written; or `not_caught_up`: this node lags `Tasklog-Min-Position`; or `too_many_connections`: the server has as many connections open as it takes, and closes this one").header("Retry-After", retry_after).build()),
    ]
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
