//! The rules a single-writer backend applies to each append of a batch, with
//! no I/O: idempotency by event id, the expected revision, positions and
//! revisions, and the hash chain. The writer looks up what the log holds and
//! writes the rows; [`BatchPlanner`] decides everything in between.

use crate::append_checks::{earlier_append, Appended};
use crate::envelope::{NewEvent, Position};
use crate::hash_chain::{chain_hash, Hash, HashedFields, GENESIS};
use crate::store::{AppendError, AppendResult, ExpectedRevision};

/// The newest event of the log: where the next one goes and what it chains to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub position: Position,
    pub hash: Hash,
}

impl Head {
    /// The head of an empty log.
    pub const EMPTY: Head = Head {
        position: Position::START,
        hash: GENESIS,
    };
}

/// One event of an accepted append, as the log will hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedEvent<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub revision: u64,
    pub event: &'a NewEvent,
    pub hash: Hash,
}

/// Where a batch stood before an append to several streams.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    head: Head,
    planned: usize,
}

/// Decides the appends of one batch in order, each on top of those it
/// accepted before, and keeps the events to write.
#[derive(Debug)]
pub struct BatchPlanner<'a> {
    head: Head,
    planned: Vec<PlannedEvent<'a>>,
}

impl<'a> BatchPlanner<'a> {
    /// A planner for a batch written after `head`.
    pub fn new(head: Head) -> Self {
        BatchPlanner {
            head,
            planned: Vec::new(),
        }
    }

