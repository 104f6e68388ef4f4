//! One reader of the log for every live subscriber in a process.
//!
//! A [`Fanout`] follows the log once and hands each new event to every live
//! subscriber from memory, through a bounded ring ([`tokio::sync::broadcast`]).
//! A subscriber catches up from the log first, then goes live; one that falls
//! more than the ring behind is told so by the ring, drops back to reading the
//! log in pages, and goes live again once caught up. So a slow subscriber is
//! never cut off, never loses or repeats an event, and never holds up the
//! writers or the other subscribers, and a thousand live subscribers cost one
//! read of each new event instead of a thousand.
//!
//! Why nothing falls between the log and the ring: a subscriber joins the ring
//! before its last read of the log. An event the reader handed out before the
//! subscriber joined was durable by then, so that read sees it; an event handed
//! out after is in the ring. Events seen twice that way are skipped by position.
//!
//! The reader hands events out in bursts, spaced by [`PACE_PER_SUBSCRIBER`]
//! for each live subscriber (at most [`PACE_MOST`]): each subscriber then
//! writes a burst to its client at once, so a thousand subscribers cost a
//! thousand writes per burst, not per event, and the fan-out's share of the
//! CPU stays about the same however many there are. One subscriber waits
//! next to nothing; an event that comes after a quiet spell goes out at once.
//!
//! A subscriber that starts at what the reader has handed out goes live
//! without reading the log at all.
//!
//! When the reader's read fails, it says so through the ring, so live
//! subscribers end with the error (a client resumes from its last event) while
//! the reader tries again. Only the reader holds the ring's sender: if it ever
//! stops, the ring closes and every subscriber ends instead of waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::envelope::{Position, RecordedEvent};
use crate::paging::LogCursor;
use crate::store::{EventStore, ReadError, StorageError};

/// How many events a subscriber reads from the log at a time while it catches up.
const PAGE: usize = 1024;

/// Events in log order, catch-up then live, shared with other subscribers.
pub type SharedEventStream = BoxStream<'static, Result<Arc<RecordedEvent>, ReadError>>;

/// The shared reader of one store's log. Cheap to clone; the reader stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

/// What the ring carries: the next event, or why the reader could not read it.
type Shared = Result<Arc<RecordedEvent>, Arc<str>>;

