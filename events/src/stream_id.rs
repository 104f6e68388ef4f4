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

/// `stream_id!(/// doc  Name, StreamVariant)`: the id type, its stream and parsing.
/// New ids are UUIDv7, so new ones sort after old ones and the store's stream
/// index grows at its end instead of everywhere.
macro_rules! stream_id {
    ($(#[$doc:meta])* $name:ident, $variant:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            /// The stream that holds this one's events.
            pub fn stream(&self) -> String {
                $crate::StreamName::$variant(*self).to_string()
            }

            /// Whose events a stream holds, if it is one of these streams.
            pub fn from_stream(stream: &str) -> Option<Self> {
                match $crate::StreamName::parse(stream)? {
                    $crate::StreamName::$variant(id) => Some(id),
                    _ => None,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0.simple())
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

pub(crate) use stream_id;
