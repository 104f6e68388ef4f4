//! The PostgreSQL tables, their migrations, and how a row becomes an event.

use tokio_postgres::{Client, Row};

use tasklog_events::envelope::{Metadata, Position, RecordedEvent};
use tasklog_events::hash_chain::GENESIS;
use tasklog_events::store::StorageError;

/// Migrations in order; `schema_migrations` records which ones a schema has had.
/// Append new ones; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the log, and its head: the row every append locks, so appends take
    // positions one after another and commit in position order.
    "CREATE TABLE events (
        position       bigint      PRIMARY KEY,
        stream         text        NOT NULL,
        revision       bigint      NOT NULL,
        event_id       uuid        NOT NULL UNIQUE,
        event_type     text        NOT NULL,
        schema_version integer     NOT NULL,
        recorded_at    timestamptz NOT NULL,
        payload        json        NOT NULL, -- json, not jsonb: the text exactly as hashed
        actor          text,
        request_id     text,
        causation_id   uuid,
        hash           bytea       NOT NULL,
        UNIQUE (stream, revision)
     );
     CREATE TABLE log_head (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        position bigint  NOT NULL,
        hash     bytea   NOT NULL
     );",
    // 2: the read models the nodes share (read_models.rs): a row per task
    // with its list indexes, the small models as JSON, and the position
    // they are folded to.
    READ_MODEL_TABLES,
    // 3: the trace context of the request that appended each event.
    "ALTER TABLE events ADD COLUMN traceparent text;",
    // 4: which generation of the read models the nodes use: 0, the tables
    // of migration 2 in this schema, or n, the same tables in the schema
    // `<schema>_views_<n>` a rebuild beside serving nodes made.
    "CREATE TABLE views_generation (
        only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        generation integer NOT NULL,
        last_made  integer NOT NULL  -- numbers are never given out twice
     );
     INSERT INTO views_generation (generation, last_made) VALUES (0, 0);",
];

/// The read models' tables, in the search path's schema: migration 2, and
/// every later generation's schema. A migration that changes them must
/// change the generation `views_generation` names instead (generation 0's
/// tables are gone once a rebuild beside the nodes has replaced them), and
/// this text for the generations made after it.
pub(super) const READ_MODEL_TABLES: &str = "CREATE TABLE read_model (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version  integer NOT NULL,  -- READ_MODEL_VERSION of the code that wrote the rows
        position bigint  NOT NULL   -- the last log position folded into them
     );
     INSERT INTO read_model (version, position) VALUES (0, 0);
     CREATE TABLE tasks (
        created_position bigint PRIMARY KEY,  -- the listing order and the cursor
        id               uuid   NOT NULL UNIQUE,
        state            text   NOT NULL,
        type             text   NOT NULL,
        finished_time    bigint,              -- µs since 1970 once completed or failed
        view             text   NOT NULL      -- JSON: the whole task view
     );
     CREATE INDEX tasks_state ON tasks (state, created_position);
     CREATE INDEX tasks_type ON tasks (type, created_position);
     CREATE INDEX tasks_type_state ON tasks (type, state, created_position);
     CREATE INDEX tasks_finished ON tasks (finished_time) WHERE finished_time IS NOT NULL;
     CREATE TABLE task_labels (
        key text NOT NULL, value text NOT NULL, created_position bigint NOT NULL,
        PRIMARY KEY (key, value, created_position));
     CREATE INDEX task_labels_task ON task_labels (created_position);
     CREATE TABLE task_tags (
        tag text NOT NULL, created_position bigint NOT NULL,
        PRIMARY KEY (tag, created_position));
     CREATE INDEX task_tags_task ON task_tags (created_position);
     CREATE TABLE small_models (
        model text NOT NULL, key text NOT NULL, value text NOT NULL,
        PRIMARY KEY (model, key));";

/// Creates `schema` if needed and brings it up to date. Several nodes may start
/// at once: an advisory lock makes them take turns.
pub(super) async fn migrate(
    client: &mut Client,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tasklog migrations ' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let applied: i64 = tx
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await?
        .get(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(migration).await?;
        let version = index as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        if version == 1 {
            tx.execute(
                "INSERT INTO log_head (position, hash) VALUES (0, $1)",
                &[&&GENESIS[..]],
            )
            .await?;
        }
    }
    tx.commit().await
}

/// Whether `name` can be used as a schema name without quoting.
pub(super) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// The columns [`event_from_row`] reads, in its order.
pub(super) const EVENT_COLUMNS: &str = "position, stream, revision, event_id, event_type, \
     schema_version, recorded_at, payload::text, actor, request_id, causation_id, hash, traceparent";

pub(super) fn event_from_row(row: &Row) -> Result<RecordedEvent, StorageError> {
    let position: i64 = row.get(0);
    let hash: &[u8] = row.get(11);
    Ok(RecordedEvent {
        position: Position(position as u64),
        stream: row.get(1),
        revision: row.get::<_, i64>(2) as u64,
        id: row.get(3),
        event_type: row.get(4),
        schema_version: row.get::<_, i32>(5) as u32,
        recorded_at: row.get(6),
        payload: row.get(7),
        metadata: Metadata {
            actor: row.get(8),
            request_id: row.get(9),
            causation_id: row.get(10),
            traceparent: row.get(12),
        },
        hash: hash
            .try_into()
            .map_err(|_| StorageError::new(format!("position {position}: bad hash")))?,
    })
}
