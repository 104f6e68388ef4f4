//! The newest durable events this process appended, kept in memory: the
//! views and the live subscribers read what was just appended from here, not
//! from the file (no read connection, no blocking thread, no decoding).

use std::collections::VecDeque;
use std::sync::Mutex;

use tasklog_events::{Position, RecordedEvent};

/// How many of the newest events are kept.
const KEEP: usize = 8192;

/// A run of consecutive log positions, as the log holds them.
#[derive(Default)]
pub(super) struct Recent {
    events: Mutex<VecDeque<RecordedEvent>>,
}

impl Recent {
    /// Adds a durable batch. One that does not follow the newest kept event
    /// (another process appended in between) starts the run afresh.
    pub fn push(&self, batch: Vec<RecordedEvent>) {
        let mut events = self.events.lock().expect("recent events");
        let follows = match (events.back(), batch.first()) {
            (Some(newest), Some(first)) => first.position.0 == newest.position.0 + 1,
            _ => true,
        };
        if !follows {
            events.clear();
        }
        events.extend(batch);
        let over = events.len().saturating_sub(KEEP);
        events.drain(..over);
    }

    /// Up to `limit` events after `after`, when the run holds the next one;
    /// `None` sends the reader to the file.
    pub fn after(&self, after: Position, limit: usize) -> Option<Vec<RecordedEvent>> {
        let events = self.events.lock().expect("recent events");
        let oldest = events.front()?.position.0;
        let newest = events.back()?.position.0;
        if after.0 < oldest.saturating_sub(1) || after.0 >= newest {
            return None;
        }
        let start = (after.0 + 1 - oldest) as usize;
        Some(events.range(start..).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(positions: std::ops::RangeInclusive<u64>) -> Vec<RecordedEvent> {
        let new = tasklog_store_testkit::events(0..1)[0].clone();
        positions
            .map(|p| tasklog_events::envelope::recorded("task-a", p, vec![new.clone()]).remove(0))
            .collect()
    }

    fn positions(events: Option<Vec<RecordedEvent>>) -> Option<Vec<u64>> {
        events.map(|events| events.iter().map(|e| e.position.0).collect())
    }

    #[test]
    fn answers_only_what_it_holds_from_the_next_position() {
        let recent = Recent::default();
        assert_eq!(positions(recent.after(Position(0), 10)), None);
        recent.push(at(5..=9));
        assert_eq!(
            positions(recent.after(Position(3), 10)),
            None,
            "6 is missing"
        );
        assert_eq!(positions(recent.after(Position(4), 2)), Some(vec![5, 6]));
        assert_eq!(positions(recent.after(Position(7), 10)), Some(vec![8, 9]));
        assert_eq!(
            positions(recent.after(Position(9), 10)),
            None,
            "the file may hold more"
        );
    }

    #[test]
    fn a_batch_that_does_not_follow_starts_afresh_and_the_oldest_go() {
        let recent = Recent::default();
        recent.push(at(1..=3));
        recent.push(at(10..=11));
        assert_eq!(positions(recent.after(Position(1), 10)), None);
        assert_eq!(positions(recent.after(Position(9), 10)), Some(vec![10, 11]));
        recent.push(at(12..=(11 + KEEP as u64)));
        let gone = recent.after(Position(9), 1);
        assert_eq!(positions(gone), None, "10 and 11 are gone");
        assert_eq!(positions(recent.after(Position(11), 1)), Some(vec![12]));
    }
}
