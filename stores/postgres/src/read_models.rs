//! Read models in the shared schema: a row per task with its list indexes,
//! and the small models stored whole, beside the log they are folded from.
//!
//! Every node folds the same log into the same rows, so the nodes share one
//! set of tables: a node stores a batch only if the stored position has not
//! passed it yet, under a lock on the position's row, so rows are never
//! folded twice nor a batch skipped. A node that lags another reads rows
//! newer than its own views; its runner folds such a task from the log
//! instead of from the row.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use tasklog_events::{Position, StorageError, TaskId};
use tasklog_projections::{
    Changes, ReadModelError, ReadModelTables, Snapshot, TaskQuery, TaskView, READ_MODEL_VERSION,
};

use crate::Connect;

/// Connections a node keeps for its read models: point reads, lists and
/// the runner's commits.
const CONNECTIONS: usize = 8;

/// The read-model tables of one schema.
#[derive(Clone)]
pub struct PostgresReadModels {
    pool: Pool,
}

impl PostgresReadModels {
    /// Connects to the schema the store `url` names, creating or migrating
    /// its tables. Rows of another `READ_MODEL_VERSION` are dropped, so the
    /// nodes fold the log into them again.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let (connect, schema) = Connect::from_url(url)?;
        drop(connect.migrated(&schema).await?);
        let tables = PostgresReadModels {
            pool: connect.pool(CONNECTIONS)?,
        };
        tables
            .keep_version()
            .await
            .map_err(|e| StorageError::caused_by("opening the read models", e))?;
        Ok(tables)
    }

    /// Drops the rows if they have another shape than the code's.
    async fn keep_version(&self) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let (stored, _) = lock_read_model(&tx).await?;
        if stored != READ_MODEL_VERSION as i32 {
            tracing::warn!(
                stored,
                code = READ_MODEL_VERSION,
                "the stored read models have another shape; they are built again from the log"
            );
            clear(&tx).await.map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadModelError> {
        self.pool
            .get()
            .await
            .map_err(|e| ReadModelError(format!("connecting to PostgreSQL: {e}")))
    }
}

