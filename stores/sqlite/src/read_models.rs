//! Read models in SQLite: a row per task with its list indexes, and the small
//! models stored whole, committed with the position they were folded to.
//!
//! They live in a file of their own (`<log file>-views` for the embedded
//! store), not in the log's file: SQLite has one writer per file, and the
//! log's writer would otherwise wait on every batch of rows (a second writer
//! on one file was starved for seconds when measured; docs/read-models.md).
//! Rows are derived: the file may be lost and is rebuilt from the log, so it
//! is not flushed on every commit; a crash loses only the last batches, which
//! are applied again. Opened on `None` the tables live in memory, for stores
//! whose nodes keep no files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cached_transaction::CachedTransaction;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tasklog_events::{Position, TaskId};
use tasklog_projections::{
    Changes, ReadModelError, ReadModelTables, Snapshot, Stats, TaskQuery, TaskView,
    READ_MODEL_VERSION,
};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS read_model (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        version  INTEGER NOT NULL,  -- READ_MODEL_VERSION of the code that wrote the rows
        position INTEGER NOT NULL   -- the last log position folded into them
    );
    CREATE TABLE IF NOT EXISTS tasks (
        created_position INTEGER PRIMARY KEY,  -- the listing order and the cursor
        id               BLOB NOT NULL,        -- 16 bytes
        state            TEXT NOT NULL,
        type             TEXT NOT NULL,
        finished_time    INTEGER,              -- µs since 1970 once completed or failed
        view             TEXT NOT NULL         -- JSON: the whole task view
    );
    CREATE UNIQUE INDEX IF NOT EXISTS tasks_id ON tasks (id);
    CREATE TABLE IF NOT EXISTS task_labels (
        key TEXT NOT NULL, value TEXT NOT NULL, created_position INTEGER NOT NULL,
        PRIMARY KEY (key, value, created_position)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS task_tags (
        tag TEXT NOT NULL, created_position INTEGER NOT NULL,
        PRIMARY KEY (tag, created_position)) WITHOUT ROWID;
    -- schedules, queue settings, consumers and the counts: few rows, JSON each
    CREATE TABLE IF NOT EXISTS small_models (
        model TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (model, key)) WITHOUT ROWID;
";

/// The indexes of lists: a rebuild drops them and builds them after the fill,
/// which sorts once instead of inserting row by row.
const LIST_INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, created_position);
    CREATE INDEX IF NOT EXISTS tasks_type ON tasks (type, created_position);
    CREATE INDEX IF NOT EXISTS tasks_type_state ON tasks (type, state, created_position);
    CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_time) WHERE finished_time IS NOT NULL;
    CREATE INDEX IF NOT EXISTS task_labels_task ON task_labels (created_position);
    CREATE INDEX IF NOT EXISTS task_tags_task ON task_tags (created_position);
";

const TABLES: [&str; 5] = [
    "read_model",
    "tasks",
    "task_labels",
    "task_tags",
    "small_models",
];

/// Read models in one SQLite file (or in memory). Point reads run where they
/// are asked for (they take microseconds); writes and loads on a blocking thread.
#[derive(Clone)]
pub struct SqliteReadModels {
    inner: Arc<Tables>,
}

struct Tables {
    path: Option<PathBuf>,
    /// Held while open: one process at a time folds into a file, since each
    /// keeps the hot set in its memory.
    _lock: Option<std::fs::File>,
    writer: Mutex<Connection>,
    /// Idle read connections of a file, opened on demand; WAL lets them read
    /// beside the writer.
    readers: Mutex<Vec<Connection>>,
}

impl SqliteReadModels {
    /// Opens (or creates) the tables at `path`, in memory for `None`. Rows of
    /// another `READ_MODEL_VERSION` are dropped, so the caller folds the log
    /// into them again.
    pub fn open(path: Option<&Path>) -> Result<Self, ReadModelError> {
        let lock = path.map(lock).transpose()?;
        let conn = connect(path).map_err(failed)?;
        Self::with_connection(path, lock, conn)
    }

