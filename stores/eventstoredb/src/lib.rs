//! The clustered store: the log in EventStoreDB / KurrentDB, through the
//! official `eventstore` gRPC client.
//!
//! Each tasklog stream is a stream of the server's own (`task-<id>`), written
//! with the expected revision mapped one to one and the event ids as the
//! server's event ids, so the server's idempotency applies. The global log is
//! the server's `$all` in its own order, and tasklog's position is the event's
//! commit position there; `read_all` resumes from it and drops what it has seen.
//! Subscribers follow the shared loop in [`tasklog_events::subscription`], woken by one
//! live `$all` subscription per store that the server filters to tasklog's
//! streams.
//!
//! What differs from the other backends:
//! - No hash chain: streams are appended independently, so an event cannot
//!   know the hash of the one before it in `$all` when it is written;
//!   [`verify`](tasklog_events::verify) checks positions and revisions here.
//! - Positions are large and sparse (byte offsets in the server's log).
//! - An append to several streams is written stream by stream: the client
//!   has no append that spans streams, so a failure part way leaves the
//!   parts before it (a retry with the same event ids writes the rest).
//! - The `eventstore` client reads `$all` without a server-side filter, so
//!   `read_all` filters pages itself; the live subscription is filtered by the
//!   server.
//!
//! The URL is the client's connection string (`esdb://host:2113?tls=false`,
//! `esdb+discover://..` for a cluster; `kurrentdb://` is read as `esdb://`)
//! with one more optional parameter, `namespace`: a prefix put before every
//! stream name, so several tasklog deployments (or tests) can share a server.
//!
//! # Layout
//! - this module: [`EventStoreDbStore`], the URL, the mapping of events and
//!   expected revisions to the server's, the live `$all` subscription.
//! - [`testing`] (feature `testing`): a namespace per test on a configured server.

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, ReadAllOptions, ReadStreamOptions,
    StreamPosition, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{oneshot, watch};

use tasklog_events::append_checks::{check_append, earlier_append, Appended};
use tasklog_events::envelope::{Metadata, NewEvent, Position, RecordedEvent};
use tasklog_events::hash_chain::GENESIS;
use tasklog_events::store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
    StreamAppend,
};
use tasklog_events::subscription::advance_head;

/// How long to wait before subscribing again after the live subscription drops.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// How many `$all` events one read asks the server for.
const READ_PAGE: usize = 4096;

/// An event store on an EventStoreDB / KurrentDB server. Cheap to clone.
#[derive(Clone)]
pub struct EventStoreDbStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    namespace: String,
    /// Moved on by this store's own appends at once, and by everyone's through
    /// the live subscription.
    head: watch::Sender<Position>,
    _stop_follower: oneshot::Sender<()>,
}

/// What tasklog keeps in each event's custom metadata: the envelope fields the
/// server has no place for.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeMetadata {
    schema_version: u32,
    /// Microseconds since 1970: the writer's clock, as in every backend.
    recorded_at: i64,
    #[serde(flatten)]
    metadata: Metadata,
}

