//! The field types of request bodies, which check themselves, and the error
//! a body's reading gathers.
//!
//! Bodies are `deserr` types: unlike serde, deserr goes on past the first bad
//! field, so a 400 names every one (`details`, by path: `task.tags`). Each
//! body is one Rust type that also derives `ToSchema`, so the API document is
//! made from what is parsed. Field types with a rule of their own (non-blank
//! text, RFC 3339 times with an offset, bounded integers, labels, tags) say
//! what is wrong in their own words.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use deserr::{
    DeserializeError, Deserr, ErrorKind, IntoValue, MergeWithError, ValueKind, ValuePointerRef,
};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::labels::{check_labels, check_tags, Selector};

/// Longest `name`, `type`, `worker`, `error` and `reason` accepted, in characters.
pub const MAX_TEXT: usize = 1024;

/// What is wrong with a body: it is not an object at all, or these fields
/// (by path) are wrong, each for this reason.
#[derive(Debug)]
pub enum BodyError {
    /// HTTP 400 `not_an_object`.
    NotAnObject,
    /// HTTP 400 `invalid_fields`: why each field (by path) is wrong.
    Fields(Map<String, Value>),
}

impl BodyError {
    /// The field at `location` is wrong: `why`.
    pub fn at(location: ValuePointerRef, why: impl Into<String>) -> Self {
        BodyError::Fields(Map::from_iter([(path(location), why.into().into())]))
    }

    fn and(earlier: Option<BodyError>, later: BodyError) -> BodyError {
        match (earlier, later) {
            (None, later) => later,
            (Some(BodyError::Fields(mut all)), BodyError::Fields(more)) => {
                all.extend(more);
                BodyError::Fields(all)
            }
            (Some(_), _) => BodyError::NotAnObject,
        }
    }
}

/// `task.tags`, `types[2]`: how `details` names a field.
fn path(location: ValuePointerRef) -> String {
    match location {
        ValuePointerRef::Origin => String::new(),
        ValuePointerRef::Key { key, prev } => match path(*prev) {
            above if above.is_empty() => key.to_owned(),
            above => format!("{above}.{key}"),
        },
        ValuePointerRef::Index { index, prev } => format!("{}[{index}]", path(*prev)),
    }
}

impl MergeWithError<BodyError> for BodyError {
    fn merge(
        earlier: Option<Self>,
        later: BodyError,
        _location: ValuePointerRef,
    ) -> ControlFlow<Self, Self> {
        ControlFlow::Continue(BodyError::and(earlier, later))
    }
}

impl DeserializeError for BodyError {
    fn error<V: IntoValue>(
        earlier: Option<Self>,
        error: ErrorKind<V>,
        location: ValuePointerRef,
    ) -> ControlFlow<Self, Self> {
        let (field, why) = match error {
            ErrorKind::IncorrectValueKind { .. } if location.is_origin() => {
                return ControlFlow::Break(BodyError::NotAnObject)
            }
            ErrorKind::IncorrectValueKind { accepted, .. } => {
                (path(location), kind_wanted(accepted).to_owned())
            }
            ErrorKind::MissingField { field } => {
                (path(location.push_key(field)), "is required".into())
            }
            ErrorKind::UnknownKey { key, .. } => {
                (path(location.push_key(key)), "is not a known field".into())
            }
            ErrorKind::UnknownValue { accepted, .. } => {
                (path(location), format!("must be {}", either(accepted)))
            }
            ErrorKind::BadSequenceLen { expected, .. } => {
                (path(location), format!("must have {expected} items"))
            }
            ErrorKind::Unexpected { msg } => (path(location), msg),
        };
        let error = BodyError::Fields(Map::from_iter([(field, why.into())]));
        ControlFlow::Continue(BodyError::and(earlier, error))
    }
}

fn kind_wanted(accepted: &[ValueKind]) -> &'static str {
    use ValueKind::*;
    match accepted {
        [String] => "must be a string",
        [Integer] => "must be a whole number",
        [Integer, NegativeInteger] | [NegativeInteger, Integer] => "must be an integer",
        [Boolean] => "must be true or false",
        [Sequence] => "must be an array",
        [Map] => "must be a JSON object",
        kinds if kinds.contains(&Float) => "must be a number",
        _ => "has the wrong type",
    }
}

