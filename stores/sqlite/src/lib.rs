//! The embedded default store: one SQLite file in WAL mode.
//!
//! Appends go to one writer thread that commits them in batches, and a syncer
//! thread flushes each batch to disk before its appenders hear back
//! ([`writer`]); reads use their own connections, which WAL lets run beside
//! the writer without blocking it. The file layout is in [`schema`].
//!
//! # Layout
//! - this module: [`SqliteStore`], the [`EventStore`] reads.
//! - `writer`: the writer and syncer threads (group commit, fdatasync on ack).
//! - `schema`: the tables, their migrations, and reading rows back as events.
//! - [`read_models`]: the read-model tables, in a file beside the log.

pub mod read_models;
mod schema;
mod writer;

pub use read_models::SqliteReadModels;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, watch, Semaphore};

use tasklog_events::append_queue::{self, AppendRequest};
use tasklog_events::envelope::{NewEvent, Position, RecordedEvent};
use tasklog_events::store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
};

/// An event store in one SQLite file. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// How many reads of the file run at once.
const MAX_CONCURRENT_READS: usize = 8;

struct Inner {
    path: PathBuf,
    appends: mpsc::Sender<AppendRequest>,
    head: watch::Receiver<Position>,
    durability: Arc<writer::Durability>,
    /// Idle read connections, opened on demand.
    readers: Mutex<Vec<Connection>>,
    /// At most this many reads at once, so the read connections (each with its
    /// own cache and map of the file) and the threads they run on stay few
    /// however many readers wait.
    reads: Arc<Semaphore>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its schema if needed.
    /// A new file, and a directory made for it, are this user's only (0600,
    /// 0700): the log holds every task's data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| StorageError::caused_by(format!("creating {}", dir.display()), e))?;
        }
        let failed = |e| StorageError::caused_by(format!("opening {}", path.display()), e);
        let new_file = !path.exists();
        let mut conn = Connection::open(&path).map_err(failed)?;
        if new_file {
            // Before the first write: SQLite gives the WAL the file's permissions.
            make_private(&path).map_err(|e| {
                StorageError::caused_by(format!("protecting {}", path.display()), e)
            })?;
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -65536;",
        )
        .map_err(failed)?;
        schema::migrate(&mut conn).map_err(failed)?;
        let last: Option<i64> = conn
            .query_row("SELECT max(position) FROM events", [], |row| row.get(0))
            .map_err(failed)?;
        let last = Position(last.unwrap_or(0) as u64);
        // The writer's connection keeps the WAL file in place while the store is open.
        let wal_path = format!("{}-wal", path.display());
        let wal = std::fs::File::open(&wal_path)
            .map_err(|e| StorageError::caused_by(format!("opening {wal_path}"), e))?;
        let (head_sender, head) = watch::channel(last);
        let durability = Arc::new(writer::Durability::new(last));
        let appends = writer::spawn(conn, wal, head_sender, durability.clone())
            .map_err(|e| StorageError::caused_by("starting the writer thread", e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                appends,
                head,
                durability,
                readers: Mutex::new(Vec::new()),
                reads: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `read` on a read connection, off the async threads. Also returns
    /// the newest position the caller may show (see [`writer::Durability`]).
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<(T, Option<Position>), ReadError> {
        let inner = self.inner.clone();
        let permit = inner.reads.clone().acquire_owned().await;
        let permit = permit.map_err(|e| StorageError::caused_by("the store was closed", e))?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match inner.readers.lock().expect("reader pool").pop() {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let result = read(&conn);
            inner.readers.lock().expect("reader pool").push(conn);
            result.map(|value| (value, inner.durability.visible_limit()))
        })
        .await
        .map_err(|e| StorageError::caused_by("a read task failed", e))?;
        result.map_err(|e| ReadError::Storage(StorageError::caused_by("reading the log", e)))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A connection that only reads `path`, set up by `pragmas` (its cache, its map).
fn open_reader_with(path: &Path, pragmas: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")?;
    conn.execute_batch(pragmas)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    open_reader_with(path, "PRAGMA mmap_size = 1073741824;")
}

/// Drops the events a read saw that are not yet durable.
fn only_durable((mut events, limit): (Vec<RecordedEvent>, Option<Position>)) -> Vec<RecordedEvent> {
    if let Some(limit) = limit {
        events.retain(|event| event.position <= limit);
    }
    events
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        append_queue::submit(&self.inner.appends, stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE stream = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3",
                schema::EVENT_COLUMNS
            ))?;
            let rows = statement.query_map(
                rusqlite::params![stream, from as i64, sql_limit(limit)],
                schema::event_from_row,
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .map(only_durable)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
                schema::EVENT_COLUMNS
            ))?;
            let rows = statement.query_map(
                rusqlite::params![after.0 as i64, sql_limit(limit)],
                schema::event_from_row,
            )?;
            let mut events = Vec::with_capacity(limit.min(65_536));
            for row in rows {
                events.push(row?);
            }
            Ok(events)
        })
        .await
        .map(only_durable)
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        tasklog_events::subscription::follow(self.clone(), after)
    }

    async fn head(&self) -> Result<Position, ReadError> {
        // Asked of the file, not the watch: another process may have written.
        self.read(|conn| {
            conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .await
        .map(|(position, limit)| Position(position as u64).min(limit.unwrap_or(Position(u64::MAX))))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.clone()
    }
}

#[cfg(test)]
mod tests;
