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

mod cached_transaction;
pub mod read_models;
mod recent;
mod schema;
mod writer;

pub use read_models::SqliteReadModels;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, watch, Semaphore};

use recent::Recent;
use tasklog_events::append_queue::{self, AppendRequest};
use tasklog_events::envelope::{NewEvent, Position, RecordedEvent};
use tasklog_events::store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
    StreamAppend,
};
use tasklog_events::subscription::{follow_pages, ReadPage};

/// An event store in one SQLite file. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// How many reads of the file run at once.
const MAX_CONCURRENT_READS: usize = 8;

/// A long read of the log splits into ranges read at once, at most this many
/// (leaving other readers room among [`MAX_CONCURRENT_READS`]), each of at
/// least [`MIN_PART`] events.
const MAX_READ_PARTS: usize = 4;
const MIN_PART: usize = 2048;

/// How often a store that could not open its writer (a full disk) tries again.
const WRITER_RETRY: Duration = Duration::from_secs(2);

struct Inner {
    path: PathBuf,
    /// The writer's queue; unset while the writer could not be opened. Reads
    /// open the file as immutable meanwhile: SQLite cannot always make the
    /// shared-memory file a reader of a WAL file needs (the disk is full),
    /// and nothing changes the file.
    appends: OnceLock<mpsc::Sender<AppendRequest>>,
    head: watch::Receiver<Position>,
    durability: Arc<writer::Durability>,
    /// The newest durable events this process appended.
    recent: Arc<Recent>,
    /// Idle read connections, opened on demand, and whether each is immutable.
    readers: Mutex<Vec<(Connection, bool)>>,
    /// At most this many reads at once, so the read connections (each with its
    /// own cache and map of the file) and the threads they run on stay few
    /// however many readers wait.
    reads: Arc<Semaphore>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its schema if needed.
    /// A new file, and a directory made for it, are this user's only (0600,
    /// 0700): the log holds every task's data.
    ///
    /// An existing log whose writer cannot be opened because the disk is full
    /// opens for reading: appends fail (a 503 to clients) and the store tries
    /// the writer again every [`WRITER_RETRY`] until space returns.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| StorageError::caused_by(format!("creating {}", dir.display()), e))?;
        }
        let existed = path.exists();
        let (writer, last) = match open_writer(&path) {
            Ok((conn, wal, last)) => (Some((conn, wal)), last),
            Err(error) if existed && is_out_of_space(&error) => {
                let last = last_position(&open_immutable(&path)?)?;
                tracing::warn!(path = %path.display(), %error,
                    "the disk is full: the log is open for reading only, and writes resume when space returns");
                (None, last)
            }
            Err(error) => return Err(error),
        };
        let (head_sender, head) = watch::channel(last);
        let store = SqliteStore {
            inner: Arc::new(Inner {
                path,
                appends: OnceLock::new(),
                head,
                durability: Arc::new(writer::Durability::new(last)),
                recent: Arc::default(),
                readers: Mutex::new(Vec::new()),
                reads: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
            }),
        };
        match writer {
            Some((conn, wal)) => store.inner.start_writer(conn, wal, head_sender)?,
            None => {
                let inner = Arc::downgrade(&store.inner);
                std::thread::Builder::new()
                    .name("tasklog-sqlite-reopen".into())
                    .spawn(move || retry_writer(inner, head_sender))
                    .map_err(|e| StorageError::caused_by("starting a thread", e))?;
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `read` on a read connection, off the async threads. Also returns
    /// the newest position the caller may show (see [`writer::Durability`]).
    /// Immutable connections go once the writer is back, since the file moves on.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<(T, Option<Position>), ReadError> {
        let inner = self.inner.clone();
        let permit = inner.reads.clone().acquire_owned().await;
        let permit = permit.map_err(|e| StorageError::caused_by("the store was closed", e))?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let immutable = inner.appends.get().is_none();
            let pooled = inner.readers.lock().expect("reader pool").pop();
            let (conn, opened_immutable) = match pooled {
                Some((conn, was_immutable)) if was_immutable == immutable => (conn, immutable),
                _ if immutable => (open_immutable_reader(&inner.path)?, true),
                _ => (open_reader(&inner.path)?, false),
            };
            let result = read(&conn);
            if opened_immutable == inner.appends.get().is_none() {
                inner
                    .readers
                    .lock()
                    .expect("reader pool")
                    .push((conn, opened_immutable));
            }
            result.map(|value| (value, inner.durability.visible_limit()))
        })
        .await
        .map_err(|e| StorageError::caused_by("a read task failed", e))?;
        result.map_err(|e| ReadError::Storage(StorageError::caused_by("reading the log", e)))
    }
}

