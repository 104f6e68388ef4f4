//! Read models in the shared schema: a row per task with its list indexes,
//! and the small models stored whole, beside the log they are folded from.
//!
//! Every node folds the same log into the same rows, so the nodes share one
//! set of tables: a node stores a batch only if the stored position has not
//! passed it yet, under a lock on the position's row, so rows are never
//! folded twice nor a batch skipped. A node that lags another reads rows
//! newer than its own views; its runner folds such a task from the log
//! instead of from the row.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

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

/// The read-model tables of one schema: those of the generation the nodes
/// use (`views_generation`), which a rebuild beside serving nodes moves on.
/// Cheap to clone; clones share the generation in use.
#[derive(Clone)]
pub struct PostgresReadModels {
    /// The store's settings, its schema as the search path.
    connect: Connect,
    schema: String,
    live: Arc<RwLock<Generation>>,
    /// Whether these tables go where `views_generation` points when it
    /// moves (every node's), or stay on a generation being built.
    pub(crate) follows: Arc<AtomicBool>,
}

/// One generation of the tables, and connections whose search path is its schema.
#[derive(Clone)]
struct Generation {
    number: i32,
    pool: Pool,
}

/// The schema of generation `number` of the read models of `schema`.
pub(crate) fn generation_schema(schema: &str, number: i32) -> String {
    match number {
        0 => schema.to_owned(),
        n => format!("{schema}_views_{n}"),
    }
}

