//! Ids of the things that own a stream (tasks, schedules): 32 lowercase hex
//! characters, made by the server, each with its [`StreamName`](crate::StreamName).

/// Reads an id in its one written form: 32 lowercase hex characters.
pub fn parse_hex_id(text: &str) -> Option<uuid::Uuid> {
    let is_canonical = text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_canonical
        .then(|| uuid::Uuid::parse_str(text).ok())
        .flatten()
}

#[derive(Debug, thiserror::Error)]
#[error("an id is 32 lowercase hex characters")]
pub struct InvalidId;

/// `stream_id!(/// doc  Name)`: the id type, its text form and parsing.
/// New ids are UUIDv7, so new ones sort after old ones and the store's stream
/// index grows at its end instead of everywhere.
macro_rules! stream_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        /// The 32 hex characters, written straight from a buffer (ids are
        /// written several times a request; `uuid`'s `Display` pads and
        /// formats through `fmt` for each).
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut buffer = [0; 32];
                f.write_str(self.0.simple().encode_lower(&mut buffer))
            }
        }

        /// In payloads, as in URLs: the 32 hex characters.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        /// Described as the string it is written as, so event schemas read as before.
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                <String as schemars::JsonSchema>::schema_name()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <String as schemars::JsonSchema>::json_schema(generator)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::stream_id::InvalidId;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::stream_id::parse_hex_id(text)
                    .map($name)
                    .ok_or($crate::stream_id::InvalidId)
            }
        }
    };
}

stream_id! {
    /// A task's id: 32 lowercase hex characters, made by the server.
    TaskId
}

stream_id! {
    /// A schedule's id: 32 lowercase hex characters, like a task's.
    ScheduleId
}

impl ScheduleId {
    /// The task the run due at `run_time` creates. Derived, not random, so
    /// every node and every retry after a crash names the same task, and the
    /// store's expected revision lets only one of them create it.
    pub fn task_for_run(&self, run_time: chrono::DateTime<chrono::Utc>) -> TaskId {
        let micros = run_time.timestamp_micros().to_be_bytes();
        TaskId(uuid::Uuid::new_v5(&self.0, &micros))
    }
}