impl Inner {
    /// Starts the writer and syncer threads on `conn`, the log's writable connection.
    fn start_writer(
        &self,
        conn: Connection,
        wal: std::fs::File,
        head: watch::Sender<Position>,
    ) -> Result<(), StorageError> {
        let appends = writer::spawn(
            conn,
            wal,
            head,
            self.durability.clone(),
            self.recent.clone(),
        )
        .map_err(|e| StorageError::caused_by("starting the writer thread", e))?;
        let _ = self.appends.set(appends);
        Ok(())
    }
}

/// Opens the log for writing: WAL, the schema migrated; with the writer's
/// WAL file handle (which keeps the WAL in place while the store is open)
/// and the last position.
fn open_writer(path: &Path) -> Result<(Connection, std::fs::File, Position), StorageError> {
    let failed = |e| StorageError::caused_by(format!("opening {}", path.display()), e);
    let new_file = !path.exists();
    let mut conn = Connection::open(path).map_err(failed)?;
    if new_file {
        // Before the first write: SQLite gives the WAL the file's permissions.
        make_private(path)
            .map_err(|e| StorageError::caused_by(format!("protecting {}", path.display()), e))?;
    }
    // A modest cache: after a B-tree page split SQLite walks the whole cache at
    // commit, and larger caches measured no faster (docs/performance.md).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -8192;",
    )
    .map_err(failed)?;
    schema::migrate(&mut conn).map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(32);
    let last = last_position(&conn)?;
    let wal_path = format!("{}-wal", path.display());
    let wal = std::fs::File::open(&wal_path)
        .map_err(|e| StorageError::caused_by(format!("opening {wal_path}"), e))?;
    Ok((conn, wal, last))
}

fn last_position(conn: &Connection) -> Result<Position, StorageError> {
    let last: Option<i64> = conn
        .query_row("SELECT max(position) FROM events", [], |row| row.get(0))
        .map_err(|e| StorageError::caused_by("reading the log's last position", e))?;
    Ok(Position(last.unwrap_or(0) as u64))
}

/// Whether opening failed for want of disk space, somewhere in its causes.
fn is_out_of_space(error: &StorageError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(error) = error.downcast_ref() {
            return out_of_space(error);
        }
        cause = error.source();
    }
    false
}

/// Whether SQLite failed for want of disk space: "disk I/O error" when it
/// cannot size a shared-memory file, "disk is full" when a write finds no room.
fn out_of_space(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if matches!(failure.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure))
}

/// Tries to open the writer until it opens or the store is gone.
fn retry_writer(inner: Weak<Inner>, head: watch::Sender<Position>) {
    loop {
        std::thread::sleep(WRITER_RETRY);
        let Some(inner) = inner.upgrade() else { return };
        match open_writer(&inner.path) {
            Ok((conn, wal, _)) => {
                match inner.start_writer(conn, wal, head) {
                    Ok(()) => {
                        tracing::info!(path = %inner.path.display(), "the log is writable again")
                    }
                    Err(error) => tracing::error!(%error, "the log's writer did not start"),
                }
                return;
            }
            Err(error) => tracing::debug!(%error, "the log is still not writable"),
        }
    }
}

/// The log as an immutable file, for reading while nothing writes it.
fn open_immutable(path: &Path) -> Result<Connection, StorageError> {
    open_immutable_reader(path)
        .map_err(|e| StorageError::caused_by(format!("opening {} to read", path.display()), e))
}

