//! The writer: a task that owns one connection and commits every append
//! waiting for it in one transaction (group commit).
//!
//! Each transaction first locks the `log_head` row. Appends from every node
//! therefore take positions one after another, and each commits before the next
//! one can take a position: a reader can never see position N+1 while N is
//! still uncommitted, which is the gap that sequence-numbered logs must guard
//! against. The lock is held for one batch, so a node with many concurrent
//! appenders pays for it once per batch, not once per append.
//!
//! The connection runs with `synchronous_commit = on`: a commit returns once
//! the server has flushed it, and only then do appenders hear back. The same
//! transaction sends a notification with the new head, which PostgreSQL
//! delivers at commit to every node's [`listener`](super::listener).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Statement};
use uuid::Uuid;

use tasklog_events::append_checks::Appended;
use tasklog_events::append_queue::{AppendRequest, Outcome};
use tasklog_events::append_rules::{BatchPlanner, Head, PlannedEvent};
use tasklog_events::envelope::Position;
use tasklog_events::store::{AppendError, AppendResult, StorageError, StreamAppend};
use tasklog_events::subscription::advance_head;

/// Enough to amortise a commit; small enough to keep a batch's latency short.
const MAX_BATCH: usize = 1024;

/// Starts the writer task. It stops when every sender is gone.
pub(super) fn spawn(
    config: super::Connect,
    head: watch::Sender<Position>,
) -> mpsc::Sender<AppendRequest> {
    let (sender, requests) = mpsc::channel(MAX_BATCH);
    tokio::spawn(write(config, requests, head));
    sender
}

async fn write(
    config: super::Connect,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<Position>,
) {
    let mut connection: Option<(Client, Statements)> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        if connection
            .as_ref()
            .is_none_or(|(client, _)| client.is_closed())
        {
            connection = match connect(&config).await {
                Ok(connected) => Some(connected),
                Err(error) => {
                    fail_all(
                        batch.drain(..),
                        &format!("connecting to PostgreSQL: {error}"),
                    );
                    continue;
                }
            };
        }
        let (client, statements) = connection.as_mut().expect("connected above");
        metrics::histogram!("tasklog_append_batch_size").record(batch.len() as f64);
        match commit(client, statements, &config.channel, &batch).await {
            Ok((outcomes, last_position)) => {
                advance_head(&head, last_position);
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                // Whether the commit happened is unknown if the connection
                // broke; appenders retry with the same ids, which is safe.
                fail_all(
                    batch.drain(..),
                    &format!("appending to the log failed: {error}"),
                );
                connection = None;
            }
        }
    }
}

fn fail_all(requests: impl Iterator<Item = AppendRequest>, message: &str) {
    for request in requests {
        let _ = request.reply.send(Err(StorageError::new(message).into()));
    }
}

async fn connect(config: &super::Connect) -> Result<(Client, Statements), StorageError> {
    let client = config.connect().await?;
    let statements = Statements::prepare(&client)
        .await
        .map_err(|e| StorageError::caused_by("preparing the append statements", e))?;
    Ok((client, statements))
}

/// The statements a batch runs, prepared once per connection.
pub(super) struct Statements {
    lock_head: Statement,
    find_events: Statement,
    stream_revisions: Statement,
    insert: Statement,
    update_head: Statement,
    notify: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let (lock_head, find_events, stream_revisions, insert, update_head, notify) =
            futures::try_join!(
                client.prepare("SELECT position, hash FROM log_head FOR UPDATE"),
                client.prepare(
                    "SELECT event_id, position, stream, revision FROM events
                     WHERE event_id = ANY($1)"
                ),
                client.prepare(
                    "SELECT name, (SELECT max(revision) FROM events WHERE stream = name)
                     FROM unnest($1::text[]) AS name"
                ),
                client.prepare(
                    "INSERT INTO events (position, stream, revision, event_id, event_type,
                         schema_version, recorded_at, payload, actor, request_id, causation_id, hash,
                         traceparent)
                     SELECT position, stream, revision, event_id, event_type,
                         schema_version, recorded_at, payload::json, actor, request_id, causation_id, hash,
                         traceparent
                     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[],
                                 $6::integer[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],
                                 $11::uuid[], $12::bytea[], $13::text[])
                       AS new (position, stream, revision, event_id, event_type, schema_version,
                               recorded_at, payload, actor, request_id, causation_id, hash,
                               traceparent)"
                ),
                client.prepare("UPDATE log_head SET position = $1, hash = $2"),
                client.prepare("SELECT pg_notify($1, $2)"),
            )?;
        Ok(Statements {
            lock_head,
            find_events,
            stream_revisions,
            insert,
            update_head,
            notify,
        })
    }
}

