//! A task's data: the JSON object its creator gave, which tasklog carries
//! but never looks inside.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object kept as its text. It is parsed where it comes in (a
/// request body, an event's payload) and from there on copied as text: into
/// the log, the views and every answer. A parsed map of two short fields
/// takes about 700 bytes and a dozen allocations; its text, one.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct TaskData(Box<RawValue>);

impl TaskData {
    /// The object's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The object, parsed.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.json()).expect("task data is a JSON object")
    }
}

impl From<&Map<String, Value>> for TaskData {
    fn from(object: &Map<String, Value>) -> Self {
        TaskData(serde_json::value::to_raw_value(object).expect("a JSON map serializes"))
    }
}

impl Default for TaskData {
    /// `{}`.
    fn default() -> Self {
        TaskData::from(&Map::new())
    }
}

/// The same text: it is what every answer carries.
impl PartialEq for TaskData {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl fmt::Debug for TaskData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl<'de> Deserialize<'de> for TaskData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // A raw value's text holds no whitespace around the value.
        if !raw.get().starts_with('{') {
            return Err(serde::de::Error::custom("task data must be a JSON object"));
        }
        Ok(TaskData(raw))
    }
}

/// Described as the map it is, so the event schemas read as before.
impl schemars::JsonSchema for TaskData {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <Map<String, Value> as schemars::JsonSchema>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Map<String, Value> as schemars::JsonSchema>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_copied_as_the_text_it_came_as() {
        let data: TaskData = serde_json::from_str(r#"{"to":"ada@example.com","n":[1,2]}"#).unwrap();
        assert_eq!(data.json(), r#"{"to":"ada@example.com","n":[1,2]}"#);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"to":"ada@example.com","n":[1,2]}"#
        );
        let spaced: TaskData =
            serde_json::from_str(r#" {"to": "ada@example.com", "n": [1, 2]}"#).unwrap();
        assert_eq!(spaced.json(), r#"{"to": "ada@example.com", "n": [1, 2]}"#);
        assert_ne!(data, spaced, "answers would differ");
        assert_eq!(TaskData::default().json(), "{}");
    }

    #[test]
    fn data_that_is_not_an_object_is_refused() {
        for text in [r#"[1]"#, r#""text""#, "1", "null"] {
            assert!(serde_json::from_str::<TaskData>(text).is_err(), "{text}");
        }
        let from_value: TaskData = serde_json::from_value(json!({"a": 1})).unwrap();
        assert_eq!(from_value.json(), r#"{"a":1}"#);
    }
}