/// `a`, `a or b`, `a, b or c`.
fn either(choices: &[&str]) -> String {
    match choices {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The noun a body's unknown fields are "not a field of".
pub trait Noun {
    const NOUN: &'static str;
}

/// `deny_unknown_fields` for the body `T`: "is not a field of a task".
pub fn unknown_field<T: Noun>(
    key: &str,
    _accepted: &[&str],
    location: ValuePointerRef,
) -> BodyError {
    BodyError::at(
        location.push_key(key),
        format!("is not a field of {}", T::NOUN),
    )
}

/// Implements `Deserr` for a field type by its `parse` from the JSON value.
macro_rules! parsed_from_json {
    ($($ty:ty),*) => {$(
        impl ::deserr::Deserr<$crate::body::BodyError> for $ty {
            fn deserialize_from_value<V: ::deserr::IntoValue>(
                value: ::deserr::Value<V>,
                location: ::deserr::ValuePointerRef,
            ) -> Result<Self, $crate::body::BodyError> {
                <$ty>::parse(::serde_json::Value::from(value))
                    .map_err(|why| $crate::body::BodyError::at(location, why))
            }
        }
    )*};
}
pub(crate) use parsed_from_json;

/// Implements `ToSchema` for a field type that is always inlined.
macro_rules! inline_schema {
    ($ty:ty, $schema:expr) => {
        impl ::utoipa::PartialSchema for $ty {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                $schema.into()
            }
        }
        impl ::utoipa::ToSchema for $ty {}
    };
}
pub(crate) use inline_schema;

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// Text a person wrote: not blank, at most [`MAX_TEXT`] characters.
#[derive(Clone, Debug, PartialEq)]
pub struct Text(pub String);

impl Text {
    fn parse(value: Value) -> Result<Self, String> {
        match value {
            Value::String(text) => text_problem(&text).map_or(Ok(Text(text)), Err),
            _ => Err("must be a string".into()),
        }
    }
}

/// What is wrong with `text` as a [`Text`], if anything.
pub fn text_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        Some("must not be empty".into())
    } else if text.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else if text.chars().count() > MAX_TEXT {
        Some(format!("must be at most {MAX_TEXT} characters"))
    } else {
        None
    }
}

inline_schema!(
    Text,
    string_schema()
        .min_length(Some(1))
        .max_length(Some(MAX_TEXT))
);

/// A time: RFC 3339 with a zone offset (without one it is a 400), kept to
/// the microsecond like every time of the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Time(pub DateTime<Utc>);

impl Time {
    fn parse(value: Value) -> Result<Self, String> {
        let Value::String(text) = value else {
            return Err("must be an RFC 3339 time string".into());
        };
        parse_time(&text).map(Time)
    }
}

/// An RFC 3339 time with a zone offset whose UTC year is 1 to 9999, the years
/// RFC 3339 can write: every time tasklog takes is written back in UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let Ok(time) = DateTime::parse_from_rfc3339(text) else {
        return Err(
            "must be an RFC 3339 time with a zone offset, like 2017-02-06T02:37:46Z".into(),
        );
    };
    let time = time.with_timezone(&Utc);
    if !(1..=9999).contains(&chrono::Datelike::year(&time)) {
        return Err("must be in the years 1 to 9999 in UTC".into());
    }
    Ok(tasklog_events::envelope::truncate_to_micros(time))
}

inline_schema!(
    Time,
    string_schema().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);

/// Any JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    fn parse(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(object) => Ok(JsonObject(object)),
            _ => Err("must be a JSON object".into()),
        }
    }
}

inline_schema!(JsonObject, ObjectBuilder::new().schema_type(Type::Object));

/// What a worker reports of a run (a result, progress): any JSON, at most
/// [`MAX_REPORT_BYTES`] written out.
#[derive(Clone, Debug, PartialEq)]
pub struct Report(pub Value);

/// Largest result or progress a worker may report, as JSON text.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;

impl Report {
    fn parse(value: Value) -> Result<Self, String> {
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |json| json.len());
        if size > MAX_REPORT_BYTES {
            return Err(format!("must be at most {MAX_REPORT_BYTES} bytes of JSON"));
        }
        Ok(Report(value))
    }
}

inline_schema!(Report, ObjectBuilder::new());

/// Key-value labels, by the label rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    fn parse(value: Value) -> Result<Self, String> {
        let labels: BTreeMap<String, String> = serde_json::from_value(value)
            .map_err(|_| "must be an object of string values".to_owned())?;
        check_labels(&labels)?;
        Ok(Labels(labels))
    }
}

inline_schema!(
    Labels,
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(string_schema()))
);

/// Tags, by the tag rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tags(pub Vec<String>);

impl Tags {
    fn parse(value: Value) -> Result<Self, String> {
        let tags: Vec<String> =
            serde_json::from_value(value).map_err(|_| "must be an array of strings".to_owned())?;
        check_tags(&tags)?;
        Ok(Tags(tags))
    }
}

inline_schema!(Tags, ArrayBuilder::new().items(string_schema()));

/// The task types a claim takes: at least one.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskTypes(pub Vec<String>);

impl TaskTypes {
    fn parse(value: Value) -> Result<Self, String> {
        let types: Vec<String> =
            serde_json::from_value(value).map_err(|_| "must be an array of strings".to_owned())?;
        if types.is_empty() {
            return Err("must name at least one task type".into());
        }
        Ok(TaskTypes(types))
    }
}

inline_schema!(
    TaskTypes,
    ArrayBuilder::new()
        .items(string_schema())
        .min_items(Some(1))
);