fn open_immutable_reader(path: &Path) -> rusqlite::Result<Connection> {
    let uri = format!("file:{}?immutable=1", path.display());
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
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

/// The events `selection` (the query after `WHERE`) picks; room made for
/// `expected` of them.
fn select_events(
    conn: &Connection,
    selection: &str,
    params: impl rusqlite::Params,
    expected: usize,
) -> rusqlite::Result<Vec<RecordedEvent>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {} FROM events WHERE {selection}",
        schema::EVENT_COLUMNS
    ))?;
    let mut events = Vec::with_capacity(expected.min(65_536));
    for row in statement.query_map(params, schema::event_from_row)? {
        events.push(row?);
    }
    Ok(events)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Into how many ranges, read at once, a read of `limit` events after
    /// `after` splits: for a long page of a log that holds it all, one per
    /// core (two at least, at most [`MAX_READ_PARTS`]); else one.
    fn read_parts(&self, after: Position, limit: usize) -> usize {
        let held = self.inner.head.borrow().0.saturating_sub(after.0);
        if limit < MIN_PART * 2 || held < limit as u64 {
            return 1;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.clamp(2, MAX_READ_PARTS).min(limit / MIN_PART)
    }

    /// `read_all` as `parts` ranges of positions, each read on its own
    /// connection at once. The log held every position of them before the
    /// reads began (`read_parts` asked the durable head), and positions are
    /// given with no gaps, so each range comes back whole and durable, and
    /// together they are what one read would give. If one does not (rows
    /// removed behind the store's back), the page is read in one piece after all.
    async fn read_all_in_parts(
        &self,
        after: Position,
        limit: usize,
        parts: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        // Each range is (the position before it, its last position).
        let step = (limit / parts) as u64;
        let end = after.0 + limit as u64;
        let ranges: Vec<(u64, u64)> = (0..parts as u64)
            .map(|i| {
                let before = after.0 + i * step;
                // The last range takes what the division left over.
                let last = if i + 1 == parts as u64 {
                    end
                } else {
                    before + step
                };
                (before, last)
            })
            .collect();
        let reads = ranges.iter().map(|&(before, last)| {
            self.read(move |conn| {
                select_events(
                    conn,
                    "position > ?1 AND position <= ?2 ORDER BY position",
                    rusqlite::params![before as i64, last as i64],
                    (last - before) as usize,
                )
            })
        });
        let mut events = Vec::with_capacity(limit);
        for ((part, visible), (before, last)) in futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .zip(ranges)
        {
            let whole = part.len() as u64 == last - before;
            let durable = visible.is_none_or(|limit| limit.0 >= last);
            if !(whole && durable) {
                return self.read_all_in_one(after, limit).await;
            }
            events.extend(part);
        }
        Ok(events)
    }

    /// `read_all` in one read.
    async fn read_all_in_one(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read(move |conn| {
            select_events(
                conn,
                "position > ?1 ORDER BY position LIMIT ?2",
                rusqlite::params![after.0 as i64, sql_limit(limit)],
                limit,
            )
        })
        .await
        .map(only_durable)
    }

    /// Where appends go, unless the log opened for reading only.
    fn writer(&self) -> Result<&mpsc::Sender<AppendRequest>, AppendError> {
        self.inner.appends.get().ok_or_else(|| {
            AppendError::Storage(StorageError::new(
                "the disk is full: the log opened for reading only, and takes writes again once there is space",
            ))
        })
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        append_queue::submit(self.writer()?, stream, expected, events).await
    }

    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        append_queue::submit_many(self.writer()?, appends).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let stream = stream.to_owned();
        self.read(move |conn| {
            // Streams are short and `limit` is often "all": no room made ahead.
            select_events(
                conn,
                "stream = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3",
                rusqlite::params![stream, from as i64, sql_limit(limit)],
                0,
            )
        })
        .await
        .map(only_durable)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        match self.read_parts(after, limit) {
            1 => self.read_all_in_one(after, limit).await,
            parts => self.read_all_in_parts(after, limit, parts).await,
        }
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        // The newest events from memory ([`Recent`]), the rest from the file.
        // Only subscriptions (the views, the live event streams) read this
        // way: verify, export and history read what the file holds.
        let store = self.clone();
        let read_page: ReadPage = Box::new(move |after, limit| {
            let store = store.clone();
            Box::pin(async move {
                match store.inner.recent.after(after, limit) {
                    Some(events) => Ok(events),
                    None => store.read_all(after, limit).await,
                }
            })
        });
        follow_pages(self.watch_head(), after, read_page)
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