    /// [`open`](Self::open) for a server: when the disk is too full to open
    /// the file (SQLite cannot size its shared-memory file), the tables live
    /// in memory until a restart, folded from the log, so the server still
    /// serves reads. The file stays locked meanwhile.
    pub fn open_to_serve(path: &Path) -> Result<Self, ReadModelError> {
        let lock = lock(path)?;
        match connect(Some(path)) {
            Ok(conn) => Self::with_connection(Some(path), Some(lock), conn),
            Err(error) if crate::out_of_space(&error) => {
                tracing::warn!(path = %path.display(), %error,
                    "the disk is full: the views are kept in memory until a restart, folded from the log");
                let conn = connect(None).map_err(failed)?;
                Self::with_connection(None, Some(lock), conn)
            }
            Err(error) => Err(failed(error)),
        }
    }

    fn with_connection(
        path: Option<&Path>,
        lock: Option<std::fs::File>,
        conn: Connection,
    ) -> Result<Self, ReadModelError> {
        let stored: Option<u32> = conn
            .query_row("SELECT version FROM read_model", [], |row| row.get(0))
            .optional()
            .map_err(failed)?;
        let tables = Tables {
            path: path.map(Path::to_path_buf),
            _lock: lock,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        };
        match stored {
            Some(READ_MODEL_VERSION) => {}
            Some(version) => {
                tracing::warn!(
                    stored = version,
                    code = READ_MODEL_VERSION,
                    "the stored read models have another shape; they are built again from the log"
                );
                tables.clear()?;
            }
            None => tables.clear()?,
        }
        Ok(SqliteReadModels {
            inner: Arc::new(tables),
        })
    }

    /// Runs `work` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Tables) -> Result<T, ReadModelError> + Send + 'static,
    ) -> Result<T, ReadModelError> {
        let tables = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&tables))
            .await
            .map_err(|error| ReadModelError(error.to_string()))?
    }
}

impl Tables {
    /// Drops every row and sets the position to 0.
    fn clear(&self) -> Result<(), ReadModelError> {
        self.write(|tx| {
            for table in TABLES {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            tx.execute(
                "INSERT INTO read_model (id, version, position) VALUES (1, ?, 0)",
                [READ_MODEL_VERSION],
            )?;
            Ok(())
        })
    }

    /// Runs `sql` outside a transaction (pragmas, indexes).
    fn execute(&self, sql: &str) -> Result<(), ReadModelError> {
        let conn = self.writer.lock().expect("read model writer");
        conn.execute_batch(sql).map_err(failed)
    }

    /// Runs `write` in one transaction on the writer's connection.
    fn write<T>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ReadModelError> {
        let conn = self.writer.lock().expect("read model writer");
        let tx = CachedTransaction::begin(&conn, false).map_err(failed)?;
        let written = write(&tx).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(written)
    }

    /// Runs `read` on a read connection (the writer's, in memory).
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ReadModelError> {
        let Some(path) = &self.path else {
            return read(&self.writer.lock().expect("read model writer")).map_err(failed);
        };
        let pooled = self.readers.lock().expect("read model readers").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(path).map_err(failed)?,
        };
        let result = read(&conn);
        self.readers.lock().expect("read model readers").push(conn);
        result.map_err(failed)
    }
}

/// An exclusive lock on the file (not SQLite's own locks, which it leaves be).
/// Locks the tables at `path` for this process, making the directory they
/// go in (readable by its owner only) if it is not there.
fn lock(path: &Path) -> Result<std::fs::File, ReadModelError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        crate::create_private_dir(dir)
            .map_err(|e| ReadModelError(format!("creating {}: {e}", dir.display())))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| ReadModelError(format!("opening {}: {e}", path.display())))?;
    file.try_lock().map_err(|_| {
        ReadModelError(format!(
            "{} is in use by another tasklog process (a running server?)",
            path.display()
        ))
    })?;
    Ok(file)
}

/// The writer's connection to the tables at `path` (in memory for `None`),
/// with the schema in place.
fn connect(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let conn = match path {
        Some(path) => {
            let conn = Connection::open(path)?;
            crate::make_private(path)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            // A modest cache, as the log's writer keeps (see there).
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -8192;",
            )?;
            conn
        }
        None => Connection::open_in_memory()?,
    };
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(LIST_INDEXES)?;
    // Every statement of the writes (and, in memory, of the reads) stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    // A small cache and no map of the file: memory must not grow with the rows.
    crate::open_reader_with(path, "PRAGMA cache_size = -4096;")
}