impl EventStoreDbStore {
    /// Connects to the server at `url` (see the module documentation).
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let (url, namespace) = split_namespace(url);
        let settings: ClientSettings = url
            .parse()
            .map_err(|e| StorageError::caused_by("reading the EventStoreDB URL", e))?;
        let client = Client::new(settings)
            .map_err(|e| StorageError::caused_by("connecting to EventStoreDB", e))?;
        let (stop, stopped) = oneshot::channel();
        let store = EventStoreDbStore {
            inner: Arc::new(Inner {
                client,
                namespace,
                head: watch::Sender::new(Position::START),
                _stop_follower: stop,
            }),
        };
        let head = store.head().await.map_err(|ReadError::Storage(e)| e)?;
        advance_head(&store.inner.head, head);
        let namespace = &store.inner.namespace;
        let filter = tasklog_events::StreamName::PREFIXES
            .iter()
            .fold(SubscriptionFilter::on_stream_name(), |filter, prefix| {
                filter.add_prefix(format!("{namespace}{prefix}"))
            });
        let follower = follow_head(
            store.inner.client.clone(),
            filter,
            store.inner.head.clone(),
            stopped,
        );
        tokio::spawn(follower);
        Ok(store)
    }

    /// The server's name for a tasklog stream.
    fn server_stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.inner.namespace)
    }

    /// The tasklog stream a server event belongs to, if it is one of ours.
    fn tasklog_stream<'a>(&self, server_stream: &'a str) -> Option<&'a str> {
        let stream = server_stream.strip_prefix(self.inner.namespace.as_str())?;
        let ours = tasklog_events::StreamName::PREFIXES
            .iter()
            .any(|prefix| stream.starts_with(prefix));
        ours.then_some(stream)
    }

    fn decode(
        &self,
        event: &eventstore::RecordedEvent,
    ) -> Option<Result<RecordedEvent, StorageError>> {
        let stream = self.tasklog_stream(&event.stream_id)?;
        let position = Position(event.position.commit);
        let corrupt = |what: &str| StorageError::new(format!("position {position}: bad {what}"));
        let decoded = (|| {
            let envelope: EnvelopeMetadata =
                serde_json::from_slice(&event.custom_metadata).map_err(|_| corrupt("metadata"))?;
            Ok(RecordedEvent {
                position,
                stream: stream.to_owned(),
                revision: event.revision,
                id: event.id,
                event_type: event.event_type.clone(),
                schema_version: envelope.schema_version,
                recorded_at: chrono::DateTime::from_timestamp_micros(envelope.recorded_at)
                    .ok_or_else(|| corrupt("recorded time"))?,
                payload: String::from_utf8(event.data.to_vec()).map_err(|_| corrupt("payload"))?,
                metadata: envelope.metadata,
                hash: GENESIS,
            })
        })();
        Some(decoded)
    }

    /// Every event of one stream, from revision `from`, at most `limit`.
    async fn read_server_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StorageError> {
        let failed = |e| StorageError::caused_by(format!("reading {stream}"), e);
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(limit);
        let mut read = match self
            .inner
            .client
            .read_stream(self.server_stream(stream), &options)
            .await
        {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(error) => return Err(failed(error)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = resolved.event.as_ref().and_then(|e| self.decode(e)) {
                        events.push(event?);
                    }
                }
                Ok(None) | Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                Err(error) => return Err(failed(error)),
            }
        }
    }

    /// What a rejected append found: an earlier append of the same ids, or a
    /// conflict with the stream's actual revision.
    async fn explain_rejection(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
        actual: Option<u64>,
    ) -> Result<AppendResult, AppendError> {
        let written = self.read_server_stream(stream, 0, usize::MAX).await?;
        let found: Vec<Option<Appended>> = events
            .iter()
            .map(|event| {
                written.iter().find(|w| w.id == event.id).map(|w| Appended {
                    position: w.position,
                    stream: w.stream.clone(),
                    revision: w.revision,
                })
            })
            .collect();
        match earlier_append(stream, events, &found) {
            Some(earlier) => earlier,
            None => Err(AppendError::Conflict {
                stream: stream.to_owned(),
                expected,
                actual: actual.or_else(|| written.last().map(|e| e.revision)),
            }),
        }
    }
}

/// Takes tasklog's own `namespace` parameter out of the URL; reads
/// `kurrentdb://` as `esdb://`.
fn split_namespace(url: &str) -> (String, String) {
    let url = match url.split_once("://") {
        Some(("kurrentdb", rest)) => format!("esdb://{rest}"),
        Some(("kurrentdb+discover", rest)) => format!("esdb+discover://{rest}"),
        _ => url.to_owned(),
    };
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut namespace = String::new();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.strip_prefix("namespace=") {
            Some(name) => namespace = name.to_owned(),
            None => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, namespace)
}

/// Moves the head on as the server reports new tasklog events, subscribing
/// again whenever the subscription drops.
async fn follow_head(
    client: Client,
    filter: SubscriptionFilter,
    head: watch::Sender<Position>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(filter.clone());
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                event = subscription.next_subscription_event() => match event {
                    Ok(SubscriptionEvent::EventAppeared(resolved)) => {
                        let position = resolved.get_original_event().position.commit;
                        advance_head(&head, Position(position));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "the EventStoreDB subscription dropped; subscribing again");
                        break;
                    }
                },
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(RESUBSCRIBE) => {}
        }
    }
}

fn to_server_revision(expected: ExpectedRevision) -> eventstore::ExpectedRevision {
    match expected {
        ExpectedRevision::Any => eventstore::ExpectedRevision::Any,
        ExpectedRevision::NoStream => eventstore::ExpectedRevision::NoStream,
        ExpectedRevision::Exact(revision) => eventstore::ExpectedRevision::Exact(revision),
    }
}

