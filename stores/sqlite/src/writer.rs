//! The one writer: a thread that owns the write connection and commits every
//! append waiting for it in one transaction (group commit), and a syncer
//! thread that makes each commit durable before anyone hears of it.
//!
//! The connection runs at `synchronous=NORMAL`, so a commit writes the WAL
//! without waiting for the disk; the syncer then `fdatasync`s the WAL file and
//! only after that publishes the new head and answers the appenders. Every
//! acknowledged append is on disk, as with `synchronous=FULL`, but the writer
//! builds and writes the next batch while the disk flushes the last one, and
//! one flush covers every batch written since the one before.
//!
//! Until a commit is flushed, readers in this process must not see it: the
//! [`Durability`] marks say which positions are written but not yet durable.
//!
//! A rejected append leaves nothing in the transaction, and the others in the
//! batch commit without it: its checks (idempotency, expected revision) run
//! before its rows are written, or, for a lone event tried straight in, as
//! its row goes in (the unique indexes refuse it, SQLite undoes that one
//! statement, and the append is then checked the long way). An append to
//! several streams writes its parts under a savepoint, rolled back if one part
//! is rejected. A storage failure rolls the whole batch back and every appender
//! in it hears so. A failed flush stops the store: what the disk holds is then
//! unknown, and only reopening the file (which recovers from the WAL) tells.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, watch};

use chrono::DateTime;
use tasklog_events::append_checks::Appended;
use tasklog_events::append_queue::{AppendRequest, Outcome};
use tasklog_events::append_rules::{BatchPlanner, Head, PlannedEvent};
use tasklog_events::envelope::{NewEvent, Position, RecordedEvent};
use tasklog_events::store::{AppendResult, ExpectedRevision, StorageError, StreamAppend};
use tasklog_events::subscription::advance_head;
use tasklog_events::AppendError;

use crate::cached_transaction::CachedTransaction;
use crate::recent::Recent;

/// Enough to amortise a commit; small enough to keep a batch's latency short.
const MAX_BATCH: usize = 4096;

/// Which positions this process has written and which of them are durable.
#[derive(Debug, Default)]
pub(super) struct Durability {
    /// The last position of the newest commit, set just before it commits.
    written: AtomicU64,
    /// The last position known to be on disk.
    durable: AtomicU64,
}

impl Durability {
    pub fn new(head: Position) -> Self {
        Durability {
            written: AtomicU64::new(head.0),
            durable: AtomicU64::new(head.0),
        }
    }

    /// The newest position a read may show, if some commits are not durable yet.
    /// Call it after the read: a commit the read saw was marked before it committed.
    pub fn visible_limit(&self) -> Option<Position> {
        let written = self.written.load(Ordering::SeqCst);
        let durable = self.durable.load(Ordering::SeqCst);
        (written > durable).then_some(Position(durable))
    }
}

/// A committed batch on its way to the disk.
struct Committed {
    replies: Vec<(oneshot::Sender<Outcome>, Outcome)>,
    last_position: Position,
    /// Its events as the log holds them, for [`Recent`] once durable.
    events: Vec<RecordedEvent>,
}

/// Starts the writer and syncer threads. They stop when every sender is gone.
pub(super) fn spawn(
    conn: Connection,
    wal: File,
    head: watch::Sender<Position>,
    durability: Arc<Durability>,
    recent: Arc<Recent>,
) -> std::io::Result<mpsc::Sender<AppendRequest>> {
    let (sender, requests) = mpsc::channel(MAX_BATCH);
    let (to_sync, committed) = std::sync::mpsc::channel();
    let marks = durability.clone();
    std::thread::Builder::new()
        .name("tasklog-sqlite-syncer".into())
        .spawn(move || sync(wal, committed, head, marks, &recent))?;
    std::thread::Builder::new()
        .name("tasklog-sqlite-writer".into())
        .spawn(move || write(conn, requests, to_sync, &durability))?;
    Ok(sender)
}

fn write(
    mut conn: Connection,
    mut requests: mpsc::Receiver<AppendRequest>,
    to_sync: std::sync::mpsc::Sender<Committed>,
    durability: &Durability,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        metrics::histogram!("tasklog_append_batch_size").record(batch.len() as f64);
        match commit(&mut conn, &batch, durability) {
            Ok((outcomes, last_position, events)) => {
                let replies = batch.drain(..).map(|r| r.reply).zip(outcomes).collect();
                let committed = Committed {
                    replies,
                    last_position,
                    events,
                };
                if let Err(unsent) = to_sync.send(committed) {
                    fail_all(
                        unsent.0.replies.into_iter().map(|(reply, _)| reply),
                        "the store stopped after a failed flush",
                    );
                    return;
                }
            }
            Err(error) => fail_all(
                batch.drain(..).map(|r| r.reply),
                &format!("appending to the log failed: {error}"),
            ),
        }
    }
}