#[async_trait]
impl ReadModelTables for SqliteReadModels {
    async fn load(&self) -> Result<Snapshot, ReadModelError> {
        self.blocking(|tables| {
            tables.read(|conn| {
                // One read transaction: the rows and the position agree.
                conn.execute_batch("BEGIN")?;
                let snapshot = load(conn);
                conn.execute_batch("COMMIT")?;
                snapshot
            })
        })
        .await
    }

    async fn tasks(&self, ids: &[TaskId]) -> Result<Vec<TaskView>, ReadModelError> {
        self.inner.read(|conn| {
            let mut select = conn.prepare_cached("SELECT view FROM tasks WHERE id = ?")?;
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                let view: Option<String> = select
                    .query_row([id.0.as_bytes()], |row| row.get(0))
                    .optional()?;
                if let Some(view) = view {
                    found.push(decode(&view)?);
                }
            }
            Ok(found)
        })
    }

    async fn list(&self, query: &TaskQuery) -> Result<Vec<TaskView>, ReadModelError> {
        let mut sql = String::from("SELECT t.view FROM ");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        // The rarest term drives the read: a label, then a tag, then state and
        // type. The order is the driving index's, so that a page reads only its
        // rows instead of sorting every match.
        let order;
        if let Some((key, value)) = &query.label {
            order = "l.created_position";
            sql += "task_labels AS l JOIN tasks AS t USING (created_position)
                    WHERE l.key = ? AND l.value = ? AND l.created_position > ?";
            args.extend([key.clone().into(), value.clone().into()]);
        } else if let Some(tag) = &query.tag {
            order = "g.created_position";
            sql += "task_tags AS g JOIN tasks AS t USING (created_position)
                    WHERE g.tag = ? AND g.created_position > ?";
            args.push(tag.clone().into());
        } else {
            order = "t.created_position";
            sql += "tasks AS t WHERE t.created_position > ?";
        }
        args.push((query.after.0 as i64).into());
        if let Some(state) = query.state {
            sql += " AND t.state = ?";
            args.push(state.as_str().to_owned().into());
        }
        if let Some(task_type) = &query.task_type {
            sql += " AND t.type = ?";
            args.push(task_type.clone().into());
        }
        sql += &format!(" ORDER BY {order} LIMIT ?");
        args.push((query.limit.min(i64::MAX as usize) as i64).into());
        self.inner.read(|conn| {
            let mut select = conn.prepare_cached(&sql)?;
            let rows = select.query_map(rusqlite::params_from_iter(args), |row| {
                row.get::<_, String>(0)
            })?;
            rows.map(|view| decode(&view?)).collect()
        })
    }

    async fn commit(&self, changes: Arc<Changes>) -> Result<(), ReadModelError> {
        self.blocking(move |tables| tables.write(|tx| store(tx, &changes)))
            .await
    }

    async fn clear(&self) -> Result<(), ReadModelError> {
        self.blocking(Tables::clear).await
    }

    async fn drop_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<usize, ReadModelError> {
        self.blocking(move |tables| tables.write(|tx| drop_finished(tx, before, limit)))
            .await
    }

    async fn begin_rebuild(&self) -> Result<(), ReadModelError> {
        self.blocking(|tables| {
            tables.clear()?;
            tables.execute(
                "DROP INDEX IF EXISTS tasks_state;
                 DROP INDEX IF EXISTS tasks_type;
                 DROP INDEX IF EXISTS tasks_type_state;
                 DROP INDEX IF EXISTS tasks_finished;
                 DROP INDEX IF EXISTS task_labels_task;
                 DROP INDEX IF EXISTS task_tags_task;
                 PRAGMA synchronous = OFF;",
            )
        })
        .await
    }

    async fn finish_rebuild(&self) -> Result<(), ReadModelError> {
        self.blocking(|tables| {
            tables.execute(LIST_INDEXES)?;
            let synchronous = if tables.path.is_some() {
                "NORMAL"
            } else {
                "OFF"
            };
            tables.execute(&format!(
                "PRAGMA synchronous = {synchronous}; PRAGMA wal_checkpoint(TRUNCATE);"
            ))
        })
        .await
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let position: i64 = conn.query_row("SELECT position FROM read_model", [], |row| row.get(0))?;
    let mut hot = conn.prepare_cached(
        "SELECT view FROM tasks WHERE state IN ('pending', 'running') ORDER BY created_position",
    )?;
    let hot = hot
        .query_map([], |row| row.get::<_, String>(0))?
        .map(|view| decode(&view?))
        .collect::<rusqlite::Result<_>>()?;
    let mut snapshot = Snapshot {
        position: Position(position as u64),
        hot,
        ..Snapshot::default()
    };
    let mut small = conn.prepare_cached("SELECT model, key, value FROM small_models")?;
    let mut rows = small.query([])?;
    while let Some(row) = rows.next()? {
        let (model, key, value): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        match model.as_str() {
            "schedule" => snapshot.schedules.push(decode(&value)?),
            "queue" => snapshot.queues.push((key, decode(&value)?)),
            "consumer" => snapshot.consumers.push((key, decode(&value)?)),
            "stats" => snapshot.stats = decode::<Stats>(&value)?,
            _ => {}
        }
    }
    Ok(snapshot)
}