fn to_event_data(event: &NewEvent) -> Result<eventstore::EventData, AppendError> {
    let invalid = |e: serde_json::Error| AppendError::Invalid(format!("event {}: {e}", event.id));
    // The payload goes as the exact text the writer made, as JSON.
    let payload = RawValue::from_string(event.payload.clone()).map_err(invalid)?;
    let envelope = EnvelopeMetadata {
        schema_version: event.schema_version,
        recorded_at: event.recorded_at.timestamp_micros(),
        metadata: event.metadata.clone(),
    };
    eventstore::EventData::json(&event.event_type, &payload)
        .and_then(|data| data.metadata_as_json(&envelope))
        .map(|data| data.id(event.id))
        .map_err(invalid)
}

#[async_trait]
impl EventStore for EventStoreDbStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        check_append(stream, &events)?;
        let data = events
            .iter()
            .map(to_event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            AppendToStreamOptions::default().expected_revision(to_server_revision(expected));
        let written = self
            .inner
            .client
            .append_to_stream(self.server_stream(stream), &options, data)
            .await;
        match written {
            Ok(result) => {
                let revision = result.next_expected_version;
                let last_position = Position(result.position.commit);
                advance_head(&self.inner.head, last_position);
                let first_position = if events.len() == 1 {
                    last_position
                } else {
                    let first_revision = revision + 1 - events.len() as u64;
                    let first = self.read_server_stream(stream, first_revision, 1).await?;
                    first.first().map_or(last_position, |event| event.position)
                };
                Ok(AppendResult {
                    first_position,
                    last_position,
                    revision,
                })
            }
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    eventstore::CurrentRevision::Current(revision) => Some(revision),
                    eventstore::CurrentRevision::NoStream => None,
                };
                self.explain_rejection(stream, expected, &events, actual)
                    .await
            }
            Err(error) => Err(StorageError::caused_by("appending to EventStoreDB", error).into()),
        }
    }

    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        let mut results = Vec::with_capacity(appends.len());
        for part in appends {
            results.push(
                self.append(&part.stream, part.expected, part.events)
                    .await?,
            );
        }
        Ok(results)
    }

    fn appends_many_atomically(&self) -> bool {
        false
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        Ok(self.read_server_stream(stream, from, limit).await?)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let failed = |e| ReadError::Storage(StorageError::caused_by("reading $all", e));
        let mut events = Vec::new();
        let mut from = after;
        'pages: while events.len() < limit {
            let start = if from == Position::START {
                StreamPosition::Start
            } else {
                StreamPosition::Position(eventstore::Position {
                    commit: from.0,
                    prepare: from.0,
                })
            };
            let options = ReadAllOptions::default()
                .forwards()
                .position(start)
                .max_count(READ_PAGE);
            let mut read = self.inner.client.read_all(&options).await.map_err(failed)?;
            let mut read_any = false;
            while let Some(resolved) = read.next().await.map_err(failed)? {
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                let position = Position(event.position.commit);
                // The read starts at `from` itself; skip what was seen.
                if position <= from {
                    continue;
                }
                read_any = true;
                from = position;
                if let Some(decoded) = self.decode(event) {
                    events.push(decoded?);
                    if events.len() == limit {
                        break 'pages;
                    }
                }
            }
            if !read_any {
                break;
            }
        }
        Ok(events)
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        tasklog_events::subscription::follow(self.clone(), after)
    }

    async fn head(&self) -> Result<Position, ReadError> {
        let failed = |e| ReadError::Storage(StorageError::caused_by("reading $all", e));
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(usize::MAX);
        let mut read = self.inner.client.read_all(&options).await.map_err(failed)?;
        while let Some(resolved) = read.next().await.map_err(failed)? {
            if let Some(event) = resolved.event.as_ref() {
                if self.tasklog_stream(&event.stream_id).is_some() {
                    return Ok(Position(event.position.commit));
                }
            }
        }
        Ok(Position::START)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }

    fn keeps_hash_chain(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::split_namespace;

    tasklog_store_testkit::conformance_tests!(crate::testing::fresh_store());

    #[test]
    fn the_namespace_is_tasklogs_and_kurrentdb_urls_are_read_as_esdb() {
        assert_eq!(
            split_namespace("kurrentdb://db:2113?tls=false&namespace=prod."),
            ("esdb://db:2113?tls=false".to_owned(), "prod.".to_owned())
        );
        assert_eq!(
            split_namespace("esdb+discover://a:2113,b:2113"),
            ("esdb+discover://a:2113,b:2113".to_owned(), String::new())
        );
    }
}
