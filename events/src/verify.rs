//! [`verify`]: walks the whole log and names the first position that was
//! edited, removed or moved behind the store's back.

use std::collections::HashMap;

use futures::TryStreamExt;

use crate::envelope::{Position, RecordedEvent};
use crate::hash_chain::{chain_hash, Hash, GENESIS};
use crate::paging::read_all_pages;
use crate::store::{EventStore, ReadError};

/// What a healthy log looks like after [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether the hash chain was checked (see [`EventStore::keeps_hash_chain`]);
    /// if not, `head_hash` means nothing.
    pub chained: bool,
    pub events: u64,
    pub streams: u64,
    pub head: Position,
    pub head_hash: Hash,
}

/// The first thing wrong with a log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("position {position}: the hash does not match; this event was edited, or one before it was removed or moved")]
    BrokenChain { position: Position },
    #[error("position {position} follows position {previous}: the log is out of order")]
    OutOfOrder {
        position: Position,
        previous: Position,
    },
    #[error("position {position}: {stream} has revision {revision} where {expected} was due")]
    RevisionGap {
        position: Position,
        stream: String,
        revision: u64,
        expected: u64,
    },
    #[error("reading the log: {0}")]
    Read(#[from] ReadError),
}

impl VerifyError {
    /// The first bad position, if the log itself is at fault.
    pub fn position(&self) -> Option<Position> {
        match self {
            VerifyError::BrokenChain { position }
            | VerifyError::OutOfOrder { position, .. }
            | VerifyError::RevisionGap { position, .. } => Some(*position),
            VerifyError::Read(_) => None,
        }
    }
}

/// Walks the whole log: positions rise, each stream's revisions run 0, 1, 2, ..
/// and every hash follows from the one before. The next page is read while
/// the current one is checked.
pub async fn verify(store: &dyn EventStore) -> Result<VerifyReport, VerifyError> {
    verify_with_progress(store, |_| {}).await
}

/// [`verify`], telling `checked_to` the position of each page's last event.
pub async fn verify_with_progress(
    store: &dyn EventStore,
    mut checked_to: impl FnMut(Position),
) -> Result<VerifyReport, VerifyError> {
    const PAGE: usize = 8192;
    let mut checker = Checker {
        chained: store.keeps_hash_chain(),
        previous: Position::START,
        previous_hash: GENESIS,
        next_revision: HashMap::new(),
        events: 0,
    };
    let mut pages = read_all_pages(store, Position::START, PAGE);
    let mut page = pages.try_next().await?;
    while let Some(current) = page {
        // The read goes first so that it runs while this page is checked.
        let (next, checked) = futures::join!(pages.try_next(), async {
            current.iter().try_for_each(|event| checker.check(event))
        });
        checked?;
        if let Some(last) = current.last() {
            checked_to(last.position);
        }
        page = next?;
    }
    Ok(VerifyReport {
        chained: checker.chained,
        events: checker.events,
        streams: checker.next_revision.len() as u64,
        head: checker.previous,
        head_hash: checker.previous_hash,
    })
}

/// What [`verify`] knows of the log so far.
struct Checker {
    chained: bool,
    previous: Position,
    previous_hash: Hash,
    next_revision: HashMap<String, u64>,
    events: u64,
}

impl Checker {
    fn check(&mut self, event: &RecordedEvent) -> Result<(), VerifyError> {
        if event.position <= self.previous {
            return Err(VerifyError::OutOfOrder {
                position: event.position,
                previous: self.previous,
            });
        }
        if self.chained && chain_hash(&self.previous_hash, &event.into()) != event.hash {
            return Err(VerifyError::BrokenChain {
                position: event.position,
            });
        }
        let expected = self
            .next_revision
            .get(event.stream.as_str())
            .copied()
            .unwrap_or(0);
        if event.revision != expected {
            return Err(VerifyError::RevisionGap {
                position: event.position,
                stream: event.stream.clone(),
                revision: event.revision,
                expected,
            });
        }
        match self.next_revision.get_mut(event.stream.as_str()) {
            Some(next) => *next += 1,
            None => {
                self.next_revision.insert(event.stream.clone(), 1);
            }
        }
        self.previous = event.position;
        self.previous_hash = event.hash;
        self.events += 1;
        Ok(())
    }
}