    /// Decides one append of (non-empty, [checked](crate::append_checks::check_append))
    /// `events` to `stream`, given where the log holds each event id (`found`,
    /// one entry an event) and the stream's last revision (None: no stream),
    /// both counting the appends this batch accepted before. Returns the
    /// outcome and the events to write for it (none unless it is accepted).
    pub fn plan(
        &mut self,
        stream: &'a str,
        expected: ExpectedRevision,
        events: &'a [NewEvent],
        found: &[Option<Appended>],
        revision: Option<u64>,
    ) -> (Result<AppendResult, AppendError>, &[PlannedEvent<'a>]) {
        let start = self.planned.len();
        let outcome = match earlier_append(stream, events, found) {
            Some(earlier) => earlier,
            None if !expected.admits(revision) => Err(AppendError::Conflict {
                stream: stream.to_owned(),
                expected,
                actual: revision,
            }),
            None => Ok(self.accept(stream, events, revision)),
        };
        (outcome, &self.planned[start..])
    }

    /// Places `events` after the head and after the stream's last `revision`.
    fn accept(
        &mut self,
        stream: &'a str,
        events: &'a [NewEvent],
        revision: Option<u64>,
    ) -> AppendResult {
        let first_revision = revision.map_or(0, |revision| revision + 1);
        let first_position = Position(self.head.position.0 + 1);
        for (revision, event) in (first_revision..).zip(events) {
            let position = Position(self.head.position.0 + 1);
            let hash = chain_hash(
                &self.head.hash,
                &HashedFields::of_new(stream, revision, event),
            );
            self.head = Head { position, hash };
            self.planned.push(PlannedEvent {
                position,
                stream,
                revision,
                event,
                hash,
            });
        }
        AppendResult {
            first_position,
            last_position: self.head.position,
            revision: first_revision + events.len() as u64 - 1,
        }
    }

    /// Where the batch stands, to [`rewind`](Self::rewind) to.
    pub fn mark(&self) -> Mark {
        Mark {
            head: self.head,
            planned: self.planned.len(),
        }
    }

    /// Forgets every append accepted since `mark`: a part of an append to
    /// several streams failed, so none of its parts is written.
    pub fn rewind(&mut self, mark: Mark) {
        self.head = mark.head;
        self.planned.truncate(mark.planned);
    }

    /// The head once every accepted append is written.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Every event the batch's accepted appends write, in log order.
    pub fn planned(&self) -> &[PlannedEvent<'a>] {
        &self.planned
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::envelope::Metadata;

    fn event(n: u128) -> NewEvent {
        NewEvent {
            id: uuid::Uuid::from_u128(n),
            event_type: "TaskCreated".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp_micros(n as i64).unwrap(),
            payload: format!("{{\"n\":{n}}}"),
            metadata: Metadata::default(),
        }
    }

    fn appended(position: u64, stream: &str, revision: u64) -> Option<Appended> {
        Some(Appended {
            position: Position(position),
            stream: stream.into(),
            revision,
        })
    }

    fn accepted(first: u64, last: u64, revision: u64) -> AppendResult {
        AppendResult {
            first_position: Position(first),
            last_position: Position(last),
            revision,
        }
    }

    #[test]
    fn the_expected_revision_admits_or_conflicts() {
        use ExpectedRevision::*;
        let events = [event(1)];
        let cases = [
            (Any, None, Some(0)),
            (Any, Some(4), Some(5)),
            (NoStream, None, Some(0)),
            (NoStream, Some(0), None),
            (Exact(4), Some(4), Some(5)),
            (Exact(4), Some(5), None),
            (Exact(0), None, None),
        ];
        for (expected, actual, due) in cases {
            let mut planner = BatchPlanner::new(Head::EMPTY);
            let (outcome, planned) = planner.plan("task-a", expected, &events, &[None], actual);
            match (outcome, due) {
                (Ok(result), Some(revision)) => {
                    assert_eq!(result, accepted(1, 1, revision), "{expected} on {actual:?}");
                    assert_eq!(planned.len(), 1);
                }
                (Err(AppendError::Conflict { actual: seen, .. }), None) => {
                    assert_eq!(seen, actual);
                    assert!(planned.is_empty());
                }
                (outcome, _) => panic!("{expected} on {actual:?}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn a_retried_append_returns_the_first_result_and_writes_nothing() {
        let head = Head {
            position: Position(9),
            hash: [7; 32],
        };
        let mut planner = BatchPlanner::new(head);
        let events = [event(1), event(2)];
        let found = [appended(5, "task-a", 2), appended(6, "task-a", 3)];
        let (outcome, planned) = planner.plan(
            "task-a",
            ExpectedRevision::NoStream,
            &events,
            &found,
            Some(3),
        );
        assert_eq!(outcome.unwrap(), accepted(5, 6, 3));
        assert!(planned.is_empty());
        assert_eq!(planner.head(), head);
    }

    #[test]
    fn ids_appended_but_not_as_this_append_are_a_mismatch() {
        let events = [event(1), event(2)];
        let cases = [
            [None, appended(6, "task-a", 3)],
            [appended(5, "task-a", 2), None],
            [appended(5, "task-b", 2), appended(6, "task-b", 3)],
            [appended(5, "task-a", 2), appended(7, "task-a", 4)],
        ];
        for found in cases {
            let mut planner = BatchPlanner::new(Head::EMPTY);
            let (outcome, planned) =
                planner.plan("task-a", ExpectedRevision::Any, &events, &found, Some(4));
            assert!(
                matches!(outcome, Err(AppendError::IdempotencyMismatch { .. })),
                "{found:?}: {outcome:?}"
            );
            assert!(planned.is_empty());
        }
    }

    #[test]
    fn appends_of_one_batch_follow_each_other() {
        let mut planner = BatchPlanner::new(Head::EMPTY);
        let (first, second, other) = ([event(1), event(2)], [event(3)], [event(4)]);
        let (outcome, _) = planner.plan(
            "task-a",
            ExpectedRevision::NoStream,
            &first,
            &[None, None],
            None,
        );
        let revision = outcome.unwrap().revision;
        assert_eq!(revision, 1);
        let rejected = planner.plan("task-b", ExpectedRevision::Exact(0), &other, &[None], None);
        assert!(matches!(rejected.0, Err(AppendError::Conflict { .. })));
        let (outcome, planned) = planner.plan(
            "task-a",
            ExpectedRevision::Exact(revision),
            &second,
            &[None],
            Some(revision),
        );
        assert_eq!(outcome.unwrap(), accepted(3, 3, 2));
        assert_eq!((planned[0].position, planned[0].revision), (Position(3), 2));
        let (outcome, _) = planner.plan("task-b", ExpectedRevision::Any, &other, &[None], None);
        assert_eq!(outcome.unwrap(), accepted(4, 4, 0));
        let written: Vec<_> = planner
            .planned()
            .iter()
            .map(|p| (p.position.0, p.stream, p.revision, p.event.id))
            .collect();
        let id = uuid::Uuid::from_u128;
        assert_eq!(
            written,
            [
                (1, "task-a", 0, id(1)),
                (2, "task-a", 1, id(2)),
                (3, "task-a", 2, id(3)),
                (4, "task-b", 0, id(4)),
            ]
        );
    }

    #[test]
    fn a_rewind_forgets_what_was_accepted_since_the_mark() {
        let mut planner = BatchPlanner::new(Head::EMPTY);
        let (first, second) = ([event(1)], [event(2)]);
        let (outcome, _) = planner.plan("task-a", ExpectedRevision::Any, &first, &[None], None);
        outcome.unwrap();
        let (mark, head) = (planner.mark(), planner.head());
        let (outcome, _) = planner.plan("task-b", ExpectedRevision::Any, &second, &[None], None);
        outcome.unwrap();
        planner.rewind(mark);
        assert_eq!(planner.head(), head);
        assert_eq!(planner.planned().len(), 1);
        let (outcome, planned) =
            planner.plan("task-c", ExpectedRevision::Any, &second, &[None], None);
        assert_eq!(outcome.unwrap(), accepted(2, 2, 0));
        assert_eq!(
            planned[0].hash,
            chain_hash(&head.hash, &HashedFields::of_new("task-c", 0, &second[0]))
        );
    }

    #[test]
    fn hashes_chain_from_genesis_and_from_a_head() {
        let events = [event(1), event(2)];
        for head in [
            Head::EMPTY,
            Head {
                position: Position(41),
                hash: [3; 32],
            },
        ] {
            let mut planner = BatchPlanner::new(head);
            let (outcome, _) = planner.plan(
                "task-a",
                ExpectedRevision::Any,
                &events,
                &[None, None],
                None,
            );
            outcome.unwrap();
            let planned = planner.planned();
            let first = chain_hash(&head.hash, &HashedFields::of_new("task-a", 0, &events[0]));
            let second = chain_hash(&first, &HashedFields::of_new("task-a", 1, &events[1]));
            assert_eq!([planned[0].hash, planned[1].hash], [first, second]);
            assert_eq!(
                planner.head(),
                Head {
                    position: Position(head.position.0 + 2),
                    hash: second,
                }
            );
        }
    }
}
