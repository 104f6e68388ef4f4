//! What every backend checks of an append before it writes anything: that it
//! is well formed, and whether its event ids were appended before (idempotency).

use std::collections::HashSet;

use crate::envelope::{NewEvent, Position};
use crate::store::{AppendError, AppendResult};

/// Rejects an append with no events, with one event id twice, or with a NUL
/// character in its text (the stream, a type, a payload, metadata): no
/// PostgreSQL text can hold one, and a bad append must fail alone, before it
/// joins a batch with others.
pub fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), AppendError> {
    let nul = |text: &str| text.contains('\0');
    let metadata_nul = |event: &NewEvent| {
        let metadata = &event.metadata;
        [&metadata.actor, &metadata.request_id]
            .into_iter()
            .flatten()
            .any(|text| nul(text))
    };
    if nul(stream)
        || events
            .iter()
            .any(|e| nul(&e.event_type) || nul(&e.payload) || metadata_nul(e))
    {
        return Err(AppendError::Invalid(
            "a NUL character in the stream name or an event".into(),
        ));
    }
    if events.is_empty() {
        return Err(AppendError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    let mut ids = HashSet::with_capacity(events.len());
    if let Some(event) = events.iter().find(|event| !ids.insert(event.id)) {
        return Err(AppendError::Invalid(format!(
            "event id {} appears twice",
            event.id
        )));
    }
    Ok(())
}

/// Where the log already holds an event id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub position: Position,
    pub stream: String,
    pub revision: u64,
}

/// Given where each of `events` was appended before (`None`: never), the
/// outcome of that earlier append if this is a retry of it, a mismatch if some
/// ids were appended but not as this same append, or `None` if none were.
pub fn earlier_append(
    stream: &str,
    events: &[NewEvent],
    found: &[Option<Appended>],
) -> Option<Result<AppendResult, AppendError>> {
    let first_found = found.iter().position(Option::is_some)?;
    let same_append = match &found[0] {
        Some(first) => found.iter().enumerate().all(|(index, row)| {
            matches!(row, Some(row) if row.stream == stream
                && row.revision == first.revision + index as u64)
        }),
        None => false,
    };
    if !same_append {
        let event_id = events[first_found].id;
        return Some(Err(AppendError::IdempotencyMismatch { event_id }));
    }
    let first = found[0].as_ref().expect("checked above");
    let last = found[found.len() - 1].as_ref().expect("checked above");
    Some(Ok(AppendResult {
        first_position: first.position,
        last_position: last.position,
        revision: last.revision,
    }))
}