/// Flushes the WAL for every batch committed since the last flush, then lets
/// subscribers and appenders know, in that order.
fn sync(
    wal: File,
    committed: std::sync::mpsc::Receiver<Committed>,
    head: watch::Sender<Position>,
    durability: Arc<Durability>,
    recent: &Recent,
) {
    while let Ok(first) = committed.recv() {
        let mut batches = vec![first];
        batches.extend(committed.try_iter());
        let started = std::time::Instant::now();
        let synced = wal.sync_data();
        metrics::histogram!("tasklog_store_sync_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = synced {
            let message = format!("flushing the log to disk failed: {error}");
            let replies = batches
                .into_iter()
                .flat_map(|b| b.replies)
                .map(|(reply, _)| reply);
            fail_all(replies, &message);
            return;
        }
        let last = batches.last().expect("one batch at least").last_position;
        durability.durable.fetch_max(last.0, Ordering::SeqCst);
        let mut replies = Vec::new();
        for batch in batches {
            recent.push(batch.events);
            replies.extend(batch.replies);
        }
        advance_head(&head, last);
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
    }
}

fn fail_all(replies: impl Iterator<Item = oneshot::Sender<Outcome>>, message: &str) {
    for reply in replies {
        let _ = reply.send(Err(StorageError::new(message).into()));
    }
}

/// Applies every request of the batch in one transaction and commits it.
fn commit(
    conn: &mut Connection,
    batch: &[AppendRequest],
    durability: &Durability,
) -> rusqlite::Result<(Vec<Outcome>, Position, Vec<RecordedEvent>)> {
    let tx = CachedTransaction::begin(conn, true)?;
    // Read the head afresh each batch: another process may have written.
    let mut planner = BatchPlanner::new(read_head(&tx)?);
    let mut events = Vec::new();
    let outcomes = {
        let mut statements = Statements::prepare(&tx)?;
        batch
            .iter()
            .map(|request| append_all(&tx, &mut statements, request, &mut planner, &mut events))
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let last_position = planner.head().position;
    let before = durability.written.swap(last_position.0, Ordering::SeqCst);
    if let Err(error) = tx.commit() {
        durability.written.store(before, Ordering::SeqCst);
        return Err(error);
    }
    Ok((outcomes, last_position, events))
}

/// The newest event of the log: where the next one goes and what it chains to.
fn read_head(tx: &Connection) -> rusqlite::Result<Head> {
    let last = tx
        .prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    Ok(match last {
        None => Head::EMPTY,
        Some((position, hash)) => Head {
            position: Position(position as u64),
            hash: hash.try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(1, "hash".into(), rusqlite::types::Type::Blob)
            })?,
        },
    })
}

/// The statements an append runs, prepared once per batch.
struct Statements<'tx> {
    find_event: CachedStatement<'tx>,
    stream_revision: CachedStatement<'tx>,
    insert: CachedStatement<'tx>,
}

impl<'tx> Statements<'tx> {
    fn prepare(tx: &'tx Connection) -> rusqlite::Result<Self> {
        Ok(Statements {
            find_event: tx.prepare_cached(
                "SELECT position, stream, revision FROM events WHERE event_id = ?1",
            )?,
            stream_revision: tx
                .prepare_cached("SELECT max(revision) FROM events WHERE stream = ?1")?,
            insert: tx.prepare_cached(
                "INSERT INTO events (position, stream, revision, event_id, event_type,
                     schema_version, recorded_at, payload, actor, request_id, causation_id, hash,
                     traceparent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?,
        })
    }
}

/// A UUID as the store keeps it (hyphenated text), without allocating.
fn uuid_text<'b>(id: &uuid::Uuid, buffer: &'b mut [u8; 36]) -> &'b str {
    id.hyphenated().encode_lower(buffer)
}

/// Appends every part of `request`, or none: a part that is rejected takes
/// back the parts before it (a savepoint for the rows, a rewind for the plan).
fn append_all<'a>(
    tx: &Connection,
    statements: &mut Statements<'_>,
    request: &'a AppendRequest,
    planner: &mut BatchPlanner<'a>,
    written: &mut Vec<RecordedEvent>,
) -> rusqlite::Result<Outcome> {
    if let [only] = &request.appends[..] {
        return Ok(append(statements, only, planner, written)?.map(|result| vec![result]));
    }
    let (mark, written_before) = (planner.mark(), written.len());
    tx.execute_batch("SAVEPOINT append_many")?;
    let mut results = Vec::with_capacity(request.appends.len());
    for part in &request.appends {
        match append(statements, part, planner, written)? {
            Ok(result) => results.push(result),
            Err(rejected) => {
                tx.execute_batch("ROLLBACK TO append_many; RELEASE append_many")?;
                planner.rewind(mark);
                written.truncate(written_before);
                return Ok(Err(rejected));
            }
        }
    }
    tx.execute_batch("RELEASE append_many")?;
    Ok(Ok(results))
}