struct Inner {
    store: Arc<dyn EventStore>,
    /// Weak, so the ring closes when the reader (its one sender) stops.
    live: broadcast::WeakSender<Shared>,
    /// The position of the last event handed to the ring.
    published: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Fanout {
    /// Starts following `store` from its head, keeping the last `ring` events
    /// for subscribers that are a little behind.
    pub async fn start(store: Arc<dyn EventStore>, ring: usize) -> Result<Self, ReadError> {
        let head = store.head().await?;
        let (live, _) = broadcast::channel(ring.max(1));
        let weak = live.downgrade();
        let published = Arc::new(AtomicU64::new(head.0));
        let reader = tokio::spawn(read(store.clone(), head, live, published.clone()));
        Ok(Fanout {
            inner: Arc::new(Inner {
                store,
                live: weak,
                published,
                reader,
            }),
        })
    }

    /// Every event after `after`: from the log until caught up, then live.
    pub fn subscribe(&self, after: Position) -> SharedEventStream {
        let subscriber = Subscriber {
            fanout: self.clone(),
            cursor: LogCursor::new(after, PAGE),
            delivered: after,
            state: State::CatchingUp(None),
        };
        futures::stream::try_unfold(subscriber, |mut s| async move {
            let event = s.next().await?;
            Ok(Some((event, s)))
        })
        .boxed()
    }
}

/// Follows the log and hands every event to the live subscribers, in bursts
/// paced by how many there are. A failed read starts the subscription again
/// after the last event handed out: live subscribers only wait meanwhile.
async fn read(
    store: Arc<dyn EventStore>,
    mut after: Position,
    live: broadcast::Sender<Shared>,
    published: Arc<AtomicU64>,
) {
    let mut pause = RETRY_FIRST;
    let mut last_burst = tokio::time::Instant::now();
    loop {
        let mut events = store.subscribe_all(after).fuse();
        let mut burst = Vec::new();
        let failed = loop {
            let mut next = events.next().await;
            if next.is_none() {
                break None;
            }
            // Gather what comes until a pace has passed since the last burst,
            // then whatever else is ready.
            let subscribers = u32::try_from(live.receiver_count()).unwrap_or(u32::MAX);
            let due = last_burst + (PACE_PER_SUBSCRIBER * subscribers).min(PACE_MOST);
            while let Some(Ok(event)) = next {
                burst.push(event);
                next = if burst.len() < BURST_MOST {
                    tokio::time::timeout_at(due, events.next())
                        .await
                        .ok()
                        .flatten()
                } else {
                    None
                };
            }
            if let Some(last) = burst.last() {
                after = last.position;
                pause = RETRY_FIRST;
                // Before the send: a subscriber that sees this position in
                // `published` joined the ring in time for these events.
                published.store(after.0, Ordering::Release);
                for event in burst.drain(..) {
                    // No live subscriber: nothing to hand out, which is fine.
                    let _ = live.send(Ok(Arc::new(event)));
                }
                last_burst = tokio::time::Instant::now();
            }
            if let Some(Err(error)) = next {
                break Some(error);
            }
        };
        if let Some(error) = failed {
            tracing::warn!(%error, "the shared reader of the log failed; reading again");
            let _ = live.send(Err(error.to_string().into()));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MOST);
    }
}

/// The least time between two bursts while events keep coming, for each live
/// subscriber, and at most: about what a write to one subscriber costs, so
/// that writing a burst to all of them takes a fraction of a core.
const PACE_PER_SUBSCRIBER: Duration = Duration::from_micros(20);
const PACE_MOST: Duration = Duration::from_millis(20);
/// The most events in one burst.
const BURST_MOST: usize = 1024;

/// How long the reader waits before it reads again after a failure, at first
/// and at most.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MOST: std::time::Duration = std::time::Duration::from_secs(5);

enum State {
    /// Reading the log; the ring joined before the last read, if any.
    CatchingUp(Option<broadcast::Receiver<Shared>>),
    /// Events of the current log page, then the ring.
    Paging(
        std::vec::IntoIter<RecordedEvent>,
        broadcast::Receiver<Shared>,
    ),
    Live(broadcast::Receiver<Shared>),
}

fn stopped() -> ReadError {
    ReadError::Storage(StorageError::new(
        "the shared reader of the log has stopped",
    ))
}

struct Subscriber {
    fanout: Fanout,
    cursor: LogCursor,
    /// The position of the last event handed to the subscriber.
    delivered: Position,
    state: State,
}

impl Subscriber {
    async fn next(&mut self) -> Result<Arc<RecordedEvent>, ReadError> {
        loop {
            match std::mem::replace(&mut self.state, State::CatchingUp(None)) {
                State::CatchingUp(ring) => {
                    // Join the ring before reading, so nothing published from
                    // now on is missed, then read the log past what was delivered.
                    let ring = match ring {
                        Some(ring) => ring,
                        None => self
                            .fanout
                            .inner
                            .live
                            .upgrade()
                            .ok_or_else(stopped)?
                            .subscribe(),
                    };
                    // Nothing handed out that this subscriber lacks: live now.
                    if self.fanout.inner.published.load(Ordering::Acquire) <= self.delivered.0 {
                        self.state = State::Live(ring);
                        continue;
                    }
                    self.cursor = LogCursor::new(self.delivered, PAGE);
                    let page = self.cursor.next_page(&*self.fanout.inner.store).await?;
                    self.state = if page.is_empty() {
                        State::Live(ring)
                    } else {
                        State::Paging(page.into_iter(), ring)
                    };
                }
                State::Paging(mut page, ring) => match page.next() {
                    Some(event) => {
                        self.delivered = event.position;
                        self.state = State::Paging(page, ring);
                        return Ok(Arc::new(event));
                    }
                    None => self.state = State::CatchingUp(Some(ring)),
                },
                State::Live(mut ring) => match ring.recv().await {
                    Ok(Ok(event)) if event.position <= self.delivered => {
                        self.state = State::Live(ring)
                    }
                    Ok(Ok(event)) => {
                        self.delivered = event.position;
                        self.state = State::Live(ring);
                        return Ok(event);
                    }
                    Ok(Err(why)) => {
                        return Err(ReadError::Storage(StorageError::new(why.to_string())))
                    }
                    // Fell more than the ring behind: back to the log.
                    Err(RecvError::Lagged(_)) => self.state = State::CatchingUp(None),
                    Err(RecvError::Closed) => return Err(stopped()),
                },
            }
        }
    }
}