/// Whether `name` is a generation's schema rather than a store's.
pub(crate) fn is_generation_schema(name: &str) -> bool {
    name.rsplit_once("_views_")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Why an operation on one generation stopped.
enum Stopped {
    /// The nodes use generation `.0` now.
    Moved(i32),
    Failed(ReadModelError),
}

impl From<tokio_postgres::Error> for Stopped {
    fn from(error: tokio_postgres::Error) -> Self {
        Stopped::Failed(failed(error))
    }
}

impl From<ReadModelError> for Stopped {
    fn from(error: ReadModelError) -> Self {
        Stopped::Failed(error)
    }
}

impl PostgresReadModels {
    /// Connects to the schema the store `url` names, creating or migrating
    /// its tables, on the generation its nodes use. Rows of another
    /// `READ_MODEL_VERSION` are dropped, so the nodes fold the log into them again.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let (connect, schema) = Connect::from_url(url)?;
        let client = connect.migrated(&schema).await?;
        let named = named_generation(&client, &schema)
            .await
            .map_err(|e| StorageError::caused_by("reading the views' generation", e))?;
        drop(client);
        let tables = PostgresReadModels::on(connect, schema, named, true)?;
        tables
            .keep_version()
            .await
            .map_err(|e| StorageError::caused_by("opening the read models", e))?;
        Ok(tables)
    }

    /// The tables of generation `number`.
    pub(crate) fn on(
        connect: Connect,
        schema: String,
        number: i32,
        follows: bool,
    ) -> Result<Self, StorageError> {
        let generation = Generation::open(&connect, &schema, number)?;
        Ok(PostgresReadModels {
            connect,
            schema,
            live: Arc::new(RwLock::new(generation)),
            follows: Arc::new(AtomicBool::new(follows)),
        })
    }

    fn generation(&self) -> Generation {
        self.live.read().expect("views generation").clone()
    }

    /// Moves to generation `number`, which the nodes use now.
    fn move_to(&self, number: i32) -> Result<(), ReadModelError> {
        let generation = Generation::open(&self.connect, &self.schema, number)
            .map_err(|e| ReadModelError(e.to_string()))?;
        let mut live = self.live.write().expect("views generation");
        if live.number != number {
            tracing::info!(
                from = live.number,
                to = number,
                "the read models moved to a rebuilt generation"
            );
            *live = generation;
        }
        Ok(())
    }

    /// The generation the nodes use, if these tables follow it and it is
    /// not theirs.
    async fn moved(&self) -> Option<i32> {
        if !self.follows.load(Ordering::Relaxed) {
            return None;
        }
        let generation = self.generation();
        let client = generation.client().await.ok()?;
        let named = named_generation(&**client, &self.schema).await.ok()?;
        (named != generation.number).then_some(named)
    }

    /// Runs `operation` on the generation in use. When the nodes moved to
    /// another (a rebuild beside them), it runs again there: the rows it
    /// read or wrote were the old generation's, which is going away.
    async fn on_live<T, F, Fut>(&self, operation: F) -> Result<T, ReadModelError>
    where
        F: Fn(Generation) -> Fut,
        Fut: Future<Output = Result<T, Stopped>>,
    {
        let mut moves = 0;
        loop {
            let generation = self.generation();
            let number = generation.number;
            let moved_to = match operation(generation).await {
                Ok(done) => return Ok(done),
                Err(Stopped::Moved(to)) => to,
                // The old generation's tables may be gone already.
                Err(Stopped::Failed(error)) => match self.moved().await {
                    Some(to) if moves < 3 => to,
                    _ => return Err(error),
                },
            };
            if moved_to == number || moves >= 3 {
                return Err(ReadModelError(format!(
                    "the views' generation moved from {number} to {moved_to} and would not settle"
                )));
            }
            moves += 1;
            self.move_to(moved_to)?;
        }
    }

    /// Drops the rows if they have another shape than the code's.
    async fn keep_version(&self) -> Result<(), ReadModelError> {
        self.on_live(|generation| async move {
            let mut client = generation.client().await?;
            let tx = client.transaction().await?;
            let (stored, _) = self.lock(&generation, &tx).await?;
            if stored != READ_MODEL_VERSION as i32 {
                tracing::warn!(
                    stored,
                    code = READ_MODEL_VERSION,
                    "the stored read models have another shape; they are built again from the log"
                );
                clear(&tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The stored version and position, their row locked until `tx` ends:
    /// the one lock that orders the nodes' commits, clears and version
    /// checks. Stops if the nodes moved to another generation.
    async fn lock(
        &self,
        generation: &Generation,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(i32, Position), Stopped> {
        let row = tx
            .query_one("SELECT version, position FROM read_model FOR UPDATE", &[])
            .await?;
        // Read after the lock is held, in a statement of its own (so with a
        // snapshot taken after it): a promotion holds the same lock while it
        // moves the generation.
        self.still_named(generation, tx).await?;
        Ok((row.get(0), Position(row.get::<_, i64>(1) as u64)))
    }

    /// Stops with `Moved` if these tables follow the nodes' generation and
    /// `client` sees another named than `generation`.
    async fn still_named(
        &self,
        generation: &Generation,
        client: &impl tokio_postgres::GenericClient,
    ) -> Result<(), Stopped> {
        if self.follows.load(Ordering::Relaxed) {
            let named = named_generation(client, &self.schema).await?;
            if named != generation.number {
                return Err(Stopped::Moved(named));
            }
        }
        Ok(())
    }
}

impl Generation {
    fn open(connect: &Connect, schema: &str, number: i32) -> Result<Self, StorageError> {
        let connect = connect.clone().on(&generation_schema(schema, number));
        Ok(Generation {
            number,
            pool: connect.pool(CONNECTIONS)?,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadModelError> {
        self.pool
            .get()
            .await
            .map_err(|e| ReadModelError(format!("connecting to PostgreSQL: {e}")))
    }
}

/// The generation the nodes of `schema` use.
pub(crate) async fn named_generation(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
) -> Result<i32, tokio_postgres::Error> {
    let sql = format!("SELECT generation FROM {schema}.views_generation");
    Ok(client.query_one(&sql, &[]).await?.get(0))
}

/// The generations of `schema`'s views with a schema of their own (1 and up).
pub(crate) async fn generation_numbers(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
) -> Result<Vec<i32>, tokio_postgres::Error> {
    let prefix = format!("{schema}_views_");
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&prefix],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get::<_, &str>(0).strip_prefix(&prefix)?.parse().ok())
        .collect())
}

#[async_trait]
impl ReadModelTables for PostgresReadModels {
    async fn load(&self) -> Result<Snapshot, ReadModelError> {
        self.on_live(|generation| async move {
            let mut client = generation.client().await?;
            // One snapshot of the database: the rows and the position agree.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let position: i64 = tx
                .query_one("SELECT position FROM read_model", &[])
                .await?
                .get(0);
            let hot = tx
                .query(
                    "SELECT view FROM tasks WHERE state IN ('pending', 'running') ORDER BY created_position",
                    &[],
                )
                .await?;
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
                .await?;
            for row in &small {
                let (model, key, value): (&str, String, &str) =
                    (row.get(0), row.get(1), row.get(2));
                match model {
                    "schedule" => snapshot.schedules.push(decode(value)?),
                    "queue" => snapshot.queues.push((key, decode(value)?)),
                    "consumer" => snapshot.consumers.push((key, decode(value)?)),
                    "stats" => snapshot.stats = decode(value)?,
                    _ => {}
                }
            }
            // The generation's tables as the nodes use them, not one a
            // rebuild has just replaced.
            self.still_named(&generation, &*tx).await?;
            tx.commit().await?;
            Ok(snapshot)
        })
        .await
    }

    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskView>, ReadModelError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        self.on_live(|generation| {
            let ids = &ids;
            async move {
                let client = generation.client().await?;
                let select = client
                    .prepare_cached("SELECT view FROM tasks WHERE id = ANY($1)")
                    .await?;
                let rows = client.query(&select, &[ids]).await?;
                Ok(rows
                    .iter()
                    .map(|row| decode(row.get(0)))
                    .collect::<Result<_, _>>()?)
            }
        })
        .await
    }

    async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError> {
        let mut sql = String::from("SELECT t.view FROM ");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            format!("${}", args.len())
        };
        // The rarest term drives the read: a label, then a tag, then state and
        // type. The order is the driving index's, so that a page reads only its
        // rows instead of sorting every match.
        let order;
        if let Some((key, value)) = &query.label {
            order = "l.created_position";
            sql += &format!(
                "task_labels AS l JOIN tasks AS t USING (created_position)
                 WHERE l.key = {} AND l.value = {} AND l.created_position > ",
                arg(Box::new(key.clone())),
                arg(Box::new(value.clone()))
            );
        } else if let Some(tag) = &query.tag {
            order = "g.created_position";
            sql += &format!(
                "task_tags AS g JOIN tasks AS t USING (created_position)
                 WHERE g.tag = {} AND g.created_position > ",
                arg(Box::new(tag.clone()))
            );
        } else {
            order = "t.created_position";
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
        sql += &format!(" ORDER BY {order} LIMIT {}", arg(Box::new(limit)));
        let args: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|arg| &**arg as &(dyn ToSql + Sync))
            .collect();
        self.on_live(|generation| {
            let (sql, args) = (&sql, &args);
            async move {
                let client = generation.client().await?;
                let select = client.prepare_cached(sql).await?;
                let rows = client.query(&select, args).await?;
                Ok(rows
                    .iter()
                    .map(|row| decode(row.get(0)))
                    .collect::<Result<_, _>>()?)
            }
        })
        .await
    }

    async fn commit(&self, changes: Arc<Changes>) -> Result<(), ReadModelError> {
        self.on_live(|generation| {
            let changes = &changes;
            async move {
                let mut client = generation.client().await?;
                let tx = client.transaction().await?;
                let (_, stored) = self.lock(&generation, &tx).await?;
                if stored >= changes.position {
                    // Another node stored this batch already, folded from the same log.
                    return Ok(());
                }
                if stored < changes.from {
                    return Err(Stopped::Failed(ReadModelError(format!(
                        "the stored read models are at position {stored}, before this batch's \
                         start {}: they were cleared or rebuilt meanwhile",
                        changes.from
                    ))));
                }
                store(&tx, changes).await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .await
    }

    async fn clear(&self) -> Result<(), ReadModelError> {
        self.on_live(|generation| async move {
            let mut client = generation.client().await?;
            let tx = client.transaction().await?;
            self.lock(&generation, &tx).await?;
            clear(&tx).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn drop_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, ReadModelError> {
        let (before, limit) = (
            before.timestamp_micros(),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        self.on_live(|generation| async move {
            let client = generation.client().await?;
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
                    &[&before, &limit],
                )
                .await?;
            Ok(dropped as usize)
        })
        .await
    }

    async fn begin_rebuild(&self) -> Result<(), ReadModelError> {
        self.clear().await
    }

    async fn finish_rebuild(&self) -> Result<(), ReadModelError> {
        self.on_live(|generation| async move {
            let client = generation.client().await?;
            client
                .batch_execute("ANALYZE tasks, task_labels, task_tags")
                .await?;
            Ok(())
        })
        .await
    }
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
    for task in changes.tasks.iter().map(|task| &**task) {
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