/// A label selector, like `env=prod,tier!=batch`.
#[derive(Clone, Debug)]
pub struct LabelSelector(pub Selector);

impl LabelSelector {
    fn parse(value: Value) -> Result<Self, String> {
        match value {
            Value::String(text) => text.parse().map(LabelSelector),
            _ => Err("must be a string".into()),
        }
    }
}

inline_schema!(LabelSelector, string_schema());

parsed_from_json!(
    Text,
    Time,
    JsonObject,
    Report,
    Labels,
    Tags,
    TaskTypes,
    LabelSelector
);

/// A whole number from `MIN` to `MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranged<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Ranged<MIN, MAX> {
    /// Fits a `u32` when `MAX` does, which callers choose.
    pub fn get(self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> Deserr<BodyError> for Ranged<MIN, MAX> {
    fn deserialize_from_value<V: IntoValue>(
        value: deserr::Value<V>,
        location: ValuePointerRef,
    ) -> Result<Self, BodyError> {
        match value {
            deserr::Value::Integer(n) if (MIN..=MAX).contains(&n) => Ok(Ranged(n)),
            deserr::Value::Integer(_) | deserr::Value::NegativeInteger(_) => Err(BodyError::at(
                location,
                format!("must be from {MIN} to {MAX}"),
            )),
            _ => Err(BodyError::at(
                location,
                format!("must be a whole number from {MIN} to {MAX}"),
            )),
        }
    }
}

impl<const MIN: u64, const MAX: u64> PartialSchema for Ranged<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(MIN as f64))
            .maximum(Some(MAX as f64))
            .into()
    }
}

impl<const MIN: u64, const MAX: u64> ToSchema for Ranged<MIN, MAX> {}

/// Implements `Serialize` for a field type as its inner value, so a client
/// writes bodies with the types the server reads them with.
macro_rules! serialized_as_inner {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }
    )*};
}

serialized_as_inner!(Text, JsonObject, Report, Labels, Tags, TaskTypes);

impl<const MIN: u64, const MAX: u64> Serialize for Ranged<MIN, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// As the API writes times: UTC, RFC 3339, microseconds.
impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::tasks::wire_time(self.0).serialize(serializer)
    }
}

impl Serialize for LabelSelector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserr)]
    #[deserr(error = BodyError, rename_all = camelCase, deny_unknown_fields = unknown_field::<Probe>)]
    struct Probe {
        name: Text,
        at: Time,
        lease_seconds: Ranged<1, 60>,
        #[deserr(default)]
        tags: Option<Tags>,
        inner: Option<Inner>,
    }

    impl Noun for Probe {
        const NOUN: &'static str = "a probe";
    }

    #[derive(Debug, Deserr)]
    #[deserr(error = BodyError, deny_unknown_fields)]
    struct Inner {
        count: u32,
    }

    fn problems(body: Value) -> Map<String, Value> {
        match deserr::deserialize::<Probe, Value, BodyError>(body) {
            Err(BodyError::Fields(details)) => details,
            other => panic!("expected bad fields, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_named_by_its_path() {
        let details = problems(json!({
            "name": " ", "at": "2030-01-01T00:00:00", "leaseSeconds": 0,
            "tags": 5, "inner": {"count": -1, "extra": 1}, "colour": "red"
        }));
        assert_eq!(
            Value::Object(details),
            json!({
                "name": "must not be empty",
                "at": "must be an RFC 3339 time with a zone offset, like 2017-02-06T02:37:46Z",
                "leaseSeconds": "must be from 1 to 60",
                "tags": "must be an array of strings",
                "inner.count": "must be a whole number",
                "inner.extra": "is not a known field",
                "colour": "is not a field of a probe",
            })
        );
    }

    #[test]
    fn missing_and_null_fields_are_told_apart() {
        let details = problems(json!({"at": null, "inner": null}));
        assert_eq!(
            Value::Object(details),
            json!({
                "name": "is required",
                "at": "must be an RFC 3339 time string",
                "leaseSeconds": "is required",
            })
        );
    }

    #[test]
    fn a_body_that_is_no_object_says_so() {
        let result = deserr::deserialize::<Probe, Value, BodyError>(json!([1, 2]));
        assert!(matches!(result, Err(BodyError::NotAnObject)));
    }

    #[test]
    fn a_good_body_is_read() {
        let probe: Probe = deserr::deserialize::<_, _, BodyError>(json!({
            "name": "x", "at": "2030-01-01T01:00:00+01:00", "leaseSeconds": 60, "inner": {"count": 3}
        }))
        .unwrap();
        assert_eq!(probe.name, Text("x".into()));
        assert_eq!(probe.at.0.to_rfc3339(), "2030-01-01T00:00:00+00:00");
        assert_eq!(probe.lease_seconds.get(), 60);
        assert!(probe.tags.is_none());
        assert_eq!(probe.inner.unwrap().count, 3);
    }
}