#[async_trait]
impl ReadModelTables for PostgresReadModels {
    async fn load(&self) -> Result<Snapshot, ReadModelError> {
        let mut client = self.client().await?;
        // One snapshot of the database: the rows and the position agree.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(failed)?;
        let position: i64 = tx
            .query_one("SELECT position FROM read_model", &[])
            .await
            .map_err(failed)?
            .get(0);
        let hot = tx
            .query(
                "SELECT view FROM tasks WHERE state IN ('pending', 'running') ORDER BY created_position",
                &[],
            )
            .await
            .map_err(failed)?;
        let mut snapshot = Snapshot {
            position: Position(position as u64),
            hot: hot
                .iter()
                .map(|row| decode(row.get(0)))
                .collect::<Result<_, _>>()?,
            ..Snapshot::default()
        };
        let small = tx
            .query("SELECT model, key, value FROM small_models", &[])
            .await
            .map_err(failed)?;
        for row in &small {
            let (model, key, value): (&str, String, &str) = (row.get(0), row.get(1), row.get(2));
            match model {
                "schedule" => snapshot.schedules.push(decode(value)?),
                "queue" => snapshot.queues.push((key, decode(value)?)),
                "consumer" => snapshot.consumers.push((key, decode(value)?)),
                "stats" => snapshot.stats = decode(value)?,
                _ => {}
            }
        }
        tx.commit().await.map_err(failed)?;
        Ok(snapshot)
    }

    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskView>, ReadModelError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let client = self.client().await?;
        let select = client
            .prepare_cached("SELECT view FROM tasks WHERE id = ANY($1)")
            .await
            .map_err(failed)?;
        let rows = client.query(&select, &[&ids]).await.map_err(failed)?;
        rows.iter().map(|row| decode(row.get(0))).collect()
    }

    async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError> {
        let mut sql = String::from("SELECT t.view FROM ");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            format!("${}", args.len())
        };
        // The rarest term drives the read: a label, then a tag, then state and type.
        if let Some((key, value)) = &query.label {
            sql += &format!(
                "task_labels AS l JOIN tasks AS t USING (created_position)
                 WHERE l.key = {} AND l.value = {} AND l.created_position > ",
                arg(Box::new(key.clone())),
                arg(Box::new(value.clone()))
            );
        } else if let Some(tag) = &query.tag {
            sql += &format!(
                "task_tags AS g JOIN tasks AS t USING (created_position)
                 WHERE g.tag = {} AND g.created_position > ",
                arg(Box::new(tag.clone()))
            );
        } else {
            sql += "tasks AS t WHERE t.created_position > ";
        }
        sql += &arg(Box::new(query.after.0 as i64));
        if let Some(state) = query.state {
            sql += &format!(" AND t.state = {}", arg(Box::new(state.as_str())));
        }
        if let Some(task_type) = &query.task_type {
            sql += &format!(" AND t.type = {}", arg(Box::new(task_type.clone())));
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        sql += &format!(
            " ORDER BY t.created_position LIMIT {}",
            arg(Box::new(limit))
        );
        let client = self.client().await?;
        let select = client.prepare_cached(&sql).await.map_err(failed)?;
        let args: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|arg| &**arg as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&select, &args).await.map_err(failed)?;
        rows.iter().map(|row| decode(row.get(0))).collect()
    }

    async fn commit(&self, changes: Arc<Changes>) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let (_, stored) = lock_read_model(&tx).await?;
        if stored >= changes.position {
            // Another node stored this batch already, folded from the same log.
            return Ok(());
        }
        if stored < changes.from {
            return Err(ReadModelError(format!(
                "the stored read models are at position {stored}, before this batch's start \
                 {}: they were cleared or rebuilt meanwhile",
                changes.from
            )));
        }
        store(&tx, &changes).await.map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn clear(&self) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        lock_read_model(&tx).await?;
        clear(&tx).await.map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn drop_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, ReadModelError> {
        let client = self.client().await?;
        // Nodes drop side by side: each skips the rows another is dropping.
        let dropped = client
            .execute(
                "WITH chosen AS (
                    SELECT created_position FROM tasks
                    WHERE finished_time IS NOT NULL AND finished_time < $1
                    ORDER BY finished_time LIMIT $2 FOR UPDATE SKIP LOCKED
                 ), labels AS (
                    DELETE FROM task_labels WHERE created_position IN (SELECT * FROM chosen)
                 ), tags AS (
                    DELETE FROM task_tags WHERE created_position IN (SELECT * FROM chosen)
                 )
                 DELETE FROM tasks WHERE created_position IN (SELECT * FROM chosen)",
                &[
                    &before.timestamp_micros(),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(dropped as usize)
    }

    async fn begin_rebuild(&self) -> Result<(), ReadModelError> {
        self.clear().await
    }

    async fn finish_rebuild(&self) -> Result<(), ReadModelError> {
        let client = self.client().await?;
        client
            .batch_execute("ANALYZE tasks, task_labels, task_tags")
            .await
            .map_err(failed)
    }
}

