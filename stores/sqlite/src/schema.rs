//! The SQLite file format: tables, migrations, and how a row becomes an event.

use chrono::DateTime;
use rusqlite::{Connection, Row};
use uuid::Uuid;

use tasklog_events::envelope::{Metadata, Position, RecordedEvent};
use tasklog_events::store::StorageError;

/// Migrations in order; `PRAGMA user_version` counts how many a file has had.
/// Append new ones; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the log.
    "CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream         TEXT    NOT NULL,
        revision       INTEGER NOT NULL,
        event_id       TEXT    NOT NULL,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        recorded_at    INTEGER NOT NULL, -- microseconds since 1970-01-01 UTC
        payload        TEXT    NOT NULL, -- JSON
        actor          TEXT,
        request_id     TEXT,
        causation_id   TEXT,
        hash           BLOB    NOT NULL
     );
     CREATE UNIQUE INDEX events_stream_revision ON events (stream, revision);
     CREATE UNIQUE INDEX events_event_id ON events (event_id);
     -- For people with an SQLite shell: times and hashes as text.
     CREATE VIEW events_readable AS
        SELECT position, stream, revision, event_id, event_type, schema_version,
               strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
               payload, actor, request_id, causation_id, lower(hex(hash)) AS hash
        FROM events;",
    // 2: the trace context of the request that appended each event.
    "ALTER TABLE events ADD COLUMN traceparent TEXT;",
];

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let applied: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()
}

/// The columns [`event_from_row`] reads, in its order.
pub(super) const EVENT_COLUMNS: &str = "position, stream, revision, event_id, event_type, \
     schema_version, recorded_at, payload, actor, request_id, causation_id, hash, traceparent";

pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let position: i64 = row.get(0)?;
    let corrupt = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(StorageError::new(format!(
                "position {position}: bad {what}"
            ))),
        )
    };
    // Ids are parsed from the row's text in place, not copied into a String first.
    let id = row.get_ref(3)?.as_str()?;
    let causation_id = row.get_ref(10)?.as_str_or_null()?;
    let hash = row.get_ref(11)?.as_blob()?;
    Ok(RecordedEvent {
        position: Position(position as u64),
        stream: row.get(1)?,
        revision: row.get::<_, i64>(2)? as u64,
        id: Uuid::parse_str(id).map_err(|_| corrupt("event id"))?,
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        recorded_at: DateTime::from_timestamp_micros(row.get(6)?)
            .ok_or_else(|| corrupt("recorded time"))?,
        payload: row.get(7)?,
        metadata: Metadata {
            actor: row.get(8)?,
            request_id: row.get(9)?,
            causation_id: causation_id
                .map(|id| Uuid::parse_str(id).map_err(|_| corrupt("causation id")))
                .transpose()?,
            traceparent: row.get(12)?,
        },
        hash: <[u8; 32]>::try_from(hash).map_err(|_| corrupt("hash"))?,
    })
}