fn store(tx: &Connection, changes: &Changes) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO tasks (created_position, id, state, type, finished_time, view)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (created_position) DO UPDATE SET
            state = excluded.state, finished_time = excluded.finished_time, view = excluded.view",
    )?;
    let mut label = tx.prepare_cached(
        "INSERT OR IGNORE INTO task_labels (key, value, created_position) VALUES (?, ?, ?)",
    )?;
    let mut tag =
        tx.prepare_cached("INSERT OR IGNORE INTO task_tags (tag, created_position) VALUES (?, ?)")?;
    for task in changes.tasks.iter().map(|task| &**task) {
        let created = task.created_position.0 as i64;
        upsert.execute(params![
            created,
            task.id.0.as_bytes(),
            task.state.as_str(),
            task.task_type,
            task.state
                .is_finished()
                .then(|| task.modified_time.timestamp_micros()),
            encode(task)?,
        ])?;
        // Labels and tags are set when a task is created and never change.
        if task.created_position > changes.from {
            for (key, value) in &task.labels {
                label.execute(params![key, value, created])?;
            }
            for name in &task.tags {
                tag.execute(params![name, created])?;
            }
        }
    }
    let mut put = tx.prepare_cached(
        "INSERT INTO small_models (model, key, value) VALUES (?, ?, ?)
         ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM small_models WHERE model = ? AND key = ?")?;
    for (id, schedule) in &changes.schedules {
        match schedule {
            Some(schedule) => {
                put.execute(params!["schedule", id.to_string(), encode(schedule)?])?
            }
            None => delete.execute(params!["schedule", id.to_string()])?,
        };
    }
    for (name, settings) in &changes.queues {
        put.execute(params!["queue", name, encode(settings)?])?;
    }
    for (name, consumer) in &changes.consumers {
        put.execute(params!["consumer", name, encode(consumer)?])?;
    }
    if let Some(stats) = &changes.stats {
        put.execute(params!["stats", "", encode(stats)?])?;
    }
    tx.prepare_cached("UPDATE read_model SET position = ?")?
        .execute([changes.position.0 as i64])?;
    Ok(())
}

fn drop_finished(tx: &Connection, before: DateTime<Utc>, limit: usize) -> rusqlite::Result<usize> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS dropping (created_position INTEGER PRIMARY KEY);
         DELETE FROM temp.dropping;",
    )?;
    let chosen = tx.execute(
        "INSERT INTO temp.dropping SELECT created_position FROM tasks
         WHERE finished_time IS NOT NULL AND finished_time < ? ORDER BY finished_time LIMIT ?",
        params![before.timestamp_micros(), limit as i64],
    )?;
    for table in ["task_labels", "task_tags", "tasks"] {
        tx.execute(
            &format!(
                "DELETE FROM {table} WHERE created_position IN (SELECT created_position FROM temp.dropping)"
            ),
            [],
        )?;
    }
    Ok(chosen)
}

fn encode<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn failed(error: rusqlite::Error) -> ReadModelError {
    ReadModelError(error.to_string())
}
