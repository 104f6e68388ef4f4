//! One declaration per family of events (task, schedule, ...): the enum, the
//! stored type names and versions, encoding, decoding and the schema list come
//! from it, so they cannot disagree.

/// A stored event this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type} v{schema_version}")]
    UnknownType {
        event_type: String,
        schema_version: u32,
    },
    #[error("bad {event_type} payload: {reason}")]
    Payload { event_type: String, reason: String },
}

/// What the write path needs of every family of events: to wrap one for appending.
pub trait DomainEvent {
    /// The event with a fresh event id, recorded at `recorded_at`.
    fn to_new_event(
        &self,
        recorded_at: chrono::DateTime<chrono::Utc>,
        metadata: crate::envelope::Metadata,
    ) -> crate::envelope::NewEvent;
}

/// Reads one payload as `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    event_type: &str,
    payload: &str,
) -> Result<T, DecodeError> {
    serde_json::from_str(payload).map_err(|e| DecodeError::Payload {
        event_type: event_type.to_owned(),
        reason: e.to_string(),
    })
}

/// `event_enum! { /// doc  Name { Variant(Payload) = "StoredName" v 2, ... }
/// older { "StoredName" v 1 as PayloadV1 => Variant } }`: the optional `older`
/// list names earlier versions this build still reads, each upcast by `From`.
macro_rules! event_enum {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident($payload:ident) = $name:literal v $version:literal),* $(,)? }
     $(older { $($old_name:literal v $old_version:literal as $old_payload:ident => $old_variant:ident),* $(,)? })?) => {
        $(#[$doc])*
        // Events are decided and decoded one at a time: boxing the large ones buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq)]
        pub enum $enum {
            $($variant($payload)),*
        }

        impl $enum {
            /// The type name stored with the event.
            pub fn event_type(&self) -> &'static str {
                match self { $($enum::$variant(_) => $name),* }
            }

            /// The schema version this build writes.
            pub fn schema_version(&self) -> u32 {
                match self { $($enum::$variant(_) => $version),* }
            }

            fn payload_json(&self) -> String {
                let json = match self { $($enum::$variant(p) => serde_json::to_string(p)),* };
                json.expect("events serialise to JSON")
            }

            /// Reads a stored payload of any version this build knows, upcasting
            /// older versions to the current one.
            pub fn decode(event_type: &str, schema_version: u32, payload: &str) -> Result<Self, $crate::event_enum::DecodeError> {
                match (event_type, schema_version) {
                    $(($name, $version) => $crate::event_enum::parse(event_type, payload).map($enum::$variant),)*
                    $($(($old_name, $old_version) => $crate::event_enum::parse::<$old_payload>(event_type, payload)
                        .map(|old| $enum::$old_variant(old.into())),)*)?
                    _ => Err($crate::event_enum::DecodeError::UnknownType { event_type: event_type.to_owned(), schema_version }),
                }
            }

            /// `(type, version, JSON Schema)` of every event this build can read.
            pub fn schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
                vec![
                    $($(($old_name, $old_version, schemars::schema_for!($old_payload)),)*)?
                    $(($name, $version, schemars::schema_for!($payload))),*
                ]
            }

            /// Wraps the event for appending, with a fresh event id.
            pub fn to_new_event(&self, recorded_at: chrono::DateTime<chrono::Utc>, metadata: $crate::envelope::Metadata) -> $crate::envelope::NewEvent {
                $crate::envelope::NewEvent {
                    id: uuid::Uuid::now_v7(),
                    event_type: self.event_type().to_owned(),
                    schema_version: self.schema_version(),
                    recorded_at: $crate::envelope::truncate_to_micros(recorded_at),
                    payload: self.payload_json(),
                    metadata,
                }
            }
        }

        impl $crate::event_enum::DomainEvent for $enum {
            fn to_new_event(&self, recorded_at: chrono::DateTime<chrono::Utc>, metadata: $crate::envelope::Metadata) -> $crate::envelope::NewEvent {
                $enum::to_new_event(self, recorded_at, metadata)
            }
        }
    };
}

pub(crate) use event_enum;