/// Applies every request of the batch in one transaction and commits it.
async fn commit(
    client: &mut Client,
    statements: &Statements,
    channel: &str,
    batch: &[AppendRequest],
) -> Result<(Vec<Outcome>, Position), tokio_postgres::Error> {
    write_batch(&*client, statements, channel, batch, Wrapped::Own).await
}

/// Which transaction [`write_batch`] runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrapped {
    /// Its own, in two round trips: `BEGIN` goes out with the lookups and
    /// `COMMIT` with the writes. After an error nothing is committed: the
    /// writes go out only once `BEGIN` and the lookups have answered, a
    /// `COMMIT` behind a failed write only ends the transaction, and the
    /// writer drops the connection.
    Own,
    /// One the caller opened and commits (a test holding the head's lock).
    #[cfg(test)]
    ByCaller,
}

/// Locks the head, decides each request of the batch and writes the accepted
/// ones, all in one transaction (see [`Wrapped`]). Returns each request's
/// outcome and the new head.
pub(super) async fn write_batch(
    tx: &impl GenericClient,
    statements: &Statements,
    channel: &str,
    batch: &[AppendRequest],
    wrapped: Wrapped,
) -> Result<(Vec<Outcome>, Position), tokio_postgres::Error> {
    let own = wrapped == Wrapped::Own;
    let parts = || batch.iter().flat_map(|request| &request.appends);
    let ids: Vec<Uuid> = parts()
        .flat_map(|part| part.events.iter().map(|event| event.id))
        .collect();
    let mut streams: Vec<&str> = parts().map(|part| part.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    // Sent together; the server runs them in order, so the lookups run once
    // the head is locked and see every append committed before.
    let (ids, streams): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) = ([&ids], [&streams]);
    let begin = async {
        if own {
            tx.batch_execute("BEGIN").await?;
        }
        Ok(())
    };
    let ((), head_row, event_rows, revision_rows) = futures::try_join!(
        begin,
        tx.query_one(&statements.lock_head, &[]),
        tx.query(&statements.find_events, &ids),
        tx.query(&statements.stream_revisions, &streams),
    )?;
    let mut log = LogState {
        planner: BatchPlanner::new(Head {
            position: Position(head_row.get::<_, i64>(0) as u64),
            hash: head_row
                .get::<_, &[u8]>(1)
                .try_into()
                .expect("log_head.hash holds 32 bytes"),
        }),
        appended: event_rows
            .iter()
            .map(|row| {
                let appended = Appended {
                    position: Position(row.get::<_, i64>(1) as u64),
                    stream: row.get(2),
                    revision: row.get::<_, i64>(3) as u64,
                };
                (row.get(0), appended)
            })
            .collect(),
        revisions: revision_rows
            .iter()
            .map(|row| {
                let revision: Option<i64> = row.get(1);
                (row.get(0), revision.map(|r| r as u64))
            })
            .collect(),
    };
    let outcomes: Vec<Outcome> = batch
        .iter()
        .map(|request| log.append_all(request))
        .collect();
    let head = log.planner.head();
    let planned = log.planner.planned();
    // At `synchronous_commit = on`, the commit is what makes the batch durable.
    let commit = || async move {
        if own {
            let started = std::time::Instant::now();
            tx.batch_execute("COMMIT").await?;
            metrics::histogram!("tasklog_store_sync_duration_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Ok(())
    };
    if planned.is_empty() {
        commit().await?;
        return Ok((outcomes, head.position));
    }
    let rows = Rows::of(planned);
    let columns: [&(dyn ToSql + Sync); 13] = [
        &rows.positions,
        &rows.streams,
        &rows.revisions,
        &rows.ids,
        &rows.event_types,
        &rows.schema_versions,
        &rows.recorded_at,
        &rows.payloads,
        &rows.actors,
        &rows.request_ids,
        &rows.causation_ids,
        &rows.hashes,
        &rows.traceparents,
    ];
    let head_position = head.position.0 as i64;
    let head_hash = &head.hash[..];
    let notification = head_position.to_string();
    let head_columns: [&(dyn ToSql + Sync); 2] = [&head_position, &head_hash];
    let notify: [&(dyn ToSql + Sync); 2] = [&channel, &notification];
    futures::try_join!(
        tx.execute(&statements.insert, &columns),
        tx.execute(&statements.update_head, &head_columns),
        tx.execute(&statements.notify, &notify),
        commit(),
    )?;
    Ok((outcomes, head.position))
}

/// What a batch knows of the log while it decides: the ids and stream
/// revisions it looked up, kept up to date with each append it accepts.
struct LogState<'a> {
    planner: BatchPlanner<'a>,
    appended: HashMap<Uuid, Appended>,
    revisions: HashMap<String, Option<u64>>,
}

/// What [`LogState::append`] changed, to take back.
enum Undo<'a> {
    Appended(Uuid),
    Revision(&'a str, Option<Option<u64>>),
}

impl<'a> LogState<'a> {
    /// Appends every part of `request`, or none: a part that is rejected
    /// takes back the parts before it.
    fn append_all(&mut self, request: &'a AppendRequest) -> Outcome {
        if let [only] = &request.appends[..] {
            return self
                .append(only, &mut Vec::new())
                .map(|result| vec![result]);
        }
        let mark = self.planner.mark();
        let mut undo = Vec::new();
        let mut results = Vec::with_capacity(request.appends.len());
        for part in &request.appends {
            match self.append(part, &mut undo) {
                Ok(result) => results.push(result),
                Err(rejected) => {
                    self.planner.rewind(mark);
                    for change in undo.into_iter().rev() {
                        match change {
                            Undo::Appended(id) => {
                                self.appended.remove(&id);
                            }
                            Undo::Revision(stream, None) => {
                                self.revisions.remove(stream);
                            }
                            Undo::Revision(stream, Some(revision)) => {
                                self.revisions.insert(stream.to_owned(), revision);
                            }
                        }
                    }
                    return Err(rejected);
                }
            }
        }
        Ok(results)
    }

    /// Decides one part, noting in `undo` what it changed.
    fn append(
        &mut self,
        part: &'a StreamAppend,
        undo: &mut Vec<Undo<'a>>,
    ) -> Result<AppendResult, AppendError> {
        let StreamAppend {
            stream,
            expected,
            events,
        } = part;
        let found: Vec<Option<Appended>> = events
            .iter()
            .map(|event| self.appended.get(&event.id).cloned())
            .collect();
        let revision = self.revisions.get(stream).copied().flatten();
        let (outcome, planned) = self
            .planner
            .plan(stream, *expected, events, &found, revision);
        for event in planned {
            let appended = Appended {
                position: event.position,
                stream: stream.clone(),
                revision: event.revision,
            };
            self.appended.insert(event.event.id, appended);
            undo.push(Undo::Appended(event.event.id));
        }
        // Only what this batch writes moves the stream on: a retry of an
        // earlier append answers with that append's (older) revision.
        if let Some(last) = planned.last() {
            let before = self.revisions.insert(stream.clone(), Some(last.revision));
            undo.push(Undo::Revision(stream, before));
        }
        outcome
    }
}

/// The batch's new events, column by column, for one `INSERT .. unnest(..)`.
struct Rows<'a> {
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    revisions: Vec<i64>,
    ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    recorded_at: Vec<DateTime<Utc>>,
    payloads: Vec<&'a str>,
    actors: Vec<Option<&'a str>>,
    request_ids: Vec<Option<&'a str>>,
    causation_ids: Vec<Option<Uuid>>,
    hashes: Vec<&'a [u8]>,
    traceparents: Vec<Option<&'a str>>,
}

impl<'a> Rows<'a> {
    fn of(planned: &'a [PlannedEvent<'a>]) -> Self {
        let events = || planned.iter();
        Rows {
            positions: events().map(|p| p.position.0 as i64).collect(),
            streams: events().map(|p| p.stream).collect(),
            revisions: events().map(|p| p.revision as i64).collect(),
            ids: events().map(|p| p.event.id).collect(),
            event_types: events().map(|p| p.event.event_type.as_str()).collect(),
            schema_versions: events().map(|p| p.event.schema_version as i32).collect(),
            recorded_at: events().map(|p| p.event.recorded_at).collect(),
            payloads: events().map(|p| p.event.payload.as_str()).collect(),
            actors: events()
                .map(|p| p.event.metadata.actor.as_deref())
                .collect(),
            request_ids: events()
                .map(|p| p.event.metadata.request_id.as_deref())
                .collect(),
            causation_ids: events().map(|p| p.event.metadata.causation_id).collect(),
            hashes: events().map(|p| &p.hash[..]).collect(),
            traceparents: events()
                .map(|p| p.event.metadata.traceparent.as_deref())
                .collect(),
        }
    }
}