/// Decides one append and inserts the events the planner accepts (adding them
/// to `written` as the log holds them). Each append's rows are in the
/// transaction before the next append's lookups, which therefore see them.
fn append<'a>(
    statements: &mut Statements<'_>,
    part: &'a StreamAppend,
    planner: &mut BatchPlanner<'a>,
    written: &mut Vec<RecordedEvent>,
) -> rusqlite::Result<Result<AppendResult, AppendError>> {
    if let Some(accepted) = append_unseen(statements, part, planner, written)? {
        return Ok(Ok(accepted));
    }
    append_checked(statements, part, planner, written)
}

/// The common case first: one event whose id the log does not hold. Its
/// row is inserted without looking the id up, and for a new stream without
/// looking the stream up either; the unique indexes on event ids and on
/// (stream, revision) check both as the row goes in. `None` if the planner or
/// an index says otherwise: nothing was written, and the append is then
/// decided on what the log holds.
fn append_unseen<'a>(
    statements: &mut Statements<'_>,
    part: &'a StreamAppend,
    planner: &mut BatchPlanner<'a>,
    written: &mut Vec<RecordedEvent>,
) -> rusqlite::Result<Option<AppendResult>> {
    let StreamAppend {
        stream,
        expected,
        events,
    } = part;
    if events.len() != 1 {
        return Ok(None);
    }
    // Revisions start at 0 and have no gaps: a new stream's first row
    // goes in only if the stream holds nothing.
    let revision = match expected {
        ExpectedRevision::NoStream => None,
        _ => stream_revision(statements, stream)?,
    };
    let mark = planner.mark();
    let (outcome, planned) = planner.plan(stream, *expected, events, &[None], revision);
    let (Ok(accepted), [event]) = (outcome, planned) else {
        planner.rewind(mark);
        return Ok(None);
    };
    match insert(statements, event, written) {
        Ok(()) => Ok(Some(accepted)),
        // SQLite undoes the failed statement alone; the transaction goes on.
        Err(error) if is_unique_violation(&error) => {
            planner.rewind(mark);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Looks up what the append's rules need (where the log holds each event id,
/// the stream's last revision), lets the planner decide and inserts the
/// events it accepts.
fn append_checked<'a>(
    statements: &mut Statements<'_>,
    part: &'a StreamAppend,
    planner: &mut BatchPlanner<'a>,
    written: &mut Vec<RecordedEvent>,
) -> rusqlite::Result<Result<AppendResult, AppendError>> {
    let StreamAppend {
        stream,
        expected,
        events,
    } = part;
    let found = find_events(&mut statements.find_event, events)?;
    let revision = stream_revision(statements, stream)?;
    let (outcome, planned) = planner.plan(stream, *expected, events, &found, revision);
    for event in planned {
        insert(statements, event, written)?;
    }
    Ok(outcome)
}

/// The stream's last revision, None if it holds nothing.
fn stream_revision(statements: &mut Statements<'_>, stream: &str) -> rusqlite::Result<Option<u64>> {
    Ok(statements
        .stream_revision
        .query_row([stream], |row| row.get::<_, Option<i64>>(0))?
        .map(|revision| revision as u64))
}

/// Whether `error` is a row refused by a unique index (not the primary key).
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Inserts one planned event's row and adds the event to `written`.
fn insert(
    statements: &mut Statements<'_>,
    planned: &PlannedEvent<'_>,
    written: &mut Vec<RecordedEvent>,
) -> rusqlite::Result<()> {
    let &PlannedEvent {
        position,
        stream,
        revision,
        event,
        hash,
    } = planned;
    let (mut id_buffer, mut causation_buffer) = ([0; 36], [0; 36]);
    statements.insert.execute(params![
        position.0 as i64,
        stream,
        revision as i64,
        uuid_text(&event.id, &mut id_buffer),
        event.event_type,
        event.schema_version,
        event.recorded_at.timestamp_micros(),
        event.payload,
        event.metadata.actor,
        event.metadata.request_id,
        event
            .metadata
            .causation_id
            .as_ref()
            .map(|id| uuid_text(id, &mut causation_buffer)),
        &hash[..],
        event.metadata.traceparent,
    ])?;
    // What a read of the row gives back: the time to the microsecond.
    let recorded_at = DateTime::from_timestamp_micros(event.recorded_at.timestamp_micros())
        .unwrap_or(event.recorded_at);
    written.push(RecordedEvent {
        position,
        stream: stream.to_owned(),
        revision,
        id: event.id,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        recorded_at,
        payload: event.payload.clone(),
        metadata: event.metadata.clone(),
        hash,
    });
    Ok(())
}

/// Where the log holds each of `events`' ids, if anywhere.
fn find_events(
    find: &mut CachedStatement<'_>,
    events: &[NewEvent],
) -> rusqlite::Result<Vec<Option<Appended>>> {
    let mut buffer = [0; 36];
    let mut found = Vec::with_capacity(events.len());
    for event in events {
        let row = find
            .query_row([uuid_text(&event.id, &mut buffer)], |row| {
                Ok(Appended {
                    position: Position(row.get::<_, i64>(0)? as u64),
                    stream: row.get(1)?,
                    revision: row.get::<_, i64>(2)? as u64,
                })
            })
            .optional()?;
        found.push(row);
    }
    Ok(found)
}
