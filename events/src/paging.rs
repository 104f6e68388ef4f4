//! Reading the global log a page at a time, written once for every reader
//! that walks it: replays, exports, [`verify`](crate::verify), subscriptions.

use futures::stream::BoxStream;
use futures::StreamExt;

use crate::envelope::{Position, RecordedEvent};
use crate::store::{EventStore, ReadError};

/// Where a reader of the global log stands: after the last event it read.
#[derive(Clone, Copy, Debug)]
pub struct LogCursor {
    after: Position,
    page: usize,
}

impl LogCursor {
    /// A cursor that reads the events after `after`, up to `page` at a time.
    pub fn new(after: Position, page: usize) -> Self {
        LogCursor { after, page }
    }

    /// The position of the last event read (`after` before the first page).
    pub fn after(&self) -> Position {
        self.after
    }

    /// Reads the next page and moves past it; empty at the head, where a
    /// later call may find new events.
    pub async fn next_page(
        &mut self,
        store: &dyn EventStore,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let page = store.read_all(self.after, self.page).await?;
        if let Some(last) = page.last() {
            self.after = last.position;
        }
        Ok(page)
    }
}

/// Pages of the global log, in order.
pub type Pages<'s> = BoxStream<'s, Result<Vec<RecordedEvent>, ReadError>>;

/// The log after `after`, up to `page` events a page, up to the head. Each
/// page is read when the stream is polled, so polling for the next page while
/// working on the current one reads ahead.
pub fn read_all_pages(store: &dyn EventStore, after: Position, page: usize) -> Pages<'_> {
    futures::stream::try_unfold(LogCursor::new(after, page), move |mut cursor| async move {
        let page = cursor.next_page(store).await?;
        Ok((!page.is_empty()).then_some((page, cursor)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use chrono::DateTime;
    use futures::TryStreamExt;
    use tokio::sync::watch;

    use super::*;
    use crate::envelope::{Metadata, NewEvent};
    use crate::store::{AppendError, AppendResult, EventStream, ExpectedRevision};

    /// A log of events at positions 1 to n; it can only be read.
    struct Log(Vec<RecordedEvent>);

    impl Log {
        fn of(n: u64) -> Self {
            Log((1..=n)
                .map(|position| RecordedEvent {
                    position: Position(position),
                    stream: "task-a".into(),
                    revision: position - 1,
                    id: uuid::Uuid::from_u128(position.into()),
                    event_type: "TaskCreated".into(),
                    schema_version: 1,
                    recorded_at: DateTime::from_timestamp_micros(0).unwrap(),
                    payload: "{}".into(),
                    metadata: Metadata::default(),
                    hash: [0; 32],
                })
                .collect())
        }
    }

    #[async_trait]
    impl EventStore for Log {
        async fn append(
            &self,
            _: &str,
            _: ExpectedRevision,
            _: Vec<NewEvent>,
        ) -> Result<AppendResult, AppendError> {
            unimplemented!("a read-only log")
        }

        async fn append_many(
            &self,
            _: Vec<crate::StreamAppend>,
        ) -> Result<Vec<AppendResult>, AppendError> {
            unimplemented!("a read-only log")
        }

        async fn read_stream(
            &self,
            _: &str,
            _: u64,
            _: usize,
        ) -> Result<Vec<RecordedEvent>, ReadError> {
            unimplemented!("not paged here")
        }

        async fn read_all(
            &self,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, ReadError> {
            let events = self.0.iter().filter(|event| event.position > after);
            Ok(events.take(limit).cloned().collect())
        }

        fn subscribe_all(&self, _: Position) -> EventStream {
            unimplemented!("not paged here")
        }

        async fn head(&self) -> Result<Position, ReadError> {
            Ok(Position(self.0.len() as u64))
        }

        fn watch_head(&self) -> watch::Receiver<Position> {
            unimplemented!("not paged here")
        }
    }

    async fn page_positions(log: &Log, after: u64, page: usize) -> Vec<Vec<u64>> {
        read_all_pages(log, Position(after), page)
            .map_ok(|page| page.iter().map(|event| event.position.0).collect())
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn pages_run_from_after_to_the_head() {
        let log = Log::of(5);
        assert_eq!(
            page_positions(&log, 0, 2).await,
            [vec![1, 2], vec![3, 4], vec![5]]
        );
        assert_eq!(page_positions(&log, 3, 2).await, [vec![4, 5]]);
        assert!(page_positions(&log, 5, 2).await.is_empty());
        assert!(page_positions(&Log::of(0), 0, 2).await.is_empty());
    }

    #[tokio::test]
    async fn a_cursor_at_the_head_stays_there_until_more_is_appended() {
        let mut log = Log::of(2);
        let mut cursor = LogCursor::new(Position::START, 10);
        assert_eq!(cursor.next_page(&log).await.unwrap().len(), 2);
        assert!(cursor.next_page(&log).await.unwrap().is_empty());
        assert_eq!(cursor.after(), Position(2));
        log = Log::of(3);
        let page = cursor.next_page(&log).await.unwrap();
        assert_eq!(page[0].position, Position(3));
        assert_eq!(cursor.after(), Position(3));
    }
}
