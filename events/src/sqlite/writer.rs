//! The one writer: a thread that owns the write connection and commits every
//! append waiting for it in one transaction (group commit), so one fsync serves
//! many appenders.
//!
//! Each append's checks (idempotency, expected revision) run before any of its
//! rows are written, so a rejected append leaves nothing in the transaction and
//! the others in the batch commit without it. A storage failure rolls the whole
//! batch back and every appender in it hears so.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use crate::envelope::{NewEvent, Position};
use crate::hash_chain::{chain_hash, Hash, HashedFields, GENESIS};
use crate::store::{AppendError, AppendResult, ExpectedRevision, StorageError};

/// Enough to amortise a commit; small enough to keep a batch's latency short.
const MAX_BATCH: usize = 4096;

pub(super) struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// Starts the writer thread. It stops when every sender is gone.
pub(super) fn spawn(
    conn: Connection,
    head: watch::Sender<Position>,
) -> std::io::Result<mpsc::Sender<AppendRequest>> {
    let (sender, receiver) = mpsc::channel(MAX_BATCH);
    std::thread::Builder::new()
        .name("tasklog-sqlite-writer".into())
        .spawn(move || run(conn, receiver, head))?;
    Ok(sender)
}

fn run(
    mut conn: Connection,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<Position>,
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
        match commit(&mut conn, &batch) {
            Ok((outcomes, new_head)) => {
                // Subscribers and projections may see the batch before the
                // appenders hear back; never the other way round.
                head.send_if_modified(|h| {
                    let moved = new_head > *h;
                    *h = (*h).max(new_head);
                    moved
                });
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                for request in batch.drain(..) {
                    let error = StorageError::new(format!("appending to the log failed: {error}"));
                    let _ = request.reply.send(Err(error.into()));
                }
            }
        }
    }
}

type Outcome = Result<AppendResult, AppendError>;

/// Applies every request of the batch in one transaction and commits it.
fn commit(
    conn: &mut Connection,
    batch: &[AppendRequest],
) -> rusqlite::Result<(Vec<Outcome>, Position)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read the tail afresh each batch: another process may have written.
    let mut tail = Tail::read(&tx)?;
    let outcomes = batch
        .iter()
        .map(|request| append(&tx, request, &mut tail))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok((outcomes, tail.position))
}

/// The newest event of the log: where the next one goes and what it chains to.
struct Tail {
    position: Position,
    hash: Hash,
}

impl Tail {
    fn read(tx: &Transaction<'_>) -> rusqlite::Result<Tail> {
        let last = tx
            .prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")?
            .query_row([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        Ok(match last {
            None => Tail {
                position: Position::START,
                hash: GENESIS,
            },
            Some((position, hash)) => Tail {
                position: Position(position as u64),
                hash: hash.try_into().map_err(|_| {
                    rusqlite::Error::InvalidColumnType(
                        1,
                        "hash".into(),
                        rusqlite::types::Type::Blob,
                    )
                })?,
            },
        })
    }
}

fn append(
    tx: &Transaction<'_>,
    request: &AppendRequest,
    tail: &mut Tail,
) -> rusqlite::Result<Outcome> {
    let AppendRequest {
        stream,
        expected,
        events,
        ..
    } = request;
    if let Some(earlier) = earlier_append(tx, stream, events)? {
        return Ok(earlier);
    }
    let actual: Option<u64> = tx
        .prepare_cached("SELECT max(revision) FROM events WHERE stream = ?1")?
        .query_row([stream], |row| row.get::<_, Option<i64>>(0))?
        .map(|revision| revision as u64);
    if !expected.admits(actual) {
        return Ok(Err(AppendError::Conflict {
            stream: stream.clone(),
            expected: *expected,
            actual,
        }));
    }
    let first_revision = actual.map_or(0, |revision| revision + 1);
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (position, stream, revision, event_id, event_type, schema_version,
                             recorded_at, payload, actor, request_id, causation_id, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let first_position = Position(tail.position.0 + 1);
    for (offset, event) in events.iter().enumerate() {
        let position = Position(tail.position.0 + 1);
        let revision = first_revision + offset as u64;
        let hash = chain_hash(
            &tail.hash,
            &HashedFields {
                stream,
                revision,
                id: event.id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                recorded_at: event.recorded_at,
                payload: &event.payload,
                metadata: &event.metadata,
            },
        );
        insert.execute(params![
            position.0 as i64,
            stream,
            revision as i64,
            event.id.hyphenated().to_string(),
            event.event_type,
            event.schema_version,
            event.recorded_at.timestamp_micros(),
            event.payload,
            event.metadata.actor,
            event.metadata.request_id,
            event
                .metadata
                .causation_id
                .map(|id| id.hyphenated().to_string()),
            &hash[..],
        ])?;
        *tail = Tail { position, hash };
    }
    Ok(Ok(AppendResult {
        first_position,
        last_position: tail.position,
        revision: first_revision + events.len() as u64 - 1,
    }))
}

/// If these events were appended before, the result of that append; if some of
/// them were, but not as this same append, a mismatch; if none were, `None`.
fn earlier_append(
    tx: &Transaction<'_>,
    stream: &str,
    events: &[NewEvent],
) -> rusqlite::Result<Option<Outcome>> {
    let mut find =
        tx.prepare_cached("SELECT position, stream, revision FROM events WHERE event_id = ?1")?;
    let mut found = Vec::with_capacity(events.len());
    for event in events {
        let row = find
            .query_row([event.id.hyphenated().to_string()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        found.push(row);
    }
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let (first_position, _, first_revision) = match &found[0] {
        Some(row) => row.clone(),
        None => (0, String::new(), -1),
    };
    let same_append = found.iter().enumerate().all(|(index, row)| {
        matches!(row, Some((_, s, r)) if s == stream && *r == first_revision + index as i64)
    });
    if !same_append {
        let appended = found
            .iter()
            .position(Option::is_some)
            .expect("one was found");
        let event_id = events[appended].id;
        return Ok(Some(Err(AppendError::IdempotencyMismatch { event_id })));
    }
    let (last_position, _, last_revision) = found.last().cloned().flatten().expect("checked above");
    Ok(Some(Ok(AppendResult {
        first_position: Position(first_position as u64),
        last_position: Position(last_position as u64),
        revision: last_revision as u64,
    })))
}
