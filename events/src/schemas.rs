//! The JSON Schema of every event type and version, as checked in under
//! `schemas/events/`. The test below fails when the Rust types and the files
//! drift apart; `TASKLOG_UPDATE_SCHEMAS=1 cargo test` rewrites the files.

use crate::consumer_event::ConsumerEvent;
use crate::idempotency_event::IdempotencyEvent;
use crate::queue_event::QueueEvent;
use crate::schedule_event::ScheduleEvent;
use crate::task_event::TaskEvent;

/// `(file name, pretty JSON)` for every event type and version.
pub fn event_schema_files() -> Vec<(String, String)> {
    TaskEvent::schemas()
        .into_iter()
        .chain(ScheduleEvent::schemas())
        .chain(QueueEvent::schemas())
        .chain(IdempotencyEvent::schemas())
        .chain(ConsumerEvent::schemas())
        .map(|(event_type, version, schema)| {
            let json = serde_json::to_string_pretty(&schema).expect("schemas serialise");
            (format!("{event_type}.v{version}.json"), json + "\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn checked_in_event_schemas_match_the_types() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/events");
        let update = std::env::var_os("TASKLOG_UPDATE_SCHEMAS").is_some();
        let files = event_schema_files();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, json) in &files {
            let path = dir.join(name);
            if update {
                std::fs::write(&path, json).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == *json,
                "{} is out of date; run TASKLOG_UPDATE_SCHEMAS=1 cargo test and commit it",
                path.display()
            );
        }
        let expected: BTreeSet<_> = files.into_iter().map(|(name, _)| name).collect();
        let present: BTreeSet<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            present, expected,
            "schemas/events holds files no event type has"
        );
    }
}
