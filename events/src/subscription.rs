//! Catch-up-then-live subscriptions, built on `read_all` and the head watch.
//!
//! A subscriber always reads from the log; the head watch only wakes it. So
//! there is no buffer to overflow: a slow subscriber is simply further behind in
//! the log, and catching up and going live are the same loop.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::envelope::{Position, RecordedEvent};
use crate::store::{EventStore, EventStream, ReadError, StorageError};

/// How many events a subscriber reads from the log at a time.
const PAGE: usize = 1024;

/// How often an idle subscriber looks at the log without being woken.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads up to `limit` events after a position: how a subscription reads the log.
pub type ReadPage = Box<dyn Fn(Position, usize) -> BoxFuture<'static, Page> + Send + Sync>;
type Page = Result<Vec<RecordedEvent>, ReadError>;

struct Follower {
    read_page: ReadPage,
    /// The position of the last event read.
    after: Position,
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

/// Waits for the stream's next item, then takes whatever else is ready, up
/// to `most` in all, into `ready` (emptied first); false once the stream has
/// ended. What `ready_chunks` does, but into a buffer the caller keeps:
/// `ready_chunks` allocates a full chunk's room for every chunk, which for
/// events by value is tens of kilobytes each time. Cancel-safe: it awaits
/// only the first item. The stream must be fused.
pub async fn next_ready<S>(stream: &mut S, ready: &mut Vec<S::Item>, most: usize) -> bool
where
    S: futures::stream::FusedStream + Unpin,
{
    ready.clear();
    let Some(first) = stream.next().await else {
        return false;
    };
    ready.push(first);
    while ready.len() < most {
        match stream.next().now_or_never() {
            Some(Some(item)) => ready.push(item),
            _ => break,
        }
    }
    true
}

/// Every event after `after`, in log order, from the log and then live.
/// Backends implement [`EventStore::subscribe_all`] with this unless they have
/// a native subscription that keeps the same promise.
pub fn follow<S: EventStore + Clone>(store: S, after: Position) -> EventStream {
    let head = store.watch_head();
    let read_page: ReadPage = Box::new(move |after, limit| {
        let store = store.clone();
        async move { store.read_all(after, limit).await }.boxed()
    });
    follow_pages(head, after, read_page)
}

/// [`follow`], reading the log with `read_page` and woken by `head`: for a
/// backend that reads some pages from elsewhere than `read_all`.
pub fn follow_pages(
    head: tokio::sync::watch::Receiver<Position>,
    after: Position,
    read_page: ReadPage,
) -> EventStream {
    let follower = Follower {
        read_page,
        after,
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
                let after = f.after;
                let woken = tokio::time::timeout(RECHECK, f.head.wait_for(|head| *head > after));
                if let Ok(closed) = woken.await {
                    closed.map_err(|_| {
                        ReadError::Storage(StorageError::new("the store was closed"))
                    })?;
                }
            }
            let page = (f.read_page)(f.after, PAGE).await?;
            if let Some(last) = page.last() {
                f.after = last.position;
            }
            // A short page ended at the head: wait for it to move before the
            // next read, instead of reading an empty page first.
            f.at_head = page.len() < PAGE;
            f.buffered.extend(page);
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::next_ready;

    #[tokio::test]
    async fn next_ready_takes_what_is_ready_up_to_most_then_says_the_end() {
        let (send, mut receive) = futures::channel::mpsc::unbounded();
        for n in 1..=3 {
            send.unbounded_send(n).unwrap();
        }
        let mut ready = vec![99];
        assert!(next_ready(&mut receive, &mut ready, 2).await);
        assert_eq!(ready, [1, 2]);
        assert!(next_ready(&mut receive, &mut ready, 2).await);
        assert_eq!(ready, [3]);
        // Nothing ready: it waits for the next item instead of answering empty.
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            send.unbounded_send(4).unwrap();
        });
        assert!(next_ready(&mut receive, &mut ready, 2).await);
        assert_eq!(ready, [4]);
        late.await.unwrap();
        assert!(!next_ready(&mut receive, &mut ready, 2).await);
        assert!(ready.is_empty());
    }
}