/// The stored version and position, their row locked until `tx` ends: the
/// one lock that orders the nodes' commits, clears and version checks.
async fn lock_read_model(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(i32, Position), ReadModelError> {
    let row = tx
        .query_one("SELECT version, position FROM read_model FOR UPDATE", &[])
        .await
        .map_err(failed)?;
    Ok((row.get(0), Position(row.get::<_, i64>(1) as u64)))
}

/// Empties the tables, in the transaction that holds the position's row.
async fn clear(tx: &tokio_postgres::Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute("TRUNCATE tasks, task_labels, task_tags, small_models")
        .await?;
    tx.execute(
        "UPDATE read_model SET version = $1, position = 0",
        &[&(READ_MODEL_VERSION as i32)],
    )
    .await?;
    Ok(())
}

/// Writes a batch's rows and its position: one statement per table, the rows
/// passed as arrays.
async fn store(
    tx: &tokio_postgres::Transaction<'_>,
    changes: &Changes,
) -> Result<(), tokio_postgres::Error> {
    let mut tasks = TaskColumns::default();
    let mut labels = (Vec::new(), Vec::new(), Vec::new());
    let mut tags = (Vec::new(), Vec::new());
    for task in &changes.tasks {
        let created = task.created_position.0 as i64;
        tasks.created.push(created);
        tasks.id.push(task.id.0);
        tasks.state.push(task.state.as_str());
        tasks.task_type.push(task.task_type.as_str());
        tasks.finished.push(
            task.state
                .is_finished()
                .then(|| task.modified_time.timestamp_micros()),
        );
        tasks.view.push(encode(task));
        // Labels and tags are set when a task is created and never change.
        if task.created_position > changes.from {
            for (key, value) in &task.labels {
                labels.0.push(key.as_str());
                labels.1.push(value.as_str());
                labels.2.push(created);
            }
            for tag in &task.tags {
                tags.0.push(tag.as_str());
                tags.1.push(created);
            }
        }
    }
    if !tasks.created.is_empty() {
        tx.execute(
            "INSERT INTO tasks (created_position, id, state, type, finished_time, view)
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[])
             ON CONFLICT (created_position) DO UPDATE SET
                state = excluded.state, finished_time = excluded.finished_time, view = excluded.view",
            &[&tasks.created, &tasks.id, &tasks.state, &tasks.task_type, &tasks.finished, &tasks.view],
        )
        .await?;
    }
    if !labels.0.is_empty() {
        tx.execute(
            "INSERT INTO task_labels (key, value, created_position)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
            &[&labels.0, &labels.1, &labels.2],
        )
        .await?;
    }
    if !tags.0.is_empty() {
        tx.execute(
            "INSERT INTO task_tags (tag, created_position)
             SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
            &[&tags.0, &tags.1],
        )
        .await?;
    }
    let mut small = (Vec::new(), Vec::new(), Vec::new());
    let mut put = |model: &'static str, key: String, value: String| {
        small.0.push(model);
        small.1.push(key);
        small.2.push(value);
    };
    let mut deleted_schedules = Vec::new();
    for (id, schedule) in &changes.schedules {
        match schedule {
            Some(schedule) => put("schedule", id.to_string(), encode(schedule)),
            None => deleted_schedules.push(id.to_string()),
        }
    }
    for (name, settings) in &changes.queues {
        put("queue", name.clone(), encode(settings));
    }
    for (name, consumer) in &changes.consumers {
        put("consumer", name.clone(), encode(consumer));
    }
    if let Some(stats) = &changes.stats {
        put("stats", String::new(), encode(stats));
    }
    if !small.0.is_empty() {
        tx.execute(
            "INSERT INTO small_models (model, key, value)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
             ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
            &[&small.0, &small.1, &small.2],
        )
        .await?;
    }
    if !deleted_schedules.is_empty() {
        tx.execute(
            "DELETE FROM small_models WHERE model = 'schedule' AND key = ANY($1)",
            &[&deleted_schedules],
        )
        .await?;
    }
    tx.execute(
        "UPDATE read_model SET position = $1",
        &[&(changes.position.0 as i64)],
    )
    .await?;
    Ok(())
}

/// The columns of a batch's task rows.
#[derive(Default)]
struct TaskColumns<'a> {
    created: Vec<i64>,
    id: Vec<Uuid>,
    state: Vec<&'a str>,
    task_type: Vec<&'a str>,
    finished: Vec<Option<i64>>,
    view: Vec<String>,
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("a read model serializes to JSON")
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ReadModelError> {
    serde_json::from_str(text).map_err(|e| ReadModelError(format!("a stored row: {e}")))
}

fn failed(error: tokio_postgres::Error) -> ReadModelError {
    ReadModelError(error.to_string())
}
