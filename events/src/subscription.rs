//! Catch-up-then-live subscriptions, built on `read_all` and the head watch.
//!
//! A subscriber always reads from the log; the head watch only wakes it. So
//! there is no buffer to overflow: a slow subscriber is simply further behind in
//! the log, and catching up and going live are the same loop.

use std::collections::VecDeque;

use futures::StreamExt;

use crate::envelope::{Position, RecordedEvent};
use crate::paging::LogCursor;
use crate::store::{EventStore, EventStream, ReadError, StorageError};

/// How many events a subscriber reads from the log at a time.
const PAGE: usize = 1024;

/// How often an idle subscriber looks at the log without being woken.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

struct Follower<S> {
    store: S,
    cursor: LogCursor,
    buffered: VecDeque<RecordedEvent>,
    head: tokio::sync::watch::Receiver<Position>,
    /// The last read reached the head as it was then.
    at_head: bool,
}

/// Moves a head watch on to `to`, unless it is already there or beyond;
/// subscribers wake only when it moves.
pub fn advance_head(head: &tokio::sync::watch::Sender<Position>, to: Position) {
    head.send_if_modified(|h| {
        let moved = to > *h;
        *h = (*h).max(to);
        moved
    });
}

/// Every event after `after`, in log order, from the log and then live.
/// Backends implement [`EventStore::subscribe_all`] with this unless they have
/// a native subscription that keeps the same promise.
pub fn follow<S: EventStore + Clone>(store: S, after: Position) -> EventStream {
    let head = store.watch_head();
    let follower = Follower {
        store,
        cursor: LogCursor::new(after, PAGE),
        buffered: VecDeque::new(),
        head,
        at_head: false,
    };
    futures::stream::try_unfold(follower, |mut f| async move {
        loop {
            if let Some(event) = f.buffered.pop_front() {
                return Ok(Some((event, f)));
            }
            if f.at_head {
                // `wait_for` looks at the current head first, so an append that
                // landed after the last read is not missed. The watch only
                // hears of this process's appends, so look at the log now and
                // then anyway: another process may be writing to it.
                let after = f.cursor.after();
                let woken = tokio::time::timeout(RECHECK, f.head.wait_for(|head| *head > after));
                if let Ok(closed) = woken.await {
                    closed.map_err(|_| {
                        ReadError::Storage(StorageError::new("the store was closed"))
                    })?;
                }
            }
            let page = f.cursor.next_page(&f.store).await?;
            // A short page ended at the head: wait for it to move before the
            // next read, instead of reading an empty page first.
            f.at_head = page.len() < PAGE;
            f.buffered.extend(page);
        }
    })
    .boxed()
}
